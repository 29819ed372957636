"""The settings panel of the Train widget, built from the core's TrainConfig defaults."""

from __future__ import annotations

from qtpy.QtWidgets import (
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from napari_unet import devices
from napari_unet.train.augment import AugmentConfig
from napari_unet.train.config import TrainConfig

from ._forms import ConfigForm, replace_fields

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


def _spin(low: float, high: float, value: float, decimals: int = 2, step: float = 0.1, tip: str = "") -> QDoubleSpinBox:
    spin = QDoubleSpinBox()
    spin.setDecimals(decimals)
    spin.setRange(low, high)
    spin.setSingleStep(step)
    spin.setValue(value)
    spin.setToolTip(tip)
    return spin


class TrainSettings(QWidget):
    """Budget, learning rate, augmentation, border weight and preview interval; the rest under "advanced"."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        defaults = TrainConfig()
        form = QFormLayout()
        layout = QVBoxLayout()
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(form)
        self.setLayout(layout)
        self.budget_value = _spin(0.1, 100000, defaults.steps or 500, decimals=0, step=50)
        self.budget_unit = QComboBox()
        self.budget_unit.addItems(["steps", "minutes"])
        self.budget_unit.currentTextChanged.connect(self._budget_unit_changed)
        budget = QHBoxLayout()
        budget.setContentsMargins(0, 0, 0, 0)
        budget.addWidget(self.budget_value)
        budget.addWidget(self.budget_unit)
        form.addRow("train for", budget)
        self.learning_rate = _spin(
            0.0,
            1.0,
            0.0,
            decimals=5,
            step=1e-4,
            tip="auto: 0.003 for a new model, 0.0001 to fine-tune a trained one (the starting model too)",
        )
        self.learning_rate.setSpecialValueText("auto")
        form.addRow("learning rate", self.learning_rate)
        self.augment_strength = _spin(
            0.0,
            3.0,
            defaults.augment.strength,
            tip="scales elastic deformation, rotation, zoom and grey-value changes; 0 = off",
        )
        form.addRow("augmentation", self.augment_strength)
        self.border_weight = _spin(
            0.0,
            100.0,
            defaults.border_w0,
            step=1.0,
            tip="extra weight of background gaps between painted objects (w0; 0 = off)",
        )
        form.addRow("border weight", self.border_weight)
        self.preview_every = QSpinBox()
        self.preview_every.setRange(0, 600)
        self.preview_every.setValue(5)
        self.preview_every.setSuffix(" s")
        self.preview_every.setToolTip("segment the visible region this often while training (0 = never)")
        form.addRow("live preview every", self.preview_every)
        self.device_label = QLabel(devices.describe(devices.select_device("auto")))
        form.addRow("device", self.device_label)
        self.advanced = QGroupBox("advanced")
        self.advanced.setCheckable(True)
        self.advanced.setChecked(False)
        self.advanced_form = ConfigForm(defaults, ADVANCED_FIELDS)
        self.advanced.setLayout(QVBoxLayout())
        self.advanced.layout().addWidget(self.advanced_form.native)
        self.advanced.toggled.connect(self.advanced_form.native.setVisible)
        self.advanced_form.native.setVisible(False)
        layout.addWidget(self.advanced)

    def _budget_unit_changed(self, unit: str) -> None:
        minutes = unit == "minutes"
        self.budget_value.setDecimals(1 if minutes else 0)
        self.budget_value.setValue(2.0 if minutes else TrainConfig().steps or 500)

    def config(self) -> TrainConfig:
        """The training settings chosen in the panel."""
        minutes = self.budget_unit.currentText() == "minutes"
        base = TrainConfig(
            steps=None if minutes else int(self.budget_value.value()),
            minutes=self.budget_value.value() if minutes else None,
            learning_rate=self.learning_rate.value() or None,
            augment=AugmentConfig(strength=self.augment_strength.value()),
            border_w0=self.border_weight.value(),
        )
        return replace_fields(base, self.advanced_form.values())
