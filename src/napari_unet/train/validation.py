"""Validation during training: loss and IoU on the painted pixels held out from training."""

from __future__ import annotations

import math

import numpy as np
import torch

from napari_unet.train.config import Validation
from napari_unet.train.data import TrainingData
from napari_unet.train.painted_prediction import PaintedPredictor

#: Most of a run's time spent validating: validations are spaced further than ``validate_every`` if need be.
VALIDATION_SHARE = 0.1


def class_iou(predicted: np.ndarray, target: np.ndarray, values: list[int]) -> float:
    """Mean IoU over ``values`` of two label vectors (classes absent from both are skipped)."""
    scores = []
    for v in values:
        union = np.count_nonzero((predicted == v) | (target == v))
        if union:
            scores.append(np.count_nonzero((predicted == v) & (target == v)) / union)
    return float(np.mean(scores)) if scores else float("nan")


def validate(
    net: torch.nn.Module, data: TrainingData, device: torch.device, amp: bool, tile: int = 572
) -> Validation | None:
    """Predict the held-out pixels (only around each group of them, with full context) and score them.

    Returns None when no pixel was held out. The network must be on ``device`` and in eval mode.
    """
    if data.validation_pixels == 0:
        return None
    painted = PaintedPredictor(net, device, amp, data.n_classes, tile)
    predicted, target, likelihood = [], [], []
    for plane in data.planes:
        held = plane.val_labels > 0
        if not held.any():
            continue
        for box, probs, inside in painted.around_groups(plane.image, held):
            values = plane.val_labels[box][inside].astype(np.int64)
            chosen = probs[:, inside]
            likelihood.append(chosen[values - 1, np.arange(len(values))])
            predicted.append(np.argmax(chosen, axis=0) + 1)
            target.append(values)
    p, t = np.concatenate(predicted), np.concatenate(target)
    loss = float(-np.mean(np.log(np.clip(np.concatenate(likelihood), 1e-7, 1.0))))
    iou = class_iou(p, t, list(range(2, data.n_classes + 1)))
    return Validation(loss=loss, iou=iou, pixels=len(t))


def next_validation_step(step: int, validate_every: int, seconds: float, step_seconds: float) -> int:
    """The step of the next validation after one at ``step`` that took ``seconds``.

    ``validate_every`` steps later, or later still so that validating takes at most
    :data:`VALIDATION_SHARE` of the time: on 20 ISBI slices on a 2-core CPU one validation takes 3.6 s,
    a third of a 300-step retrain when made every 100 steps.
    """
    spacing = seconds * (1 - VALIDATION_SHARE) / VALIDATION_SHARE / max(step_seconds, 1e-9)
    return step + max(validate_every, math.ceil(spacing))
