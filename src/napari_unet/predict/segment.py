"""Segmenting an image in memory: tiled class probabilities for images of any layout, then classes and objects."""

from __future__ import annotations

from collections.abc import Generator

import numpy as np
import torch

from napari_unet import devices
from napari_unet.images.axes import from_planes, infer_layout, to_planes
from napari_unet.models.fused_inference import FusedUNet
from napari_unet.models.geometry import TileGeometry
from napari_unet.models.model import Model
from napari_unet.objects.classes import probabilities_to_classes
from napari_unet.objects.instances import classes_to_objects
from napari_unet.predict.config import PredictConfig, Segmentation
from napari_unet.predict.device_tiling import (
    device_ranges,
    normalize_on_device,
    predict_tiled_on_device,
    tensor_predictor,
    upload,
)
from napari_unet.predict.host_memory import check_fits
from napari_unet.predict.job_size import fuses, inference_dtype, job_size, keep_on_device, smaller_job
from napari_unet.predict.object_thresholds import object_config_for
from napari_unet.predict.predictors import batch_predictor, with_test_time_augmentation
from napari_unet.predict.tiling import predict_tiled
from napari_unet.progress import TileProgress, drain


def predict_probabilities(
    model: Model,
    image: np.ndarray,
    config: PredictConfig = PredictConfig(),
    channel_axis: int | None = None,
    normalization_ranges: list[tuple[float, float]] | None = None,
) -> Generator[TileProgress, None, np.ndarray]:
    """Class probabilities of every pixel, tile by tile; yields progress, returns (K, *spatial shape).

    The image may be 2D, a stack or time series (planes predicted one by one), or multichannel with a
    channel axis; it is normalised as the model was trained (with the percentile values
    ``normalization_ranges`` if given, say those of the whole image when ``image`` is a crop of it).
    """
    probabilities, _ = yield from _predict(model, image, config, channel_axis, normalization_ranges)
    return probabilities


def _predict(
    model: Model,
    image: np.ndarray,
    config: PredictConfig,
    channel_axis: int | None = None,
    normalization_ranges: list[tuple[float, float]] | None = None,
    objects: bool = False,
) -> Generator[TileProgress, None, tuple[np.ndarray, np.ndarray | None]]:
    """Probabilities (K, *spatial shape), and the classes when they were computed on the device.

    First checks that the job (with ``objects`` if they follow) fits the host's free memory.
    """
    layout = infer_layout(np.shape(image), model.in_channels, channel_axis)
    dtype = image.dtype if hasattr(image, "dtype") else np.asarray(image).dtype
    check_fits(layout.spatial_shape, model.in_channels, np.dtype(dtype).itemsize, model.n_classes, objects)
    raw = to_planes(np.asarray(image), layout)
    device = devices.select_device(config.device)
    geom = TileGeometry(model.config.depth, model.config.padding)
    tile, batch = job_size(model, device, config, raw.shape[-2:])
    resident = keep_on_device(config, device, raw.shape, raw.dtype.itemsize, geom)
    planes = None if resident else model.normalization.apply(raw, normalization_ranges)
    was_training = model.net.training
    model.net.eval()
    try:
        fused = fuses(model, device, config)
        # a fused copy is made on the device straight from the network, which stays where it is
        release = config.release_memory
        with (
            devices.released(device, release)
            if fused
            else devices.on_device(model.net, device, channels_last=True, release_memory=release)
        ):
            net = FusedUNet(model.net, dtype=inference_dtype(device, config.amp), device=device) if fused else model.net
            try:
                probs, classes = yield from _predict_with_retries(
                    model, net, raw, planes, normalization_ranges, geom, tile, batch, device, config
                )
            finally:
                del net  # a fused copy's GPU memory is freed before the device's cache is emptied
    finally:
        model.net.train(was_training)
    probabilities = np.moveaxis(from_planes(probs, layout), -3, 0)
    return probabilities, None if classes is None else from_planes(classes, layout)


def _predict_with_retries(
    model: Model,
    net: torch.nn.Module,
    raw: np.ndarray,
    planes: np.ndarray | None,
    ranges: list[tuple[float, float]] | None,
    geom: TileGeometry,
    tile: int,
    batch: int,
    device: torch.device,
    config: PredictConfig,
) -> Generator[TileProgress, None, tuple[np.ndarray, np.ndarray | None]]:
    """Tiled prediction with ``net`` from ``raw`` on the device, or from normalised ``planes`` on the host.

    After running out of GPU memory the job is retried with a smaller batch, then smaller tiles.
    """
    while True:
        try:
            if planes is None:
                return (yield from _predict_resident(model, net, raw, ranges, geom, tile, batch, device, config.amp))
            predictor = batch_predictor(net, device, config.amp)
            if config.test_time_augmentation:
                predictor = with_test_time_augmentation(predictor)
            return (yield from predict_tiled(predictor, planes, model.n_classes, geom, tile, batch)), None
        except torch.OutOfMemoryError:
            devices.release(device)
            tile, batch = smaller_job(tile, batch, geom)
            yield TileProgress(0, 0, f"GPU memory full: retrying with tile {tile} and batch {batch}")


def _predict_resident(
    model: Model,
    net: torch.nn.Module,
    raw: np.ndarray,
    ranges: list[tuple[float, float]] | None,
    geom: TileGeometry,
    tile: int | tuple[int, int],
    batch: int,
    device: torch.device,
    amp: bool,
) -> Generator[TileProgress, None, tuple[np.ndarray, np.ndarray]]:
    """:func:`predict_tiled_on_device` from raw planes: the image goes over once, in its own data type."""
    on_device = upload(raw, device)
    ranges = ranges or device_ranges(model.normalization, on_device)
    planes = normalize_on_device(on_device, ranges)
    del on_device
    predictor = tensor_predictor(net, device, lambda: devices.autocast(device, amp), device.type in ("cuda", "cpu"))
    result = yield from predict_tiled_on_device(predictor, planes, model.n_classes, geom, tile, batch)
    return result.probabilities, result.classes


#: The message of the progress record :func:`iter_segment` yields once the tiles are done and the objects start.
FINDING_OBJECTS = "finding objects"


def iter_segment(
    model: Model,
    image: np.ndarray,
    config: PredictConfig = PredictConfig(),
    objects: bool = True,
    channel_axis: int | None = None,
) -> Generator[TileProgress, None, Segmentation]:
    """Segment an image: probabilities, then classes, then (optionally) objects; yields tile progress.

    Before the objects, which take seconds on a large image (two for 4096 x 4096 nuclei on two cores),
    one more record says so: ``TileProgress(1, 1, FINDING_OBJECTS)``.
    """
    probabilities, classes = yield from _predict(model, image, config, channel_axis, objects=objects)
    if classes is None:
        classes = probabilities_to_classes(probabilities)
    instances = None
    if objects:
        yield TileProgress(1, 1, FINDING_OBJECTS)
        instances = classes_to_objects(classes, object_config_for(model, config.objects), probabilities)
    return Segmentation(classes=classes, objects=instances, probabilities=probabilities)


def segment(
    model: Model,
    image: np.ndarray,
    config: PredictConfig = PredictConfig(),
    objects: bool = True,
    channel_axis: int | None = None,
) -> Segmentation:
    """Segment an image in one call (see :func:`iter_segment` for a version that reports progress)."""
    return drain(iter_segment(model, image, config, objects, channel_axis))
