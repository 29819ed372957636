"""Export: label TIFFs of one image's results, or segment a whole folder in the background."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from magicgui.widgets import FileEdit
from napari.layers import Image, Labels
from qtpy.QtWidgets import QCheckBox, QPushButton, QWidget

from napari_unet.batch import BatchProgress, expand_images, segment_files
from napari_unet.blockwise.config import BlockConfig
from napari_unet.errors import InputError
from napari_unet.images.files import write_labels

from ._base import PluginWidget
from ._jobs import BackgroundJob, Stopped, notify, notify_error
from ._layers import find_layer, output_name
from ._zarr_results import zarr_source

KINDS = ("segmentation", "objects")


class ExportWidget(PluginWidget):
    """Write an image's segmentation and objects as TIFFs, or segment and export a whole folder."""

    def __init__(self, napari_viewer: Any, parent: QWidget | None = None) -> None:
        super().__init__(napari_viewer, parent)
        self.image_picker = self.layer_picker("image", Image, exclude_suffixes=(" uncertainty",))
        self.folder = FileEdit(mode="d", value=str(Path.home()))
        self.add_row("to folder", self.folder.native)
        self.overwrite = QCheckBox("overwrite existing files")
        self.layout().addWidget(self.overwrite)
        self.export_button = QPushButton("Export this image's segmentation and objects")
        self.export_button.clicked.connect(lambda: self.export_image())
        self.layout().addWidget(self.export_button)
        self.source = FileEdit(mode="d", value=str(Path.home()))
        self.add_row("batch: images in", self.source.native)
        self.batch_button, self.cancel_button, self.progress = self.add_run_controls(
            "Segment folder", self.export_folder, self.cancel
        )
        self.status = self.status_label("")
        self.job: BackgroundJob | None = None
        self._training = False
        self.events.training_state.connect(self._training_changed)

    def _training_changed(self, running: bool) -> None:
        self._training = running

    def export_image(self) -> list[Path]:
        """Write "<image>_segmentation.tif" and "<image>_objects.tif" for the chosen image."""
        image = self.image_picker.value
        if image is None:
            notify("choose an image", warning=True)
            return []
        folder = Path(str(self.folder.value))
        written, on_disk = [], []
        try:
            for kind in KINDS:
                layer = find_layer(self.viewer, output_name(image.name, kind), Labels)
                if layer is None:
                    continue
                if zarr_source(layer) is not None:  # too large for memory: already on disk, block by block
                    on_disk.append(zarr_source(layer))
                    continue
                path = folder / f"{image.name}_{kind}.tif"
                written.append(write_labels(path, np.asarray(layer.data), overwrite=self.overwrite.isChecked()))
        except InputError as error:
            notify_error(error)
            return written
        if on_disk:
            notify(
                f"'{image.name}' was too large for memory: its results are saved as zarr already, in "
                f"{', '.join(str(p) for p in on_disk)}"
            )
        if written:
            notify(f"wrote {', '.join(p.name for p in written)} to {folder}")
        elif not on_disk:
            notify(f"'{image.name}' has no segmentation yet: press Segment first", warning=True)
        self.status.setText("\n".join(str(p) for p in written + on_disk))
        return written

    def export_folder(self) -> BackgroundJob | None:
        """Segment every image of the batch folder into the export folder, in the background.

        Zarr images and TIFFs too large for memory go block by block into zarr folders, the rest to TIFFs.
        """
        if self.session.model is None:
            notify("there is no model yet: train one or load a model file", warning=True)
            return None
        if self._training:
            notify(
                "training is running on the model a folder would be segmented with: wait until it ends or press "
                "Stop, then segment the folder with the model trained so far",
                warning=True,
            )
            return None
        model, source, target = self.session.model, Path(str(self.source.value)), Path(str(self.folder.value))
        overwrite = self.overwrite.isChecked()
        self.job = BackgroundJob(
            lambda: segment_files(model, expand_images([source]), target, overwrite=overwrite, blocks=BlockConfig()),
            on_progress=self._on_progress,
            on_done=self._on_done,
            on_finished=lambda: self._set_running(False),
            owner=self,
        )
        self._set_running(True)
        return self.job.start()

    def cancel(self) -> None:
        """Stop after the current tile; files already written stay."""
        if self.job is not None:
            self.job.stop()

    def _set_running(self, running: bool) -> None:
        self.batch_button.setEnabled(not running)
        self.cancel_button.setEnabled(running)

    def _on_progress(self, record: BatchProgress) -> None:
        if record.note:  # this image goes block by block into zarr: say why, once
            notify(f"{record.name}: {record.note}")
        self.progress.setRange(0, record.total)
        self.progress.setValue(record.done)
        stage = record.tile.message if record.tile is not None else ""
        now = f"{record.name}, {stage}" if stage else record.name
        self.status.setText(f"{record.done} of {record.total} images done; now {now}")

    def _on_done(self, result: list | Stopped) -> None:
        message = (
            "cancelled; finished images were written"
            if isinstance(result, Stopped)
            else (f"segmented {len(result)} images into {self.folder.value}")
        )
        notify(message)
        self.status.setText(message)
