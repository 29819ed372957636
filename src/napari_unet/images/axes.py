"""Bring images of any layout (2D, stacks, time series, channels first or last, RGB) to planes of (C, H, W)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from napari_unet.errors import InputError


@dataclass(frozen=True)
class Layout:
    """How an image array maps onto planes of shape (C, H, W).

    Attributes
    ----------
    shape : tuple of int
        Shape of the original array.
    channel_axis : int or None
        Axis holding the channels (non-negative), or None for a single-channel image.
    rgb_to_grey : bool
        Whether colour channels are averaged into one grey channel for a single-channel model.
    """

    shape: tuple[int, ...]
    channel_axis: int | None
    rgb_to_grey: bool = False

    @property
    def spatial_shape(self) -> tuple[int, ...]:
        """Shape without the channel axis: leading plane axes, then (H, W)."""
        return tuple(s for i, s in enumerate(self.shape) if i != self.channel_axis)

    @property
    def plane_axes_shape(self) -> tuple[int, ...]:
        """Shape of the axes that index planes (Z, T, ...); empty for a single 2D image."""
        return self.spatial_shape[:-2]


def infer_layout(shape: tuple[int, ...], in_channels: int, channel_axis: int | None = None) -> Layout:
    """Decide which axis holds channels for a model with ``in_channels`` input channels.

    Parameters
    ----------
    shape : tuple of int
        Shape of the image.
    in_channels : int
        Channels the model expects.
    channel_axis : int, optional
        Axis holding the channels, if known. Otherwise a multichannel model takes the last axis of the
        right size, else the first; a single-channel model reads a trailing axis of 3 or 4 on a 3D
        array as RGB(A) and averages the colours into grey.

    Raises
    ------
    InputError
        If the image is empty, has fewer than two spatial axes, or its channels do not match the model.
    """
    ndim = len(shape)
    if ndim < 2 or any(s == 0 for s in shape):
        raise InputError(f"expected an image with at least two non-empty axes, got shape {tuple(shape)}")
    if channel_axis is not None:
        axis = channel_axis % ndim
        if ndim < 3:
            raise InputError(f"a channel axis needs a 3D array at least, got shape {tuple(shape)}")
        if shape[axis] == in_channels:
            return Layout(tuple(shape), axis)
        if in_channels == 1 and shape[axis] in (3, 4):
            return Layout(tuple(shape), axis, rgb_to_grey=True)
        raise InputError(f"the image has {shape[axis]} channels on axis {axis} but the model expects {in_channels}")
    if in_channels == 1:
        if ndim == 3 and shape[-1] in (3, 4) and min(shape[:2]) > 4:
            return Layout(tuple(shape), ndim - 1, rgb_to_grey=True)
        return Layout(tuple(shape), None)
    for axis in (ndim - 1, 0, *range(1, ndim - 1)):
        if shape[axis] == in_channels and ndim >= 3:
            return Layout(tuple(shape), axis)
    raise InputError(
        f"the model expects {in_channels} channels but no axis of the image (shape {tuple(shape)}) has "
        f"that size; pass the channel axis or use a model trained for this image"
    )


def to_planes(image: np.ndarray, layout: Layout) -> np.ndarray:
    """View or copy an image as an array of shape (P, C, H, W) according to ``layout``."""
    array = np.asarray(image)
    if layout.channel_axis is None:
        planes = array.reshape(-1, 1, *array.shape[-2:])
    else:
        moved = np.moveaxis(array, layout.channel_axis, -3)
        planes = moved.reshape(-1, *moved.shape[-3:])
        if layout.rgb_to_grey:
            planes = planes[:, :3].astype(np.float32).mean(axis=1, keepdims=True)
    return planes


def from_planes(planes: np.ndarray, layout: Layout) -> np.ndarray:
    """Reshape per-plane results of shape (P, ..., H, W) back to the image's spatial shape."""
    extra = planes.shape[1:-2]
    return planes.reshape(*layout.plane_axes_shape, *extra, *planes.shape[-2:])


def crop(
    image: np.ndarray, layout: Layout, plane: tuple[int, ...], box: tuple[slice, slice]
) -> tuple[np.ndarray, int | None]:
    """One plane's region of an image, keeping its channels; returns the crop and its channel axis."""
    spatial = [*plane, *box]
    index: list[int | slice] = []
    for axis in range(len(layout.shape)):
        index.append(slice(None) if axis == layout.channel_axis else spatial.pop(0))
    region = np.asarray(image[tuple(index)])  # numpy, dask or zarr: only the region is read
    if layout.channel_axis is None:
        return region, None
    return region, layout.channel_axis - sum(1 for a in range(layout.channel_axis) if isinstance(index[a], int))
