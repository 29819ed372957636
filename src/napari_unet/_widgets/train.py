"""Train: fine-tune or train a U-Net on the painted annotation in a background thread, with live feedback."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from napari.layers import Image, Labels
from qtpy.QtWidgets import (
    QComboBox,
    QFileDialog,
    QHBoxLayout,
    QProgressBar,
    QPushButton,
    QWidget,
)

from napari_unet import devices
from napari_unet.models import choice
from napari_unet.models.choice import ModelChoice, model_for_training
from napari_unet.models.files import load_model, save_model
from napari_unet.models.model import Model
from napari_unet.models.starting import starting_model_path
from napari_unet.models.unet import PRESETS
from napari_unet.train.annotations import annotation_from_labels
from napari_unet.train.config import RETRAIN_STEPS, TrainProgress, for_retrain
from napari_unet.train.fit import fit
from napari_unet.train.preview import Preview, with_previews

from ._autosave import autosave
from ._base import PluginWidget
from ._jobs import BackgroundJob, Stopped, notify, notify_error, warm_up_torch
from ._keeping import autosave_after_run, keep_replaced
from ._layers import (
    CHANNEL_CHOICES,
    DEFAULT_COLOURS,
    channel_axis_of,
    classes_of,
    find_layer,
    image_data,
    output_name,
)
from ._live_preview import LivePreview
from ._plot import CurvePlot
from ._restore import RestoreButton
from ._session import set_model
from ._train_settings import TrainSettings

CURRENT, FROM_FILE, STARTING = "current model", "model file…", "starting model (nuclei)"
#: The model row's choices -> the sources of :func:`napari_unet.models.choice.model_for_training`.
SOURCES = {CURRENT: choice.CURRENT, STARTING: choice.STARTING}


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
        shipped = [STARTING] if starting_model_path() is not None else []
        self.source.addItems(shipped + [f"{choice.NEW}: {name}" for name in PRESETS] + [CURRENT, FROM_FILE])
        default = choice.default_training_source(devices.select_device("auto").type)
        self.source.setCurrentText(STARTING if default == choice.STARTING else default)
        self.source.setToolTip("the starting model was trained on synthetic nuclei: fine-tuning it is faster")
        self.add_row("model", self.source)
        self.restore_button = RestoreButton(napari_viewer, self._restored)
        self.layout().addWidget(self.restore_button)
        self.settings = TrainSettings()
        self.layout().addWidget(self.settings)
        self._build_buttons()
        self.progress = QProgressBar()
        self.progress.setRange(0, 1000)
        self.layout().addWidget(self.progress)
        self.plot = CurvePlot()
        self.layout().addWidget(self.plot)
        self.status = self.status_label("")
        self.job: BackgroundJob | None = None
        self._image_name = ""
        self._image_shape: tuple[int, ...] = ()
        self._annotation: Labels | None = None
        self._previous: tuple[Model | None, str] = (None, "")
        self._steps_before = 0
        self.preview = LivePreview(napari_viewer, self._channel_axis)
        self.events.retrain_requested.connect(self.retrain_on)
        self.events.model_changed.connect(lambda _: self._show_model())
        napari_viewer.layers.events.inserted.connect(self._layer_added)
        self._show_model()
        self._pick_annotation()
        for layer in list(napari_viewer.layers):
            self.restore_button.offer_for(layer)
        warm_up_torch()

    # -- building ------------------------------------------------------------------------------------
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
        if model is not None:
            self.restore_button.withdraw()
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

    # -- model choice --------------------------------------------------------------------------------
    def _model_for(
        self, annotation: Labels, top_class: int, in_channels: int, continue_training: bool
    ) -> ModelChoice | None:
        """The model to train, as the core chooses it from the model row (None if no file was picked)."""
        classes = classes_of(annotation)
        names = [classes[v]["name"] for v in sorted(classes) if v > 1]
        label = CURRENT if continue_training else self.source.currentText()
        source = SOURCES.get(label, label)
        if label == FROM_FILE:
            source, _ = QFileDialog.getOpenFileName(self, "Model to train further", "", "napari-unet model (*.pt)")
            if not source:
                return None
        chosen = model_for_training(
            source,
            self.session.model,
            names,
            in_channels,
            top_class,
            devices.select_device(self.settings.config().device).type,
            seed=self.settings.config().seed,
        )
        if chosen.note:
            notify(chosen.note)
        return chosen

    # -- running -------------------------------------------------------------------------------------
    def start(self, continue_training: bool = False, steps: int | None = None) -> BackgroundJob | None:
        """Start training in a background thread (a new model, or the current one to continue).

        ``steps`` (a retrain after corrections) replaces the settings' training length.
        """
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
            # a snapshot (painting may go on during training); an instance mask becomes whole objects
            painted, note = annotation_from_labels(np.array(annotation.data, copy=True))
            top = int(np.max(painted, initial=0))
            chosen = self._model_for(annotation, top, in_channels, continue_training)
        except Exception as error:  # bad model files and choices fail in many ways; all become a notification
            notify_error(error)
            return None
        if chosen is None or not keep_replaced(self.session, chosen.model, self._image_name):
            return None
        if note:
            notify(f"'{annotation.name}': {note}")
        model, name = chosen.model, image.name
        config = self.settings.config() if steps is None else for_retrain(self.settings.config(), steps)
        self._begin_run(chosen, image, annotation)
        if self.settings.preview_every.value() > 0:
            self.preview.add_layer(image, self._class_colours())
        self.preview.follow(image.name)
        self.job = BackgroundJob(
            lambda: with_previews(
                model,
                fit(model, [pixels], [painted], config, channel_axis=axis),
                pixels,
                lambda: self.preview.region,
                every=float(self.settings.preview_every.value() or 1e9),
                channel_axis=axis,
                device=config.device,
            ),
            on_progress=self._on_progress,
            on_done=self._on_done,
            on_error=self._on_error,
            on_finished=self._on_finished,
            owner=self,
            on_abandoned=lambda: autosave(model, name),
        )
        self._set_running(True)
        self.status.setText(f"preparing the data on {self.settings.device_label.text()}…")
        return self.job.start()

    def _begin_run(self, chosen: ModelChoice, image: Image, annotation: Labels) -> None:
        """Make the chosen model the session's for the run, remembering the one it replaces until it trains."""
        self._previous = (self.session.model, self.session.model_label)
        self._steps_before = chosen.model.trained_steps
        self._image_name, self._annotation = image.name, annotation
        self._image_shape = tuple(image_data(image, lazy=True).shape)
        if chosen.model is not self.session.model:  # a model going on keeps its name
            self.session.model_label = chosen.label
        self.session.model = chosen.model
        self.restore_button.withdraw()
        self.plot.clear()
        self.progress.setValue(0)

    def _put_back(self) -> None:
        """The run never trained: the model it replaced is the session's again."""
        self.session.model, self.session.model_label = self._previous
        self._show_model()
        if self.session.model is None:  # offer again what the run's start withdrew
            for layer in list(self.viewer.layers):
                self.restore_button.offer_for(layer)

    def stop(self) -> None:
        """Stop after the current step; the model keeps what it has learned."""
        if self.job is not None:
            self.job.stop()
            self.status.setText("stopping after this step…")

    def retrain_on(self, image_name: str, steps: int = RETRAIN_STEPS) -> None:
        """Continue training the current model on an image's (corrected) annotation for ``steps`` steps."""
        image = find_layer(self.viewer, image_name, Image)
        if image is None:
            return
        self.image_picker.value = image
        self._pick_annotation()
        self.start(continue_training=self.session.model is not None, steps=steps)

    def _on_progress(self, record: TrainProgress | Preview) -> None:
        if isinstance(record, Preview):
            if self.session.model is not None:
                self.preview.show(record, self._class_colours())
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

    def _channel_axis(self, image: Image) -> int | None:
        """The channel axis of ``image`` as the channels row says."""
        return channel_axis_of(image, CHANNEL_CHOICES[self.channels.currentText()])

    def _class_colours(self) -> dict[int, dict[str, str]]:
        """Colours of the object classes: those of the annotation layer where it has them."""
        model = self.session.model
        classes = {
            v: {"name": n, "color": DEFAULT_COLOURS[(v - 1) % len(DEFAULT_COLOURS)]}
            for v, n in (model.object_classes.items() if model else [])
        }
        annotation = self.annotation_picker.value
        if annotation is not None:
            classes.update({v: c for v, c in classes_of(annotation).items() if v > 1})
        return classes

    def _on_done(self, result: Any) -> None:
        model = self.session.model
        if model is None:
            return
        entry = model.history[-1] if model.history else {}
        stopped = isinstance(result, Stopped)
        ended = entry.get("ended", "stopped" if stopped else "finished")
        if model.trained_steps == self._steps_before:
            self._put_back()
            notify(f"training {ended}; no step was made, the model is unchanged", warning=ended.startswith("stopped:"))
            return
        self.progress.setValue(1000 if not stopped else self.progress.value())
        set_model(self.viewer, model, self.session.model_label or "trained model", unsaved=True)
        self.source.setCurrentText(CURRENT)  # Start now trains this model further rather than replace it
        message = f"training {ended} after {entry.get('steps', 0)} steps; the model is ready to segment"
        kept = autosave_after_run(model, self._image_name, self._image_shape, self._annotation)
        notify(message + kept, warning=ended.startswith("stopped:"))
        self.status.setText(message)

    def _on_error(self, error: BaseException) -> None:
        """Say what failed; a run that trained keeps its model, one that did not puts the replaced one back."""
        notify_error(error)
        model = self.session.model
        if model is not None and model.trained_steps > self._steps_before:
            self._on_done(Stopped())
        else:
            self._put_back()

    def _on_finished(self) -> None:
        self.preview.stop_following()
        self._set_running(False)

    # -- restoring -----------------------------------------------------------------------------------
    def _layer_added(self, event: Any) -> None:
        try:
            self.restore_button.offer_for(event.value)
        except RuntimeError:  # the Qt widget is gone (viewer closing)
            return

    def _restored(self, image: Image, annotation: Labels) -> None:
        """Train the restored model on the restored annotation next."""
        self.image_picker.value = image
        self.annotation_picker.value = annotation
        self.source.setCurrentText(CURRENT)
        self._image_name = image.name

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
        self.session.unsaved = False
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
        if not keep_replaced(self.session, model, self._image_name):
            return None
        set_model(self.viewer, model, Path(path).name)
        self.source.setCurrentText(CURRENT)
        return model
