"""Simulated annotations: what a person paints under the protocols of BENCHMARKS.md (fixed seeds)."""

from __future__ import annotations

import numpy as np
from scipy import ndimage
from skimage.draw import line
from skimage.morphology import disk, skeletonize


def _brush(mask: np.ndarray, width: int) -> np.ndarray:
    """Thicken a stroke to a brush of ``width`` pixels."""
    if width <= 1:
        return mask
    return ndimage.binary_dilation(mask, structure=disk(width // 2))


def background_strokes(
    objects: np.ndarray, count: int, rng: np.random.Generator, length: int = 25, width: int = 3, gap: float = 4.0
) -> np.ndarray:
    """``count`` short straight strokes in the background, every pixel at least ``gap`` px from an object."""
    far = ndimage.distance_transform_edt(objects == 0) >= gap
    strokes = np.zeros(objects.shape, dtype=bool)
    candidates = np.argwhere(far)
    drawn = 0
    for _ in range(count * 50):
        if drawn == count:
            break
        y0, x0 = candidates[rng.integers(len(candidates))]
        angle = rng.uniform(0, np.pi)
        y1 = int(np.clip(y0 + length * np.sin(angle), 0, objects.shape[0] - 1))
        x1 = int(np.clip(x0 + length * np.cos(angle), 0, objects.shape[1] - 1))
        stroke = np.zeros_like(strokes)
        stroke[line(int(y0), int(x0), y1, x1)] = True
        stroke = _brush(stroke, width) & far
        if stroke.sum() >= length // 2:
            strokes |= stroke
            drawn += 1
    return strokes


def scribbles(
    instances: np.ndarray,
    n_objects: int = 10,
    n_background: int = 10,
    seed: int = 0,
    width: int = 3,
    object_class: int = 2,
) -> np.ndarray:
    """The scribble protocol: a stroke along the skeleton of ``n_objects`` objects and short background strokes.

    Returns an annotation: 0 unlabelled, 1 background, ``object_class`` on the object strokes.
    """
    rng = np.random.default_rng(seed)
    ids = np.unique(instances[instances > 0])
    chosen = rng.choice(ids, size=min(n_objects, len(ids)), replace=False)
    annotation = np.zeros(instances.shape, dtype=np.uint8)
    for i in chosen:
        obj = instances == i
        stroke = _brush(skeletonize(obj), width) & ndimage.binary_erosion(obj, iterations=1)
        if not stroke.any():
            stroke = skeletonize(obj)
        annotation[stroke] = object_class
    annotation[background_strokes(instances, n_background, rng, width=width)] = 1
    return annotation


def full_objects(
    instances: np.ndarray,
    n_objects: int = 10,
    n_background: int = 10,
    seed: int = 0,
    ring: int = 2,
    object_class: int = 2,
) -> np.ndarray:
    """The few-full-objects protocol: ``n_objects`` painted completely with a background ring around them.

    The ring (``ring`` px) paints the touching borders with neighbouring objects as background, as a
    person using the "paint objects" aid would; plus ``n_background`` background strokes.
    """
    rng = np.random.default_rng(seed)
    ids = np.unique(instances[instances > 0])
    chosen = rng.choice(ids, size=min(n_objects, len(ids)), replace=False)
    annotation = np.zeros(instances.shape, dtype=np.uint8)
    annotation[background_strokes(instances, n_background, rng)] = 1
    for i in chosen:
        obj = instances == i
        annotation[ndimage.binary_dilation(obj, iterations=ring) & ~obj] = 1
    for i in chosen:
        annotation[instances == i] = object_class
    return annotation


def isbi_scribbles(
    interior: np.ndarray, n_cells: int = 15, membrane_fraction: float = 0.02, seed: int = 0, width: int = 3
) -> np.ndarray:
    """ISBI scribbles on one slice: strokes along the skeleton of ``n_cells`` cells (class 2) and a random
    ``membrane_fraction`` of the membrane pixels (background, 1)."""
    rng = np.random.default_rng(seed)
    cells, _ = ndimage.label(interior)
    sizes = np.bincount(cells.reshape(-1))
    candidates = np.flatnonzero(sizes >= 50)
    candidates = candidates[candidates > 0]
    chosen = rng.choice(candidates, size=min(n_cells, len(candidates)), replace=False)
    annotation = np.zeros(interior.shape, dtype=np.uint8)
    for i in chosen:
        cell = cells == i
        annotation[_brush(skeletonize(cell), width) & ndimage.binary_erosion(cell, iterations=1)] = 2
    membrane = np.argwhere(~interior)
    picked = membrane[rng.random(len(membrane)) < membrane_fraction]
    annotation[picked[:, 0], picked[:, 1]] = 1
    return annotation
