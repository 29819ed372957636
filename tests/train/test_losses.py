import numpy as np
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from napari_unet.train.losses import (
    border_weights,
    class_frequency_weights,
    painted_objects,
    weight_map,
    weighted_cross_entropy,
)


def test_loss_ignores_unlabelled_pixels():
    logits = torch.randn(2, 3, 8, 8)
    labels = torch.randint(1, 4, (2, 8, 8))
    labels[:, :4] = 0
    loss = weighted_cross_entropy(logits, labels)
    changed = logits.clone()
    changed[:, :, :4] = torch.randn(2, 3, 4, 8) * 100
    assert torch.allclose(loss, weighted_cross_entropy(changed, labels))


def test_loss_is_zero_with_gradient_when_nothing_is_labelled():
    logits = torch.randn(1, 2, 4, 4, requires_grad=True)
    loss = weighted_cross_entropy(logits, torch.zeros(1, 4, 4, dtype=torch.long))
    loss.backward()
    assert loss.item() == 0 and logits.grad is not None


def test_loss_matches_cross_entropy_on_labelled_pixels():
    logits = torch.randn(1, 2, 5, 5)
    labels = torch.randint(0, 3, (1, 5, 5))
    mask = labels > 0
    expected = torch.nn.functional.cross_entropy(logits.permute(0, 2, 3, 1)[mask], labels[mask] - 1)
    assert torch.allclose(weighted_cross_entropy(logits, labels), expected)


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 1000),
    scale=st.floats(1e-3, 1e4),
    classes=st.integers(2, 5),
)
def test_loss_is_finite_for_any_input(seed, scale, classes):
    gen = torch.Generator().manual_seed(seed)
    logits = torch.randn(2, classes, 6, 6, generator=gen) * scale
    labels = torch.randint(0, classes + 1, (2, 6, 6), generator=gen)
    weights = torch.rand(2, 6, 6, generator=gen) * 20
    assert torch.isfinite(weighted_cross_entropy(logits, labels, weights))


def _two_objects(gap):
    labels = np.ones((60, 80), dtype=np.uint8)
    labels[20:40, 10:35] = 2
    labels[20:40, 35 + gap : 60 + gap] = 2
    return labels


def test_border_weight_peaks_in_the_gap_between_close_objects():
    labels = _two_objects(gap=3)
    weights = border_weights(labels, w0=10, sigma=5)
    gap = weights[20:40, 35:38]
    assert gap.min() > 5  # d1 + d2 <= 4 -> w >= 10 * exp(-16 / 50)
    assert weights.max() == gap.max()
    assert weights[labels == 2].max() == 0  # only on background
    far = weights[0:5, 0:5]
    assert far.max() < 0.1


def test_border_weight_needs_two_objects_and_w0():
    labels = np.ones((30, 30), dtype=np.uint8)
    labels[10:20, 10:20] = 2
    assert border_weights(labels).max() == 0
    assert border_weights(_two_objects(2), w0=0).max() == 0


def test_painted_objects_separates_classes_and_components():
    labels = np.zeros((10, 10), dtype=np.uint8)
    labels[1:3, 1:3] = 2
    labels[1:3, 3:5] = 3  # touching, other class -> another object
    labels[6:8, 6:8] = 2
    _, n = painted_objects(labels)
    assert n == 3


def test_class_frequency_weights_balance_classes():
    labels = np.zeros((10, 10), dtype=np.uint8)
    labels[:1] = 1  # 10 background pixels
    labels[1:5] = 2  # 40 object pixels
    w = class_frequency_weights([labels], 2)
    assert w[0] == 0
    assert np.isclose(w[1] * 10, w[2] * 40)
    assert np.isclose((w[1] * 10 + w[2] * 40) / 50, 1.0)


def test_weight_map_is_zero_where_unlabelled():
    labels = _two_objects(3)
    labels[:10] = 0
    weights = weight_map(labels, class_frequency_weights([labels], 2))
    assert (weights[:10] == 0).all() and (weights[labels > 0] > 0).all()
