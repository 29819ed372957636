"""Results of images too large for memory: zarr folders on disk, shown in napari as lazy layers."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import dask.array as da
import numpy as np
from napari.layers import Image, Labels

from ._layers import find_layer

#: Metadata key of a layer whose data is read from a zarr folder written block by block.
ZARR_KEY = "napari_unet_zarr"

#: Environment variable naming the default folder for such results (default ``~/napari-unet``).
RESULTS_ENV = "NAPARI_UNET_RESULTS"


def default_results_folder() -> Path:
    """Where the results of images too large for memory go unless the user chooses another folder."""
    return Path(os.environ.get(RESULTS_ENV) or Path.home() / "napari-unet")


def zarr_source(layer: Any) -> Path | None:
    """The zarr folder a layer's data is read from, if it is such a result."""
    path = layer.metadata.get(ZARR_KEY) if layer is not None else None
    return Path(path) if path else None


#: Largest side of the coarsest level of the pyramids the lazy layers are shown with.
COARSEST = 1024


def pyramid(data: da.Array, coarsest: int = COARSEST) -> list[da.Array] | da.Array:
    """Views of ``data`` every 2, 4, 8 ... pixels along its last two axes, down to ``coarsest`` pixels.

    napari shows a multiscale layer from the level that matches the screen and reads only what is in
    view: adding a plain 8192 x 8192 dask labels layer held napari's GUI thread for 5.7 s (objects),
    this pyramid of strided views 0.3 s (napari 0.9, 2 cores). A single level is returned as it is.
    """
    levels = [data]
    while max(levels[-1].shape[-2:]) > coarsest:
        levels.append(levels[-1][..., ::2, ::2])
    return levels if len(levels) > 1 else data


def _replace(viewer: Any, name: str, layer_type: type) -> None:
    """Remove the layer ``name`` of ``layer_type``: the new result takes its place."""
    old = find_layer(viewer, name, layer_type)
    if old is not None:
        viewer.layers.remove(old)


def uncertainty_levels(probabilities: da.Array, uncertainty: Callable[[np.ndarray], np.ndarray]) -> da.Array:
    """``uncertainty`` of (K, ...) class probabilities, computed block by block as it is read."""
    probabilities = probabilities.rechunk({0: probabilities.shape[0]})  # all classes of a pixel in one block
    return probabilities.map_blocks(uncertainty, drop_axis=0, dtype=np.float32)


def read_levels(path: Path, transform: Callable[[da.Array], da.Array] | None = None) -> list | da.Array:
    """The :func:`pyramid` of the zarr array at ``path`` (``transform``-ed), its coarsest level read now.

    Run it off the GUI thread: napari draws the coarsest level first, and reading it means reading
    the whole array (0.9-1.4 s of napari's GUI thread at 4096-8192 pixels when left to napari).
    """
    data = da.from_zarr(str(path))
    levels = pyramid(data if transform is None else transform(data))
    if isinstance(levels, list):
        levels[-1] = np.asarray(levels[-1])
    return levels


def show_zarr_labels(viewer: Any, name: str, levels, path: Path, like: Any, **kwargs: Any) -> Labels:
    """Show labels read from a zarr folder as a lazy, read-only labels layer called ``name`` (replacing one).

    ``levels`` come from :func:`read_levels`. Read-only: painting on a dask layer would build an ever
    longer graph and could not be compared with what was written; the folder on disk is the result.
    """
    _replace(viewer, name, Labels)
    ndim = len(levels[0].shape) if isinstance(levels, list) else levels.ndim
    layer = viewer.add_labels(
        levels,
        name=name,
        scale=like.scale[-ndim:],
        translate=like.translate[-ndim:],
        metadata={ZARR_KEY: str(path)},
        **kwargs,
    )
    layer.editable = False
    return layer


def show_zarr_image(viewer: Any, name: str, levels, path: Path, like: Any, **kwargs: Any) -> Image:
    """Show an image read from a zarr folder (an uncertainty map, say) as a lazy image layer (replacing one)."""
    _replace(viewer, name, Image)
    ndim = len(levels[0].shape) if isinstance(levels, list) else levels.ndim
    return viewer.add_image(
        levels,
        name=name,
        scale=like.scale[-ndim:],
        translate=like.translate[-ndim:],
        metadata={ZARR_KEY: str(path)},
        **kwargs,
    )
