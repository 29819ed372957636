"""Correct and retrain: corrections painted on the segmentation become annotations, then training goes on."""

from __future__ import annotations

from typing import Any

from napari.layers import Image, Labels
from qtpy.QtWidgets import QFormLayout, QPushButton, QSpinBox, QWidget

from napari_unet.train.config import RETRAIN_STEPS

from ._base import PluginWidget
from ._corrections import SEGMENTATION, keep_corrections
from ._jobs import notify
from ._layers import find_layer, output_name
from ._zarr_results import zarr_source


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
        self.retrain_steps = QSpinBox()
        self.retrain_steps.setRange(10, 100_000)
        self.retrain_steps.setSingleStep(50)
        self.retrain_steps.setValue(RETRAIN_STEPS)
        self.retrain_steps.setToolTip(
            "training steps of each retrain: the first ones are drawn where the network is wrong, so a short "
            f"retrain takes in the corrections (default {RETRAIN_STEPS}, chosen on synthetic rods: "
            "see docs/benchmarks.md)"
        )
        form = QFormLayout()
        form.addRow("steps per retrain", self.retrain_steps)
        self.layout().addLayout(form)
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
        if zarr_source(seg) is not None:
            notify(
                f"the segmentation of '{image.name}' was too large for memory and is read from {zarr_source(seg)}: "
                "paint new annotations on the annotation layer instead, then retrain",
                warning=True,
            )
            return 0
        changed = keep_corrections(self.viewer, self.session, image)
        if changed is None:
            notify("segment the image first, then paint corrections on its segmentation or objects layer", warning=True)
            return 0
        message = (
            f"{changed} annotation pixels added from your corrections"
            if changed
            else "no corrections found: paint on the segmentation or objects layer first"
        )
        notify(message, warning=not changed)
        self.status.setText(message)
        return changed

    def apply_and_retrain(self) -> int:
        """Merge the corrections, then train the current model on the whole annotation for the retrain's steps."""
        changed = self.apply_corrections()
        if changed and self.image_picker.value is not None:
            if len(self.events.retrain_requested) == 0:
                self.viewer.window.add_plugin_dock_widget("napari-unet", "Train")
            self.events.retrain_requested.emit(self.image_picker.value.name, self.retrain_steps.value())
        return changed
