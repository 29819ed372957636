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


def show_zarr_result(viewer: Any, kind: str, name: str, levels, path: Path, like: Any, **kwargs: Any) -> Any:
    """Show a result read from a zarr folder as a lazy layer called ``name``, replacing one of that name.

    ``kind`` is "labels" or "image"; ``levels`` come from :func:`napari_unet._reader.read_levels`, placed
    like the image ``like``. Labels are read-only: painting on a dask layer would build an ever longer
    graph and could not be compared with what was written; the folder on disk is the result.
    """
    layer_type = Labels if kind == "labels" else Image
    old = find_layer(viewer, name, layer_type)
    if old is not None:
        viewer.layers.remove(old)
    ndim = len(levels[0].shape) if isinstance(levels, list) else levels.ndim
    add = viewer.add_labels if kind == "labels" else viewer.add_image
    layer = add(
        levels,
        name=name,
        scale=like.scale[-ndim:],
        translate=like.translate[-ndim:],
        metadata={ZARR_KEY: str(path)},
        **kwargs,
    )
    if kind == "labels":
        layer.editable = False
    return layer
