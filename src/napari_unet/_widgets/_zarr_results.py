"""Results of images too large for memory: zarr folders on disk, shown in napari as lazy layers."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from napari.layers import Image, Labels

from .._reader import ZARR_KEY
from ._layers import find_layer

#: Environment variable naming the default folder for such results (default ``~/napari-unet``).
RESULTS_ENV = "NAPARI_UNET_RESULTS"


def default_results_folder() -> Path:
    """Where the results of images too large for memory go unless the user chooses another folder."""
    return Path(os.environ.get(RESULTS_ENV) or Path.home() / "napari-unet")


def zarr_source(layer: Any) -> Path | None:
    """The zarr folder a layer's data is read from, if it is such a result."""
    path = layer.metadata.get(ZARR_KEY) if layer is not None else None
    return Path(path) if path else None


def _replace(viewer: Any, name: str, layer_type: type) -> None:
    """Remove the layer ``name`` of ``layer_type``: the new result takes its place."""
    old = find_layer(viewer, name, layer_type)
    if old is not None:
        viewer.layers.remove(old)


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
