"""Annotate: an annotation labels layer with named, coloured classes, and an aid for painting whole objects."""

from __future__ import annotations

from typing import Any

import numpy as np
from napari.layers import Image, Labels
from qtpy.QtCore import QTimer
from qtpy.QtGui import QColor
from qtpy.QtWidgets import (
    QColorDialog,
    QComboBox,
    QHBoxLayout,
    QPushButton,
    QSpinBox,
    QTableWidget,
    QTableWidgetItem,
    QWidget,
)

from napari_unet.train.annotations import instances_to_annotation

from ._base import PluginWidget
from ._jobs import notify
from ._layers import (
    CHANNEL_CHOICES,
    CLASSES_KEY,
    DEFAULT_COLOURS,
    channel_axis_of,
    class_colormap,
    classes_of,
    default_classes,
    find_layer,
    output_name,
    spatial_shape,
    write_with_history,
)

ANNOTATION = "annotation"
OBJECTS_TO_PAINT = "objects to paint"
DEFAULT_BRUSH = 4


def paint_event_box(atoms: list[Any], ndim: int) -> tuple[slice, ...] | None:
    """Bounding box of the pixels changed by one napari paint event (masked atoms or index triples)."""
    lows, highs = np.full(ndim, np.iinfo(np.int64).max), np.full(ndim, -1)
    for atom in atoms:
        if hasattr(atom, "slice_key"):
            starts = [s.start or 0 for s in atom.slice_key]
            stops = [s.stop for s in atom.slice_key]
        else:
            indices = atom[0]
            if not len(indices) or np.size(indices[0]) == 0:
                continue
            starts = [int(np.min(i)) for i in indices]
            stops = [int(np.max(i)) + 1 for i in indices]
        lows = np.minimum(lows, starts)
        highs = np.maximum(highs, stops)
    if (highs < 0).any():
        return None
    return tuple(slice(int(lo), int(hi)) for lo, hi in zip(lows, highs, strict=True))


class AnnotateWidget(PluginWidget):
    """Create and paint the annotation of an image: 0 unlabelled, 1 background, 2.. named object classes."""

    def __init__(self, napari_viewer: Any, parent: QWidget | None = None) -> None:
        super().__init__(napari_viewer, parent)
        self.image_picker = self.layer_picker("image", Image, exclude_suffixes=(" uncertainty", " probabilities"))
        self.channels = QComboBox()
        self.channels.addItems(list(CHANNEL_CHOICES))
        self.add_row("channels", self.channels)
        self.create_button = QPushButton("Create / show annotation layer")
        self.create_button.clicked.connect(self.ensure_annotation_layer)
        self.layout().addWidget(self.create_button)

        self.table = QTableWidget(0, 2)
        self.table.setHorizontalHeaderLabels(["value", "class name"])
        self.table.horizontalHeader().setStretchLastSection(True)
        self.table.verticalHeader().setVisible(False)
        self.table.setMaximumHeight(140)
        self.table.itemSelectionChanged.connect(self._class_selected)
        self.table.itemChanged.connect(self._class_renamed)
        self.layout().addWidget(self.table)
        buttons = QHBoxLayout()
        self.add_class_button = QPushButton("Add class")
        self.add_class_button.clicked.connect(self.add_class)
        self.colour_button = QPushButton("Colour…")
        self.colour_button.clicked.connect(self._choose_colour)
        buttons.addWidget(self.add_class_button)
        buttons.addWidget(self.colour_button)
        self.layout().addLayout(buttons)

        self.brush = QSpinBox()
        self.brush.setRange(1, 200)
        self.brush.setValue(DEFAULT_BRUSH)
        self.brush.valueChanged.connect(self._brush_changed)
        self.add_row("brush size", self.brush)
        self.objects_button = QPushButton("Paint whole objects (gaps added for you)")
        self.objects_button.setToolTip(
            "Paint each object with its own label in the 'objects to paint' layer (press M for a new label). "
            "Each becomes the selected class in the annotation, with a background ring around it and a "
            "background gap where it touches another object, so the network learns to separate them."
        )
        self.objects_button.clicked.connect(self.start_object_painting)
        self.layout().addWidget(self.objects_button)
        self.status = self.status_label(
            "Paint background (1) and objects (2, 3 ...) with a few strokes; unpainted pixels are ignored."
        )
        self._derived: dict[str, np.ndarray] = {}
        self._watched: set[int] = set()
        self._refreshing = False
        self._deriving = False

    # -- layers ---------------------------------------------------------------------------------------
    @property
    def image_layer(self) -> Image | None:
        """The chosen image layer."""
        return self.image_picker.value

    def annotation_layer(self) -> Labels | None:
        """The annotation layer of the chosen image, if it exists."""
        image = self.image_layer
        return None if image is None else find_layer(self.viewer, output_name(image.name, ANNOTATION), Labels)

    def ensure_annotation_layer(self) -> Labels | None:
        """Create the annotation layer of the chosen image (or select the existing one) for painting."""
        image = self.image_layer
        if image is None:
            notify("open an image first", warning=True)
            return None
        layer = self.annotation_layer()
        if layer is None:
            shape = spatial_shape(image, channel_axis_of(image, CHANNEL_CHOICES[self.channels.currentText()]))
            layer = self.viewer.add_labels(
                np.zeros(shape, dtype=np.uint8),
                name=output_name(image.name, ANNOTATION),
                scale=image.scale[-len(shape) :],
                translate=image.translate[-len(shape) :],
                metadata={CLASSES_KEY: default_classes()},
            )
            layer.colormap = class_colormap(classes_of(layer))
            layer.selected_label = 1
        layer.brush_size = self.brush.value()
        layer.mode = "paint"
        if id(layer) not in self._watched:
            layer.events.paint.connect(self._annotation_painted)
            self._watched.add(id(layer))
        self.viewer.layers.selection.active = layer
        self._fill_table(layer)
        return layer

    # -- classes --------------------------------------------------------------------------------------
    def _fill_table(self, layer: Labels) -> None:
        self._refreshing = True
        classes = classes_of(layer)
        self.table.setRowCount(len(classes))
        for row, (value, spec) in enumerate(sorted(classes.items())):
            value_item = QTableWidgetItem(str(value))
            value_item.setFlags(value_item.flags() & ~value_item.flags().ItemIsEditable)
            value_item.setBackground(QColor(spec["color"]))
            self.table.setItem(row, 0, value_item)
            self.table.setItem(row, 1, QTableWidgetItem(spec["name"]))
        self._refreshing = False

    def _set_classes(self, layer: Labels, classes: dict[int, dict[str, str]]) -> None:
        layer.metadata[CLASSES_KEY] = classes
        layer.colormap = class_colormap(classes)
        self._fill_table(layer)

    def add_class(self, name: str | None = None) -> int | None:
        """Add an object class to the annotation layer; returns its value."""
        layer = self.annotation_layer() or self.ensure_annotation_layer()
        if layer is None:
            return None
        classes = classes_of(layer)
        value = max(classes) + 1
        colour = DEFAULT_COLOURS[(value - 1) % len(DEFAULT_COLOURS)]
        classes[value] = {"name": name or f"class {value}", "color": colour}
        self._set_classes(layer, classes)
        return value

    def rename_class(self, value: int, name: str) -> None:
        """Rename a class of the annotation layer (1 stays the background)."""
        layer = self.annotation_layer()
        if layer is None or value == 1:
            return
        classes = classes_of(layer)
        if value in classes and name.strip():
            classes[value]["name"] = name.strip()
            self._set_classes(layer, classes)

    def set_class_colour(self, value: int, colour: str) -> None:
        """Change the colour of a class."""
        layer = self.annotation_layer()
        if layer is not None and value in classes_of(layer):
            classes = classes_of(layer)
            classes[value]["color"] = colour
            self._set_classes(layer, classes)

    def selected_class(self) -> int:
        """The class value chosen in the table (2 if none)."""
        rows = self.table.selectionModel().selectedRows() if self.table.selectionModel() else []
        if rows:
            return int(self.table.item(rows[0].row(), 0).text())
        return 2

    def _class_selected(self) -> None:
        layer = self.annotation_layer()
        if layer is not None and not self._refreshing:
            layer.selected_label = self.selected_class()
            layer.mode = "paint"

    def _class_renamed(self, item: QTableWidgetItem) -> None:
        if self._refreshing or item.column() != 1:
            return
        value = int(self.table.item(item.row(), 0).text())
        if value == 1:
            self._fill_table(self.annotation_layer())
            return
        self.rename_class(value, item.text())

    def _choose_colour(self) -> None:
        colour = QColorDialog.getColor(parent=self)
        if colour.isValid():
            self.set_class_colour(self.selected_class(), colour.name())

    def _brush_changed(self, size: int) -> None:
        for layer in (self.annotation_layer(), self._objects_layer()):
            if layer is not None:
                layer.brush_size = size

    # -- painting whole objects -----------------------------------------------------------------------
    def _objects_layer(self) -> Labels | None:
        image = self.image_layer
        return None if image is None else find_layer(self.viewer, output_name(image.name, OBJECTS_TO_PAINT), Labels)

    def start_object_painting(self) -> Labels | None:
        """Add (or select) the layer where each object is painted with its own label."""
        annotation = self.annotation_layer() or self.ensure_annotation_layer()
        if annotation is None:
            return None
        layer = self._objects_layer()
        if layer is None:
            layer = self.viewer.add_labels(
                np.zeros(annotation.data.shape, dtype=np.uint32),
                name=output_name(self.image_layer.name, OBJECTS_TO_PAINT),
                scale=annotation.scale,
                translate=annotation.translate,
                opacity=0.5,
            )
            layer.selected_label = 1
            layer.events.paint.connect(self._objects_painted)
        layer.brush_size = max(self.brush.value(), 8)
        layer.mode = "paint"
        self.viewer.layers.selection.active = layer
        self.status.setText(
            "Paint each object with its own label (M picks a new one); the annotation "
            f"gets class {self.selected_class()} with gaps and rings."
        )
        return layer

    def _derived_mask(self, annotation: Labels) -> np.ndarray:
        key = annotation.name
        if key not in self._derived or self._derived[key].shape != annotation.data.shape:
            self._derived[key] = np.zeros(annotation.data.shape, dtype=bool)
        return self._derived[key]

    def _objects_painted(self, event: Any) -> None:
        objects, annotation = self._objects_layer(), self.annotation_layer()
        if objects is None or annotation is None:
            return
        box = paint_event_box(event.value, objects.data.ndim)
        if box is not None:  # napari may announce a paint before writing it: derive once the event loop is back
            QTimer.singleShot(0, lambda: self.update_from_objects(box))

    def update_from_objects(self, box: tuple[slice, ...] | None = None) -> None:
        """Re-derive the annotation from the painted objects inside ``box`` (everywhere if None)."""
        objects, annotation = self._objects_layer(), self.annotation_layer()
        if objects is None or annotation is None:
            return
        margin = 4
        shape = objects.data.shape
        box = box or tuple(slice(0, s) for s in shape)
        region = tuple(
            b if axis < len(shape) - 2 else slice(max(b.start - margin, 0), min(b.stop + margin, shape[axis]))
            for axis, b in enumerate(box)
        )
        instances = np.asarray(objects.data[region])
        derived = instances_to_annotation(instances, self.selected_class(), gap=True, ring=2)
        current = np.array(annotation.data[region])
        was_derived = self._derived_mask(annotation)[region]
        current[was_derived & (derived == 0)] = 0
        # the aid fills only what is unpainted or its own; strokes painted by hand win
        mine = (current == 0) | was_derived
        current[mine & (derived > 0)] = derived[mine & (derived > 0)]
        self._derived_mask(annotation)[region] = mine & (derived > 0)
        self._deriving = True  # the aid's own write is not painting by hand
        try:
            write_with_history(annotation, current, region)
        finally:
            self._deriving = False

    def _annotation_painted(self, event: Any) -> None:
        """Pixels painted by hand (or added from corrections) stop being managed by the object-painting aid."""
        annotation = self.annotation_layer()
        if self._deriving or annotation is None or annotation.name not in self._derived:
            return
        mask = self._derived[annotation.name]
        if mask.shape != annotation.data.shape:
            return
        for atom in event.value:
            if hasattr(atom, "slice_key"):  # a brush stroke or fill: its bounding box and mask
                region = mask[atom.slice_key]
                region[... if atom.mask is None else atom.mask] = False
            else:  # a write of single pixels (napari's data_setitem)
                mask[atom[0]] = False
