"""What the plugin's widgets share for one viewer: the current model and the outputs last written."""

from __future__ import annotations

import weakref
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from psygnal import Signal

from napari_unet.models.model import Model


@dataclass
class Session:
    """Per-viewer state of the plugin.

    Attributes
    ----------
    model : Model or None
        The model in use (trained, loaded or being trained).
    model_label : str
        Where the model came from, for display.
    unsaved : bool
        Whether the model was trained since it was last saved (with *Save model…* or to a time-stamped
        autosave file): replacing it must keep it first.
    written : dict
        Layer name -> copy of the data the plugin last wrote there; corrections are what differs.
    """

    model: Model | None = None
    model_label: str = ""
    unsaved: bool = False
    written: dict[str, np.ndarray] = field(default_factory=dict)


class SessionEvents:
    """Signals between widgets of one viewer."""

    model_changed = Signal(object)
    retrain_requested = Signal(str, int)  # image name, training steps
    training_state = Signal(bool)


_SESSIONS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def session_for(viewer: Any) -> tuple[Session, SessionEvents]:
    """The session of ``viewer`` (created on first use, dropped with the viewer)."""
    if viewer not in _SESSIONS:
        _SESSIONS[viewer] = (Session(), SessionEvents())
    return _SESSIONS[viewer]


def set_model(viewer: Any, model: Model, label: str, unsaved: bool = False) -> None:
    """Make ``model`` the viewer's current model and tell the widgets (``unsaved``: it was just trained)."""
    session, events = session_for(viewer)
    session.model, session.model_label, session.unsaved = model, label, unsaved
    events.model_changed.emit(model)
