"""The overlap-tile strategy: exact tiled prediction of images of any size with a valid-convolution network.

With valid convolutions every output pixel sees its whole context in the input tile, and a tiled pass
equals one pass over the whole mirror-padded image as long as tiles start on the pooling grid
(multiples of ``2**depth``). So tiles are cut from the mirrored image at aligned offsets, predicted in
batches, and written straight into the result: no blending and no seams.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass

import numpy as np

from napari_unet.models.geometry import TileGeometry
from napari_unet.progress import TileProgress

#: A batch of input tiles (B, C, h, w) float32 -> a batch of outputs (B, K, h_out, w_out).
BatchPredictor = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class AxisPlan:
    """Tiles along one axis: input tile length, output length, output offsets and mirror padding."""

    tile: int
    out: int
    offsets: tuple[int, ...]
    pad_before: int
    pad_after: int


def _offsets(length: int, tile: int, geom: TileGeometry) -> tuple[int, ...]:
    """Output offsets of tiles of ``tile`` pixels along ``length``.

    Tiles step by the output size rounded down to the alignment; the last is pulled back as far as the
    alignment allows.
    """
    out = geom.output_size(tile)
    step = (out // geom.alignment) * geom.alignment
    n = math.ceil((length - out) / step) + 1
    last = min((n - 1) * step, math.ceil((length - out) / geom.alignment) * geom.alignment)
    return (*(k * step for k in range(n - 1)), last)


def plan_axis(length: int, tile: int, geom: TileGeometry) -> AxisPlan:
    """Place tiles along an axis of ``length`` pixels with input tiles of at most ``tile`` pixels.

    An axis shorter than one tile's output gets a single, smaller tile. Otherwise the tiles are the
    smallest that cover the axis in as few tiles as tiles of ``tile`` pixels would: 8192 pixels in 5 tiles
    of 1844 rather than 5 of 2140 (26% less computed beyond the image and in overlaps).
    """
    halo = geom.halo
    tile = geom.valid_tile(tile)
    if geom.output_size(tile) >= length:
        tile = geom.valid_tile(length + 2 * halo)
        offsets: tuple[int, ...] = (0,)
    else:
        n = len(_offsets(length, tile, geom))
        smallest = geom.valid_tile(math.ceil(length / n) + 2 * halo)
        while smallest < tile and len(_offsets(length, smallest, geom)) > n:
            smallest = geom.valid_tile(smallest + 1)
        tile = min(smallest, tile)
        offsets = _offsets(length, tile, geom)
    out = geom.output_size(tile)
    pad_after = offsets[-1] + tile - halo - length
    return AxisPlan(tile=tile, out=out, offsets=offsets, pad_before=halo, pad_after=pad_after)


def mirror_pad(plane: np.ndarray, before: tuple[int, int], after: tuple[int, int]) -> np.ndarray:
    """Mirror-pad the last two axes of a (C, H, W) array (the paper's extrapolation at the border)."""
    widths = [(0, 0)] * (plane.ndim - 2) + [(before[0], after[0]), (before[1], after[1])]
    return np.pad(plane, widths, mode="reflect")


def center_crop_array(array: np.ndarray, height: int, width: int) -> np.ndarray:
    """Centre crop of the last two axes."""
    top = (array.shape[-2] - height) // 2
    left = (array.shape[-1] - width) // 2
    return array[..., top : top + height, left : left + width]


def tile_jobs(n_planes: int, plan_y: AxisPlan, plan_x: AxisPlan) -> Iterator[tuple[int, int, int]]:
    """(plane, y offset, x offset) of every tile, plane by plane, row by row."""
    for p in range(n_planes):
        for oy in plan_y.offsets:
            for ox in plan_x.offsets:
                yield p, oy, ox


def stitch(out, jobs: list[tuple[int, int, int]], results, plan_y: AxisPlan, plan_x: AxisPlan) -> None:
    """Write a batch of tile outputs (numpy or torch) into ``out`` (P, K, H, W), cut where the image ends."""
    height, width = out.shape[-2:]
    for (p, oy, ox), tile_out in zip(jobs, results, strict=True):
        h, w = min(plan_y.out, height - oy), min(plan_x.out, width - ox)
        out[p, :, oy : oy + h, ox : ox + w] = tile_out[:, :h, :w]


def predict_tiled(
    predict_batch: BatchPredictor,
    planes: np.ndarray,
    n_outputs: int,
    geom: TileGeometry,
    tile: int | tuple[int, int] = 572,
    batch_size: int = 4,
    out: np.ndarray | None = None,
    context: tuple[int, int, int, int] = (0, 0, 0, 0),
) -> Generator[TileProgress, None, np.ndarray]:
    """Predict every plane of ``planes`` (P, C, H, W) tile by tile; yields progress, returns (P, K, H, W).

    Parameters
    ----------
    predict_batch : callable
        Maps a float32 batch (B, C, h, w) to outputs (B, K, h_out, w_out); a larger output (as from a
        "same"-padded network) is centre-cropped.
    planes : numpy.ndarray
        Normalised input planes.
    n_outputs : int
        K, the number of output channels.
    geom : TileGeometry
        Depth and padding of the network.
    tile : int or (int, int)
        Largest input tile (height, width); rounded up to a valid size, shrunk for small images.
    batch_size : int
        Tiles per call of ``predict_batch``.
    out : numpy.ndarray, optional
        Array of shape (P, K, H, W) to write into (float32 by default).
    context : (int, int, int, int)
        Rows above and below, columns left and right, of real image around the region to predict: a
        block of a larger image carries its neighbours' pixels (see :func:`block_context`), so that the
        block's prediction equals that of the whole image. Only missing context is mirrored.
    """
    top, bottom, left, right = context
    n_planes = planes.shape[0]
    height, width = planes.shape[2] - top - bottom, planes.shape[3] - left - right
    ty, tx = (tile, tile) if isinstance(tile, int) else tile
    plan_y, plan_x = plan_axis(height, ty, geom), plan_axis(width, tx, geom)
    # context beyond what the tiles read is cut off; what is missing is mirrored below
    cut = (max(top - plan_y.pad_before, 0), max(bottom - plan_y.pad_after, 0))
    cut_x = (max(left - plan_x.pad_before, 0), max(right - plan_x.pad_after, 0))
    planes = planes[..., cut[0] : planes.shape[2] - cut[1], cut_x[0] : planes.shape[3] - cut_x[1]]
    top, bottom, left, right = top - cut[0], bottom - cut[1], left - cut_x[0], right - cut_x[1]
    if out is None:
        out = np.empty((n_planes, n_outputs, height, width), dtype=np.float32)
    total = n_planes * len(plan_y.offsets) * len(plan_x.offsets)
    padded: dict[int, np.ndarray] = {}
    jobs = tile_jobs(n_planes, plan_y, plan_x)
    done = 0
    yield TileProgress(0, total)
    while done < total:
        batch_jobs = [job for _, job in zip(range(batch_size), jobs, strict=False)]
        for p in {job[0] for job in batch_jobs} - padded.keys():
            padded[p] = mirror_pad(
                planes[p],
                (plan_y.pad_before - top, plan_x.pad_before - left),
                (plan_y.pad_after - bottom, plan_x.pad_after - right),
            )
        batch = np.stack([padded[p][:, oy : oy + plan_y.tile, ox : ox + plan_x.tile] for p, oy, ox in batch_jobs])
        result = center_crop_array(predict_batch(batch), plan_y.out, plan_x.out)
        stitch(out, batch_jobs, result, plan_y, plan_x)
        last_plane = batch_jobs[-1][0]
        for p in [p for p in padded if p != last_plane]:
            del padded[p]
        done += len(batch_jobs)
        yield TileProgress(done, total)
    return out


def block_context(geom: TileGeometry) -> tuple[int, int]:
    """Real pixels needed before and after a block that starts and ends on the alignment grid.

    An output pixel sees the halo on each side, but the pooling grid widens that: the receptive fields
    of a block's last pixels reach up to an alignment step further than the halo (measured: 3 more for
    depth 3), while those of its first pixels start exactly one halo before it.
    """
    return geom.halo, geom.halo + geom.alignment


def predict_whole(predict_batch: BatchPredictor, planes: np.ndarray, geom: TileGeometry) -> np.ndarray:
    """One pass over each whole mirror-padded plane: the reference the tiled prediction must equal."""
    n_planes, _, height, width = planes.shape
    results = []
    for p in range(n_planes):
        th, tw = geom.valid_tile(height + 2 * geom.halo), geom.valid_tile(width + 2 * geom.halo)
        after = (th - geom.halo - height, tw - geom.halo - width)
        padded = mirror_pad(planes[p], (geom.halo, geom.halo), after)
        result = center_crop_array(predict_batch(padded[None]), th - 2 * geom.halo, tw - 2 * geom.halo)
        results.append(result[0, :, :height, :width])
    return np.stack(results)
