"""Prediction: tiled class probabilities for images of any layout, then classes and objects."""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass, field

import numpy as np
import torch

from . import device as devices
from . import geometry
from .bundle import Model
from .device_tiling import (
    device_ranges,
    fits_on_device,
    normalize_on_device,
    predict_tiled_on_device,
    tensor_predictor,
    upload,
)
from .errors import ResourceError
from .fused import FusedUNet, can_fuse
from .host_memory import check_fits
from .layout import from_planes, infer_layout, to_planes
from .object_calibration import object_config_for
from .objects import ObjectConfig, classes_to_objects, probabilities_to_classes
from .progress import drain
from .tiling import BatchPredictor, TileGeometry, TileProgress, predict_tiled


@dataclass(frozen=True)
class PredictConfig:
    """Settings of a prediction.

    Parameters
    ----------
    tile : int
        Largest input tile side in pixels; 0 picks one from the free memory of the device.
    batch_size : int
        Tiles per network call; 0 picks one for the device.
    device : str
        "auto", "cpu", "cuda" or "mps".
    amp : bool
        Mixed precision on GPUs.
    test_time_augmentation : bool
        Average the predictions of the 8 rotations and flips of every tile (8 times the work).
    objects : ObjectConfig
        How classes become objects.
    on_device : bool or None
        Normalise, cut tiles, stitch and take the classes on the compute device (the image goes over once,
        results come back while the next tiles compute) rather than on the host; None (default): on CUDA
        GPUs when the image fits in a quarter of the free memory. Both give the same result.
    fuse : bool or None
        Run a frozen copy of the network with each convolution, its bias or batch norm and its ReLU in one
        cuDNN kernel (see :mod:`napari_unet.fused`); None (default): on CUDA GPUs, for networks without
        group norm.
    release_memory : bool or None
        Give the GPU memory torch cached for the job back to the driver when it ends, for napari's canvas
        and other programs (True), or keep it for the next job, which then starts sooner (False:
        ``segment_files`` does between images). None (default): give it back when it is more than a
        quarter of the card's memory or less than a quarter is free (:func:`napari_unet.device.worth_releasing`),
        so a large card keeps it and a small one gets it back.
    """

    tile: int = 0
    batch_size: int = 0
    device: str = "auto"
    amp: bool = True
    test_time_augmentation: bool = False
    objects: ObjectConfig = field(default_factory=ObjectConfig)
    on_device: bool | None = None
    fuse: bool | None = None
    release_memory: bool | None = None


@dataclass
class Segmentation:
    """Result of :func:`segment` for one image.

    Attributes
    ----------
    classes : numpy.ndarray
        Spatial shape of the image; 0 background, k the object class painted with value k.
    objects : numpy.ndarray or None
        One id per object (0 background), unique over the whole image.
    probabilities : numpy.ndarray
        (K, *spatial shape) class probabilities, channel 0 the background.
    """

    classes: np.ndarray
    objects: np.ndarray | None
    probabilities: np.ndarray


def batch_predictor(
    net: torch.nn.Module, device: torch.device, amp: bool = True, channels_last: bool = True
) -> BatchPredictor:
    """Wrap a network (already on ``device``, in eval mode) as numpy batch -> softmax probabilities.

    Channels-last pays on GPUs (tensor cores) and on CPUs too (oneDNN: 1.5-1.8x for the light preset).
    """
    use_channels_last = channels_last and device.type in ("cuda", "cpu")

    def predict_batch(batch: np.ndarray) -> np.ndarray:
        x = torch.from_numpy(np.ascontiguousarray(batch)).to(device, non_blocking=True)
        if use_channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.inference_mode(), devices.autocast(device, amp):
            probs = torch.softmax(net(x).float(), dim=1)
        return probs.cpu().numpy()

    return predict_batch


#: The 8 symmetries of the square: (quarter turns, mirrored).
DIHEDRAL = tuple((turns, mirrored) for mirrored in (False, True) for turns in range(4))


def with_test_time_augmentation(predict_batch: BatchPredictor) -> BatchPredictor:
    """Average a predictor over the rotations and flips of each tile (undone on the outputs)."""

    def predict(batch: np.ndarray) -> np.ndarray:
        total = None
        for turns, mirrored in DIHEDRAL:
            x = np.rot90(batch, turns, axes=(-2, -1))
            x = x[..., ::-1] if mirrored else x
            y = predict_batch(np.ascontiguousarray(x))
            y = y[..., ::-1] if mirrored else y
            y = np.rot90(y, -turns, axes=(-2, -1))
            total = np.array(y) if total is None else total + y
        return total / len(DIHEDRAL)

    return predict


#: Activation memory of one CPU tile. CPU throughput falls with tiles larger than the caches: the light
#: preset ran at 1.40 output megapixels/s on 508-pixel tiles and 1.09 on 1020 (0.44 at the 1572 a 1 GiB
#: budget gave), 2 threads, channels-last (benchmarks/speed.py).
CPU_TILE_BUDGET = 128 << 20


def auto_tile_and_batch(model: Model, device: torch.device, amp: bool) -> tuple[int, int]:
    """A tile size and batch size that fit the free memory of ``device`` (on a CPU, its caches)."""
    cfg = model.config
    if device.type == "cpu":
        budget, batch = CPU_TILE_BUDGET, 1
    else:
        budget, batch = devices.free_memory(device) * 0.5, 4
    bytes_per = 2 if amp and devices.autocast_dtype(device) is not None else 4
    tile = geometry.tile_for_memory(
        budget, cfg.depth, cfg.base_filters, batch_size=batch, bytes_per_element=bytes_per, largest=2140
    )
    return tile, batch


def job_size(
    model: Model, device: torch.device, config: PredictConfig, plane_shape: tuple[int, ...]
) -> tuple[int, int]:
    """Tile and batch sizes for planes of ``plane_shape``: the configured ones, else automatic.

    An image that fits in one tile of up to twice the automatic size is done in one: a 512x512 image on a
    CPU in one 604-pixel tile rather than four of 556, which would compute 3.4 times as many pixels.
    """
    geom = TileGeometry(model.config.depth, model.config.padding)
    tile, batch = auto_tile_and_batch(model, device, config.amp)
    whole = geom.valid_tile(max(plane_shape) + 2 * geom.halo)
    if whole <= 2 * tile:
        tile = whole
    return config.tile or tile, config.batch_size or batch


def smaller_job(tile: int, batch: int, geom: TileGeometry) -> tuple[int, int]:
    """Tile and batch sizes for a retry after running out of memory: half the batch, then half the tile.

    Raises
    ------
    ResourceError
        If the job is as small as it gets already.
    """
    if batch > 1:
        return tile, batch // 2
    smallest = geom.valid_tile(1)
    if tile > smallest:
        return max(geom.valid_tile(tile // 2), smallest), 1
    raise ResourceError("out of GPU memory even with the smallest tile; close other GPU programs or use the CPU")


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


def keep_on_device(
    config: PredictConfig, device: torch.device, planes_shape: tuple[int, ...], itemsize: int, geom: TileGeometry
) -> bool:
    """Whether to tile on the device (see ``PredictConfig.on_device``); never with test-time augmentation."""
    if config.test_time_augmentation:
        return False
    if config.on_device is not None:
        return config.on_device
    return device.type == "cuda" and fits_on_device(planes_shape, geom.halo, devices.free_memory(device), itemsize)


def fuses(model: Model, device: torch.device, config: PredictConfig) -> bool:
    """Whether to predict with a fused copy of the network (``PredictConfig.fuse``)."""
    fuse = config.fuse if config.fuse is not None else device.type == "cuda"
    return fuse and can_fuse(model.net)


def inference_dtype(device: torch.device, amp: bool) -> torch.dtype:
    """The precision a fused copy computes in: the device's mixed precision, else float32."""
    return (devices.autocast_dtype(device) if amp else None) or torch.float32


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
