"""Classes and objects of a large image block by block: each object whole, with one id, in every block it touches."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from napari_unet.objects.classes import channel_argmax
from napari_unet.objects.config import ObjectConfig
from napari_unet.objects.instances import (
    context_box,
    fill_plane,
    grow_plane,
    reach_classes,
    split_component,
    split_margin,
)
from napari_unet.objects.peaks import peak_plateau_counts


def block_starts(chunks: tuple[int, ...]) -> list[int]:
    """Offset of every block along an axis."""
    return [0, *np.cumsum(chunks[:-1]).tolist()]


def block_margins(index: int, chunks: tuple[int, ...], before: int, after: int | None = None) -> tuple[int, int]:
    """Context a block received from its neighbours before and after (map_overlap with boundary='none')."""
    after = before if after is None else after
    return (before if index > 0 else 0), (after if index < len(chunks) - 1 else 0)


def object_ids_dtype(n_pixels: int) -> np.dtype:
    """uint32 while the linear indices fit, else uint64."""
    return np.dtype(np.uint32 if n_pixels < 2**32 - 1 else np.uint64)


def classes_block(probabilities: np.ndarray, threshold: float | None = None) -> np.ndarray:
    """Classes (1, h, w) of a probability block; with ``threshold``, only the confident pixels of objects."""
    channel = channel_argmax(probabilities, axis=1)
    classes = (channel + 1).astype(np.uint8)
    classes[channel == 0] = 0
    if threshold is not None and threshold > 0.5:
        chosen = np.take_along_axis(probabilities, channel[:, None], axis=1)[:, 0]
        classes[chosen < threshold] = 0
    return classes


def objects_block(
    confident: np.ndarray,
    background: np.ndarray | None = None,
    reach: np.ndarray | None = None,
    *,
    config: ObjectConfig,
    overlap: int,
    grid: tuple[tuple[int, ...], ...],
    image_shape: tuple[int, int],
    ids_dtype: np.dtype,
    rim: int = 0,
    block_id: tuple[int, int, int] | None = None,
) -> np.ndarray:
    """Object ids of one block's core, from its confident classes with ``overlap`` pixels of context.

    With ``config.fill``, ``background`` (the background probability over the same context) is what the
    objects grow along; every object of the context competes for the core's pixels, so a pixel goes to
    the same object as in memory unless the object that wins it there lies beyond the overlap. With
    ``config.grow``, ``reach`` (:func:`reach_block`) is what each class's objects grow over, along
    ``background`` in the same way. With
    ``rim``, the result also covers that many pixels of each neighbouring block (this block's view of
    them: where it disagrees with the neighbour's own, an object was cut; see :func:`disagreements`).
    """
    plane, iy, ix = block_id
    (top, _), (left, _) = block_margins(iy, grid[1], overlap), block_margins(ix, grid[2], overlap)
    y0, x0 = block_starts(grid[1])[iy], block_starts(grid[2])[ix]
    height, width = grid[1][iy], grid[2][ix]
    context = confident[0]
    (r_top, r_bottom), (r_left, r_right) = block_margins(iy, grid[1], rim), block_margins(ix, grid[2], rim)
    region = (slice(top - r_top, top + height + r_bottom), slice(left - r_left, left + width + r_right))
    origin = (y0 - top, x0 - left)
    grow = reach is not None
    # filling and growing need the neighbours' objects too
    seeds = (slice(None), slice(None)) if config.fill or grow else region
    ids = np.zeros(context.shape, dtype=np.uint64)
    for value in np.unique(context[seeds][context[seeds] > 0]):
        found = class_objects(context == value, seeds, origin, config, image_shape, plane)
        if grow:  # the classes do not overlap, nor what each grows over
            found = grow_ids(found, reach[0] == value, background[0])
        ids[seeds] |= found
    if config.fill:
        ids = fill_ids(ids, background[0])
    return ids[region].astype(ids_dtype)[None]


def reach_block(probabilities: np.ndarray, grow_to: float) -> np.ndarray:
    """The class whose objects may grow over each pixel (1, h, w) of a probability block (:func:`reach_classes`)."""
    return reach_classes(probabilities[0], classes_block(probabilities)[0], grow_to)[None]


def trim_rim(block: np.ndarray, rim: int, grid: tuple[tuple[int, ...], ...], block_id=None) -> np.ndarray:
    """The core of an :func:`objects_block` result computed with ``rim``."""
    _, iy, ix = block_id
    (top, bottom), (left, right) = block_margins(iy, grid[1], rim), block_margins(ix, grid[2], rim)
    return block[:, top : block.shape[1] - bottom, left : block.shape[2] - right]


def disagreements(own_view: np.ndarray, their_view: np.ndarray, confident: np.ndarray) -> np.ndarray:
    """Pairs of ids two neighbouring blocks give the same confident pixels: pieces of one cut object.

    ``own_view`` is a block's :func:`objects_block` result with a rim of its neighbours' pixels;
    ``their_view`` the neighbours' own ids over the same pixels, ``confident`` the confident classes
    there. An object within the overlap has the same id in every block; one that is larger is seen
    truncated, and the blocks name (or split) it differently along their border.

    Returns
    -------
    numpy.ndarray of uint64
        (n, 2) distinct pairs of ids to be merged.
    """
    differ = (confident > 0) & (own_view > 0) & (their_view > 0) & (own_view != their_view)
    if not differ.any():
        return np.zeros((0, 2), dtype=np.uint64)
    pairs = np.stack([own_view[differ], their_view[differ]], axis=1).astype(np.uint64)
    return np.unique(pairs, axis=0)


def merge_map(pairs: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """The id every merged id takes (the smallest of its group), from pairs of ids to merge.

    Returns
    -------
    keys, roots : numpy.ndarray of uint64
        Sorted ids that change, and what each becomes.
    """
    parent: dict[int, int] = {}

    def find(i: int) -> int:
        root = i
        while parent.get(root, root) != root:
            root = parent[root]
        while parent.get(i, i) != root:  # path compression
            parent[i], i = root, parent[i]
        return root

    for a, b in (tuple(map(int, pair)) for block in pairs for pair in block):
        ra, rb = find(a), find(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
    keys = np.array(sorted(i for i in parent if find(i) != i), dtype=np.uint64)
    return keys, np.array([find(int(i)) for i in keys], dtype=np.uint64)


def relabel(ids: np.ndarray, keys: np.ndarray, roots: np.ndarray) -> np.ndarray:
    """``ids`` with every id in ``keys`` replaced by its root (see :func:`merge_map`)."""
    if len(keys) == 0:
        return ids
    where = np.searchsorted(keys, ids).clip(max=len(keys) - 1)
    hit = keys[where] == ids
    if not hit.any():
        return ids
    out = ids.copy()
    out[hit] = roots[where[hit]].astype(ids.dtype)
    return out


def compact_markers(ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The ids sorted with 0 first, and ``ids`` as int32 indices into them: markers a watershed takes."""
    lookup = np.union1d(np.zeros(1, ids.dtype), ids)
    return lookup, np.searchsorted(lookup, ids).astype(np.int32)


def fill_ids(ids: np.ndarray, background: np.ndarray) -> np.ndarray:
    """:func:`napari_unet.objects.instances.fill_plane` for arbitrary (uint64) ids."""
    lookup, markers = compact_markers(ids)
    return lookup[fill_plane(markers, background)]


def grow_ids(ids: np.ndarray, region: np.ndarray, background: np.ndarray) -> np.ndarray:
    """:func:`napari_unet.objects.instances.grow_plane` for arbitrary (uint64) ids."""
    if not ids.any():
        return ids
    lookup, markers = compact_markers(ids)
    return lookup[grow_plane(markers, region, background)]


def class_objects(
    mask: np.ndarray,
    core: tuple[slice, slice],
    origin: tuple[int, int],
    config: ObjectConfig,
    image_shape: tuple[int, int],
    plane: int,
) -> np.ndarray:
    """Ids (over the core) of the objects of one class's mask that touch the core.

    An object's id is one more than the linear index, in the whole image, of its first pixel (row by row),
    so every block that sees it whole names it alike. The components with a single peak (most) are found
    all at once (:func:`napari_unet.objects.peaks.peak_plateau_counts`) and named in one pass; only the others
    are split one by one.
    """
    components, n = ndimage.label(mask)
    boxes = ndimage.find_objects(components)
    sizes = np.bincount(components.reshape(-1), minlength=n + 1)
    touching = np.flatnonzero(np.bincount(components[core].reshape(-1), minlength=n + 1)[1:]) + 1
    if config.splits:
        wanted: list[tuple[slice, ...] | None] = [None] * n
        for index in touching:
            wanted[index - 1] = boxes[index - 1]
        whole = peak_plateau_counts(components, wanted, config.smoothing)[touching] == 1
    else:
        whole = np.ones(len(touching), dtype=bool)
    height, width = image_shape
    lookup = np.zeros(n + 1, dtype=np.uint64)
    named = touching[whole]
    if len(named):
        ys, xs = np.nonzero(components)  # row by row: the first pixel of a component comes first
        first = np.full(n + 1, len(ys), dtype=np.int64)
        np.minimum.at(first, components[ys, xs], np.arange(len(ys)))
        at = first[named]
        linear = (plane * height + ys[at] + origin[0]) * width + xs[at] + origin[1] + 1
        lookup[named] = np.where(sizes[named] >= config.min_size, linear, 0).astype(np.uint64)
    ids = lookup[components]
    margin = split_margin(config)
    for index in touching[~whole]:
        box = context_box(boxes[index - 1], margin, mask.shape)
        own = components[box] == index
        parts, _ = split_component(own, config)
        labels, first_part = np.unique(parts, return_index=True)
        part_sizes = np.bincount(parts.reshape(-1))
        part_ys, part_xs = np.unravel_index(first_part, parts.shape)
        part_ids = np.zeros(int(labels.max()) + 1, dtype=np.uint64)
        for label, y, x in zip(
            labels, part_ys + box[0].start + origin[0], part_xs + box[1].start + origin[1], strict=True
        ):
            if label and part_sizes[label] >= config.min_size:
                part_ids[label] = (plane * height + y) * width + x + 1
        target = ids[box]
        target[own] = part_ids[parts[own]]
    return ids[core]
