"""From classes to objects: one id per object, touching ones split at their necks or grown to the boundaries."""

from __future__ import annotations

import numpy as np
from scipy import ndimage
from skimage.morphology import h_maxima
from skimage.segmentation import watershed

from napari_unet.objects.classes import channel_argmax, class_values
from napari_unet.objects.config import THRESHOLD_SCRIBBLED, ObjectConfig
from napari_unet.objects.peaks import CROSS, THREADS, centre_height, context_margin, peak_plateau_counts


def split_margin(config: ObjectConfig) -> int:
    """Pixels of context around a component's bounding box that its split depends on (:func:`context_margin`)."""
    return context_margin(config.smoothing)


def split_component(own: np.ndarray, config: ObjectConfig) -> tuple[np.ndarray, int]:
    """Split one connected component (``own``, in a crop with :func:`split_margin` of context) into objects.

    The centres are the h-maxima of its (smoothed) distance to everything that is not the component,
    grown back by a watershed. The result depends on the crop only through the component and where the
    crop meets the image border, so any crop of the same extent gives the same objects (what block-wise
    prediction relies on to cut objects the same way in neighbouring blocks).

    Returns
    -------
    parts : numpy.ndarray of int32
        1..n inside the component, 0 elsewhere.
    n : int
    """
    height, peaks = centre_height(own, config.smoothing)
    # h-maxima are regional maxima, each inside a plateau of local maxima: with at most one such plateau
    # there is nothing to split, and h_maxima (the costly part) is skipped
    if np.count_nonzero(peaks) <= 1 or ndimage.label(peaks, CROSS)[1] <= 1:
        return own.astype(np.int32), 1
    markers, n = ndimage.label(h_maxima(height, config.split_depth) & own, CROSS)
    if n <= 1:
        return own.astype(np.int32), 1
    parts = watershed(-height, markers, mask=own).astype(np.int32)
    # pixels no marker reached (thin slivers) keep an id of their own
    orphans, n_orphans = ndimage.label(own & (parts == 0), CROSS)
    if n_orphans:
        parts[orphans > 0] = orphans[orphans > 0] + n
    return parts, n + n_orphans


def context_box(box: tuple[slice, ...], margin: int, shape: tuple[int, ...]) -> tuple[slice, ...]:
    """``box`` grown by ``margin`` on every side, clipped to an array of ``shape``."""
    return tuple(slice(max(s.start - margin, 0), min(s.stop + margin, n)) for s, n in zip(box, shape, strict=True))


def split_mask(mask: np.ndarray, config: ObjectConfig, min_size: int = 1) -> tuple[np.ndarray, int]:
    """Label a 2D binary mask into objects, splitting touching ones at the necks between them.

    Each connected component is split on its own (:func:`split_component`), in its bounding box with a
    margin: the cost follows the objects rather than the image (h-maxima sorts every pixel it is given:
    on a whole 4096x4096 image that was most of the object time). The components with a single peak
    (most of them) are found all at once (:func:`napari_unet.objects.peaks.peak_plateau_counts`) and labelled
    in one pass; only the others are split one by one.

    Objects under ``min_size`` pixels are dropped in the same pass: the result equals
    ``remove_small(split_mask(mask, config)[0], min_size)``.

    Returns
    -------
    labels : numpy.ndarray of int32
        1..n in component order (the parts of a split one in their order), 0 elsewhere.
    n : int
    """
    components, n_components = ndimage.label(mask)
    if n_components == 0 or (not config.splits and min_size <= 1):
        return components, n_components
    to_split = np.zeros(0, dtype=np.int64)
    if config.splits:
        boxes = ndimage.find_objects(components)
        to_split = (
            np.flatnonzero(peak_plateau_counts(components, boxes, config.smoothing, threads=THREADS)[1:] != 1) + 1
        )
    kept = np.ones(n_components + 1, dtype=np.int64)  # objects each component leaves
    if min_size > 1:
        kept = (label_sizes(components, n_components) >= min_size).astype(np.int64)
    kept[0] = 0
    margin = split_margin(config)
    split: dict[int, tuple[tuple[slice, ...], np.ndarray]] = {}
    for index in to_split:
        box = context_box(boxes[index - 1], margin, mask.shape)
        parts, n = split_component(components[box] == index, config)
        if n > 1:
            keep = np.bincount(parts.reshape(-1), minlength=n + 1) >= min_size
            keep[0] = False
            kept[index] = np.count_nonzero(keep)
            renumber = np.zeros(n + 1, dtype=np.int32)
            renumber[keep] = np.arange(1, kept[index] + 1)
            split[int(index)] = box, renumber[parts]
    before = np.cumsum(kept) - kept  # ids taken by the components before each one
    lookup = np.where(kept > 0, before + 1, 0).astype(np.int32)
    lookup[list(split)] = 0
    labels = lookup[components]
    for index, (box, parts) in split.items():
        target = labels[box]  # a view: writing to it writes to labels
        inside = parts > 0
        target[inside] = parts[inside] + before[index]
    return labels, int(kept.sum())


def label_sizes(labels: np.ndarray, n: int) -> np.ndarray:
    """Pixels of each label 0..n: ``np.bincount`` a million pixels at a time.

    One bincount of a large int32 image first copies it to 64-bit integers: 1.6 s for 8192 x 8192 with
    fresh memory, against 0.2 s in pieces.
    """
    sizes = np.zeros(n + 1, dtype=np.int64)
    flat = labels.reshape(-1)
    for start in range(0, flat.size, 1 << 20):
        sizes += np.bincount(flat[start : start + (1 << 20)], minlength=n + 1)
    return sizes


def remove_small(labels: np.ndarray, min_size: int) -> np.ndarray:
    """Drop objects under ``min_size`` pixels and renumber the rest 1..n."""
    sizes = label_sizes(labels, int(labels.max(initial=0)))
    keep = sizes >= min_size
    keep[0] = False
    if keep[1:].all():  # nothing dropped: already 1..n when every id is used
        return labels
    lookup = np.zeros(len(sizes), dtype=labels.dtype if labels.dtype.kind in "iu" else np.int64)
    lookup[keep] = np.arange(1, keep.sum() + 1)
    return lookup[labels]


def plane_objects(
    classes: np.ndarray, config: ObjectConfig, probabilities: np.ndarray | None = None
) -> tuple[np.ndarray, int]:
    """Objects of one 2D class map (with its (K, H, W) probabilities): each class separately, ids 1..n."""
    out = np.zeros(classes.shape, dtype=np.uint32)
    count = 0
    threshold = THRESHOLD_SCRIBBLED if config.threshold is None else config.threshold
    confident_only = probabilities is not None and threshold > 0.5
    grows = probabilities is not None and config.grows and (confident_only or config.grow_to < 0.5)
    reach = reach_classes(probabilities, classes, config.grow_to) if grows else None
    for value in class_values(classes):
        region = classes == value
        mask = region & (probabilities[value - 1] >= threshold) if confident_only else region
        labels, n = split_mask(mask, config, config.min_size)
        if grows and n:
            labels = grow_plane(labels, reach == value, probabilities[0])
        if count == 0:
            np.copyto(out, labels, casting="unsafe")  # the ids are positive
        else:
            inside = labels > 0
            np.add(labels, count, out=out, where=inside, casting="unsafe")
        count += n
    if config.fill:
        out = fill_plane(out, classes == 0 if probabilities is None else probabilities[0])
    return out, count


def reach_classes(probabilities: np.ndarray, classes: np.ndarray, grow_to: float) -> np.ndarray:
    """The class whose objects may grow over each pixel (0: none), for :func:`grow_plane`.

    A pixel's most probable class; where that is the background, the most probable object class if
    it is at least ``grow_to`` probable (below 0.5, objects grow past the argmax: a network trained
    with painted background weighing more than objects, as class balance and border weights make it,
    puts the argmax inside the painted outlines).
    """
    reach = np.array(classes, dtype=np.uint8, copy=True)
    if grow_to >= 0.5 or len(probabilities) < 2:
        return reach
    best = channel_argmax(probabilities[1:], axis=0)
    chosen = np.take_along_axis(probabilities[1:], best[None].astype(np.intp), axis=0)[0]
    joins = (reach == 0) & (chosen >= grow_to)
    reach[joins] = best[joins] + 2
    return reach


def grow_plane(labels: np.ndarray, region: np.ndarray, background: np.ndarray) -> np.ndarray:
    """Grow ``labels`` (the confident objects) over the pixels of ``region`` (their class) connected to them.

    Each pixel goes to the object it can be reached from over the lowest background probability, so
    touching objects meet where the network is least sure they are one; pixels of the region that no
    object reaches stay 0.
    """
    return watershed(background.astype(np.float32), labels, mask=region).astype(labels.dtype)


def fill_plane(labels: np.ndarray, background: np.ndarray) -> np.ndarray:
    """Grow ``labels`` over the whole plane along the valleys of ``background`` (its probability).

    Each pixel goes to the object it can be reached from over the lowest boundary: the watershed lines
    follow the ridges of the background probability, the boundaries the network predicts.
    """
    if not labels.any():
        return labels
    return watershed(background.astype(np.float32), labels).astype(labels.dtype)


def classes_to_objects(
    classes: np.ndarray, config: ObjectConfig = ObjectConfig(), probabilities: np.ndarray | None = None
) -> np.ndarray:
    """One id per object over a whole class map (2D or a stack of planes); ids are unique across planes.

    Parameters
    ----------
    classes : numpy.ndarray
        Output of :func:`probabilities_to_classes`.
    config : ObjectConfig
        Confidence threshold, splitting and size filtering.
    probabilities : numpy.ndarray, optional
        (K, *classes.shape) class probabilities; without them every pixel of a class counts.

    Returns
    -------
    numpy.ndarray of uint32
    """
    flat = classes.reshape(-1, *classes.shape[-2:])
    probs = None if probabilities is None else probabilities.reshape(len(probabilities), -1, *classes.shape[-2:])
    out = np.zeros(flat.shape, dtype=np.uint32)
    count = 0
    for i, plane in enumerate(flat):
        labels, n = plane_objects(plane, config, None if probs is None else probs[:, i])
        if count == 0:
            out[i] = labels
        else:
            np.add(labels, count, out=out[i], where=labels > 0)  # the rest stays 0
        count += n
    return out.reshape(classes.shape)
