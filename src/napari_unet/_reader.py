"""Open the zarr folders napari-unet writes (``<stem>_segmentation.zarr`` ...) in napari as lazy layers.

No napari import: the reader returns layer data tuples. Large results come as pyramids of strided
views whose coarsest level is read at once, so that napari draws them without reading them whole.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import dask.array as da
import numpy as np

from napari_unet.images.lazy import ZARR_MARKERS

#: Metadata key of a layer whose data is read from a zarr folder written block by block.
ZARR_KEY = "napari_unet_zarr"

#: Colours of classes 1, 2, ... (class 1, the background, is shown transparent over the image).
CLASS_COLOURS = ["#3b8bd9", "#f2c12e", "#e0457b", "#4cc46a", "#9b59d0", "#ff8c1a", "#19c3c3", "#c8553d"]

#: What napari-unet writes, by the end of the folder name.
RESULT_KINDS = ("segmentation", "objects", "probabilities")

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


def result_kind(path: str | Path) -> tuple[str, str] | None:
    """(image stem, kind) of a zarr folder napari-unet wrote ("slide", "objects"), or None."""
    path = Path(path)
    for kind in RESULT_KINDS:
        if path.name.endswith(f"_{kind}.zarr") and any((path / marker).is_file() for marker in ZARR_MARKERS):
            return path.name[: -len(f"_{kind}.zarr")], kind
    return None


def class_colours(n_classes: int = len(CLASS_COLOURS)) -> dict[Any, str]:
    """A labels colormap for classes 1..n_classes: class 1 (background) and 0 transparent."""
    colours: dict[Any, str] = {None: "transparent", 0: "transparent", 1: "transparent"}
    colours.update({v: CLASS_COLOURS[(v - 1) % len(CLASS_COLOURS)] for v in range(2, n_classes + 1)})
    return colours


def get_reader(path: str | Sequence[str]) -> Callable[[Any], list[tuple]] | None:
    """npe2 reader hook: :func:`read_results` for folders napari-unet wrote, else None (another reader's)."""
    paths = [path] if isinstance(path, str | Path) else list(path)
    return read_results if paths and all(result_kind(p) for p in paths) else None


def read_results(path: str | Sequence[str]) -> list[tuple]:
    """Layer data tuples of napari-unet's zarr results: labels for classes and objects, images for probabilities.

    Names follow the plugin's layers (``"slide objects"`` for ``slide_objects.zarr``), so that opened
    beside the image ``slide`` its widgets treat them as its results.
    """
    layers = []
    for item in [path] if isinstance(path, str | Path) else path:
        stem, kind = result_kind(item)
        levels = read_levels(Path(item))
        meta = {"metadata": {ZARR_KEY: str(item)}}
        if kind == "probabilities":
            n_classes = (levels[0] if isinstance(levels, list) else levels).shape[0]
            names = [f"{stem} probability of class {k}" for k in range(1, n_classes + 1)]
            layers.append((levels, {**meta, "name": names, "channel_axis": 0, "contrast_limits": (0, 1)}, "image"))
        elif kind == "segmentation":
            shown = {"name": f"{stem} {kind}", "opacity": 0.5, "colormap": class_colours()}
            layers.append((levels, {**meta, **shown}, "labels"))
        else:
            layers.append((levels, {**meta, "name": f"{stem} {kind}"}, "labels"))
    return layers
