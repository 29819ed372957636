"""How a large image is cut into blocks (without importing dask)."""

from __future__ import annotations

from dataclasses import dataclass

from napari_unet.errors import InputError


@dataclass(frozen=True)
class BlockConfig:
    """How a large image is cut into blocks.

    Parameters
    ----------
    block : int
        Side of a block of output pixels (rounded up to the network's alignment); each block is one
        task and one zarr chunk. Memory per task is about 30 bytes per pixel of a block plus the network.
    overlap : int
        Pixels of context around each block when finding objects: an object that crosses a block border
        and spans less than this comes out exactly as in a whole-image prediction. Larger objects are
        cut at the border, then merged once all blocks are written
        (:func:`napari_unet.blockwise.zarr_output.iter_segment_zarr`).
    """

    block: int = 2048
    overlap: int = 128

    def __post_init__(self) -> None:
        if self.block < 64:
            raise InputError(f"blocks must be at least 64 pixels, got {self.block}")
        if not 0 <= self.overlap <= self.block // 2:
            raise InputError(f"the overlap must be between 0 and half a block ({self.block // 2}), got {self.overlap}")
