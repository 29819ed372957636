"""Results of images too large for memory: zarr folders on disk, shown in napari as lazy layers."""

from __future__ import annotations

import os
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


def _replace(viewer: Any, name: str, layer_type: type) -> None:
    """Remove the layer ``name`` of ``layer_type``: the new result takes its place."""
    old = find_layer(viewer, name, layer_type)
    if old is not None:
        viewer.layers.remove(old)


def show_zarr_labels(viewer: Any, name: str, path: Path, like: Any, **kwargs: Any) -> Labels:
    """Show a zarr array of labels as a lazy, read-only labels layer called ``name`` (replacing one of that name).

    Read-only: painting on it would build an ever longer dask graph and could not be compared with what
    was written; the folder on disk is the result.
    """
    _replace(viewer, name, Labels)
    data = da.from_zarr(str(path))
    layer = viewer.add_labels(
        data,
        name=name,
        scale=like.scale[-data.ndim :],
        translate=like.translate[-data.ndim :],
        metadata={ZARR_KEY: str(path)},
        **kwargs,
    )
    layer.editable = False
    return layer


def show_zarr_uncertainty(viewer: Any, name: str, path: Path, like: Any, uncertainty) -> Image:
    """Show the uncertainty of zarr class probabilities (K, ...) as a lazy image layer, computed as it is viewed."""
    _replace(viewer, name, Image)
    probabilities = da.from_zarr(str(path))
    probabilities = probabilities.rechunk({0: probabilities.shape[0]})  # all classes of a pixel in one block
    values = probabilities.map_blocks(uncertainty, drop_axis=0, dtype=np.float32)
    return viewer.add_image(
        values,
        name=name,
        scale=like.scale[-values.ndim :],
        translate=like.translate[-values.ndim :],
        colormap="magma",
        blending="additive",
        contrast_limits=(0, 1),
        metadata={ZARR_KEY: str(path)},
    )
