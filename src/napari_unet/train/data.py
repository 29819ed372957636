"""Training data from images and sparse annotations: checks, normalisation, validation split, patch sampling."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from napari_unet.errors import InputError, TrainingError
from napari_unet.images.axes import infer_layout, to_planes
from napari_unet.images.normalization import Normalization
from napari_unet.train import losses
from napari_unet.train.annotations import looks_like_instances


@dataclass
class TrainingPlane:
    """One annotated 2D plane: normalised image (C, H, W), training and validation labels, weight map."""

    image: np.ndarray
    labels: np.ndarray
    val_labels: np.ndarray
    weights: np.ndarray


@dataclass
class TrainingData:
    """Annotated planes ready for training, with indices of the painted pixels for patch sampling."""

    planes: list[TrainingPlane]
    n_classes: int
    class_weights: np.ndarray

    def __post_init__(self) -> None:
        self._painted = self._by_class([plane.labels > 0 for plane in self.planes])
        self._focus: list[np.ndarray] = []

    def _by_class(self, masks: list[np.ndarray]) -> list[np.ndarray]:
        """(plane, y, x) of the painted pixels within ``masks`` (one per plane), one array per class painted."""
        found = []
        for value in range(1, self.n_classes + 1):
            where = [
                np.column_stack([np.full(len(ys), i), ys, xs])
                for i, (plane, mask) in enumerate(zip(self.planes, masks, strict=True))
                for ys, xs in [np.nonzero((plane.labels == value) & mask)]
            ]
            stacked = np.concatenate(where) if where else np.empty((0, 3), dtype=np.int64)
            if len(stacked):
                found.append(stacked)
        return found

    def focus_on(self, masks: list[np.ndarray]) -> None:
        """Painted pixels to centre windows on first (one mask per plane): those the network gets wrong, say.

        :meth:`sample_batch` centres ``focus_fraction`` of its windows on them, each class equally often.
        """
        self._focus = self._by_class(masks)

    @property
    def focus_pixels(self) -> int:
        """Painted pixels windows are centred on first (:meth:`focus_on`)."""
        return int(sum(len(pixels) for pixels in self._focus))

    @property
    def in_channels(self) -> int:
        """Channels of the images."""
        return self.planes[0].image.shape[0]

    @property
    def labelled_pixels(self) -> int:
        """Pixels painted for training (validation pixels excluded)."""
        return int(sum((p.labels > 0).sum() for p in self.planes))

    @property
    def outlined_fraction(self) -> float:
        """Share of the painted object pixels that touch painted background (4-neighbours).

        Near 0 for scribbles inside objects; a fifth or more when whole objects are painted with the
        background around them, so that the network learns where boundaries are.
        """
        edge = total = 0
        for plane in self.planes:
            painted = np.maximum(plane.labels, plane.val_labels)
            objects, background = painted >= 2, np.pad(painted == 1, 1)
            near = background[:-2, 1:-1] | background[2:, 1:-1] | background[1:-1, :-2] | background[1:-1, 2:]
            edge += int((objects & near).sum())
            total += int(objects.sum())
        return edge / total if total else 0.0

    @property
    def validation_pixels(self) -> int:
        """Pixels held out for validation."""
        return int(sum((p.val_labels > 0).sum() for p in self.planes))

    @property
    def label_dtype(self) -> np.dtype:
        """The smallest integer type that holds every class value (uint8 for up to 255 classes)."""
        return np.dtype(np.uint8 if self.n_classes <= 255 else np.int32)

    def sample_batch(
        self,
        batch_size: int,
        window: int,
        output: int,
        rng: np.random.Generator,
        painted_fraction: float = 0.9,
        out: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
        focus_fraction: float = 0.0,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Cut a batch of square windows; most are placed so that a painted pixel falls in the output.

        Parameters
        ----------
        batch_size : int
            Windows in the batch.
        window : int
            Side length of the windows (the network input plus a margin for augmentation).
        output : int
            Side length of the network output, centred in the window.
        rng : numpy.random.Generator
            Source of randomness.
        painted_fraction : float
            Share of windows centred near a painted pixel (each class equally often); the rest are
            placed uniformly.
        out : (numpy.ndarray, numpy.ndarray, numpy.ndarray), optional
            Arrays of the returned shapes and types to write into (page-locked memory for a GPU, say).
        focus_fraction : float
            Share of windows centred near a pixel set by :meth:`focus_on` (each class equally often),
            before the others are placed.

        Returns
        -------
        images, labels, weights : numpy.ndarray
            (B, C, window, window) float32, (B, window, window) :attr:`label_dtype`, (B, window, window)
            float32. Outside the plane, images are mirrored and labels unlabelled.
        """
        if out is None:
            out = (
                np.empty((batch_size, self.in_channels, window, window), dtype=np.float32),
                np.empty((batch_size, window, window), dtype=self.label_dtype),
                np.empty((batch_size, window, window), dtype=np.float32),
            )
        images, labels, weights = out
        jitter = max(output // 2 - 1, 0)
        for b in range(batch_size):
            chance = rng.random()
            centres = self._focus if chance < focus_fraction and self._focus else self._painted
            if centres and chance < max(focus_fraction, painted_fraction):
                pixels = centres[rng.integers(len(centres))]
                p, cy, cx = pixels[rng.integers(len(pixels))]
                cy += rng.integers(-jitter, jitter + 1)
                cx += rng.integers(-jitter, jitter + 1)
            else:
                p = rng.integers(len(self.planes))
                h, w = self.planes[p].labels.shape
                cy, cx = rng.integers(h), rng.integers(w)
            plane = self.planes[p]
            top, left = int(cy) - window // 2, int(cx) - window // 2
            _mirrored_window(images[b], plane.image, top, left)
            _zero_padded_window(labels[b], plane.labels, top, left)
            _zero_padded_window(weights[b], plane.weights, top, left)
        return images, labels, weights


def _reflected(start: int, size: int, length: int) -> np.ndarray:
    """Indices ``start .. start + size - 1`` mirrored into ``0 .. length - 1`` (numpy's "reflect" padding)."""
    index = np.arange(start, start + size)
    if length == 1:
        return np.zeros(size, dtype=np.intp)
    period = 2 * (length - 1)
    index = np.abs(index) % period
    return np.where(index >= length, period - index, index)


def _runs(index: np.ndarray) -> list[tuple[int, int, slice]]:
    """Split indices into runs of consecutive ones, up or down: (start, stop in ``index``, source slice)."""
    runs = []
    start = 0
    while start < len(index):
        stop = start + 1
        step = int(index[stop] - index[start]) if stop < len(index) else 1
        if abs(step) != 1:
            step = 1
        while stop < len(index) and index[stop] - index[stop - 1] == step:
            stop += 1
        first, last = int(index[start]), int(index[stop - 1])
        end = last + step if last + step >= 0 else None
        runs.append((start, stop, slice(first, end, step)))
        start = stop
    return runs


def _mirrored_window(out: np.ndarray, array: np.ndarray, top: int, left: int) -> None:
    """Write the window of ``array`` (C, H, W) at (top, left) into ``out`` (C, h, w), mirrored outside.

    The mirrored index ranges are runs of consecutive rows and columns, so the window is a few block
    copies (nine at most for a window smaller than the plane) rather than a gather of every pixel.
    """
    size_y, size_x = out.shape[-2:]
    h, w = array.shape[-2:]
    for y0, y1, rows in _runs(_reflected(top, size_y, h)):
        for x0, x1, cols in _runs(_reflected(left, size_x, w)):
            out[..., y0:y1, x0:x1] = array[..., rows, cols]


def _zero_padded_window(out: np.ndarray, array: np.ndarray, top: int, left: int) -> None:
    """Write the window of ``array`` (H, W) at (top, left) into ``out`` (h, w), zero outside."""
    size_y, size_x = out.shape
    h, w = array.shape
    y0, x0 = max(top, 0), max(left, 0)
    y1, x1 = min(top + size_y, h), min(left + size_x, w)
    if (y0, x0, y1, x1) != (top, left, top + size_y, left + size_x):
        out[...] = 0
    if y1 > y0 and x1 > x0:
        out[y0 - top : y1 - top, x0 - left : x1 - left] = array[y0:y1, x0:x1]


def check_annotation(annotation: np.ndarray, expected_shape: tuple[int, ...], n_classes: int) -> np.ndarray:
    """Validate an annotation array and return it as uint8/uint16 labels.

    Raises
    ------
    InputError
        On a shape mismatch, negative or non-integer values, or values beyond the model's classes.
    """
    ann = np.asarray(annotation)
    if ann.shape != tuple(expected_shape):
        raise InputError(
            f"the annotation has shape {ann.shape} but the image has {tuple(expected_shape)}; "
            "paint the annotation on a labels layer of the image's size"
        )
    if ann.dtype == bool:
        ann = ann.astype(np.uint8)
    if not np.issubdtype(ann.dtype, np.integer):
        if not np.all(np.isfinite(ann)) or not np.all(ann == np.round(ann)):
            raise InputError("the annotation holds non-integer values; it must be a label image")
    if ann.size and ann.min() < 0:
        raise InputError("the annotation holds negative values; use 0 for unlabelled, 1 for background")
    top = int(ann.max()) if ann.size else 0
    if top > n_classes:
        if looks_like_instances(ann):
            raise InputError(
                f"the annotation holds {top} values, each one object: an instance mask, not classes; "
                "make an annotation of it with napari_unet.annotation_from_labels(labels)"
            )
        raise InputError(
            f"the annotation uses class {top} but the model knows classes 1..{n_classes} "
            f"(1 background, 2..{n_classes} objects); add the class to the model or repaint"
        )
    return ann.astype(np.uint8 if n_classes < 255 else np.uint16)


def split_validation(
    labels: np.ndarray, fraction: float, rng: np.random.Generator, block: int = 32
) -> tuple[np.ndarray, np.ndarray]:
    """Hold out painted pixels for validation, in whole blocks so that they are not next to training pixels.

    Blocks are drawn at random until ``fraction`` of the painted pixels are held out; a class never
    loses all of its pixels to validation.

    Returns
    -------
    train, val : numpy.ndarray
        Labels for training and for validation (each 0 where the other is painted).
    """
    val = np.zeros_like(labels)
    if fraction <= 0:
        return labels.copy(), val
    train = labels.copy()
    remaining = np.bincount(labels.reshape(-1))  # painted pixels per class still in training
    total = int(remaining[1:].sum())
    h, w = labels.shape
    blocks = [
        (y, x) for y in range(0, h, block) for x in range(0, w, block) if labels[y : y + block, x : x + block].any()
    ]
    held = 0
    for index in rng.permutation(len(blocks)):
        if held >= fraction * total:
            break
        y, x = blocks[index]
        cell = train[y : y + block, x : x + block]
        counts = np.bincount(cell.reshape(-1), minlength=len(remaining))
        counts[0] = 0
        if np.any((counts > 0) & (remaining - counts <= 0)):
            continue
        val[y : y + block, x : x + block] = cell
        remaining -= counts
        held += int(counts.sum())
        cell[...] = 0
    return train, val


def prepare_training_data(
    images: Sequence[np.ndarray],
    annotations: Sequence[np.ndarray],
    in_channels: int,
    n_classes: int,
    normalization: Normalization,
    *,
    val_fraction: float = 0.1,
    class_balance: bool = True,
    border_w0: float = 10.0,
    border_sigma: float = 5.0,
    channel_axis: int | None = None,
    seed: int = 0,
) -> TrainingData:
    """Check, normalise and split image/annotation pairs into annotated training planes.

    Raises
    ------
    InputError
        If an image or annotation is unusable.
    TrainingError
        If nothing is painted, or fewer than two classes are.
    """
    if len(images) != len(annotations):
        raise InputError(f"{len(images)} images but {len(annotations)} annotations; give one per image")
    rng = np.random.default_rng(seed)
    raw: list[tuple[np.ndarray, np.ndarray]] = []
    for image, annotation in zip(images, annotations, strict=True):
        layout = infer_layout(np.shape(image), in_channels, channel_axis)
        ann = check_annotation(annotation, layout.spatial_shape, n_classes)
        ann_planes = ann.reshape(-1, *ann.shape[-2:])
        painted = [i for i in range(len(ann_planes)) if ann_planes[i].any()]
        if not painted:
            continue
        normed = normalization.apply(to_planes(np.asarray(image), layout))
        raw.extend((normed[i], ann_planes[i]) for i in painted)
    values = sorted({int(v) for _, ann in raw for v in np.unique(ann) if v > 0})
    if not values:
        raise TrainingError("nothing is painted: paint background (1) and at least one object class (2) first")
    if len(values) < 2:
        raise TrainingError(
            f"only class {values[0]} is painted; paint background (1) and at least one object class too"
        )
    planes = []
    for image, ann in raw:
        train, val = split_validation(ann, val_fraction, rng)
        planes.append(TrainingPlane(image=image, labels=train, val_labels=val, weights=np.empty(0)))
    class_weights = losses.class_frequency_weights([p.labels for p in planes], n_classes) if class_balance else None
    for plane in planes:
        plane.weights = losses.weight_map(plane.labels, class_weights, border_w0, border_sigma)
    weights = class_weights if class_weights is not None else np.ones(n_classes + 1, np.float32)
    return TrainingData(planes=planes, n_classes=n_classes, class_weights=weights)
