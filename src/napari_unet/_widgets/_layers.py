"""Layer conventions of the plugin: names, class colours, reading images and writing outputs in place."""

from __future__ import annotations

from typing import Any

import numpy as np
from napari.layers import Image, Labels
from napari.utils.colormaps import DirectLabelColormap

from .._reader import CLASS_COLOURS

CLASSES_KEY = "napari_unet_classes"
DEFAULT_COLOURS = CLASS_COLOURS
CHANNEL_CHOICES = {"single channel": None, "channels first": 0, "channels last": -1}


def output_name(image_name: str, kind: str) -> str:
    """Name of a layer the plugin derives from an image: "<image> annotation", "<image> objects" ..."""
    return f"{image_name} {kind}"


def find_layer(viewer: Any, name: str, layer_type: type | None = None) -> Any | None:
    """The layer called ``name`` (of ``layer_type`` if given), or None."""
    for layer in viewer.layers:
        if layer.name == name and (layer_type is None or isinstance(layer, layer_type)):
            return layer
    return None


def default_classes() -> dict[int, dict[str, str]]:
    """The initial class scheme: 1 background, 2 one object class."""
    return {1: {"name": "background", "color": DEFAULT_COLOURS[0]}, 2: {"name": "object", "color": DEFAULT_COLOURS[1]}}


def classes_of(layer: Labels) -> dict[int, dict[str, str]]:
    """The class scheme stored on an annotation layer (created with defaults if missing)."""
    stored = layer.metadata.get(CLASSES_KEY)
    if not stored:
        stored = default_classes()
        layer.metadata[CLASSES_KEY] = stored
    return {int(k): v for k, v in stored.items()}


def class_colormap(classes: dict[int, dict[str, str]], background_value: int = 0) -> DirectLabelColormap:
    """Colours of a labels layer painted with the class scheme (0 transparent)."""
    colours: dict[int | None, Any] = {None: "transparent", 0: "transparent"}
    colours.update({value: spec["color"] for value, spec in classes.items()})
    return DirectLabelColormap(color_dict=colours, background_value=background_value)


def spatial_shape(layer: Image, channel_axis: int | None) -> tuple[int, ...]:
    """Shape of an image layer without its channel axis (RGB layers lose their colour axis)."""
    shape = tuple(layer.data[0].shape if layer.multiscale else layer.data.shape)
    if layer.rgb:
        return shape[:-1]
    if channel_axis is None:
        return shape
    axis = channel_axis % len(shape)
    return shape[:axis] + shape[axis + 1 :]


def image_data(layer: Image, lazy: bool = False):
    """The full-resolution pixels of an image layer: a numpy array, or as stored (dask, zarr) if ``lazy``."""
    data = layer.data[0] if layer.multiscale else layer.data
    return data if lazy else np.asarray(data)


def channel_axis_of(layer: Image, choice: int | None) -> int | None:
    """Channel axis to use for ``layer``: RGB layers have theirs last."""
    return -1 if layer.rgb else choice


def plane_index(viewer: Any, layer: Any, spatial_ndim: int) -> tuple[int, ...]:
    """Index of the plane of ``layer`` shown in the viewer (empty for a 2D layer)."""
    if spatial_ndim <= 2:
        return ()
    point = layer.world_to_data(viewer.dims.point)
    leading = point[: spatial_ndim - 2] if len(point) >= spatial_ndim else point[:0]
    return tuple(int(np.clip(round(p), 0, s - 1)) for p, s in zip(leading, layer.data.shape, strict=False))


def write_labels(viewer: Any, name: str, data: np.ndarray, like: Any, index: tuple[int, ...] = (), **kwargs) -> Labels:
    """Write ``data`` into the labels layer ``name``, in place if it exists, else as a new layer.

    With ``index``, ``data`` is one plane (or region) of the layer at that leading index; a missing layer
    is then created with zeros of ``full_shape`` (a keyword argument).
    """
    full_shape = kwargs.pop("full_shape", data.shape)
    layer = find_layer(viewer, name, Labels)
    if layer is not None and (not isinstance(layer.data, np.ndarray) or tuple(layer.data.shape) != tuple(full_shape)):
        # a lazy result read from disk (or one of another shape) is replaced, not written into
        viewer.layers.remove(layer)
        layer = None
    if layer is None:
        base = np.zeros(full_shape, dtype=_label_dtype(data)) if index else data.astype(_label_dtype(data))
        if index:
            base[index] = data
        return viewer.add_labels(
            base,
            name=name,
            scale=like.scale[-len(full_shape) :],
            translate=like.translate[-len(full_shape) :],
            **kwargs,
        )
    write_with_history(layer, data, index)
    for key, value in kwargs.items():
        setattr(layer, key, value)
    return layer


def write_with_history(layer: Labels, values: np.ndarray, index: tuple[int | slice, ...] = ()) -> int:
    """Write ``values`` into ``layer.data[index]`` through napari's labels history, so that Ctrl-Z takes it back.

    Only the pixels that change are written (and kept in the history, as one undo step). Labels too large
    for the layer's data type widen it first.

    Parameters
    ----------
    layer : Labels
        A labels layer held in memory (a numpy array).
    values : numpy.ndarray
        The new labels of ``layer.data[index]``.
    index : tuple of int and slice
        Where ``values`` go: ints pick a plane, slices a region; empty for the whole layer.

    Returns
    -------
    int
        The number of pixels that changed.
    """
    values = np.asarray(values)
    if int(np.max(values, initial=0)) > np.iinfo(layer.data.dtype).max:
        layer.data = layer.data.astype(np.promote_types(layer.data.dtype, _label_dtype(values)))
    changed = np.nonzero(np.asarray(layer.data[index]) != values)
    if not changed[0].size:
        return 0
    indices = _layer_indices(index, changed, layer.data.shape)
    layer.data_setitem(indices, values[changed].astype(layer.data.dtype))  # napari's own undoable write
    return int(changed[0].size)


def _layer_indices(
    index: tuple[int | slice, ...], local: tuple[np.ndarray, ...], shape: tuple[int, ...]
) -> tuple[np.ndarray, ...]:
    """Indices into a whole array of the pixels ``local`` found in ``array[index]``."""
    remaining = iter(local)
    count = len(local[0]) if local else 0
    indices = []
    for axis, size in enumerate(shape):
        part = index[axis] if axis < len(index) else slice(None)
        if isinstance(part, slice):
            start, _, step = part.indices(size)
            indices.append(next(remaining) * step + start)
        else:
            indices.append(np.full(count, int(part) % size, dtype=np.intp))
    return tuple(indices)


def write_image(viewer: Any, name: str, data: np.ndarray, like: Any, **kwargs) -> Image:
    """Write ``data`` into the image layer ``name``, in place if it exists with that shape, else as new."""
    layer = find_layer(viewer, name, Image)
    if layer is not None and isinstance(layer.data, np.ndarray) and layer.data.shape == data.shape:
        layer.data = data
        return layer
    if layer is not None:
        viewer.layers.remove(layer)
    ndim = data.ndim
    return viewer.add_image(data, name=name, scale=like.scale[-ndim:], translate=like.translate[-ndim:], **kwargs)


def _label_dtype(data: np.ndarray) -> type:
    top = int(np.max(data, initial=0))
    return np.uint8 if top < 256 else np.uint16 if top < 65536 else np.uint32


def camera(viewer: Any) -> Any:
    """The viewer's camera (``viewer.scene.camera`` from napari 0.9, ``viewer.camera`` before)."""
    scene = getattr(viewer, "scene", None)
    return scene.camera if scene is not None else viewer.camera
