"""Correct and retrain: corrections painted on the segmentation become annotations, then training goes on."""

from __future__ import annotations

from typing import Any

import numpy as np
from napari.layers import Image, Labels
from qtpy.QtWidgets import QPushButton, QWidget

from napari_unet.train.annotations import corrections_from_classes, corrections_from_objects, merge

from ._base import PluginWidget
from ._jobs import notify
from ._layers import CLASSES_KEY, class_colormap, classes_of, default_classes, find_layer, output_name
from ._zarr_results import zarr_source

ANNOTATION, SEGMENTATION, OBJECTS = "annotation", "segmentation", "objects"


class CorrectWidget(PluginWidget):
    """Turn what was painted on "<image> segmentation" and "<image> objects" into training annotations."""

    def __init__(self, napari_viewer: Any, parent: QWidget | None = None) -> None:
        super().__init__(napari_viewer, parent)
        self.image_picker = self.layer_picker("image", Image, exclude_suffixes=(" uncertainty",))
        self.use_button = QPushButton("Add corrections to the annotation")
        self.use_button.setToolTip(
            "pixels you changed on the segmentation or objects layer become annotations (they win over "
            "earlier ones); corrected objects are taken whole, with background gaps and rings"
        )
        self.retrain_button = QPushButton("Add corrections and retrain")
        self.use_button.clicked.connect(lambda: self.apply_corrections())
        self.retrain_button.clicked.connect(lambda: self.apply_and_retrain())
        self.layout().addWidget(self.use_button)
        self.layout().addWidget(self.retrain_button)
        self.status = self.status_label(
            "Paint on the segmentation (0 erases to background) or on the objects (a new label for a "
            "missed or split object), then add the corrections and retrain: earlier annotations are kept."
        )

    def apply_corrections(self) -> int:
        """Merge the corrections into the annotation layer; returns the number of pixels that changed."""
        image = self.image_picker.value
        if image is None:
            notify("choose the image whose segmentation you corrected", warning=True)
            return 0
        seg = find_layer(self.viewer, output_name(image.name, SEGMENTATION), Labels)
        obj = find_layer(self.viewer, output_name(image.name, OBJECTS), Labels)
        if zarr_source(seg) is not None:
            notify(
                f"the segmentation of '{image.name}' was too large for memory and is read from {zarr_source(seg)}: "
                "paint new annotations on the annotation layer instead, then retrain",
                warning=True,
            )
            return 0
        updates = []
        for layer, convert in ((seg, "classes"), (obj, "objects")):
            if layer is None or layer.name not in self.session.written:
                continue
            before = self.session.written[layer.name]
            if before.shape != layer.data.shape:
                continue
            painted = np.asarray(layer.data)
            if convert == "classes":
                updates.append(corrections_from_classes(painted, before))
            else:
                classes = np.asarray(seg.data) if seg is not None and seg.data.shape == painted.shape else None
                updates.append(corrections_from_objects(painted, before, classes))
            self.session.written[layer.name] = np.array(painted, copy=True)
        if not updates:
            notify("segment the image first, then paint corrections on its segmentation or objects layer", warning=True)
            return 0
        annotation = self._annotation_layer(image, updates[0].shape)
        merged = np.asarray(annotation.data)
        for update in updates:
            merged = merge(merged, update)
        changed = int((merged != annotation.data).sum())
        if changed:
            annotation.data = merged.astype(annotation.data.dtype)
        message = (
            f"{changed} annotation pixels added from your corrections"
            if changed
            else "no corrections found: paint on the segmentation or objects layer first"
        )
        notify(message, warning=not changed)
        self.status.setText(message)
        return changed

    def apply_and_retrain(self) -> int:
        """Merge the corrections, then continue training the current model on the whole annotation."""
        changed = self.apply_corrections()
        if changed and self.image_picker.value is not None:
            if len(self.events.retrain_requested) == 0:
                self.viewer.window.add_plugin_dock_widget("napari-unet", "Train")
            self.events.retrain_requested.emit(self.image_picker.value.name)
        return changed

    def _annotation_layer(self, image: Image, shape: tuple[int, ...]) -> Labels:
        """The image's annotation layer, created with the model's classes if missing."""
        name = output_name(image.name, ANNOTATION)
        layer = find_layer(self.viewer, name, Labels)
        if layer is None or layer.data.shape != shape:
            classes = default_classes()
            if self.session.model is not None:
                for value, class_name in self.session.model.object_classes.items():
                    classes[value] = {"name": class_name, "color": classes.get(value, {}).get("color", "#f2c12e")}
            layer = self.viewer.add_labels(
                np.zeros(shape, np.uint8),
                name=name,
                scale=image.scale[-len(shape) :],
                translate=image.translate[-len(shape) :],
                metadata={CLASSES_KEY: classes},
            )
            layer.colormap = class_colormap(classes_of(layer))
        return layer
