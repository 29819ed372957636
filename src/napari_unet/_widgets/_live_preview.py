"""The Train widget's live preview: which region is on screen, and the preview layer painted as training goes."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from napari.layers import Image, Labels

from napari_unet.train.preview import Preview

from ._layers import camera, class_colormap, find_layer, output_name, plane_index, spatial_shape, write_labels

PREVIEW = "preview"
#: Largest side of the previewed region, so a preview stays quick on the CPU.
PREVIEW_SIDE = 768


class LivePreview:
    """Follows the region of an image on screen and paints the previews training sends into "<image> preview".

    Parameters
    ----------
    viewer : napari.Viewer
        The viewer to follow.
    channel_axis : callable
        The channel axis of an image layer, as the Train widget reads it.
    """

    def __init__(self, viewer: Any, channel_axis: Callable[[Image], int | None]) -> None:
        self.viewer, self.channel_axis = viewer, channel_axis
        self.image_name = ""
        #: (plane index, (rows, columns)) on screen, read by the training thread; None for no preview
        self.region: Any = None

    def follow(self, image_name: str) -> None:
        """Keep :attr:`region` on the part of ``image_name`` on screen while the camera and planes move."""
        self.image_name = image_name
        self.update()
        camera(self.viewer).events.center.connect(self.update)
        self.viewer.dims.events.current_step.connect(self.update)

    def stop_following(self) -> None:
        """Stop following the camera and planes."""
        for event in (camera(self.viewer).events.center, self.viewer.dims.events.current_step):
            event.disconnect(self.update)

    def _image(self) -> Image | None:
        return find_layer(self.viewer, self.image_name, Image)

    def update(self, *_: Any) -> None:
        """Remember which part of the image is on screen (GUI thread)."""
        image = self._image()
        if image is None:
            self.region = None
            return
        shape = spatial_shape(image, self.channel_axis(image))
        centre = image.world_to_data(camera(self.viewer).center)[-2:]
        zoom = max(camera(self.viewer).zoom, 1e-6)
        size = np.asarray(self.viewer.canvas.size, dtype=float) / zoom / np.asarray(image.scale[-2:])
        half = np.minimum(size / 2, PREVIEW_SIDE / 2)
        box = tuple(
            slice(int(max(min(c - h, s - 1), 0)), int(min(max(c + h, 1), s)))
            for c, h, s in zip(centre, half, shape[-2:], strict=True)
        )
        self.region = (plane_index(self.viewer, image, len(shape)), box)

    def show(self, preview: Preview, colours: dict[int, dict[str, str]]) -> None:
        """Paint a preview into "<image> preview", touching only the pixels that changed (cheap to redraw)."""
        image = self._image()
        if image is None:
            return
        layer = find_layer(self.viewer, output_name(image.name, PREVIEW), Labels)
        if layer is None or layer.data.shape != spatial_shape(image, self.channel_axis(image)):
            layer = self.add_layer(image, colours)
        index = (*preview.plane, *preview.box)
        region = np.asarray(layer.data[index])
        changed = np.nonzero(region != preview.classes)
        if changed[0].size:
            region[changed] = preview.classes[changed]
            layer.data[index] = region
            layer.refresh(extent=False, thumbnail=False)

    def add_layer(self, image: Image, colours: dict[int, dict[str, str]]) -> Labels:
        """An empty "<image> preview" layer (added before training starts: adding layers is slow)."""
        shape = spatial_shape(image, self.channel_axis(image))
        name = output_name(image.name, PREVIEW)
        layer = write_labels(self.viewer, name, np.zeros(shape, np.uint8), like=image, opacity=0.5)
        layer.colormap = class_colormap(colours)
        return layer
