"""The starting model shipped with the package: a light U-Net for fluorescent nuclei, trained on synthetic data.

It makes the first Segment useful before any training, and fine-tuning from it is faster than from
scratch. Its recipe is ``scripts/train_starting_model.py``.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from napari_unet.errors import ModelFileError
from napari_unet.models.files import load_model
from napari_unet.models.model import Model

#: The name that stands for the shipped model wherever a model file is expected (CLI, API).
STARTING = "starting"
_FILE = ("models", "nuclei.pt")


def starting_model_path() -> Path | None:
    """Where the shipped starting model is, or None if this installation has none."""
    path = resources.files("napari_unet").joinpath(*_FILE)
    return Path(str(path)) if path.is_file() else None


def load_starting_model() -> Model:
    """A fresh copy of the shipped starting model.

    Raises
    ------
    ModelFileError
        If the package was installed without it.
    """
    path = starting_model_path()
    if path is None:
        raise ModelFileError("this installation has no starting model; train one or give a model file")
    return load_model(path)
