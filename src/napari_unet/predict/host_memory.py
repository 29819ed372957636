"""Whether segmenting an image in memory fits the host's free memory, checked before any work starts."""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import tifffile

from napari_unet.errors import ResourceError
from napari_unet.images.axes import infer_layout
from napari_unet.objects.peaks import MOSAIC_BYTES

GIB = 1024**3

#: What an in-memory segmentation holds besides its per-pixel arrays: the network's working memory for a
#: batch of tiles on the CPU, and with objects their mosaics (:data:`napari_unet.objects.peaks.MOSAIC_BYTES`).
NETWORK_BYTES = GIB // 10

#: Headroom of the in-memory estimate for what varies from run to run (the allocator, which mosaics
#: are filtered at once): the peaks at 4096 x 4096 spread over 0.53-0.66 GiB in eight runs.
IN_MEMORY_SLACK = GIB // 10


def available_bytes() -> int | None:
    """Memory the host can give a program now without swapping, or None where it cannot be told."""
    try:
        import psutil  # napari's dependency; the core does without it
    except ImportError:
        psutil = None
    if psutil is not None:
        return int(psutil.virtual_memory().available)
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def segmentation_bytes(
    n_pixels: int, channels: int, itemsize: int, n_classes: int, objects: bool, loaded: bool = True
) -> int:
    """About how much memory segmenting ``n_pixels`` (all planes) in memory takes at its peak.

    Per pixel: the image itself unless already ``loaded`` (``channels * itemsize``), the probabilities
    (4 bytes a class), 2 bytes of classes and bookkeeping, and 4 bytes a channel for the normalised
    image while the tiles run, which the object ids (4 bytes) replace afterwards; plus
    :data:`NETWORK_BYTES`, :data:`IN_MEMORY_SLACK` and, with ``objects``, :data:`MOSAIC_BYTES`. It errs
    on the high side against the peaks ``benchmarks/large_image.py`` measures (image read from a file,
    two classes, objects, two threads): 1.47 vs 1.22-1.26 GiB at 8192 x 8192, 0.72 vs 0.53-0.66 GiB at
    4096 x 4096 (eight runs of 2026-11-26, one of them above the 0.62 GiB estimated before the slack).
    """
    raw = 0 if loaded else channels * itemsize
    per_pixel = raw + 4 * max(channels, 1 if objects else 0) + 4 * n_classes + 2
    return n_pixels * per_pixel + NETWORK_BYTES + IN_MEMORY_SLACK + (MOSAIC_BYTES if objects else 0)


def shortfall(
    shape: tuple[int, ...],
    channels: int,
    itemsize: int,
    n_classes: int,
    objects: bool,
    loaded: bool = True,
    available: int | None = None,
) -> tuple[int, int] | None:
    """(bytes needed, bytes free) when segmenting an image of ``shape`` in memory would not fit, else None.

    ``shape`` is the image's shape without its channel axis; ``available`` the free memory
    (:func:`available_bytes` if None; None is returned where it cannot be told).
    """
    available = available_bytes() if available is None else available
    if available is None:
        return None
    needed = segmentation_bytes(math.prod(shape), channels, itemsize, n_classes, objects, loaded)
    return (needed, available) if needed > available else None


def describe_shortfall(shape: tuple[int, ...], needed: int, available: int) -> str:
    """The shortfall in words ("segmenting this 8192 x 8192 image in memory needs about 1.4 GiB and ...")."""
    size = " x ".join(str(n) for n in shape)
    need, free = f"{needed / GIB:.1f}", f"{available / GIB:.1f}"
    return f"segmenting this {size} image in memory needs about {need} GiB and {free} GiB is free"


def check_fits(
    shape: tuple[int, ...],
    channels: int,
    itemsize: int,
    n_classes: int,
    objects: bool,
    loaded: bool = True,
    available: int | None = None,
) -> None:
    """Raise :class:`ResourceError` when segmenting an image of ``shape`` in memory would not fit.

    Otherwise the operating system refuses an allocation part way, which ends the program (napari, with
    everything painted and not yet saved). Such images go block by block into zarr instead
    (``napari-unet predict --format zarr``, :func:`napari_unet.segment_lazy`). Arguments as
    :func:`shortfall`; nothing is checked where the free memory cannot be told.
    """
    short = shortfall(shape, channels, itemsize, n_classes, objects, loaded, available)
    if short is not None:
        raise ResourceError(
            f"{describe_shortfall(shape, *short)}: close other programs, segment one plane at a time, or segment it "
            "block by block into zarr (napari-unet predict MODEL IMAGE --format zarr)"
        )


def blockwise_bytes(block: int, overlap: int, threads: int) -> int:
    """About how much memory segmenting block by block takes at its peak (:func:`napari_unet.segment_lazy`).

    Each of ``threads`` blocks being computed at once holds about 34 bytes a pixel of the block and its
    overlap, plus :data:`NETWORK_BYTES`: 0.53 GiB for two threads of 2048-pixel blocks, a little above what
    ``benchmarks/large_image.py`` measures (0.50-0.52 GiB at 8192 x 8192, results/large_image_cpu.md).
    """
    return threads * ((block + 2 * overlap) ** 2 * 34 + NETWORK_BYTES)


def tiff_too_large(
    path: str | os.PathLike, in_channels: int, n_classes: int, objects: bool, channel_axis: int | None = None
) -> str | None:
    """Why segmenting the TIFF at ``path`` whole in memory would not fit (from its header alone), or None.

    None also for other files and whatever cannot be told without reading: reading reports those.
    """
    if Path(path).suffix.lower() not in (".tif", ".tiff"):
        return None
    try:
        with tifffile.TiffFile(path) as tif:
            series = tif.series[0]
            shape, dtype = tuple(series.shape), np.dtype(series.dtype)
        layout = infer_layout(shape, in_channels, channel_axis)
        check_fits(layout.spatial_shape, in_channels, dtype.itemsize, n_classes, objects, loaded=False)
    except ResourceError as error:
        return str(error)
    except Exception:  # unreadable, or an input error that reading the image will report
        return None
    return None
