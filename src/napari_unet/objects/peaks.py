"""Where a component's centres are: its smoothed distance map and local peaks, for one or thousands at once."""

from __future__ import annotations

import functools
import itertools
import math
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from scipy import ndimage

from napari_unet.devices import cpu_cores

#: ndimage.label's default connectivity in 2D (edge neighbours), made once.
CROSS = ndimage.generate_binary_structure(2, 1)

#: Largest mosaic (pixels) the crops are packed into: bounds the memory of the distance transform
#: (34 bytes a pixel at its peak, measured) whatever the image size.
MOSAIC_PIXELS = 2**22

#: Mosaics filtered at once when objects are made in memory: up to four, one per core this process may use
#: (about 140 MB each while filtered). Block-wise prediction filters one at a time: its blocks already
#: run in parallel.
THREADS = min(4, cpu_cores())

#: What the in-memory object step holds in mosaics at its peak: 34 bytes a pixel, :data:`THREADS` at once.
MOSAIC_BYTES = THREADS * MOSAIC_PIXELS * 34


@functools.lru_cache(maxsize=16)
def _gaussian_weights(sigma: float) -> np.ndarray:
    """The 1D kernel ``ndimage.gaussian_filter`` uses for ``sigma``: its response to an impulse, bit for bit."""
    radius = int(4.0 * float(sigma) + 0.5)
    impulse = np.zeros(2 * radius + 1)
    impulse[radius] = 1.0
    weights = ndimage.gaussian_filter1d(impulse, sigma, mode="constant")
    weights.setflags(write=False)
    return weights


def gaussian_smooth(values: np.ndarray, sigma: float) -> np.ndarray:
    """``ndimage.gaussian_filter(values, sigma)`` of a 2D float64 array, the same values, without its set-up.

    The split runs once per object (15,000 of them in a 4096 x 4096 image of nuclei), where building the
    kernel and checking the arguments cost more than the filtering of a small crop.
    """
    weights = _gaussian_weights(sigma)
    out = ndimage.correlate1d(values, weights, axis=0, mode="reflect")
    return ndimage.correlate1d(out, weights, axis=1, output=out, mode="reflect")


def maximum_3x3(values: np.ndarray) -> np.ndarray:
    """``ndimage.maximum_filter(values, size=3)`` of a 2D array: the two 1D passes it runs, called directly."""
    out = ndimage.maximum_filter1d(values, 3, axis=0)
    return ndimage.maximum_filter1d(out, 3, axis=1, output=out)


def context_margin(smoothing: float) -> int:
    """Pixels of context around a component's bounding box that its centres depend on.

    One for the background rim the distance needs, plus the reach of the Gaussian smoothing (4 sigma).
    """
    return 1 + (math.ceil(4 * smoothing) if smoothing > 0 else 0)


def centre_height(own: np.ndarray, smoothing: float) -> tuple[np.ndarray, np.ndarray]:
    """The (smoothed) distance of ``own``'s pixels to everything else, and its local maxima on ``own``.

    Returns
    -------
    height : numpy.ndarray of float64
        0 outside ``own``.
    peaks : numpy.ndarray of bool
        Pixels of ``own`` no neighbour (of eight) is higher than.
    """
    distance = ndimage.distance_transform_edt(own)
    if smoothing > 0:
        distance = gaussian_smooth(distance, smoothing)
    height = np.where(own, distance, 0.0)
    return height, (height == maximum_3x3(height)) & own


def peak_plateau_counts(
    components: np.ndarray, boxes: list[tuple[slice, slice] | None], smoothing: float, threads: int = 1
) -> np.ndarray:
    """How many separate plateaus of :func:`centre_height` peaks each labelled component has, all at once.

    Splitting touching objects looks for the centres of every component on its own, in its bounding box
    with a margin (:func:`napari_unet.objects.instances.split_component`). Most components (14 in 15 on images of
    nuclei) have a single peak and stay whole, and on them the per-call set-up of scipy's filters cost
    more than the filtering: here each filter runs once per mosaic of many crops.

    Equal, component by component, to ``ndimage.label(centre_height(own, smoothing)[1], CROSS)[1]`` on
    ``own = components[box] == index`` in the bounding box grown by :func:`context_margin` (what
    :func:`napari_unet.objects.instances.split_component` looks at). A component with one plateau has one centre.

    The crops are packed in rows into mosaics of at most :data:`MOSAIC_PIXELS`, neighbours sharing their
    margins (the margin is the component's own background, and every value of a crop depends only on
    pixels within the margin: the distance's nearest background pixel, the Gaussian's and the maximum's
    reach). A component whose grown box meets the image border is left out (its count is -1): there the
    filters would see the next crop where the crop alone sees its edge.

    Parameters
    ----------
    components : numpy.ndarray
        2D labels 1..n of connected components (as ``ndimage.label`` gives).
    boxes : list
        ``ndimage.find_objects(components)``.
    smoothing : float
        Gaussian smoothing (pixels) of the distance map, as in :func:`centre_height`.
    threads : int
        Mosaics filtered at once (scipy's distance transform and filters run without the GIL): each
        holds 34 bytes a pixel of :data:`MOSAIC_PIXELS` while it is filtered.

    Returns
    -------
    numpy.ndarray of int64
        (n + 1,) counts, index 0 unused; -1 where not counted.
    """
    counts = np.zeros(len(boxes) + 1, dtype=np.int64)

    def plateau_owners(mosaic: np.ndarray) -> np.ndarray:
        _, peaks = centre_height(mosaic > 0, smoothing)
        plateaus, n = ndimage.label(peaks, CROSS)
        owner = np.zeros(n + 1, dtype=np.int64)
        owner[plateaus[peaks]] = mosaic[peaks]  # a plateau lies within one component
        return owner[1:]

    mosaics = packed_mosaics(components, boxes, smoothing)
    if threads > 1:  # the distance transform and the filters let go of the GIL; threads mosaics held at once
        with ThreadPoolExecutor(threads, thread_name_prefix="napari-unet-objects") as pool:
            while batch := list(itertools.islice(mosaics, threads)):
                for owner in pool.map(plateau_owners, batch):
                    counts += np.bincount(owner, minlength=len(counts))
    else:
        for mosaic in mosaics:
            counts += np.bincount(plateau_owners(mosaic), minlength=len(counts))
    counts[counts == 0] = -1  # every component has a peak (its highest pixel): none means not packed
    return counts


def packed_mosaics(
    components: np.ndarray, boxes: list[tuple[slice, slice] | None], smoothing: float
) -> Iterator[np.ndarray]:
    """The components off the border, packed into mosaics (see :func:`peak_plateau_counts`).

    Each mosaic holds the components' labels where they were placed, 0 between them; its
    :func:`centre_height` gives each component's pixels what the component gives alone. A component's
    bounding box is copied with its own pixels only (a neighbour may reach into the box).
    """
    margin = context_margin(smoothing)
    for shape, crops in _pack(boxes, components.shape, margin):
        mosaic = np.zeros(shape, dtype=components.dtype)
        for label, top, left in crops:
            rows, columns = boxes[label - 1]
            source = components[rows, columns]
            target = mosaic[
                top + margin : top + margin + source.shape[0], left + margin : left + margin + source.shape[1]
            ]
            target[source == label] = label
        yield mosaic


def _pack(
    boxes: list[tuple[slice, slice] | None], shape: tuple[int, int], margin: int
) -> list[tuple[tuple[int, int], list[tuple[int, int, int]]]]:
    """Rows of crops (boxes grown by ``margin``, tallest first) in mosaics, margins shared between neighbours.

    Only boxes whose grown box lies within ``shape`` are packed.

    Returns
    -------
    list of (shape, crops)
        Per mosaic its shape and, per crop, the label and the top left corner of its grown box.
    """
    n = len(boxes)
    absent = (-margin - 1,) * 4  # fails the test below
    extents = np.array(
        [absent if box is None else (box[0].start, box[1].start, box[0].stop, box[1].stop) for box in boxes],
        dtype=np.int64,
    ).reshape(n, 4)
    starts, stops = extents[:, :2], extents[:, 2:]
    inside = (starts - margin >= 0).all(axis=1) & (stops + margin <= np.array(shape)).all(axis=1)
    chosen = np.flatnonzero(inside)
    if len(chosen) == 0:
        return []
    size = stops[chosen] - starts[chosen] + margin  # each crop's own extent; the next margin is shared
    width = max(int(size[:, 1].max()), int(math.sqrt(min(MOSAIC_PIXELS, int(np.prod(size, axis=1).sum())))))
    tallest_first = np.argsort(-size[:, 0], kind="stable")
    mosaics: list[tuple[tuple[int, int], list[tuple[int, int, int]]]] = []
    crops: list[tuple[int, int, int]] = []
    y, x, row = 0, 0, 0  # the current row's top and next left, the row's height
    for label, (h, w) in zip((chosen[tallest_first] + 1).tolist(), size[tallest_first].tolist(), strict=True):
        if x + w > width:  # next row, as tall as its first crop
            y, x, row = y + row, 0, 0
            if (y + h + margin) * (width + margin) > MOSAIC_PIXELS:  # next mosaic
                mosaics.append(((y + margin, width + margin), crops))
                y, crops = 0, []
        crops.append((label, y, x))
        x, row = x + w, max(row, h)
    mosaics.append(((y + row + margin, width + margin), crops))
    return mosaics
