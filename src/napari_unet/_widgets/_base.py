"""Common ground of the plugin's dock widgets: the viewer, its session, and layer pickers that stay current."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from magicgui.widgets import ComboBox
from qtpy.QtWidgets import QFormLayout, QHBoxLayout, QLabel, QProgressBar, QPushButton, QVBoxLayout, QWidget

from ._session import session_for


class PluginWidget(QWidget):
    """A dock widget bound to one viewer; its layer pickers follow the viewer's layers."""

    def __init__(self, napari_viewer: Any, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.viewer = napari_viewer
        self.session, self.events = session_for(napari_viewer)
        self._pickers: list[ComboBox] = []
        self.setLayout(QVBoxLayout())
        self.form = QFormLayout()
        self.layout().addLayout(self.form)
        layers = napari_viewer.layers.events
        for event in (layers.inserted, layers.removed, layers.reordered, layers.renamed):
            event.connect(self.reset_choices)

    def layer_picker(
        self, label: str, layer_type: type, allow_none: bool = False, exclude_suffixes: tuple[str, ...] = ()
    ) -> ComboBox:
        """A combo box listing the viewer's layers of ``layer_type``, added to the form."""

        def choices(_widget: Any) -> list[tuple[str, Any]]:
            found = [
                (layer.name, layer)
                for layer in self.viewer.layers
                if isinstance(layer, layer_type) and not layer.name.endswith(exclude_suffixes)
            ]
            return [("(none)", None), *found] if allow_none else found

        picker = ComboBox(choices=choices, nullable=allow_none)
        self._pickers.append(picker)
        self.form.addRow(label, picker.native)
        return picker

    def reset_choices(self, *_: Any) -> None:
        """Refresh every layer picker (a layer was added, removed, renamed or moved)."""
        for picker in self._pickers:
            try:
                picker.reset_choices()
            except RuntimeError:  # the Qt widget is gone (viewer closing)
                return

    def add_row(self, label: str, widget: QWidget) -> None:
        """Add a labelled row to the form."""
        self.form.addRow(label, widget)

    def add_run_controls(
        self, run_text: str, run: Callable[[], Any], cancel: Callable[[], Any]
    ) -> tuple[QPushButton, QPushButton, QProgressBar]:
        """A run button and a cancel button side by side, then a progress bar; cancel starts disabled."""
        row = QHBoxLayout()
        run_button, cancel_button = QPushButton(run_text), QPushButton("Cancel")
        run_button.clicked.connect(lambda: run())
        cancel_button.clicked.connect(lambda: cancel())
        cancel_button.setEnabled(False)
        row.addWidget(run_button)
        row.addWidget(cancel_button)
        self.layout().addLayout(row)
        progress = QProgressBar()
        self.layout().addWidget(progress)
        return run_button, cancel_button, progress

    def status_label(self, text: str = "") -> QLabel:
        """A word-wrapped label for messages, added below the form."""
        label = QLabel(text)
        label.setWordWrap(True)
        self.layout().addWidget(label)
        return label
