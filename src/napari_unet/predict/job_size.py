"""How a prediction runs on its device: tile and batch sizes, retries after running out of memory, where to tile."""

from __future__ import annotations

import torch

from napari_unet import devices
from napari_unet.errors import ResourceError
from napari_unet.models import geometry
from napari_unet.models.fused_inference import can_fuse
from napari_unet.models.geometry import TileGeometry
from napari_unet.models.model import Model
from napari_unet.predict.config import PredictConfig
from napari_unet.predict.device_tiling import fits_on_device

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
