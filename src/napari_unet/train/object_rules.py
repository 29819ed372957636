"""Object rules from the user's paint: the threshold and splitting that best give back the objects painted whole.

Once whole objects are painted (with *Paint whole objects*, or as corrections on the objects layer), the
network learns where one object ends and the next begins. A rule that cuts its objects again (the
distance splitting) or a threshold that erodes them throws that away; these are kept only where the
objects painted whole show that they help. At the end of a training run, the trained network predicts
the painted planes around those objects, every candidate rule makes objects from the prediction, and
the object shape the model is used with keeps the rule whose objects match the painted ones best.

"Best" is the highest F1 at IoU 0.5 on the painted objects; among rules that tie there, the highest F1
averaged over IoU thresholds from 0.5 to 0.9 (:data:`IOU_THRESHOLDS`, the Data Science Bowl's score). A
handful of painted objects decides little by F1@0.5 alone, which counts objects (with 3 painted objects
every rule that finds them scores 1.0); the higher thresholds also ask how well each outline is given
back, the very thing a threshold changes. Exact ties go to the network's own separations (no splitting,
the lowest threshold). Chosen on synthetic data, never the evaluation images: see :data:`IOU_THRESHOLDS`.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import torch
from scipy import ndimage

from napari_unet.objects.classes import probabilities_to_classes
from napari_unet.objects.config import OBJECT_SHAPES, ObjectConfig
from napari_unet.objects.instances import plane_objects
from napari_unet.objects.peaks import CROSS
from napari_unet.train.annotations import BACKGROUND, UNLABELLED
from napari_unet.train.data import TrainingData
from napari_unet.train.painted_prediction import PaintedPredictor, painted_box

#: Confidence thresholds tried, in order of preference (0.5: the network's most probable class).
THRESHOLDS = (0.5, 0.6, 0.7, 0.8, 0.9, 0.95)

#: IoU thresholds at which the objects painted whole are matched; ties of F1@0.5 go to the best mean F1
#: over them. Chosen on synthetic images (15 runs: touching nuclei with 5 or 15 objects painted whole per
#: image, from the starting model or a new one; rod-shaped bacteria with 10-12 painted, 3 seeds each),
#: scored on images never painted: mean F1@0.5 0.861 (the best rule in hindsight: 0.876), against 0.844
#: when ties within one object went to no splitting, 0.849 for exact ties only, and 0.832 for the mean F1
#: over these thresholds alone (it splits rods). Without any choice (scribble defaults): 0.730.
IOU_THRESHOLDS = tuple(round(0.5 + 0.05 * k, 2) for k in range(9))

#: How far below the argmax objects may grow, tried for the best rule of :func:`candidates` (0.5: not below).
GROW_TO = (0.35, 0.2)

#: Fewest objects painted whole for a choice; fewer say too little.
MIN_OBJECTS = 3

#: A painted object counts as whole when at least this share of the pixels around it is painted background.
WHOLE_RIM = 0.5

#: Most pixels predicted for the choice (regions around the painted objects, plane by plane).
MAX_PIXELS = 4 << 20


def whole_objects(annotation: np.ndarray) -> tuple[np.ndarray, int]:
    """The objects painted whole in a 2D annotation: object-class components ringed by painted background.

    Scribbles inside objects are left out (nothing is painted around them); so are objects touching
    unpainted pixels on more than half of their outline.

    Returns
    -------
    labels : numpy.ndarray of int32
        1..n on the whole objects, 0 elsewhere.
    n : int
    """
    out = np.zeros(annotation.shape, dtype=np.int32)
    count = 0
    for value in np.unique(annotation[annotation > BACKGROUND]).tolist():
        components, n = ndimage.label(annotation == value, CROSS)
        if not n:
            continue
        rim = ndimage.grey_dilation(components, footprint=CROSS) * (components == 0)
        around = np.bincount(rim.reshape(-1), minlength=n + 1)
        ringed = np.bincount(rim.reshape(-1), weights=annotation.reshape(-1) == BACKGROUND, minlength=n + 1)
        whole = np.flatnonzero((ringed >= WHOLE_RIM * around) & (around > 0))
        whole = whole[whole > 0]
        lookup = np.zeros(n + 1, dtype=np.int32)
        lookup[whole] = np.arange(count + 1, count + 1 + len(whole))
        out = np.where(lookup[components] > 0, lookup[components], out)
        count += len(whole)
    return out, count


def candidates(shape: str) -> list[ObjectConfig]:
    """The rules tried for an object shape, most preferred first (no splitting, low thresholds, grown back).

    Above 0.5 each threshold is tried with its objects grown back over the foreground and without: growing
    gives back the rims a network is unsure of, and not growing lets a threshold trim a network that is
    sure beyond the painted outlines.
    """
    base = ObjectConfig.for_shape(shape)
    splits = (False, True) if base.split is None else (base.split,)
    grows = (True, False) if base.grow is None else (base.grow,)
    return [
        ObjectConfig.for_shape(shape, threshold=t, split=s, grow=g)
        for s in splits
        for t in THRESHOLDS
        for g in (grows if t > 0.5 else (False,))
    ]


def match_counts(truth: np.ndarray, objects: np.ndarray, painted: np.ndarray) -> tuple[np.ndarray, int, int]:
    """(matches at each of :data:`IOU_THRESHOLDS`, painted objects, predicted objects judged) of one region.

    The predicted objects judged are those lying mostly (half or more) on painted pixels: the painted
    objects and the background painted around them.
    """
    n_true, n_objects = int(truth.max(initial=0)), int(objects.max(initial=0))
    if n_objects == 0:
        return np.zeros(len(IOU_THRESHOLDS), dtype=np.int64), n_true, 0
    sizes = np.bincount(objects.reshape(-1), minlength=n_objects + 1)
    on_paint = np.bincount(objects[painted], minlength=n_objects + 1)
    judged = np.flatnonzero((on_paint >= 0.5 * sizes) & (sizes > 0))
    judged = judged[judged > 0]
    both = (truth > 0) & (objects > 0)
    pairs, overlap = np.unique(np.stack([truth[both], objects[both]]), axis=1, return_counts=True)
    true_sizes = np.bincount(truth.reshape(-1), minlength=n_true + 1)
    iou = overlap / (true_sizes[pairs[0]] + sizes[pairs[1]] - overlap)
    # above a half, each painted object matches at most one predicted object
    matches = np.array([np.count_nonzero(iou > threshold) for threshold in IOU_THRESHOLDS], dtype=np.int64)
    return matches, n_true, len(judged)


def _regions(data: TrainingData, halo: int) -> list[tuple[int, np.ndarray]]:
    """(plane, whole objects) of the planes with objects painted whole, up to :data:`MAX_PIXELS` of boxes."""
    regions, pixels = [], 0
    for index, plane in enumerate(data.planes):
        truth, n = whole_objects(np.maximum(plane.labels, plane.val_labels))
        if not n:
            continue
        box = painted_box(truth > 0, halo)
        pixels += (box[0].stop - box[0].start) * (box[1].stop - box[1].start)
        if pixels > MAX_PIXELS and regions:
            break
        regions.append((index, truth))
    return regions


def choose_object_rules(
    net: torch.nn.Module,
    data: TrainingData,
    device: torch.device,
    amp: bool,
    shapes: tuple[str, ...] = tuple(OBJECT_SHAPES),
) -> dict | None:
    """The rule of each of ``shapes`` that best gives back the objects painted whole, or None if too few.

    ``net`` (on ``device``, in eval mode) predicts the painted planes around those objects. A shape
    without a rule falls back to the defaults (:func:`napari_unet.predict.object_thresholds.object_config_for`).

    Returns
    -------
    dict or None
        ``{"painted_objects": n, "round": {"threshold": t, "split": s, "grow": g, "grow_to": p, "f1": f,
        "score": m}, ...}``
    """
    painted_predictor = PaintedPredictor(net, device, amp, data.n_classes)
    regions = _regions(data, painted_predictor.geom.halo)
    if sum(int(truth.max()) for _, truth in regions) < MIN_OBJECTS:
        return None
    predicted = []
    for index, truth in regions:
        plane = data.planes[index]
        box, probabilities = painted_predictor.around(plane.image, truth > 0)
        painted = np.maximum(plane.labels, plane.val_labels)[box] > UNLABELLED
        predicted.append((truth[box], probabilities, probabilities_to_classes(probabilities), painted))
    rules: dict = {"painted_objects": sum(int(truth.max()) for truth, *_ in predicted)}
    for shape in shapes:
        rules[shape] = _best_rule(shape, predicted)
    return rules


def _scores(configs: list[ObjectConfig], predicted: list) -> list[tuple[ObjectConfig, float, float]]:
    """(rule, F1@0.5, mean F1 over :data:`IOU_THRESHOLDS`) of each rule on the painted objects."""
    scores = []
    for config in configs:
        matches, n_true, n_judged = np.zeros(len(IOU_THRESHOLDS)), 0, 0
        for truth, probabilities, classes, painted in predicted:
            objects, _ = plane_objects(classes, config, probabilities)
            found, true, judged = match_counts(truth, objects, painted)
            matches, n_true, n_judged = matches + found, n_true + true, n_judged + judged
        f1 = 2 * matches / max(n_true + n_judged, 1)
        scores.append((config, round(float(f1[0]), 9), round(float(f1.mean()), 9)))
    return scores


def _winner(scores: list[tuple[ObjectConfig, float, float]]) -> tuple[ObjectConfig, float, float]:
    """The best F1@0.5, ties to the best mean F1 over IoU thresholds, exact ties to the earliest."""
    best = max((f1, score) for _, f1, score in scores)
    return next(item for item in scores if (item[1], item[2]) == best)


def _best_rule(shape: str, predicted: list) -> dict:
    """The rule of ``shape`` whose objects best match the painted ones: F1@0.5, then mean F1 over IoU thresholds.

    Exact ties go to the most preferred rule (:func:`candidates`). Then, for the rule found, objects
    grown below the argmax (:data:`GROW_TO`) are tried, kept only if they match better.
    """
    config, f1, score = _winner(_scores(candidates(shape), predicted))
    if ObjectConfig.for_shape(shape).grow is None:
        deeper = [replace(config, grow=True, grow_to=grow_to) for grow_to in GROW_TO]
        config, f1, score = _winner([(config, f1, score), *_scores(deeper, predicted)])
    rule = {"threshold": config.threshold, "split": bool(config.splits), "grow": bool(config.grows)}
    return {**rule, "grow_to": config.grow_to, "f1": round(f1, 4), "score": round(score, 4)}
