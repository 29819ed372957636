"""Overlap-tile prediction with the image, the tiles and the result on the compute device.

The host path (:func:`napari_unet.tiling.predict_tiled`) cuts tiles in numpy, copies each batch to the
GPU and each result back, and stitches on the host: on a fast GPU that host work, not the network,
set the pace (end to end 0.20 of the network-only rate on an H200). Here the normalised image is copied
once, mirrored, cut and stitched on the device, and the probabilities come back in one copy. Tiles sit
exactly where the host path puts them, so both give the same result.
"""

from __future__ import annotations

from collections.abc import Callable, Generator

import numpy as np
import torch
import torch.nn.functional as F

from .tiling import TileGeometry, TileProgress, center_crop_array, mirror_pad, plan_axis, stitch, tile_jobs

#: A batch of input tiles (B, C, h, w) on the device -> outputs (B, K, h_out, w_out) there.
TensorPredictor = Callable[[torch.Tensor], torch.Tensor]

#: Share of the free GPU memory the image, its mirrored copy and the probabilities may take.
DEVICE_IMAGE_SHARE = 0.25


def fits_on_device(planes_shape: tuple[int, ...], n_outputs: int, halo: int, free_bytes: int) -> bool:
    """Whether the image, one mirrored plane and the float32 probabilities fit in a share of ``free_bytes``."""
    n_planes, channels, height, width = planes_shape
    mirrored = channels * (height + 4 * halo) * (width + 4 * halo)
    needed = 4 * (n_planes * channels * height * width + mirrored + n_planes * n_outputs * height * width)
    return needed <= DEVICE_IMAGE_SHARE * free_bytes


def _mirror_on_device(plane: torch.Tensor, before: tuple[int, int], after: tuple[int, int]) -> torch.Tensor:
    """np.pad's "reflect" of a (C, H, W) tensor; on the host when the image is smaller than the padding."""
    _, height, width = plane.shape
    if max(before[0], after[0]) < height and max(before[1], after[1]) < width:
        return F.pad(plane[None], (before[1], after[1], before[0], after[0]), mode="reflect")[0]
    padded = mirror_pad(plane.cpu().numpy(), before, after)  # repeated reflections: numpy knows them
    return torch.from_numpy(padded).to(plane.device)


def predict_tiled_on_device(
    predict_batch: TensorPredictor,
    planes: torch.Tensor,
    n_outputs: int,
    geom: TileGeometry,
    tile: int = 572,
    batch_size: int = 4,
) -> Generator[TileProgress, None, torch.Tensor]:
    """Predict every plane of ``planes`` (P, C, H, W, on the device); returns (P, K, H, W) there.

    The tiles are those of :func:`napari_unet.tiling.predict_tiled` with the same ``tile``.
    """
    n_planes, _, height, width = planes.shape
    plan_y, plan_x = plan_axis(height, tile, geom), plan_axis(width, tile, geom)
    out = torch.empty((n_planes, n_outputs, height, width), dtype=torch.float32, device=planes.device)
    jobs = list(tile_jobs(n_planes, plan_y, plan_x))
    yield TileProgress(0, len(jobs))
    padded, padded_plane = None, -1
    for start in range(0, len(jobs), batch_size):
        batch_jobs = jobs[start : start + batch_size]
        tiles = []
        for p, oy, ox in batch_jobs:
            if p != padded_plane:
                before, after = (plan_y.pad_before, plan_x.pad_before), (plan_y.pad_after, plan_x.pad_after)
                padded, padded_plane = _mirror_on_device(planes[p], before, after), p
            tiles.append(padded[:, oy : oy + plan_y.tile, ox : ox + plan_x.tile])
        result = center_crop_array(predict_batch(torch.stack(tiles)), plan_y.out, plan_x.out)
        stitch(out, batch_jobs, result, plan_y, plan_x)
        yield TileProgress(start + len(batch_jobs), len(jobs))
    return out


def tensor_predictor(net: torch.nn.Module, device: torch.device, amp_context, channels_last: bool) -> TensorPredictor:
    """Wrap a network on ``device`` as a batch of tiles there -> softmax probabilities (float32) there."""

    def predict(batch: torch.Tensor) -> torch.Tensor:
        if channels_last:
            batch = batch.contiguous(memory_format=torch.channels_last)
        with torch.inference_mode(), amp_context():
            return torch.softmax(net(batch).float(), dim=1)

    return predict


def to_host(array: torch.Tensor) -> np.ndarray:
    """A device tensor as a numpy array, through pinned memory on CUDA (one fast copy)."""
    if array.device.type != "cuda":
        return array.numpy()
    host = torch.empty(array.shape, dtype=array.dtype, pin_memory=True)
    host.copy_(array)
    return host.numpy()
