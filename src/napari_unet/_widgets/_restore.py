"""The offer to bring back an image's autosaved model and annotation: a button shown only while there is one."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from napari.layers import Image, Labels
from qtpy.QtWidgets import QPushButton, QWidget

from ._autosave import Autosave, find_latest
from ._jobs import notify, notify_error
from ._layers import CLASSES_KEY, class_colormap, find_layer, image_data, output_name
from ._session import session_for, set_model


class RestoreButton(QPushButton):
    """A button "Restore model and annotation of <image> from <date>", shown while an opened image has an autosave.

    Parameters
    ----------
    viewer : napari.Viewer
        The viewer whose images are looked up in the autosave folder.
    on_restored : callable
        Called with the image layer and the restored annotation layer.
    """

    def __init__(self, viewer: Any, on_restored: Callable[[Image, Labels], None], parent: QWidget | None = None):
        super().__init__(parent)
        self.viewer = viewer
        self.session, _ = session_for(viewer)
        self.on_restored = on_restored
        self.found: Autosave | None = None
        self._announced: set[tuple[str, str]] = set()
        self.clicked.connect(lambda: self.restore())
        self.setVisible(False)

    def offer_for(self, layer: Any) -> Autosave | None:
        """Offer the autosave of ``layer`` if it is an image that has one and no model is in use yet."""
        if not isinstance(layer, Image) or self.session.model is not None:
            return None
        found = find_latest(layer.name, tuple(image_data(layer, lazy=True).shape))
        if found is None:
            return None
        self.found = found
        self.setText(f"Restore model and annotation of '{found.image_name}' from {found.when}")
        self.setToolTip(f"the model ({found.steps} training steps) and the annotation kept in {found.folder}")
        self.setVisible(True)
        if (found.image_name, found.date) in self._announced:
            return found
        self._announced.add((found.image_name, found.date))
        notify(
            f"'{found.image_name}' has an autosaved model ({found.steps} training steps) and annotation from "
            f"{found.when}: press '{self.text()}' in the Train widget to bring them back"
        )
        return found

    def withdraw(self) -> None:
        """Hide the offer (a model is in use now)."""
        self.found = None
        self.setVisible(False)

    def restore(self) -> Labels | None:
        """Add the autosaved annotation as a layer next to its image and make the autosaved model current."""
        found = self.found
        if found is None:
            return None
        image = find_layer(self.viewer, found.image_name, Image)
        if image is None:
            notify(f"open the image '{found.image_name}' again to restore its model and annotation", warning=True)
            return None
        try:
            model, data = found.load_model(), found.read_annotation()
        except Exception as error:  # a damaged file: say so, keep the offer for after a fix
            notify_error(error)
            return None
        layer = self._add_annotation(image, data, found.classes)
        self.withdraw()
        # its only copy is the autosave the next run replaces, so it counts as not saved
        set_model(self.viewer, model, f"autosave of {found.when}", unsaved=True)
        notify(
            f"restored the model ({found.steps} training steps) and the annotation of '{image.name}' from {found.when}"
        )
        self.on_restored(image, layer)
        return layer

    def _add_annotation(self, image: Image, data: Any, classes: dict[int, dict[str, str]]) -> Labels:
        """The restored annotation as a new layer (beside, never over, an annotation layer already there)."""
        name = output_name(image.name, "annotation")
        if find_layer(self.viewer, name) is not None:
            name = output_name(image.name, "annotation (restored)")
        layer = self.viewer.add_labels(
            data,
            name=name,
            scale=image.scale[-data.ndim :],
            translate=image.translate[-data.ndim :],
            metadata={CLASSES_KEY: classes},
        )
        layer.colormap = class_colormap(classes)
        return layer
