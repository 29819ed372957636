"""Keep a model whose training napari was closed on: saved to an autosave folder, never lost."""

from __future__ import annotations

import datetime
import os
import sys
from pathlib import Path

from napari_unet.models.files import save_model
from napari_unet.models.model import Model

#: Environment variable naming the autosave folder (default ``~/.napari-unet/autosave``).
AUTOSAVE_ENV = "NAPARI_UNET_AUTOSAVE"


def autosave_folder() -> Path:
    """Where models are saved when napari closes during their training."""
    return Path(os.environ.get(AUTOSAVE_ENV) or Path.home() / ".napari-unet" / "autosave")


def autosave(model: Model) -> Path | None:
    """Save ``model`` under a new time-stamped name in :func:`autosave_folder`; say where on stderr.

    Runs in the training thread after napari has closed: failures are reported, never raised.
    """
    if not model.history:
        return None
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S-%f")
    path = autosave_folder() / f"model-{stamp}.pt"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        save_model(model, path)
    except Exception as error:  # nowhere left to show it but the terminal
        print(f"napari-unet: napari closed during training and the model could not be saved: {error}", file=sys.stderr)
        return None
    print(f"napari-unet: napari closed during training; the model trained so far is saved in {path}", file=sys.stderr)
    return path
