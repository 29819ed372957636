import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.nn import functional as F

from napari_unet.train.augment import AugmentConfig, affine_grid, affine_matrices, augment_batch, elastic_field

IDENTITY = AugmentConfig(elastic_sigma=0, rotate=False, flip=False, scale=0, shift=0, contrast=0, brightness=0, noise=0)


def _batch(seed=0, size=64, classes=4):
    rng = np.random.default_rng(seed)
    labels = torch.from_numpy(rng.integers(0, classes + 1, (3, size, size)))
    images = torch.from_numpy(rng.random((3, 2, size, size)).astype(np.float32))
    weights = torch.from_numpy(rng.random((3, size, size)).astype(np.float32))
    return images, labels, weights


def test_identity_transform_only_crops():
    images, labels, weights = _batch()
    out = augment_batch(images, labels, weights, IDENTITY, torch.Generator().manual_seed(0), (40, 30))
    np.testing.assert_allclose(out[0], images[..., 12:52, 17:47], atol=1e-5)
    assert torch.equal(out[1], labels[..., 12:52, 17:47])


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 10_000), classes=st.integers(1, 6), strength=st.floats(0.0, 2.0))
def test_elastic_deformation_keeps_label_values(seed, classes, strength):
    """Nearest-neighbour resampling: no new label values appear, only 0 may come in from outside."""
    images, labels, weights = _batch(seed, classes=classes)
    config = AugmentConfig(strength=strength)
    _, new_labels, new_weights = augment_batch(images, labels, weights, config, torch.Generator().manual_seed(seed))
    assert set(new_labels.unique().tolist()) <= set(labels.unique().tolist()) | {0}
    assert new_labels.dtype == labels.dtype
    assert torch.isfinite(new_weights).all()


def test_deformation_moves_images_and_labels_together():
    size = 96
    labels = torch.zeros(1, size, size, dtype=torch.long)
    labels[0, 30:60, 40:70] = 2
    images = (labels[:, None] == 2).float()
    out_images, out_labels, _ = augment_batch(
        images,
        labels,
        labels.float(),
        AugmentConfig(noise=0, contrast=0, brightness=0),
        torch.Generator().manual_seed(5),
    )
    agree = ((out_images[:, 0] > 0.5) == (out_labels == 2)).float().mean()
    assert agree > 0.97


def test_elastic_field_statistics_follow_the_paper():
    """Coarse 3x3 grid, std 10 px: the field at grid points has that spread, and it is smooth."""
    gen = torch.Generator().manual_seed(0)
    field = elastic_field(256, (33, 33), (33, 33), AugmentConfig(), gen)
    pixels = field * 16.0  # normalised units -> pixels for a 33-pixel patch (2 / (33 - 1))
    corners = pixels[:, ::16, ::16, :]
    assert 8.5 < corners.std().item() < 11.5
    assert (pixels[:, 1:] - pixels[:, :-1]).abs().max() < 10


def test_augmentation_is_reproducible():
    images, labels, weights = _batch()
    a = augment_batch(images, labels, weights, AugmentConfig(), torch.Generator().manual_seed(3))
    b = augment_batch(images, labels, weights, AugmentConfig(), torch.Generator().manual_seed(3))
    for x, y in zip(a, b, strict=True):
        assert torch.equal(x, y)


def test_strength_zero_switches_everything_off():
    images, labels, weights = _batch()
    out = augment_batch(images, labels, weights, AugmentConfig(strength=0), torch.Generator())
    assert torch.equal(out[0], images) and torch.equal(out[1], labels)


@pytest.mark.parametrize("shape", [(1, 64, 64), (2, 40, 90)])
def test_non_square_patches(shape):
    images = torch.rand(shape[0], 1, shape[1], shape[2])
    labels = torch.ones(shape, dtype=torch.uint8)
    out = augment_batch(
        images,
        labels,
        labels.float(),
        AugmentConfig(),
        torch.Generator().manual_seed(1),
        (shape[1] // 2, shape[2] // 2),
    )
    assert out[0].shape == (shape[0], 1, shape[1] // 2, shape[2] // 2)


@pytest.mark.filterwarnings("ignore:Since version 1.3.0, affine_grid")  # torch on unit-size grids
@pytest.mark.parametrize("out_shape", [(40, 30), (1, 5)])
def test_elementwise_affine_grid_matches_torch(out_shape):
    matrices = affine_matrices(3, out_shape, (60, 50), AugmentConfig(), torch.Generator().manual_seed(0))
    expected = F.affine_grid(matrices, [3, 1, *out_shape], align_corners=True)
    torch.testing.assert_close(affine_grid(matrices, out_shape), expected)
