"""Nothing trained or painted is lost: models and annotations kept in an autosave folder, one per image."""

from __future__ import annotations

import datetime
import json
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import tifffile

from napari_unet.images.files import atomic_write, write_labels
from napari_unet.models.files import load_model, save_model
from napari_unet.models.model import Model

from ._zarr_results import default_results_folder

#: Environment variable naming the autosave folder (default ``<results folder>/autosave``).
AUTOSAVE_ENV = "NAPARI_UNET_AUTOSAVE"
#: The files of an image's latest autosave, in its folder.
MODEL_FILE, RECORD_FILE = "model.pt", "autosave.json"
AUTOSAVE_FORMAT = "napari-unet autosave"


def autosave_folder() -> Path:
    """Where models and annotations are kept: ``$NAPARI_UNET_AUTOSAVE``, else ``<results folder>/autosave``."""
    return Path(os.environ.get(AUTOSAVE_ENV) or default_results_folder() / "autosave")


def folder_name(image_name: str) -> str:
    """``image_name`` made safe as a folder name (characters other than letters, digits, ``.-_`` and spaces go)."""
    safe = re.sub(r"[^\w.\- ]+", "_", image_name).strip(" .")[:100]
    return safe or "image"


def image_folder(image_name: str) -> Path:
    """The autosave folder of one image."""
    return autosave_folder() / folder_name(image_name)


def _stamp() -> str:
    return datetime.datetime.now().strftime("%Y%m%d-%H%M%S-%f")


def save_stamped_model(model: Model, image_name: str) -> Path:
    """Save ``model`` as ``<autosave folder>/<image>/model-<time stamp>.pt``, a name never reused.

    Raises
    ------
    InputError
        If the file cannot be written.
    """
    folder = image_folder(image_name)
    folder.mkdir(parents=True, exist_ok=True)
    return save_model(model, folder / f"model-{_stamp()}.pt")


def autosave(model: Model, image_name: str = "") -> Path | None:
    """Save a model whose training napari was closed on (:func:`save_stamped_model`); say where on stderr.

    Runs in the training thread after napari has closed: failures are reported, never raised.
    """
    if not model.history:
        return None
    try:
        path = save_stamped_model(model, image_name)
    except Exception as error:  # nowhere left to show it but the terminal
        print(f"napari-unet: napari closed during training and the model could not be saved: {error}", file=sys.stderr)
        return None
    print(f"napari-unet: napari closed during training; the model trained so far is saved in {path}", file=sys.stderr)
    return path


@dataclass(frozen=True)
class Autosave:
    """The latest model and annotation kept for an image.

    Attributes
    ----------
    folder : Path
        The image's autosave folder.
    image_name, image_shape :
        The image they belong to (its layer's name and full shape).
    classes : dict
        The annotation's class scheme: value -> {"name", "color"}.
    date : str
        When they were saved (ISO format, to the second).
    annotation_file : str
        The annotation's file in ``folder``.
    shape, dtype :
        The annotation's shape and data type (a TIFF reader drops axes of length 1).
    steps : int
        Training steps of the model.
    """

    folder: Path
    image_name: str
    image_shape: tuple[int, ...]
    classes: dict[int, dict[str, str]]
    date: str
    annotation_file: str
    shape: tuple[int, ...]
    dtype: str
    steps: int

    @property
    def when(self) -> str:
        """The date, for messages ("2025-01-31 14:05")."""
        return self.date.replace("T", " ")[:16]

    def load_model(self) -> Model:
        """The saved model (raises ``ModelFileError`` if it is damaged)."""
        return load_model(self.folder / MODEL_FILE)

    def read_annotation(self) -> np.ndarray:
        """The saved annotation, in its own data type."""
        path = self.folder / self.annotation_file
        data = np.load(path) if path.suffix == ".npy" else tifffile.imread(path)
        return np.asarray(data).reshape(self.shape).astype(self.dtype, copy=False)


def _write_annotation(folder: Path, annotation: np.ndarray) -> str:
    """Write the annotation as a label TIFF that Fiji opens (2D to 4D), else as ``.npy``; returns the file name."""
    if 2 <= annotation.ndim <= 4:
        write_labels(folder / "annotation.tif", annotation, overwrite=True)
        return "annotation.tif"
    atomic_write(folder / "annotation.npy", lambda temporary: _save_npy(temporary, annotation), overwrite=True)
    return "annotation.npy"


def _save_npy(path: Path, array: np.ndarray) -> None:
    with open(path, "wb") as stream:
        np.save(stream, array)


def save_latest(
    model: Model,
    image_name: str,
    image_shape: tuple[int, ...],
    annotation: np.ndarray,
    classes: dict[int, dict[str, str]],
) -> Path:
    """Keep the latest model and annotation of an image in its autosave folder, replacing the previous ones.

    Every file is written atomically; the record (``autosave.json``) last, so it never names files that
    are not there.

    Returns
    -------
    Path
        The image's autosave folder.

    Raises
    ------
    InputError
        If a file cannot be written.
    """
    folder = image_folder(image_name)
    folder.mkdir(parents=True, exist_ok=True)
    save_model(model, folder / MODEL_FILE, overwrite=True)
    annotation = np.asarray(annotation)
    record = {
        "format": AUTOSAVE_FORMAT,
        "image": image_name,
        "image_shape": list(image_shape),
        "classes": {str(value): dict(spec) for value, spec in classes.items()},
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "annotation": _write_annotation(folder, annotation),
        "shape": list(annotation.shape),
        "dtype": str(annotation.dtype),
        "model": MODEL_FILE,
        "steps": model.trained_steps,
    }
    text = json.dumps(record, indent=2)
    atomic_write(folder / RECORD_FILE, lambda temporary: temporary.write_text(text, encoding="utf-8"), overwrite=True)
    return folder


def find_latest(image_name: str, image_shape: tuple[int, ...]) -> Autosave | None:
    """The latest autosave of the image called ``image_name`` with this shape, if one is complete on disk."""
    folder = image_folder(image_name)
    try:
        record: dict[str, Any] = json.loads((folder / RECORD_FILE).read_text(encoding="utf-8"))
        found = Autosave(
            folder=folder,
            image_name=str(record["image"]),
            image_shape=tuple(int(n) for n in record["image_shape"]),
            classes={int(value): dict(spec) for value, spec in record["classes"].items()},
            date=str(record["date"]),
            annotation_file=str(record["annotation"]),
            shape=tuple(int(n) for n in record["shape"]),
            dtype=str(record["dtype"]),
            steps=int(record.get("steps", 0)),
        )
    except (OSError, ValueError, KeyError, TypeError, AttributeError):  # none, or not readable: nothing to offer
        return None
    complete = (folder / MODEL_FILE).is_file() and (folder / found.annotation_file).is_file()
    matches = record.get("format") == AUTOSAVE_FORMAT and found.image_name == image_name
    return found if complete and matches and found.image_shape == tuple(image_shape) else None
