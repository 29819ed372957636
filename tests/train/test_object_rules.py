"""Object rules from the user's paint (train/object_rules.py)."""

import numpy as np
import pytest
from scipy import ndimage

from napari_unet import TrainConfig, drain, fit, new_model
from napari_unet.objects.config import ObjectConfig
from napari_unet.train.annotations import instances_to_annotation
from napari_unet.train.object_rules import IOU_THRESHOLDS, _best_rule, candidates, match_counts, whole_objects


def test_whole_objects_are_those_ringed_by_painted_background(scribbled):
    _, scribbles, objects = scribbled
    assert whole_objects(scribbles)[1] == 0  # strokes inside objects, nothing painted around them
    ids = np.unique(objects[objects > 0])[:6].tolist()
    painted = instances_to_annotation(np.where(np.isin(objects, ids), objects, 0))  # touching ones get a gap
    labels, n = whole_objects(painted)
    assert n == len(ids)
    assert set(np.unique(objects[labels > 0]).tolist()) == set(ids)
    first = np.isin(objects, ids[:2])
    painted[ndimage.binary_dilation(first, iterations=2) & ~first & (objects == 0)] = 0  # two lose their rings
    assert whole_objects(painted)[1] == len(ids) - 2


def test_candidates_prefer_the_networks_own_separations():
    rules = candidates("round")
    assert (rules[0].threshold, rules[0].split) == (0.5, False)
    assert {r.split for r in rules} == {False, True}
    assert {r.split for r in candidates("connected")} == {False}
    assert all(r.fill for r in candidates("packed"))


def test_match_counts_judge_the_objects_on_paint():
    truth = np.zeros((20, 40), np.int32)
    truth[2:8, 2:8], truth[2:8, 10:16] = 1, 2
    painted = np.zeros(truth.shape, bool)
    painted[:10, :18] = True
    objects = np.zeros_like(truth)
    objects[2:8, 2:16] = 1  # the pair merged
    objects[12:18, 30:36] = 2  # an object far from the paint is not judged
    matches, n_true, n_judged = match_counts(truth, objects, painted)
    assert (matches.tolist(), n_true, n_judged) == ([0] * len(IOU_THRESHOLDS), 2, 1)
    objects[2:8, 9:16] = 3  # the pair split, each a column too wide: IoU 36/42 = 0.857
    matches, n_true, n_judged = match_counts(truth, objects, painted)
    assert (n_true, n_judged) == (2, 2)
    assert matches.tolist() == [2 if t < 36 / 42 else 0 for t in IOU_THRESHOLDS]


def test_with_few_objects_painted_the_rule_that_gives_back_their_outlines_wins():
    truth = np.zeros((60, 120), np.int32)
    yy, xx = np.mgrid[:60, :120]
    radius = np.full(truth.shape, np.inf)
    for k, cx in enumerate((20, 60, 100)):
        distance = np.hypot(yy - 30, xx - cx)
        truth[distance <= 8] = k + 1
        radius = np.minimum(radius, distance)
    # the network is 0.8 sure at the painted outline and still more than half sure 3 pixels beyond it
    inside = np.clip(0.8 + 0.1 * (8 - radius), 0, 1)
    probabilities = np.stack([1 - inside, inside]).astype(np.float32)
    classes = (inside > 0.5).astype(np.uint8) * 2
    rule = _best_rule("round", [(truth, probabilities, classes, painted_around(truth))])
    # every threshold finds the 3 objects (F1@0.5 is 1.0 for all: IoU 64/121 at 0.5); only 0.8 fits them,
    # without growing them back to the argmax
    assert (rule["threshold"], rule["split"], rule["grow"], rule["f1"]) == (0.8, False, False, 1.0)
    assert rule["score"] > 0.95


def test_objects_the_network_is_unsure_at_the_rims_of_are_grown_back():
    truth = np.zeros((40, 80), np.int32)
    yy, xx = np.mgrid[:40, :80]
    inside = np.full(truth.shape, 0.1)
    for k, cx in enumerate((22, 38, 60)):
        distance = np.hypot(yy - 20, xx - cx)
        truth[(distance <= 8) & (truth == 0)] = k + 1
        inside = np.where(distance <= 8, np.maximum(inside, 0.65), inside)
        inside = np.where(distance <= 5, 0.99, inside)
    inside[(truth == 1) & (np.roll(truth, -1, axis=1) == 2)] = 0.55  # where the first two touch: unsure
    probabilities = np.stack([1 - inside, inside]).astype(np.float32)
    classes = (inside > 0.5).astype(np.uint8) * 2  # the first two merged
    rule = _best_rule("round", [(truth, probabilities, classes, painted_around(truth))])
    # a threshold separates the touching pair; growing gives each back the rim the network is unsure of
    assert rule["threshold"] > 0.5 and rule["grow"] is True and rule["f1"] == 1.0
    assert rule["score"] > 0.95


def test_objects_the_network_puts_inside_the_painted_outlines_grow_below_the_argmax():
    truth = np.zeros((40, 100), np.int32)
    for k, x in enumerate((10, 17, 40, 47, 70, 77)):  # three pairs of rods side by side, 7 pixels wide
        truth[8:32, x : x + 7] = k + 1
    inside = np.where(truth > 0, 0.95, 0.02)
    outline = (truth > 0) & ~ndimage.binary_erosion(truth > 0)
    inside[outline] = 0.3  # the argmax is a pixel inside every outline
    inside[:, (16, 17, 46, 47, 76, 77)] = np.where(truth[:, (16, 17, 46, 47, 76, 77)] > 0, 0.1, 0.02)  # gaps
    probabilities = np.stack([1 - inside, inside]).astype(np.float32)
    classes = (inside > 0.5).astype(np.uint8) * 2
    rule = _best_rule("round", [(truth, probabilities, classes, painted_around(truth))])
    assert rule["grow"] is True and rule["grow_to"] < 0.5 and rule["f1"] == 1.0
    assert rule["score"] > 0.85  # each rod gives its gap column to the other: IoU 6/7


def _elongated_and_touching():
    """Probabilities of a network that learned two kinds of painted objects: bent rods and touching discs."""
    truth = np.zeros((120, 160), np.int32)
    yy, xx = np.mgrid[:120, :160]
    for k, row in enumerate((20, 50, 80)):  # rods with a waist: distance splitting cuts them
        rod = (np.abs(yy - row) <= 4 + 2 * np.abs(np.sin((xx - 10) / 12))) & (xx > 10) & (xx < 70)
        truth[rod] = k + 1
    for k, (cy, cx) in enumerate(((30, 110), (30, 123), (80, 110), (80, 123))):  # overlapping pairs, no gap
        truth[(yy - cy) ** 2 + (xx - cx) ** 2 <= 64] = k + 4
    inside = ndimage.gaussian_filter((truth > 0).astype(float), 1)
    probabilities = np.stack([1 - inside, inside]).astype(np.float32)
    classes = (inside > 0.5).astype(np.uint8) * 2
    return truth, probabilities, classes


def painted_around(objects: np.ndarray) -> np.ndarray:
    """What painting these objects whole with a ring covers."""
    return ndimage.binary_dilation(objects > 0, iterations=2)


def test_the_painted_objects_decide_whether_splitting_helps():
    truth, probabilities, classes = _elongated_and_touching()
    rods = np.where(truth <= 3, truth, 0)
    rule = _best_rule("round", [(rods, probabilities, classes, painted_around(rods))])
    assert rule["split"] is False and rule["f1"] == 1.0  # splitting would cut the rods
    discs = np.where(truth > 3, truth - 3, 0)
    rule = _best_rule("round", [(discs, probabilities, classes, painted_around(discs))])
    assert rule["split"] is True  # the pairs meet without a gap or a dip: only splitting separates them


@pytest.mark.slow
def test_training_on_objects_painted_whole_records_their_rules(nuclei):
    image, objects = nuclei
    ids = np.unique(objects[objects > 0])[:8]
    annotation = instances_to_annotation(np.where(np.isin(objects, ids), objects, 0))
    annotation[(annotation == 0) & (ndimage.distance_transform_edt(objects == 0) > 6)] = 1
    model = new_model("light", ["nucleus"], depth=2, base_filters=8, seed=0)
    drain(fit(model, [image], [annotation], TrainConfig(steps=60, batch_size=4, patch_size=60, device="cpu")))
    rules = model.history[-1]["object_rules"]
    assert rules["painted_objects"] >= 6  # some fall into the validation blocks' edges, most stay whole
    assert set(rules) == {"painted_objects", "round"}  # the shape the model is used with
    assert isinstance(rules["round"]["split"], bool) and 0.5 <= rules["round"]["threshold"] <= 0.95
    assert isinstance(rules["round"]["grow"], bool) and 0 < rules["round"]["grow_to"] <= 0.5
    scribbles_only = new_model("light", ["nucleus"], depth=2, base_filters=8, seed=0)
    strokes = np.where(ndimage.binary_erosion(objects > 0, iterations=3), 2, annotation * (annotation == 1))
    drain(fit(scribbles_only, [image], [strokes], TrainConfig(steps=5, batch_size=2, patch_size=60, device="cpu")))
    assert "object_rules" not in scribbles_only.history[-1]
    assert ObjectConfig().split is None  # round objects: split or not as the paint says
