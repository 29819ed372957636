"""Loss for sparse annotations: masked cross-entropy, class balancing and the paper's border weight map.

Annotation values: 0 unlabelled (no loss), 1 background, 2..K object classes. The weight of a labelled
pixel is ``w(x) = w_c(x) + w0 * exp(-(d1(x) + d2(x))**2 / (2 * sigma**2))`` where ``w_c`` balances the
class frequencies and ``d1``, ``d2`` are the distances to the nearest and second-nearest painted object.
The border term applies to background pixels, so the narrow gaps painted between touching objects weigh
most, which is what teaches the network to separate them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
from scipy import ndimage
from torch.nn import functional as F

from napari_unet.train.annotations import BACKGROUND, UNLABELLED


def painted_objects(labels: np.ndarray) -> tuple[np.ndarray, int]:
    """Instances of a 2D annotation: connected components of each object class (values >= 2).

    Returns
    -------
    instances : numpy.ndarray of int32
        0 outside objects, 1..n inside.
    n : int
        Number of objects.
    """
    instances = np.zeros(labels.shape, dtype=np.int32)
    count = 0
    for value in np.unique(labels[labels > BACKGROUND]):
        components, n = ndimage.label(labels == value)
        instances[components > 0] = components[components > 0] + count
        count += n
    return instances, count


def border_weights(labels: np.ndarray, w0: float = 10.0, sigma: float = 5.0) -> np.ndarray:
    """The paper's border term ``w0 * exp(-(d1 + d2)**2 / (2 sigma**2))`` on the background pixels.

    Parameters
    ----------
    labels : numpy.ndarray
        2D annotation (0 unlabelled, 1 background, 2.. objects).
    w0 : float
        Peak weight (10 in the paper). 0 switches the term off.
    sigma : float
        Width of the border term in pixels (about 5 in the paper).

    Returns
    -------
    numpy.ndarray of float32
        The term at every pixel labelled background, 0 elsewhere.
    """
    out = np.zeros(labels.shape, dtype=np.float32)
    if w0 <= 0:
        return out
    instances, n = painted_objects(labels)
    if n < 2:
        return out
    # beyond d1 + d2 = reach the term is below w0 * 1e-4: each object's distances matter only that close
    reach = sigma * math.sqrt(2.0 * math.log(1e4))
    margin = math.ceil(reach) + 1
    d1 = np.full(labels.shape, np.inf, dtype=np.float32)
    d2 = np.full(labels.shape, np.inf, dtype=np.float32)
    for index, box in enumerate(ndimage.find_objects(instances), start=1):
        if box is None:
            continue
        window = tuple(
            slice(max(s.start - margin, 0), min(s.stop + margin, size))
            for s, size in zip(box, labels.shape, strict=True)
        )
        dist = ndimage.distance_transform_edt(instances[window] != index).astype(np.float32)
        near, second = d1[window], d2[window]
        second[...] = np.minimum(second, np.maximum(near, dist))
        near[...] = np.minimum(near, dist)
    term = w0 * np.exp(-((d1 + d2) ** 2) / (2.0 * sigma**2))
    background = labels == BACKGROUND
    out[background] = term[background]
    return out


def class_frequency_weights(label_arrays: Sequence[np.ndarray], n_classes: int) -> np.ndarray:
    """Weights ``w_c`` that give every painted class the same total weight; mean 1 over labelled pixels.

    Parameters
    ----------
    label_arrays : sequence of numpy.ndarray
        Annotations (0 unlabelled, 1..n_classes classes).
    n_classes : int
        Number of classes, background included.

    Returns
    -------
    numpy.ndarray of float32, shape (n_classes + 1,)
        Weight per annotation value; index 0 (unlabelled) is 0, absent classes get 0.
    """
    counts = np.zeros(n_classes + 1, dtype=np.float64)
    for labels in label_arrays:
        counts += np.bincount(labels.reshape(-1), minlength=n_classes + 1)[: n_classes + 1]
    counts[UNLABELLED] = 0
    present = counts > 0
    weights = np.zeros(n_classes + 1, dtype=np.float32)
    if present.any():
        weights[present] = counts[present].sum() / (present.sum() * counts[present])
    return weights


def weight_map(
    labels: np.ndarray,
    class_weights: np.ndarray | None,
    w0: float = 10.0,
    sigma: float = 5.0,
) -> np.ndarray:
    """Per-pixel loss weight of a 2D annotation: class balance plus border term, 0 where unlabelled.

    Parameters
    ----------
    labels : numpy.ndarray
        2D annotation.
    class_weights : numpy.ndarray or None
        Weight per annotation value (from :func:`class_frequency_weights`); None weighs classes equally.
    w0, sigma : float
        Border term (see :func:`border_weights`).
    """
    labels = np.asarray(labels)
    if class_weights is None:
        base = (labels > UNLABELLED).astype(np.float32)
    else:
        base = np.asarray(class_weights, dtype=np.float32)[labels]
    return base + border_weights(labels, w0, sigma)


def weighted_cross_entropy(
    logits: torch.Tensor, labels: torch.Tensor, weights: torch.Tensor | None = None
) -> torch.Tensor:
    """Pixel-wise softmax cross-entropy over labelled pixels, averaged over the labelled pixels.

    Parameters
    ----------
    logits : torch.Tensor
        (B, K, H, W) network output.
    labels : torch.Tensor
        (B, H, W) annotation values: 0 unlabelled (ignored), 1..K classes.
    weights : torch.Tensor, optional
        (B, H, W) per-pixel weights; 1 for every labelled pixel if omitted.

    Returns
    -------
    torch.Tensor
        A scalar; 0 (with a gradient) if no pixel is labelled.
    """
    targets = labels.long() - 1
    labelled = targets >= 0
    per_pixel = F.cross_entropy(logits.float(), targets.clamp(min=0), reduction="none")
    if weights is None:
        weights = labelled.float()
    per_pixel = per_pixel * weights * labelled
    return per_pixel.sum() / labelled.sum().clamp(min=1)
