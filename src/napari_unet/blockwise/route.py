"""Whether an image is segmented in memory or block by block into zarr, decided before any work starts.

Napari's Segment button, the Export widget's batch and ``napari-unet predict`` all ask here.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from napari_unet.blockwise.config import BlockConfig
from napari_unet.devices import cpu_cores
from napari_unet.errors import ResourceError
from napari_unet.images.lazy import is_zarr
from napari_unet.models.model import Model
from napari_unet.predict import host_memory

#: The reason a zarr image goes block by block.
ZARR_IMAGE = "a zarr image: segmenting it block by block into zarr"


@dataclass(frozen=True)
class Route:
    """How an image is segmented: in memory, or block by block into zarr (``reason`` says why)."""

    blockwise: bool
    reason: str = ""


IN_MEMORY = Route(False)


def route_for_array(
    shape: tuple[int, ...],
    channels: int,
    itemsize: int,
    n_classes: int,
    objects: bool,
    loaded: bool = True,
    whole_image: bool = True,
    blocks: BlockConfig = BlockConfig(),
    available: int | None = None,
) -> Route:
    """In memory if segmenting an image of ``shape`` (without its channel axis) fits the free memory.

    Parameters
    ----------
    shape : tuple of int
        What is to be segmented: the whole image, or one plane of it.
    channels, itemsize, n_classes, objects, loaded
        As :func:`napari_unet.predict.host_memory.shortfall`.
    whole_image : bool
        False when ``shape`` is one plane of a stack: planes are not segmented block by block.
    blocks : BlockConfig
        The blocks it would be cut into.
    available : int, optional
        Free memory in bytes (:func:`napari_unet.predict.host_memory.available_bytes` if None).

    Raises
    ------
    ResourceError
        If it fits neither in memory nor block by block (or it is a plane that does not fit).
    """
    available = host_memory.available_bytes() if available is None else available
    short = host_memory.shortfall(shape, channels, itemsize, n_classes, objects, loaded, available)
    if short is None:
        return IN_MEMORY
    reason = host_memory.describe_shortfall(shape, *short)
    if not whole_image:
        raise ResourceError(f"{reason}: segment the whole image, block by block")
    block = min(blocks.block, max(shape[-2:]))
    needed = host_memory.blockwise_bytes(block, blocks.overlap, cpu_cores())
    if needed > short[1]:
        raise ResourceError(
            f"{reason}, and even block by block it needs about {needed / host_memory.GIB:.1f} GiB: close other "
            "programs and segment again"
        )
    return Route(True, reason)


def route_for_file(path: Path, model: Model, objects: bool, channel_axis: int | None = None) -> Route:
    """Block by block for a zarr image (chunked for it, and often large) or a TIFF too large for memory.

    A TIFF is judged from its header (:func:`napari_unet.predict.host_memory.tiff_too_large`); other
    files are read whole.
    """
    if is_zarr(path):
        return Route(True, ZARR_IMAGE)
    reason = host_memory.tiff_too_large(path, model.in_channels, model.n_classes, objects, channel_axis)
    return Route(True, f"{reason.split(':')[0]}; writing zarr block by block instead") if reason else IN_MEMORY
