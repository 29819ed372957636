"""Segment: tiled prediction in the background, written back as labels layers (updated in place)."""

from __future__ import annotations

import shutil
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
from magicgui.widgets import FileEdit
from napari.layers import Image, Labels
from qtpy.QtWidgets import QCheckBox, QComboBox, QDoubleSpinBox, QLabel, QSpinBox, QWidget

from napari_unet.blockwise.config import BlockConfig
from napari_unet.blockwise.route import route_for_array
from napari_unet.blockwise.zarr_output import fresh_outputs, iter_segment_zarr
from napari_unet.errors import InputError, NapariUNetError
from napari_unet.images.axes import crop, infer_layout
from napari_unet.models.choice import model_for_segmenting
from napari_unet.models.model import Model
from napari_unet.objects.config import OBJECT_SHAPES, ObjectConfig
from napari_unet.predict.config import PredictConfig, Segmentation
from napari_unet.predict.object_thresholds import describe_object_rule
from napari_unet.predict.segment import iter_segment
from napari_unet.progress import TileProgress

from .._reader import read_levels, uncertainty_levels
from ._base import PluginWidget
from ._corrections import keep_corrections
from ._jobs import BackgroundJob, Stopped, notify, notify_error
from ._layers import (
    CHANNEL_CHOICES,
    DEFAULT_COLOURS,
    channel_axis_of,
    class_colormap,
    classes_of,
    find_layer,
    image_data,
    output_name,
    plane_index,
    spatial_shape,
    write_image,
    write_labels,
)
from ._session import set_model
from ._zarr_results import default_results_folder, show_zarr_result

SEGMENTATION, OBJECTS, UNCERTAINTY, PROBS = "segmentation", "objects", "uncertainty", "probabilities"


def uncertainty(probabilities: np.ndarray) -> np.ndarray:
    """Normalised entropy of the class probabilities (K, ...): 0 certain, 1 undecided; paint where it is high."""
    p = np.clip(probabilities, 1e-7, 1.0)
    return (-(p * np.log(p)).sum(axis=0) / np.log(len(p))).astype(np.float32)


class SegmentWidget(PluginWidget):
    """Segment the current plane or the whole image with the current model, with progress and cancel."""

    def __init__(self, napari_viewer: Any, parent: QWidget | None = None) -> None:
        super().__init__(napari_viewer, parent)
        self.image_picker = self.layer_picker("image", Image, exclude_suffixes=(" uncertainty",))
        self.channels = QComboBox()
        self.channels.addItems(list(CHANNEL_CHOICES))
        self.add_row("channels", self.channels)
        self.scope = QComboBox()
        self.scope.addItems(["current plane", "whole image"])
        self.add_row("segment", self.scope)
        self.objects = QCheckBox("objects (one id each)")
        self.objects.setChecked(True)
        self.layout().addWidget(self.objects)
        self.object_shape = QComboBox()
        for name, (description, _) in OBJECT_SHAPES.items():
            self.object_shape.addItem(description, name)
        self.object_shape.setToolTip(
            "round: touching objects are split where they narrow; packed: every pixel goes to a cell, "
            "the cells meet on the boundaries the model predicts (train with the membranes as background)"
        )
        self.objects.toggled.connect(self.object_shape.setEnabled)
        self.add_row("object shape", self.object_shape)
        self.threshold = QDoubleSpinBox()
        self.threshold.setRange(0.0, 0.99)
        self.threshold.setSingleStep(0.05)
        self.threshold.setSpecialValueText("auto")
        self.threshold.setToolTip(
            "how sure the model must be for a pixel to be in an object; auto: the threshold that best gave back "
            "the objects you painted whole, else one that suits how the model was trained"
        )
        self.objects.toggled.connect(self.threshold.setEnabled)
        self.add_row("confidence", self.threshold)
        self.object_rule = QLabel("")
        self.object_rule.setWordWrap(True)
        self.object_rule.setToolTip("how the objects will be made, and where that comes from (napari-unet info)")
        self.add_row("objects from", self.object_rule)
        self.events.model_changed.connect(self._show_object_shape)
        self.object_shape.currentIndexChanged.connect(self._show_object_rule)
        self.threshold.valueChanged.connect(self._show_object_rule)
        if self.session.model is not None:
            self._show_object_shape(self.session.model)
        self._show_object_rule()
        self.uncertain = QCheckBox("uncertainty map (where to paint next)")
        self.layout().addWidget(self.uncertain)
        self.averaged = QCheckBox("average 8 rotations and flips (8x slower)")
        self.averaged.setToolTip("test-time augmentation: smoother objects, often a few points of F1 more")
        self.layout().addWidget(self.averaged)
        self.tile = QSpinBox()
        self.tile.setRange(0, 8192)
        self.tile.setToolTip("largest tile side in pixels; 0 = chosen from free memory")
        self.add_row("tile size", self.tile)
        self.large_folder = FileEdit(mode="d", value=str(default_results_folder()))
        self.large_folder.native.setToolTip(
            "an image too large to segment in memory is segmented block by block into zarr folders here "
            "(never replacing earlier ones), and its layers are read from there"
        )
        self.add_row("large images to", self.large_folder.native)
        self.segment_button, self.cancel_button, self.progress = self.add_run_controls(
            "Segment", self.segment, self.cancel
        )
        self.status = self.status_label("")
        self.job: BackgroundJob | None = None
        self._training = False
        self.events.training_state.connect(self._training_changed)
        self._set_running(False)

    def _show_object_shape(self, model) -> None:
        """Show the object shape the model was last used (or trained) with, and how its objects are made."""
        index = self.object_shape.findData(model.object_shape)
        if index >= 0:
            self.object_shape.setCurrentIndex(index)
        self._show_object_rule()

    def object_settings(self) -> ObjectConfig:
        """The object settings chosen here: the shape, and the confidence unless it is left on auto."""
        given = {"threshold": self.threshold.value()} if self.threshold.value() > 0 else {}
        return ObjectConfig.for_shape(self.object_shape.currentData(), **given)

    def _show_object_rule(self, *_) -> None:
        """Say which threshold and splitting Segment will use and why (chosen from the paint, or set here)."""
        model = self.session.model
        if model is None:
            self.object_rule.setText("chosen for the model when one is trained or loaded")
            return
        self.object_rule.setText(describe_object_rule(model, self.object_settings()))

    def _starting_model(self, object_shape: str) -> Model:
        """The model the core chooses when none was trained or loaded (the starting model), made current."""
        chosen = model_for_segmenting(None)
        chosen.model.object_shape = object_shape  # the shape chosen before there was a model
        set_model(self.viewer, chosen.model, chosen.label)
        notify(chosen.note)
        return chosen.model

    def _training_changed(self, running: bool) -> None:
        self._training = running

    def _set_running(self, running: bool) -> None:
        self.segment_button.setEnabled(not running)
        self.cancel_button.setEnabled(running)

    @property
    def running(self) -> bool:
        """Whether a segmentation is in progress."""
        return self.job is not None and self.job.running

    def segment(self) -> BackgroundJob | None:
        """Segment in the background; the results replace the previous ones, whose corrections go to the annotation."""
        image, model, object_shape = self.image_picker.value, self.session.model, self.object_shape.currentData()
        if image is None:
            notify("open an image to segment", warning=True)
            return None
        if self._training:
            notify(
                "training is running: wait or press Stop; the live preview shows the model as it learns", warning=True
            )
            return None
        axis = channel_axis_of(image, CHANNEL_CHOICES[self.channels.currentText()])
        shape = spatial_shape(image, axis)
        plane_only = self.scope.currentText() == "current plane" and len(shape) > 2
        objects = self.objects.isChecked()
        stored = image_data(image, lazy=True)
        try:
            model = model or self._starting_model(object_shape)
            # before reading a dask or zarr image whole: would it fit? (a plane of a stack is read alone)
            route = route_for_array(
                shape[-2:] if plane_only else shape,
                model.in_channels,
                stored.dtype.itemsize,
                model.n_classes,
                objects,
                loaded=isinstance(stored, np.ndarray),
                whole_image=not plane_only,
            )
        except NapariUNetError as error:
            notify(str(error), warning=True)
            return None
        model.object_shape = object_shape  # remembered with the model: saved with it, used by napari-unet predict
        config = PredictConfig(
            tile=self.tile.value(),
            test_time_augmentation=self.averaged.isChecked(),
            objects=self.object_settings(),
        )
        if route.blockwise:
            return self._segment_blockwise(image, model, stored, axis, config, route.reason)
        pixels = stored if plane_only else np.asarray(stored)
        index: tuple[int, ...] = ()
        target, target_axis = pixels, axis
        if plane_only:
            index = plane_index(self.viewer, image, len(shape))
            layout = infer_layout(pixels.shape, model.in_channels, axis)
            target, target_axis = crop(pixels, layout, index, (slice(None), slice(None)))
        context = {"image": image, "shape": shape, "index": index}
        self.job = BackgroundJob(
            lambda: iter_segment(model, target, config, objects=objects, channel_axis=target_axis),
            on_progress=self._on_progress,
            on_done=lambda result: self._on_done(result, context),
            on_finished=lambda: self._set_running(False),
            owner=self,
        )
        self._set_running(True)
        self.status.setText("segmenting…")
        return self.job.start()

    def _segment_blockwise(
        self, image: Image, model, stored, axis: int | None, config: PredictConfig, reason: str
    ) -> BackgroundJob | None:
        """Segment an image too large for memory block by block into zarr folders, shown as lazy layers."""
        blocks = BlockConfig()
        folder = Path(str(self.large_folder.value))
        kinds = [SEGMENTATION] + ([OBJECTS] if self.objects.isChecked() else [])
        kinds += [PROBS] if self.uncertain.isChecked() else []
        try:
            outputs = fresh_outputs(folder, image.name, kinds)
        except InputError as error:
            notify_error(error)
            return None
        notify(f"{reason}: segmenting '{image.name}' block by block into {folder}; the layers will show it from there")
        self.job = BackgroundJob(
            lambda: self._blockwise_job(model, stored, outputs, config, axis, blocks),
            on_progress=self._on_progress,
            on_done=lambda result: self._on_blockwise_done(result, image, outputs),
            on_finished=lambda: self._set_running(False),
            owner=self,
        )
        self._set_running(True)
        self.status.setText("segmenting block by block…")
        return self.job.start()

    def cancel(self) -> None:
        """Stop the segmentation; nothing is written."""
        if self.job is not None:
            self.job.stop()

    def _on_progress(self, record: TileProgress) -> None:
        self.progress.setRange(0, max(record.total, 1))
        self.progress.setValue(record.done)
        self.status.setText(f"{record.message}…" if record.message else f"tile {record.done} of {record.total}")

    def _class_colours(self, image: Image, n_classes: int) -> dict[int, dict[str, str]]:
        """Colours of the classes: those of the image's annotation, else the defaults."""
        colours = {v: {"color": DEFAULT_COLOURS[(v - 1) % len(DEFAULT_COLOURS)]} for v in range(2, n_classes + 1)}
        annotation = find_layer(self.viewer, output_name(image.name, "annotation"), Labels)
        if annotation is not None:  # the same colours as the classes painted
            colours.update({v: c for v, c in classes_of(annotation).items() if v > 1})
        return colours

    @staticmethod
    def _blockwise_job(model, stored, outputs: dict[str, Path], config: PredictConfig, axis, blocks: BlockConfig):
        """Segment into zarr, then read what napari draws first (in the worker thread: none of it on the GUI's)."""
        yield from iter_segment_zarr(model, stored, outputs, config, axis, blocks)
        return {
            kind: read_levels(path, partial(uncertainty_levels, uncertainty=uncertainty) if kind == PROBS else None)
            for kind, path in outputs.items()
        }

    def _on_blockwise_done(self, result: dict[str, Any] | Stopped, image: Image, outputs: dict[str, Path]) -> None:
        if isinstance(result, Stopped):
            if result.result is not None:  # stopped while its last step finished: Stop still means nothing written
                for path in outputs.values():
                    shutil.rmtree(path, ignore_errors=True)
            self.status.setText("cancelled; nothing was written")
            return
        folder = outputs[SEGMENTATION].parent
        written = ", ".join(path.name for path in outputs.values())
        if image not in self.viewer.layers:
            notify(f"the image '{image.name}' was removed; its results are in {folder}: {written}", warning=True)
            return
        name = output_name(image.name, SEGMENTATION)
        seg = show_zarr_result(
            self.viewer, "labels", name, result[SEGMENTATION], outputs[SEGMENTATION], image, opacity=0.5
        )
        seg.colormap = class_colormap(self._class_colours(image, self.session.model.n_classes))
        self.session.written.pop(seg.name, None)  # nothing in memory to compare corrections with
        if OBJECTS in outputs:
            name = output_name(image.name, OBJECTS)
            obj = show_zarr_result(self.viewer, "labels", name, result[OBJECTS], outputs[OBJECTS], image)
            self.session.written.pop(obj.name, None)
        if PROBS in outputs:
            name, extra = output_name(image.name, UNCERTAINTY), {"colormap": "magma", "blending": "additive"}
            show_zarr_result(
                self.viewer, "image", name, result[PROBS], outputs[PROBS], image, contrast_limits=(0, 1), **extra
            )
        self.status.setText(f"done: written block by block to {folder} ({written})")

    def _keep_corrections(self, image: Image) -> None:
        """Add corrections painted on the results about to be replaced to the annotation, and say so."""
        changed = keep_corrections(self.viewer, self.session, image)
        if changed:
            notify(
                f"{changed} annotation pixels added to '{output_name(image.name, 'annotation')}' from the corrections "
                f"painted on the previous results of '{image.name}', before the new results replaced them: retrain "
                "to use them (Ctrl-Z on the annotation takes them back)"
            )

    def _on_done(self, result: Segmentation | Stopped, context: dict[str, Any]) -> None:
        if isinstance(result, Stopped):
            self.status.setText("cancelled; nothing was changed")
            return
        image, shape, index = context["image"], context["shape"], context["index"]
        if image not in self.viewer.layers:
            notify(f"the image '{image.name}' was removed before its segmentation finished", warning=True)
            return
        self._keep_corrections(image)
        colours = self._class_colours(image, self.session.model.n_classes)
        seg = write_labels(
            self.viewer,
            output_name(image.name, SEGMENTATION),
            result.classes,
            like=image,
            index=index,
            full_shape=shape,
            opacity=0.5,
        )
        seg.colormap = class_colormap(colours)
        self.session.written[seg.name] = np.array(seg.data, copy=True)
        if result.objects is not None:
            obj = write_labels(
                self.viewer, output_name(image.name, OBJECTS), result.objects, like=image, index=index, full_shape=shape
            )
            self.session.written[obj.name] = np.array(obj.data, copy=True)
        if self.uncertain.isChecked():
            values = uncertainty(result.probabilities)
            if index:
                name = output_name(image.name, UNCERTAINTY)
                layer = find_layer(self.viewer, name, Image)
                in_memory = layer is not None and isinstance(layer.data, np.ndarray) and layer.data.shape == shape
                full = layer.data if in_memory else np.zeros(shape, np.float32)
                full[index] = values
                values = full
            write_image(
                self.viewer,
                output_name(image.name, UNCERTAINTY),
                values,
                like=image,
                colormap="magma",
                blending="additive",
                contrast_limits=(0, 1),
                visible=True,
            )
        n = int(result.objects.max()) if result.objects is not None else 0
        self.status.setText(f"done: {n} objects" if result.objects is not None else "done")
