"""Simulated annotations: what a person paints under the protocols of BENCHMARKS.md (fixed seeds)."""

from __future__ import annotations

from dataclasses import dataclass

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


@dataclass(frozen=True)
class ObjectError:
    """One mistake in a segmentation, as a person looking at it would name it.

    Attributes
    ----------
    kind : str
        "missed" (a true object not found), "merged" (one predicted object over several true ones),
        "split" (a true object cut into pieces) or "false" (a predicted object where there is none).
    size : int
        Pixels of the true objects involved (of the predicted object for a false one): what catches the eye.
    true_ids, predicted_ids : tuple of int
        The objects involved.
    """

    kind: str
    size: int
    true_ids: tuple[int, ...]
    predicted_ids: tuple[int, ...]


def _overlaps(truth: np.ndarray, predicted: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Overlap counts of every (true, predicted) pair that meets, and the sizes of each object."""
    t, p = truth.reshape(-1).astype(np.int64), predicted.reshape(-1).astype(np.int64)
    both = (t > 0) & (p > 0)
    pairs, counts = np.unique(np.stack([t[both], p[both]]), axis=1, return_counts=True)
    true_sizes = np.bincount(t, minlength=int(t.max(initial=0)) + 1)
    predicted_sizes = np.bincount(p, minlength=int(p.max(initial=0)) + 1)
    return pairs, counts, true_sizes, predicted_sizes


def object_errors(truth: np.ndarray, predicted: np.ndarray) -> list[ObjectError]:
    """The mistakes of ``predicted`` against ``truth`` (2D instance images), largest first.

    A true object matched one to one at IoU >= 0.5 is right. Otherwise: one predicted object covering half
    or more of two or more true objects merged them; a true object half or more of which lies in two or
    more predicted objects (each covering a tenth of it or more) was split; any other unmatched true object
    was missed (not found, or found with a wrong outline). A predicted object that lies mostly (half or
    more) outside every true object is false.
    """
    pairs, counts, true_sizes, predicted_sizes = _overlaps(truth, predicted)
    iou = counts / (true_sizes[pairs[0]] + predicted_sizes[pairs[1]] - counts)
    matched_true = set(pairs[0][iou >= 0.5].tolist())
    matched_predicted = set(pairs[1][iou >= 0.5].tolist())
    covered = counts / true_sizes[pairs[0]]  # share of the true object inside the predicted one
    errors: list[ObjectError] = []
    seen: set[int] = set()
    for p in np.unique(pairs[1]).tolist():
        swallowed = pairs[0][(pairs[1] == p) & (covered >= 0.5)].tolist()
        if len(swallowed) >= 2:
            errors.append(ObjectError("merged", int(true_sizes[swallowed].sum()), tuple(swallowed), (p,)))
            seen.update(swallowed)
    for t in np.flatnonzero(true_sizes).tolist():
        if t == 0 or t in matched_true or t in seen:
            continue
        mine = (pairs[0] == t) & (covered >= 0.1)
        pieces = pairs[1][mine].tolist()
        if len(pieces) >= 2 and covered[mine].sum() >= 0.5:
            errors.append(ObjectError("split", int(true_sizes[t]), (t,), tuple(pieces)))
        else:  # not found, or found with a wrong outline: the unmatched predictions over it go
            wrong = [q for q in pairs[1][pairs[0] == t].tolist() if q not in matched_predicted]
            errors.append(ObjectError("missed", int(true_sizes[t]), (t,), tuple(wrong)))
    inside = np.bincount(pairs[1], weights=counts, minlength=len(predicted_sizes))
    for p in np.flatnonzero(predicted_sizes).tolist():
        if p and p not in matched_predicted and inside[p] < 0.5 * predicted_sizes[p]:
            errors.append(ObjectError("false", int(predicted_sizes[p]), (), (p,)))
    return sorted(errors, key=lambda e: -e.size)


def paint_corrections(objects: np.ndarray, truth: np.ndarray, errors: list[ObjectError], budget: int) -> np.ndarray:
    """What a person paints on the objects layer to correct the largest ``errors``, ``budget`` objects in all.

    The wrong objects of a mistake (a merged blob, the pieces of a split object, a wrong outline, a false
    object) are erased, and every true object under them is painted whole with a new label, over its
    neighbours; each object painted (or false object erased) counts against the budget. A mistake that
    does not fit in what is left of it is passed over, and so is one whose objects an earlier correction
    touched (a person corrects each place once a round). A first mistake larger than the whole budget (a
    blob over many cells) gets its largest cells painted over it, the blob left.
    """
    painted = np.array(objects, copy=True)
    label = int(max(painted.max(initial=0), 0)) + 1
    touched: set[int] = set()
    for error in errors:
        if budget <= 0:
            break
        wrong = np.isin(objects, error.predicted_ids) if error.predicted_ids else np.zeros(objects.shape, bool)
        under = set(np.unique(truth[wrong]).tolist()) - {0}
        cells = sorted(under | set(error.true_ids), key=lambda t: -int((truth == t).sum()))
        if touched & (set(cells) | {-p for p in error.predicted_ids}):
            continue
        cost = max(len(cells), 1)
        if cost > budget and touched:
            continue
        if cost > budget:  # the first mistake, too large to mend whole: its largest cells, over it
            cells, wrong = cells[:budget], np.zeros(objects.shape, bool)
        touched |= set(cells) | {-p for p in error.predicted_ids}
        painted[wrong] = 0
        for t in cells:
            painted[truth == t] = label
            label += 1
        budget -= cost if cells else 1
    return painted
