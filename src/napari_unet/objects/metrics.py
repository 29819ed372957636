"""Segmentation quality against a ground truth: object F1 at an IoU threshold and foreground IoU."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class ObjectScores:
    """Object-level matching result.

    Attributes
    ----------
    f1, precision, recall : float
        From one-to-one matches with IoU above the threshold.
    true_positives, n_true, n_predicted : int
        Counts behind the scores.
    mean_matched_iou : float
        Mean IoU of the matched pairs.
    """

    f1: float
    precision: float
    recall: float
    true_positives: int
    n_true: int
    n_predicted: int
    mean_matched_iou: float


def iou_matrix(true: np.ndarray, predicted: np.ndarray) -> np.ndarray:
    """IoU of every true object (rows) with every predicted object (columns); ids are relabelled 1..n."""
    _, t = np.unique(true, return_inverse=True)
    _, p = np.unique(predicted, return_inverse=True)
    t, p = t.reshape(-1), p.reshape(-1)
    has_bg_t, has_bg_p = (true == 0).any(), (predicted == 0).any()
    t = t + (0 if has_bg_t else 1)
    p = p + (0 if has_bg_p else 1)
    n_t, n_p = int(t.max()) + 1, int(p.max()) + 1
    overlap = np.bincount(t * n_p + p, minlength=n_t * n_p).reshape(n_t, n_p).astype(np.float64)
    area_t, area_p = overlap.sum(axis=1), overlap.sum(axis=0)
    union = area_t[:, None] + area_p[None, :] - overlap
    iou = np.divide(overlap, union, out=np.zeros_like(overlap), where=union > 0)
    return iou[1:, 1:]


def object_scores(true: np.ndarray, predicted: np.ndarray, threshold: float = 0.5) -> ObjectScores:
    """Match objects one to one at IoU > ``threshold`` (>= 0.5 makes matches unique) and score them."""
    if threshold < 0.5:
        raise ValueError("thresholds below 0.5 need an assignment step; use 0.5 or more")
    iou = iou_matrix(true, predicted)
    n_true, n_pred = iou.shape
    matched = iou > threshold
    tp = int(matched.sum())
    precision = tp / n_pred if n_pred else 0.0
    recall = tp / n_true if n_true else 0.0
    f1 = 2 * tp / (n_true + n_pred) if n_true + n_pred else 1.0
    mean_iou = float(iou[matched].mean()) if tp else 0.0
    return ObjectScores(f1, precision, recall, tp, n_true, n_pred, mean_iou)


def foreground_iou(true: np.ndarray, predicted: np.ndarray) -> float:
    """IoU of the foreground (non-zero) pixels."""
    t, p = np.asarray(true) > 0, np.asarray(predicted) > 0
    union = np.count_nonzero(t | p)
    return np.count_nonzero(t & p) / union if union else 1.0
