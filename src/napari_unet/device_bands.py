"""The image to the device in bands of rows, normalised and mirrored as they arrive, so that tiles start early.

Otherwise the first tile of :func:`napari_unet.device_tiling.predict_tiled_on_device` waits until the whole
image is on the device, normalised and mirrored (11 ms of an 8192 x 8192 uint16 image's 0.28 s on an
H100, the GPU idle meanwhile). Here the percentiles come from the strided sample alone (the same pixels,
taken on the host), the rows go over in bands on a CUDA stream of their own through page-locked blocks,
and each band is normalised and mirrored into the padded plane on the compute stream once it is there;
a batch of tiles waits only for the bands under it. The result is the same to the last bit; the switch
:data:`STREAMING` stays "off" until a GPU run has measured what it buys.
"""

from __future__ import annotations

import numpy as np
import torch

from .device_tiling import normalize_into, transferable

#: Whether single planes of at least two bands go to CUDA devices in bands ("on") or whole ("off").
STREAMING = {"mode": "off"}

#: Bytes of raw image in each band (and page-locked block), and how many blocks the bands go through.
BAND_BYTES = 16 << 20
BAND_BLOCKS = 3


def band_rows(row_bytes: int) -> int:
    """Rows in a band of about BAND_BYTES."""
    return max(1, BAND_BYTES // max(row_bytes, 1))


def streams(raw: np.ndarray, device: torch.device, before: tuple[int, int], after: tuple[int, int]) -> bool:
    """Whether ``raw`` (P, C, H, W) goes to ``device`` in bands.

    It does with STREAMING on, to a CUDA device, for one plane of two bands or more whose pads mirror
    within it (as ``F.pad``'s reflection needs).
    """
    n_planes, _, height, width = raw.shape
    if STREAMING["mode"] != "on" or device.type != "cuda" or n_planes != 1:
        return False
    return height > band_rows(raw[0, :, 0].nbytes) and max(*before, *after) < min(height, width)


def host_sample(planes: np.ndarray, stride: int) -> np.ndarray:
    """``planes[:, :, ::stride, ::stride]`` as a contiguous array, gathered by torch's threads."""
    view = planes[:, :, ::stride, ::stride]
    if view.dtype.kind not in "biuf" or view.dtype.itemsize > 8:
        return np.ascontiguousarray(view)
    bits = {1: np.int8, 2: np.int16, 4: np.int32, 8: np.int64}[view.dtype.itemsize]
    as_bits = view.view(bits) if view.dtype.kind in "bu" else view  # torch copies signed integers and floats
    return torch.from_numpy(as_bits).contiguous().numpy().view(view.dtype)


class _BandUploader:
    """Raw bands to the device; to CUDA through page-locked blocks on a copy stream of its own.

    The compute stream waits for each band's copy; the host waits only for a block's previous copy before
    refilling it, never for the network.
    """

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.cuda = device.type == "cuda"
        self.stream = torch.cuda.Stream(device) if self.cuda else None
        self.blocks: list[torch.Tensor | None] = [None] * BAND_BLOCKS
        self.copied: list[torch.cuda.Event | None] = [None] * BAND_BLOCKS
        self.count = 0

    def upload(self, band: np.ndarray) -> torch.Tensor:
        """``band`` on the device with its own values (widened there), ready on the current stream."""
        host, restore = transferable(band)
        source = torch.from_numpy(host)
        if not self.cuda:
            return restore(source.to(self.device))
        slot = self.count % BAND_BLOCKS
        self.count += 1
        if self.copied[slot] is not None:
            self.copied[slot].synchronize()  # the block's last copy is done: it may be refilled
        block = self.blocks[slot]
        if block is None or block.numel() < source.numel() or block.dtype != source.dtype:
            block = self.blocks[slot] = torch.empty(source.numel(), dtype=source.dtype, pin_memory=True)
        staged = block[: source.numel()].view(source.shape)
        staged.copy_(source)
        compute = torch.cuda.current_stream(self.device)
        with torch.cuda.stream(self.stream):
            on_device = torch.empty(source.shape, dtype=source.dtype, device=self.device)
            on_device.copy_(staged, non_blocking=True)
            copied = self.copied[slot] = torch.cuda.Event()
            copied.record(self.stream)
        compute.wait_event(copied)
        on_device.record_stream(compute)  # not reused for the copy stream before the compute stream read it
        return restore(on_device)


class StreamedPlane:
    """One plane (1, C, H, W) of raw values, normalised and mirror-padded on the device band by band.

    Implements :class:`napari_unet.device_tiling.PlaneSource`: asked for the first ``rows`` rows of the
    padded plane, it uploads and fills the bands they need (in order), and the reflections at the top once
    the rows they copy are there, at the bottom with the last band.
    """

    def __init__(self, raw: np.ndarray, ranges: list[tuple[float, float]], device: torch.device) -> None:
        self.raw, self.ranges, self.device = raw, ranges, device
        self.shape = tuple(raw.shape)
        self.rows_per_band = band_rows(raw[0, :, 0].nbytes)
        self.uploader = _BandUploader(device)
        self.plane: torch.Tensor | None = None
        self.filled = 0  # raw rows normalised into the plane
        self.top_done = False

    def padded(self, p: int, rows: int, before: tuple[int, int], after: tuple[int, int]) -> torch.Tensor:
        """The padded plane, its first ``rows`` rows ready (queued on the current stream)."""
        if p != 0:
            raise IndexError(f"a streamed image has one plane, not plane {p}")
        _, channels, height, width = self.shape
        if self.plane is None:
            self.before, self.after = before, after
            size = (channels, before[0] + height + after[0], before[1] + width + after[1])
            self.plane = torch.empty(size, dtype=torch.float32, device=self.device)
        top = self.before[0]
        needed = height if rows > top + height else min(height, max(rows - top, top + 1))
        while self.filled < needed:
            self._fill(self.filled, min(self.filled + self.rows_per_band, height))
        return self.plane

    def _fill(self, first: int, end: int) -> None:
        """Normalise raw rows [first, end) into the plane and mirror their ends; then the top or bottom."""
        (top, left), (bottom, right) = self.before, self.after
        width = self.shape[3]
        raw = self.uploader.upload(self.raw[0, :, first:end])
        rows = self.plane[:, top + first : top + end]
        for c, (lo, hi) in enumerate(self.ranges):
            normalize_into(rows[c, :, left : left + width], raw[c], lo, hi)
        rows[:, :, :left] = rows[:, :, left + 1 : 2 * left + 1].flip(-1)
        rows[:, :, left + width :] = rows[:, :, left + width - 1 - right : left + width - 1].flip(-1)
        self.filled = end
        if not self.top_done and self.filled >= top + 1:
            self.plane[:, :top] = self.plane[:, top + 1 : 2 * top + 1].flip(-2)
            self.top_done = True
        height = self.shape[2]
        if self.filled == height:
            last = top + height - 1
            self.plane[:, last + 1 :] = self.plane[:, last - bottom : last].flip(-2)
