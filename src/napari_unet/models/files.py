"""Model files: the weights with everything needed to use them, written atomically and loaded safely."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch

from napari_unet._version import __version__
from napari_unet.errors import ModelFileError
from napari_unet.images.files import atomic_write
from napari_unet.images.normalization import Normalization
from napari_unet.models.model import Model
from napari_unet.models.unet import UNet, UNetConfig

MODEL_FORMAT = "napari-unet model"


#: Bumped when a model file written by this version cannot be read by older ones.
FORMAT_VERSION = 1


def model_metadata(model: Model) -> dict[str, Any]:
    """Everything but the weights, as plain JSON-compatible values."""
    return {
        "format": MODEL_FORMAT,
        "format_version": FORMAT_VERSION,
        "package_version": __version__,
        "architecture": model.config.to_dict(),
        "class_names": list(model.class_names),
        "normalization": model.normalization.to_dict(),
        "channel_layout": {"in_channels": model.in_channels},
        "history": model.history,
        "object_shape": model.object_shape,
    }


def save_model(model: Model, path: str | os.PathLike, overwrite: bool = False, half: bool = False) -> Path:
    """Save weights and metadata to one file, atomically.

    Parameters
    ----------
    model : Model
        The model to save.
    path : str or path
        Destination (conventionally ``*.pt``).
    overwrite : bool
        Replace an existing file.
    half : bool
        Store floating-point weights as float16 (half the size; loaded back as float32).
    """
    state = {
        k: (v.detach().cpu().half() if half and v.is_floating_point() else v.detach().cpu())
        for k, v in model.net.state_dict().items()
    }
    payload = {"metadata": json.dumps(model_metadata(model)), "state_dict": state}
    return atomic_write(path, lambda temporary: torch.save(payload, temporary), overwrite=overwrite)


def _read_payload(path: Path) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """Metadata and weights of a model file, without ever executing code from it."""
    if not path.is_file():
        raise ModelFileError(f"model file {path} does not exist")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # a damaged archive can fail in the unpickler with almost any exception type
        raise ModelFileError(f"{path} is not a napari-unet model file, or it is truncated or corrupted") from error
    if not isinstance(payload, dict) or "metadata" not in payload or "state_dict" not in payload:
        raise ModelFileError(f"{path} is a PyTorch file but not a napari-unet model")
    try:
        metadata = json.loads(payload["metadata"])
    except (TypeError, json.JSONDecodeError) as error:
        raise ModelFileError(f"{path}: the model's metadata is corrupted") from error
    if metadata.get("format") != MODEL_FORMAT:
        raise ModelFileError(f"{path} is a PyTorch file but not a napari-unet model")
    version = metadata.get("format_version", 0)
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise ModelFileError(
            f"{path} was written by napari-unet {metadata.get('package_version', '?')}, newer than this one "
            f"({__version__}); upgrade with: pip install -U napari-unet"
        )
    return metadata, payload["state_dict"]


def load_model(path: str | os.PathLike) -> Model:
    """Load a model file written by :func:`save_model`.

    Raises
    ------
    ModelFileError
        If the file is missing, truncated, not a model, from a newer version, or inconsistent.
    """
    path = Path(path)
    metadata, state = _read_payload(path)
    try:
        config = UNetConfig.from_dict(metadata["architecture"])
        net = UNet(config)
        net.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in state.items()})
        model = Model(
            net=net,
            class_names=tuple(metadata["class_names"]),
            normalization=Normalization.from_dict(metadata["normalization"]),
            history=list(metadata.get("history", [])),
            object_shape=metadata.get("object_shape", "round"),  # older files: round objects
        )
    except (KeyError, TypeError, ValueError, RuntimeError) as error:
        raise ModelFileError(f"{path}: the model file is inconsistent ({error})") from error
    net.eval()
    return model
