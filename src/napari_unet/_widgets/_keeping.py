"""What the Train widget keeps of a model before it is replaced, and after every run: nothing trained is lost."""

from __future__ import annotations

import numpy as np
from napari.layers import Labels

from napari_unet.models.model import Model

from ._autosave import save_latest, save_stamped_model
from ._jobs import notify, user_message
from ._layers import classes_of
from ._session import Session


def keep_replaced(session: Session, model: Model, image_name: str) -> bool:
    """Before ``model`` replaces a model trained and not saved since, save that one under a new name.

    Returns False (and says why) if it could not be saved: nothing trained is dropped unsaved.
    """
    current = session.model
    if current is None or model is current or not session.unsaved:
        return True
    try:
        path = save_stamped_model(current, image_name)
    except Exception as error:  # a full disk, a folder without write access ...
        notify(
            f"the model trained so far could not be kept ({user_message(error)}): save it with 'Save model…' "
            "first, or train the current model",
            warning=True,
        )
        return False
    session.unsaved = False
    notify(f"the model trained so far is kept in {path}; open it with 'Load model…' to use it again")
    return True


def autosave_after_run(model: Model, image_name: str, image_shape: tuple[int, ...], annotation: Labels | None) -> str:
    """Keep the model and its annotation in the image's autosave folder; what to add to the run's message."""
    if annotation is None:
        return ""
    try:
        folder = save_latest(model, image_name, image_shape, np.asarray(annotation.data), classes_of(annotation))
    except Exception as error:  # training went well; only the copy failed
        notify(
            f"the model and annotation could not be autosaved ({user_message(error)}): "
            "save the model with 'Save model…'",
            warning=True,
        )
        return ""
    return f" (kept with its annotation in {folder})"
