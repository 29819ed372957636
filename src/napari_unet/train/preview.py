"""Live previews while training: between steps, the current network segments the region being looked at."""

from __future__ import annotations

import time
from collections.abc import Callable, Generator
from dataclasses import dataclass

import numpy as np

from napari_unet.images.axes import crop, infer_layout, to_planes
from napari_unet.models.model import Model
from napari_unet.objects.classes import probabilities_to_classes
from napari_unet.predict.config import PredictConfig
from napari_unet.predict.segment import predict_probabilities
from napari_unet.progress import drain
from napari_unet.train.config import TrainProgress

#: (plane index, (rows, columns)) of the region to preview, or None for no preview now.
Region = tuple[tuple[int, ...], tuple[slice, slice]]


@dataclass(frozen=True)
class Preview:
    """Classes predicted for a region of one plane by the network as it is now.

    Attributes
    ----------
    plane : tuple of int
        Index of the plane (empty for a 2D image).
    box : (slice, slice)
        Rows and columns of the region.
    classes : numpy.ndarray
        0 background, k class k, of the region's shape.
    step : int
        Training step the preview shows.
    """

    plane: tuple[int, ...]
    box: tuple[slice, slice]
    classes: np.ndarray
    step: int


def with_previews(
    model: Model,
    training: Generator[TrainProgress, None, Model],
    image: np.ndarray,
    region: Callable[[], Region | None],
    every: float = 5.0,
    channel_axis: int | None = None,
    device: str = "auto",
) -> Generator[TrainProgress | Preview, None, Model]:
    """Pass on a training run's records and, at most every ``every`` seconds, a :class:`Preview`.

    ``region`` is asked (in the training thread) which part of ``image`` to preview. The preview uses
    the whole image's normalisation, so it looks like the final segmentation of that region.
    """
    layout = infer_layout(np.shape(image), model.in_channels, channel_axis)
    ranges = None
    last = time.monotonic()
    while True:
        try:
            record = next(training)
        except StopIteration as stop:
            return stop.value
        yield record
        if record.done or time.monotonic() - last < every:
            continue
        target = region()
        if target is None:
            continue
        if ranges is None:
            ranges = model.normalization.ranges(to_planes(np.asarray(image), layout))
        plane, box = target
        part, part_axis = crop(image, layout, plane, box)
        # training goes on after the preview and gives the GPU memory back when it ends: keep torch's cache
        config = PredictConfig(device=device, release_memory=False)
        probabilities = drain(predict_probabilities(model, part, config, part_axis, ranges))
        yield Preview(plane=plane, box=box, classes=probabilities_to_classes(probabilities), step=record.step)
        last = time.monotonic()
