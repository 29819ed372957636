"""Overlap-tile prediction with normalisation, tiling, stitching and classes on the compute device.

The host path (:func:`napari_unet.predict.tiling.predict_tiled`) normalises and cuts tiles in numpy, copies each
batch to the GPU and each result back, and stitches on the host: on a fast GPU that host work, not the
network, set the pace (end to end 0.20 of the network-only rate on an H200). Here the raw image goes over
once in its own data type; its percentiles, the normalisation, the mirroring and the tiles are computed
on the device, and so are the classes (the argmax). Each batch's probabilities and classes come back
through pinned memory on a second CUDA stream while the next batch computes, and the host writes them
into the result meanwhile. Tiles sit exactly where the host path puts them, the percentiles are those
numpy computes from the same sample, and the normalisation does numpy's arithmetic: both paths give the
same result.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Generator
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from napari_unet.images.normalization import Normalization, sample_stride
from napari_unet.models.geometry import TileGeometry
from napari_unet.predict.tiling import AxisPlan, center_crop_array, mirror_pad, plan_axis, stitch, tile_jobs
from napari_unet.progress import TileProgress

#: A batch of input tiles (B, C, h, w) on the device -> outputs (B, K, h_out, w_out) there.
TensorPredictor = Callable[[torch.Tensor], torch.Tensor]

#: Share of the free GPU memory the image, its normalised and mirrored copies may take.
DEVICE_IMAGE_SHARE = 0.25


def fits_on_device(planes_shape: tuple[int, ...], halo: int, free_bytes: int, itemsize: int = 4) -> bool:
    """Whether the raw image (``itemsize`` bytes a pixel), its normalised and one mirrored plane fit.

    Normalising a channel also holds it in float64 for a moment; all that must fit in a share
    (DEVICE_IMAGE_SHARE) of ``free_bytes``.
    """
    n_planes, channels, height, width = planes_shape
    pixels = n_planes * channels * height * width
    mirrored = channels * (height + 4 * halo) * (width + 4 * halo)
    needed = (itemsize + 4) * pixels + 8 * n_planes * height * width + 4 * mirrored
    return needed <= DEVICE_IMAGE_SHARE * free_bytes


def transferable(planes: np.ndarray) -> tuple[np.ndarray, Callable[[torch.Tensor], torch.Tensor]]:
    """``planes`` contiguous in a type torch copies as it is, and what restores their values on the device.

    Unsigned 16 and 32-bit integers, which torch computes little with, go over as the signed integers of
    the same bits and are widened there, exactly; booleans as bytes; types torch lacks as float64.
    """
    planes = np.ascontiguousarray(planes)
    if planes.dtype == np.bool_:
        planes = planes.view(np.uint8)
    if planes.dtype in (np.uint16, np.uint32):
        signed, wide, mask = (
            (np.int16, torch.int32, 0xFFFF) if planes.dtype == np.uint16 else (np.int32, torch.int64, 0xFFFFFFFF)
        )
        return planes.view(signed), lambda tensor: tensor.to(wide).bitwise_and_(mask)
    if planes.dtype not in (np.uint8, np.int8, np.int16, np.int32, np.int64, np.float16, np.float32, np.float64):
        planes = planes.astype(np.float64)
    return planes, lambda tensor: tensor


def upload(planes: np.ndarray, device: torch.device) -> torch.Tensor:
    """Copy raw planes to ``device`` in their own data type (unsigned ones widened there, exactly)."""
    host, restore = transferable(planes)
    return restore(_copy_to(torch.from_numpy(host), device))


#: Bytes of each page-locked block an image goes to a CUDA device through, and how many blocks there are.
UPLOAD_BLOCK_BYTES = 16 << 20
UPLOAD_BLOCKS = 3


def _copy_to(tensor: torch.Tensor, device: torch.device) -> torch.Tensor:
    """A contiguous host tensor on ``device``; to CUDA through a few page-locked blocks, used in turn.

    A copy from pageable memory runs at the pace of the one thread the driver stages it with (about 8
    GB/s, 16 ms for an 8192^2 uint16 image on an H100 machine). Here torch's threads fill each block and
    the copy engine moves it while the next one fills.
    """
    if device.type != "cuda" or tensor.numel() * tensor.element_size() <= UPLOAD_BLOCK_BYTES:
        return tensor.to(device)
    source = tensor.reshape(-1)
    result = torch.empty(tensor.shape, dtype=tensor.dtype, device=device)
    target = result.view(-1)
    per_block = UPLOAD_BLOCK_BYTES // tensor.element_size()
    blocks = [torch.empty(per_block, dtype=tensor.dtype, pin_memory=True) for _ in range(UPLOAD_BLOCKS)]
    moved: list[torch.cuda.Event | None] = [None] * UPLOAD_BLOCKS
    for index, start in enumerate(range(0, source.numel(), per_block)):
        slot = index % UPLOAD_BLOCKS
        if moved[slot] is not None:
            moved[slot].synchronize()  # the block's last copy to the device is done: it may be refilled
        n = min(per_block, source.numel() - start)
        blocks[slot][:n].copy_(source[start : start + n])
        target[start : start + n].copy_(blocks[slot][:n], non_blocking=True)
        moved[slot] = torch.cuda.Event()
        moved[slot].record(torch.cuda.current_stream(device))
    return result


def percentiles_like_numpy(sorted_values: torch.Tensor, percents: tuple[float, ...]) -> list[float]:
    """``np.percentile(values, percents)`` (method "linear") of a sorted 1D tensor, to the last bit.

    Only the neighbours of each percentile leave the device; the index arithmetic and the interpolation
    are numpy's own (numpy 2's ``_quantile`` and ``_lerp``), in float64.
    """
    n = sorted_values.numel()
    q = np.true_divide(np.asarray(percents, dtype=np.float64), 100)
    virtual = (n - 1) * q
    previous = np.floor(virtual)
    following = previous + 1
    previous[virtual >= n - 1] = following[virtual >= n - 1] = -1
    previous, following = previous.astype(np.intp), following.astype(np.intp)
    gamma = np.asarray(virtual - previous, dtype=np.float64)
    index = torch.as_tensor(np.concatenate([previous, following]) % n, device=sorted_values.device)
    values = sorted_values[index].double().cpu().numpy()
    a, b = values[: len(percents)], values[len(percents) :]
    diff = b - a
    result = np.add(a, diff * gamma)
    np.subtract(b, diff * (1 - gamma), out=result, where=gamma >= 0.5)
    return [float(v) for v in result]


def device_ranges(normalization: Normalization, planes: torch.Tensor) -> list[tuple[float, float]]:
    """:meth:`Normalization.ranges` of raw planes (P, C, H, W) on the device: the same sample, the same values."""
    stride = sample_stride(tuple(planes.shape))
    return sample_ranges(normalization, planes[:, :, ::stride, ::stride])


def sample_ranges(normalization: Normalization, sample: torch.Tensor) -> list[tuple[float, float]]:
    """The percentile ranges of each channel of ``sample`` (P, C, h, w), the sample :func:`sample_stride` takes."""
    ranges = []
    for c in range(sample.shape[1]):
        values = sample[:, c].reshape(-1)
        if values.is_floating_point():  # masking waits for the device (the count): integers need none
            values = values[torch.isfinite(values)]
        if values.numel() == 0:
            ranges.append((0.0, 1.0))
            continue
        # sorted in their own type (half the bytes of float64 for widened uint16), the same order
        lo, hi = percentiles_like_numpy(torch.sort(values).values, (normalization.low, normalization.high))
        ranges.append((lo, hi))
    return ranges


def normalize_on_device(planes: torch.Tensor, ranges: list[tuple[float, float]]) -> torch.Tensor:
    """:meth:`Normalization.apply` on the device, with numpy's arithmetic (float64 unless the input is float)."""
    out = torch.empty(planes.shape, dtype=torch.float32, device=planes.device)
    for c, (lo, hi) in enumerate(ranges):
        normalize_into(out[:, c], planes[:, c], lo, hi)
    return out


def normalize_into(out: torch.Tensor, raw: torch.Tensor, lo: float, hi: float) -> None:
    """Write one channel of raw values, normalised as numpy does it, into the float32 ``out`` (a view may do)."""
    compute = raw.dtype if raw.is_floating_point() else torch.float64
    out.copy_(raw.to(compute) - lo)
    out.mul_(1.0 / (hi - lo) if hi > lo else 1.0)
    torch.nan_to_num_(out, nan=0.0, posinf=0.0, neginf=0.0)


def _mirror_on_device(plane: torch.Tensor, before: tuple[int, int], after: tuple[int, int]) -> torch.Tensor:
    """np.pad's "reflect" of a (C, H, W) tensor; on the host when the image is smaller than the padding."""
    _, height, width = plane.shape
    if max(before[0], after[0]) < height and max(before[1], after[1]) < width:
        return F.pad(plane[None], (before[1], after[1], before[0], after[0]), mode="reflect")[0]
    padded = mirror_pad(plane.cpu().numpy(), before, after)  # repeated reflections: numpy knows them
    return torch.from_numpy(padded).to(plane.device)


def classes_on_device(probabilities: torch.Tensor) -> torch.Tensor:
    """:func:`napari_unet.objects.classes.probabilities_to_classes` of (B, K, h, w) probabilities: (B, h, w) uint8."""
    channel = torch.argmax(probabilities, dim=1)
    return torch.where(channel == 0, 0, channel + 1).to(torch.uint8)


class MirroredPlanes:
    """Normalised planes (P, C, H, W) on the device, mirror-padded one plane at a time."""

    def __init__(self, planes: torch.Tensor) -> None:
        self.planes, self.shape = planes, tuple(planes.shape)
        self.current, self.plane = -1, None

    def padded(self, p: int, before: tuple[int, int], after: tuple[int, int]) -> torch.Tensor:
        """Plane ``p`` mirror-padded by ``before`` and ``after`` (rows, columns)."""
        if p != self.current:
            self.plane, self.current = None, p  # the previous plane's memory first
            self.plane = _mirror_on_device(self.planes[p], before, after)
        return self.plane


@dataclass
class DeviceResult:
    """Probabilities (P, K, H, W) float32 and classes (P, H, W) uint8 of a prediction on the device."""

    probabilities: np.ndarray
    classes: np.ndarray


class _HostWriter:
    """Brings batches of results back to the host while the device computes the next ones.

    On CUDA each batch is copied into pinned memory on a second stream that waits for the batch; the
    host writes it into the result arrays when the next batch has been queued, so the copy, the host
    writes and the network overlap. Elsewhere results are written at once.
    """

    def __init__(self, probabilities: np.ndarray, classes: np.ndarray, plan_y: AxisPlan, plan_x: AxisPlan) -> None:
        self.probabilities, self.classes, self.plan_y, self.plan_x = probabilities, classes, plan_y, plan_x
        # torch views of the results: torch's copies into them run on all of its threads (numpy's on one)
        self.views = torch.from_numpy(probabilities), torch.from_numpy(classes)[:, None]
        self.pending: deque = deque()
        self.stream: torch.cuda.Stream | None = None

    def put(self, jobs: list[tuple[int, int, int]], probabilities: torch.Tensor, classes: torch.Tensor) -> None:
        """Queue a batch of results (on the device) for the host; writes the batch before it, if any."""
        if probabilities.device.type != "cuda":
            self._write(jobs, probabilities, classes)
            return
        if self.stream is None:
            self.stream = torch.cuda.Stream(probabilities.device)
        ready = torch.cuda.Event()
        ready.record()
        host = []
        with torch.cuda.stream(self.stream):
            self.stream.wait_event(ready)
            for tensor in (probabilities, classes):
                pinned = torch.empty(tensor.shape, dtype=tensor.dtype, pin_memory=True)
                pinned.copy_(tensor, non_blocking=True)
                tensor.record_stream(self.stream)  # not reused by the allocator before the copy is done
                host.append(pinned)
            copied = torch.cuda.Event()
            copied.record(self.stream)
        self.pending.append((copied, jobs, *host))
        while len(self.pending) > 1:
            self._write_oldest()

    def finish(self) -> None:
        """Write every batch still on its way."""
        while self.pending:
            self._write_oldest()

    def _write_oldest(self) -> None:
        copied, jobs, probabilities, classes = self.pending.popleft()
        copied.synchronize()
        self._write(jobs, probabilities, classes)

    def _write(self, jobs: list[tuple[int, int, int]], probabilities: torch.Tensor, classes: torch.Tensor) -> None:
        stitch(self.views[0], jobs, probabilities, self.plan_y, self.plan_x)
        stitch(self.views[1], jobs, classes[:, None], self.plan_y, self.plan_x)


def predict_tiled_on_device(
    predict_batch: TensorPredictor,
    planes: torch.Tensor,
    n_outputs: int,
    geom: TileGeometry,
    tile: int | tuple[int, int] = 572,
    batch_size: int = 4,
) -> Generator[TileProgress, None, DeviceResult]:
    """Predict every plane of normalised ``planes`` (P, C, H, W, on the device); returns host arrays.

    The tiles are those of :func:`napari_unet.predict.tiling.predict_tiled` with the same ``tile``.
    """
    source = MirroredPlanes(planes)
    n_planes, _, height, width = source.shape
    ty, tx = (tile, tile) if isinstance(tile, int) else tile
    plan_y, plan_x = plan_axis(height, ty, geom), plan_axis(width, tx, geom)
    writer = _HostWriter(
        np.empty((n_planes, n_outputs, height, width), dtype=np.float32),
        np.empty((n_planes, height, width), dtype=np.uint8),
        plan_y,
        plan_x,
    )
    jobs = list(tile_jobs(n_planes, plan_y, plan_x))
    yield TileProgress(0, len(jobs))
    before, after = (plan_y.pad_before, plan_x.pad_before), (plan_y.pad_after, plan_x.pad_after)
    for start in range(0, len(jobs), batch_size):
        batch_jobs = jobs[start : start + batch_size]
        tiles = []
        for p, oy, ox in batch_jobs:
            padded = source.padded(p, before, after)
            tiles.append(padded[:, oy : oy + plan_y.tile, ox : ox + plan_x.tile])
        result = center_crop_array(predict_batch(torch.stack(tiles)), plan_y.out, plan_x.out).contiguous()
        writer.put(batch_jobs, result, classes_on_device(result))
        del result
        yield TileProgress(start + len(batch_jobs), len(jobs))
    writer.finish()
    return DeviceResult(writer.probabilities, writer.classes)


def tensor_predictor(net: torch.nn.Module, device: torch.device, amp_context, channels_last: bool) -> TensorPredictor:
    """Wrap a network on ``device`` as a batch of tiles there -> softmax probabilities (float32) there."""

    def predict(batch: torch.Tensor) -> torch.Tensor:
        if channels_last:
            batch = batch.contiguous(memory_format=torch.channels_last)
        with torch.inference_mode(), amp_context():
            return torch.softmax(net(batch).float(), dim=1)

    return predict
