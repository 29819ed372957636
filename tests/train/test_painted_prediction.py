"""The network's prediction around painted pixels (train/painted_prediction.py)."""

import numpy as np
import torch

from napari_unet.train.painted_prediction import PaintedPredictor, painted_box

from ..conftest import FLOAT32_AGREE


def test_groups_far_apart_are_predicted_apart_and_agree_with_the_whole_plane(tiny_model):
    net = tiny_model.net.eval()
    painted = PaintedPredictor(net, torch.device("cpu"), amp=False, n_classes=2, tile=572)
    halo = painted.geom.halo
    rng = np.random.default_rng(0)
    image = rng.normal(size=(1, 400, 400)).astype(np.float32)
    mask = np.zeros((400, 400), bool)
    mask[10:20, 10:20] = True  # a block in one corner
    mask[10:20, 30:34] = True  # a stroke next to it: the same group
    mask[380:390, 370:395] = True  # a block in the opposite corner
    whole_box, whole = painted.around(image, mask)
    assert whole_box == (slice(0, 400), slice(0, 400))
    groups = list(painted.around_groups(image, mask))
    assert len(groups) == 2
    covered = np.zeros_like(mask)
    for box, probabilities, part in groups:
        assert probabilities.shape[1:] == part.shape
        assert all(s.stop - s.start <= 60 + 2 * halo for s in box)  # no more than the group and its context
        covered[box] |= part
        alone = np.zeros_like(mask)
        alone[box] = part
        same_box, same = painted.around(image, alone)  # what predicting this group by itself gives
        assert same_box == box
        np.testing.assert_allclose(probabilities, same, **FLOAT32_AGREE)
        # the same as the whole plane's prediction: the box starts on its pooling grid, with all the context
        np.testing.assert_allclose(probabilities[:, part], whole[(slice(None), *box)][:, part], **FLOAT32_AGREE)
    assert (covered == mask).all()  # every masked pixel once
    assert list(painted.around_groups(image, np.zeros_like(mask))) == []


def test_groups_spread_over_the_plane_are_predicted_in_one_box(tiny_model):
    painted = PaintedPredictor(tiny_model.net.eval(), torch.device("cpu"), amp=False, n_classes=2, tile=572)
    image = np.random.default_rng(1).normal(size=(1, 300, 300)).astype(np.float32)
    mask = np.zeros((300, 300), bool)
    for y in range(0, 300, 45):
        for x in range(0, 290, 45):
            mask[y, x : x + 10] = True  # 7 rows of strokes: their 7 boxes cover more than one
    groups = list(painted.around_groups(image, mask))
    assert len(groups) == 1
    box, _, part = groups[0]
    assert box == painted_box(mask, painted.geom.halo, painted.geom.alignment) and (part == mask[box]).all()
