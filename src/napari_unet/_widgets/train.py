"""Train: fine-tune or train a U-Net on the painted annotation in a background thread, with live feedback."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from napari.layers import Image, Labels
from qtpy.QtWidgets import (
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from .. import device as devices
from ..augment import AugmentConfig
from ..bundle import Model, new_model
from ..errors import InputError
from ..io import load_model, save_model
from ..model import PRESETS
from ..preview import Preview, with_previews
from ..train import TrainConfig, TrainProgress, fit
from ._base import PluginWidget
from ._forms import ConfigForm, replace_fields
from ._jobs import BackgroundJob, Stopped, notify, notify_error
from ._layers import (
    CHANNEL_CHOICES,
    camera,
    channel_axis_of,
    class_colormap,
    classes_of,
    find_layer,
    image_data,
    output_name,
    plane_index,
    spatial_shape,
    write_labels,
)
from ._plot import CurvePlot
from ._session import set_model

CURRENT, FROM_FILE = "current model", "model file…"
PREVIEW = "preview"
#: Largest side of the previewed region, so a preview stays quick on the CPU.
PREVIEW_SIDE = 768

ADVANCED_FIELDS = {
    "batch_size": {"min": 1, "max": 256},
    "patch_size": {"min": 0, "max": 4096, "tooltip": "network input during training; 0 = automatic"},
    "optimizer": {"choices": ["adamw", "sgd"]},
    "weight_decay": {"min": 0.0, "max": 1.0, "step": 1e-4},
    "class_balance": {},
    "border_sigma": {"label": "border sigma (px)", "min": 0.5, "max": 50.0},
    "val_fraction": {"label": "validation share", "min": 0.0, "max": 0.5, "step": 0.05},
    "validate_every": {"min": 1, "max": 100000},
    "seed": {"min": 0, "max": 2**31 - 1},
    "amp": {"label": "mixed precision (GPU)"},
}


class TrainWidget(PluginWidget):
    """Start, stop and continue training in the background; loss curves and a live preview show progress."""

    def __init__(self, napari_viewer: Any, parent: QWidget | None = None) -> None:
        super().__init__(napari_viewer, parent)
        self.image_picker = self.layer_picker("image", Image, exclude_suffixes=(" uncertainty",))
        self.annotation_picker = self.layer_picker("annotation", Labels)
        self.image_picker.changed.connect(self._pick_annotation)
        self.channels = QComboBox()
        self.channels.addItems(list(CHANNEL_CHOICES))
        self.add_row("channels", self.channels)
        self.source = QComboBox()
        self.source.addItems([f"new: {name}" for name in PRESETS] + [CURRENT, FROM_FILE])
        self.source.setCurrentText(f"new: {self._default_preset()}")
        self.add_row("model", self.source)
        self._build_settings()
        self._build_buttons()
        self.progress = QProgressBar()
        self.progress.setRange(0, 1000)
        self.layout().addWidget(self.progress)
        self.plot = CurvePlot()
        self.layout().addWidget(self.plot)
        self.status = self.status_label("")
        self.job: BackgroundJob | None = None
        self._image_name = ""
        self._region: Any = None
        self.events.retrain_requested.connect(self.retrain_on)
        self.events.model_changed.connect(lambda _: self._show_model())
        self._show_model()
        self._pick_annotation()

    # -- building ------------------------------------------------------------------------------------
    @staticmethod
    def _default_preset() -> str:
        return "light" if devices.select_device("auto").type == "cpu" else "standard"

    def _build_settings(self) -> None:
        defaults = TrainConfig()
        budget = QHBoxLayout()
        self.budget_value = QDoubleSpinBox()
        self.budget_value.setRange(0.1, 100000)
        self.budget_value.setDecimals(0)
        self.budget_value.setValue(defaults.steps or 500)
        self.budget_unit = QComboBox()
        self.budget_unit.addItems(["steps", "minutes"])
        self.budget_unit.currentTextChanged.connect(self._budget_unit_changed)
        budget.addWidget(self.budget_value)
        budget.addWidget(self.budget_unit)
        box = QWidget()
        box.setLayout(budget)
        budget.setContentsMargins(0, 0, 0, 0)
        self.add_row("train for", box)
        self.learning_rate = QDoubleSpinBox()
        self.learning_rate.setDecimals(5)
        self.learning_rate.setRange(1e-5, 1.0)
        self.learning_rate.setSingleStep(1e-4)
        self.learning_rate.setValue(defaults.learning_rate)
        self.add_row("learning rate", self.learning_rate)
        self.augment_strength = QDoubleSpinBox()
        self.augment_strength.setRange(0.0, 3.0)
        self.augment_strength.setSingleStep(0.1)
        self.augment_strength.setValue(defaults.augment.strength)
        self.augment_strength.setToolTip("scales elastic deformation, rotation, zoom and grey-value changes; 0 = off")
        self.add_row("augmentation", self.augment_strength)
        self.border_weight = QDoubleSpinBox()
        self.border_weight.setRange(0.0, 100.0)
        self.border_weight.setValue(defaults.border_w0)
        self.border_weight.setToolTip("extra weight of background gaps between painted objects (w0; 0 = off)")
        self.add_row("border weight", self.border_weight)
        self.preview_every = QSpinBox()
        self.preview_every.setRange(0, 600)
        self.preview_every.setValue(5)
        self.preview_every.setSuffix(" s")
        self.preview_every.setToolTip("segment the visible region this often while training (0 = never)")
        self.add_row("live preview every", self.preview_every)
        self.device_label = QLabel(devices.describe(devices.select_device("auto")))
        self.add_row("device", self.device_label)
        self.advanced = QGroupBox("advanced")
        self.advanced.setCheckable(True)
        self.advanced.setChecked(False)
        self.advanced_form = ConfigForm(defaults, ADVANCED_FIELDS)
        self.advanced.setLayout(QVBoxLayout())
        self.advanced.layout().addWidget(self.advanced_form.native)
        self.advanced.toggled.connect(self.advanced_form.native.setVisible)
        self.advanced_form.native.setVisible(False)
        self.layout().addWidget(self.advanced)

    def _budget_unit_changed(self, unit: str) -> None:
        minutes = unit == "minutes"
        self.budget_value.setDecimals(1 if minutes else 0)
        self.budget_value.setValue(2.0 if minutes else TrainConfig().steps or 500)

    def _build_buttons(self) -> None:
        row = QHBoxLayout()
        self.start_button = QPushButton("Start")
        self.start_button.setToolTip("train the chosen model on the annotation")
        self.stop_button = QPushButton("Stop")
        self.stop_button.setToolTip("stop after the current step; the model trained so far is kept")
        self.continue_button = QPushButton("Continue")
        self.continue_button.setToolTip("train the current model further")
        for button in (self.start_button, self.stop_button, self.continue_button):
            row.addWidget(button)
        self.start_button.clicked.connect(lambda: self.start())
        self.stop_button.clicked.connect(self.stop)
        self.continue_button.clicked.connect(lambda: self.start(continue_training=True))
        self.layout().addLayout(row)
        files = QHBoxLayout()
        self.save_button = QPushButton("Save model…")
        self.load_button = QPushButton("Load model…")
        self.save_button.clicked.connect(lambda: self.save_model())
        self.load_button.clicked.connect(lambda: self.load_model())
        files.addWidget(self.save_button)
        files.addWidget(self.load_button)
        self.layout().addLayout(files)
        self._set_running(False)

    # -- state ---------------------------------------------------------------------------------------
    def _set_running(self, running: bool) -> None:
        self.start_button.setEnabled(not running)
        self.continue_button.setEnabled(not running and self.session.model is not None)
        self.stop_button.setEnabled(running)
        self.load_button.setEnabled(not running)
        self.save_button.setEnabled(not running and self.session.model is not None)
        self.events.training_state.emit(running)

    def _show_model(self) -> None:
        model = self.session.model
        text = "no model yet" if model is None else f"{self.session.model_label}: {model.describe().splitlines()[0]}"
        self.status.setText(text)
        self.continue_button.setEnabled(model is not None and not self.running)
        self.save_button.setEnabled(model is not None and not self.running)

    @property
    def running(self) -> bool:
        """Whether a training run is in progress."""
        return self.job is not None and self.job.running

    def _pick_annotation(self, *_: Any) -> None:
        image = self.image_picker.value
        if image is not None:
            layer = find_layer(self.viewer, output_name(image.name, "annotation"), Labels)
            if layer is not None:
                self.annotation_picker.value = layer

    def config(self) -> TrainConfig:
        """The training settings chosen in the widget."""
        minutes = self.budget_unit.currentText() == "minutes"
        base = TrainConfig(
            steps=None if minutes else int(self.budget_value.value()),
            minutes=self.budget_value.value() if minutes else None,
            learning_rate=self.learning_rate.value(),
            augment=AugmentConfig(strength=self.augment_strength.value()),
            border_w0=self.border_weight.value(),
        )
        return replace_fields(base, self.advanced_form.values())

    # -- model choice --------------------------------------------------------------------------------
    def _model_for(self, annotation: Labels, in_channels: int, continue_training: bool) -> Model | None:
        classes = classes_of(annotation)
        names = [classes[v]["name"] for v in sorted(classes) if v > 1] or ["object"]
        source = CURRENT if continue_training else self.source.currentText()
        if source == CURRENT:
            if self.session.model is None:
                raise InputError("there is no current model yet: start training a new one first")
            model = self.session.model
        elif source == FROM_FILE:
            path, _ = QFileDialog.getOpenFileName(self, "Model to train further", "", "napari-unet model (*.pt)")
            if not path:
                return None
            model = load_model(path)
            self.session.model_label = Path(path).name
        else:
            model = new_model(source.split(": ")[1], names, in_channels=in_channels, seed=self.config().seed)
            self.session.model_label = f"new {source.split(': ')[1]} model"
        top = int(np.max(annotation.data, initial=0))
        if top > model.n_classes:
            raise InputError(
                f"the annotation uses class {top} but the model knows {model.n_classes - 1} object class(es); "
                "start a new model to add classes"
            )
        return model

    # -- running -------------------------------------------------------------------------------------
    def start(self, continue_training: bool = False) -> BackgroundJob | None:
        """Start training in a background thread (a new model, or the current one to continue)."""
        if self.running:
            notify("training is already running", warning=True)
            return None
        image, annotation = self.image_picker.value, self.annotation_picker.value
        if image is None or annotation is None:
            notify("choose an image and its annotation layer (create one in the Annotate widget)", warning=True)
            return None
        axis = channel_axis_of(image, CHANNEL_CHOICES[self.channels.currentText()])
        try:
            pixels = image_data(image)
            in_channels = 1 if axis is None or image.rgb else pixels.shape[axis]
            model = self._model_for(annotation, in_channels, continue_training)
        except (InputError, OSError) as error:
            notify_error(error)
            return None
        except Exception as error:  # model files can fail to load in many ways
            notify_error(error)
            return None
        if model is None:
            return None
        painted = np.array(annotation.data, copy=True)  # a snapshot: painting may go on during training
        config = self.config()
        self.session.train_settings = {"config": config, "channel_axis": axis}
        self._image_name = image.name
        self._update_region()
        self.plot.clear()
        self.progress.setValue(0)
        self.session.model = model
        self.job = BackgroundJob(
            lambda: with_previews(
                model,
                fit(model, [pixels], [painted], config, channel_axis=axis),
                pixels,
                lambda: self._region,
                every=float(self.preview_every.value() or 1e9),
                channel_axis=axis,
                device=config.device,
            ),
            on_progress=self._on_progress,
            on_done=self._on_done,
            on_finished=lambda: self._set_running(False),
        )
        self._set_running(True)
        camera(self.viewer).events.center.connect(self._update_region)
        self.viewer.dims.events.current_step.connect(self._update_region)
        self.status.setText(f"preparing the data on {self.device_label.text()}…")
        return self.job.start()

    def stop(self) -> None:
        """Stop after the current step; the model keeps what it has learned."""
        if self.job is not None:
            self.job.stop()
            self.status.setText("stopping after this step…")

    def retrain_on(self, image_name: str) -> None:
        """Continue training the current model on an image's (corrected) annotation."""
        image = find_layer(self.viewer, image_name, Image)
        if image is None:
            return
        self.image_picker.value = image
        self._pick_annotation()
        self.start(continue_training=self.session.model is not None)

    def _update_region(self, *_: Any) -> None:
        """Remember which part of the image is on screen, for the live preview (GUI thread)."""
        image = find_layer(self.viewer, self._image_name, Image)
        if image is None:
            self._region = None
            return
        axis = channel_axis_of(image, CHANNEL_CHOICES[self.channels.currentText()])
        shape = spatial_shape(image, axis)
        centre = image.world_to_data(camera(self.viewer).center)[-2:]
        zoom = max(camera(self.viewer).zoom, 1e-6)
        size = np.asarray(self.viewer.canvas.size, dtype=float) / zoom / np.asarray(image.scale[-2:])
        half = np.minimum(size / 2, PREVIEW_SIDE / 2)
        box = tuple(
            slice(int(max(min(c - h, s - 1), 0)), int(min(max(c + h, 1), s)))
            for c, h, s in zip(centre, half, shape[-2:], strict=True)
        )
        self._region = (plane_index(self.viewer, image, len(shape)), box)

    def _on_progress(self, record: TrainProgress | Preview) -> None:
        if isinstance(record, Preview):
            self._show_preview(record)
            return
        self.progress.setValue(int(record.fraction * 1000))
        self.plot.add("loss", record.step, record.loss)
        text = f"step {record.step} · loss {record.loss:.4f} · {record.elapsed:.0f} s on {record.device}"
        if record.validation is not None:
            self.plot.add("validation", record.step, record.validation.loss)
            text += f" · validation IoU {record.validation.iou:.3f}"
        self.status.setText(text)
        if find_layer(self.viewer, self._image_name, Image) is None and self.job is not None:
            self.job.stop()
            notify(
                f"the image '{self._image_name}' was removed: training stopped, the model so far is kept", warning=True
            )

    def _show_preview(self, preview: Preview) -> None:
        image = find_layer(self.viewer, self._image_name, Image)
        if image is None or self.session.model is None:
            return
        shape = spatial_shape(image, channel_axis_of(image, CHANNEL_CHOICES[self.channels.currentText()]))
        classes = {i + 1: {"name": n, "color": "#ffffff"} for i, n in enumerate(self.session.model.class_names)}
        annotation = self.annotation_picker.value
        if annotation is not None:
            classes.update(classes_of(annotation))
        layer = write_labels(
            self.viewer,
            output_name(image.name, PREVIEW),
            preview.classes,
            like=image,
            index=(*preview.plane, *preview.box),
            full_shape=shape,
            opacity=0.5,
        )
        layer.colormap = class_colormap({k: v for k, v in classes.items() if k > 1})

    def _on_done(self, result: Any) -> None:
        camera(self.viewer).events.center.disconnect(self._update_region)
        self.viewer.dims.events.current_step.disconnect(self._update_region)
        model = self.session.model
        if model is None:
            return
        entry = model.history[-1] if model.history else {}
        stopped = isinstance(result, Stopped)
        self.progress.setValue(1000 if not stopped else self.progress.value())
        set_model(self.viewer, model, self.session.model_label or "trained model")
        ended = entry.get("ended", "stopped" if stopped else "finished")
        message = f"training {ended} after {entry.get('steps', 0)} steps; the model is ready to segment"
        notify(message, warning=ended.startswith("stopped:"))
        self.status.setText(message)

    # -- files ---------------------------------------------------------------------------------------
    def save_model(self, path: str | None = None) -> Path | None:
        """Save the current model (asks where if no path is given)."""
        if self.session.model is None:
            notify("no model to save yet", warning=True)
            return None
        if path is None:
            path, _ = QFileDialog.getSaveFileName(self, "Save model", "model.pt", "napari-unet model (*.pt)")
            if not path:
                return None
        try:
            saved = save_model(self.session.model, path, overwrite=True)
        except Exception as error:
            notify_error(error)
            return None
        notify(f"model saved to {saved}")
        return saved

    def load_model(self, path: str | None = None) -> Model | None:
        """Load a model file and make it the current model."""
        if path is None:
            path, _ = QFileDialog.getOpenFileName(self, "Load model", "", "napari-unet model (*.pt)")
            if not path:
                return None
        try:
            model = load_model(path)
        except Exception as error:
            notify_error(error)
            return None
        set_model(self.viewer, model, Path(path).name)
        self.source.setCurrentText(CURRENT)
        return model
