"""napari-unet: train and use U-Nets on microscopy images, in napari or headless.

The package is organised by stage of the data flow (``images``, ``models``, ``objects``, ``predict``,
``train``, ``blockwise``; docs/architecture.md); only ``_widgets``, ``_reader``, ``_writer``,
``_sample_data`` and ``_launch`` import napari or Qt. The public API below is imported on first use, so
that ``import napari_unet`` (or one of its modules, say a configuration) loads only what is used: the
block-wise API (``segment_lazy``, ``open_lazy``, ``LazySegmentation``) needs dask, and training and
in-memory prediction also run where dask is not installed (a bare GPU machine, say).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from napari_unet._version import __version__

#: Public name -> the module that defines it.
_PUBLIC = {
    "BlockConfig": "blockwise.config",
    "LazySegmentation": "blockwise.blocks",
    "segment_lazy": "blockwise.blocks",
    "InputError": "errors",
    "ModelFileError": "errors",
    "NapariUNetError": "errors",
    "TrainingError": "errors",
    "read_image": "images.files",
    "write_labels": "images.files",
    "open_lazy": "images.lazy",
    "Normalization": "images.normalization",
    "resolve_model": "models.choice",
    "load_model": "models.files",
    "save_model": "models.files",
    "Model": "models.model",
    "new_model": "models.model",
    "load_starting_model": "models.starting",
    "PRESETS": "models.unet",
    "UNet": "models.unet",
    "UNetConfig": "models.unet",
    "ObjectConfig": "objects.config",
    "PredictConfig": "predict.config",
    "Segmentation": "predict.config",
    "iter_segment": "predict.segment",
    "predict_probabilities": "predict.segment",
    "segment": "predict.segment",
    "drain": "progress",
    "add_corrections": "train.annotations",
    "annotation_from_labels": "train.annotations",
    "AugmentConfig": "train.augment",
    "TrainConfig": "train.config",
    "TrainProgress": "train.config",
    "fit": "train.fit",
}

if TYPE_CHECKING:  # what static tools see; at run time each name is imported on first use
    from napari_unet.blockwise.blocks import LazySegmentation, segment_lazy
    from napari_unet.blockwise.config import BlockConfig
    from napari_unet.errors import InputError, ModelFileError, NapariUNetError, TrainingError
    from napari_unet.images.files import read_image, write_labels
    from napari_unet.images.lazy import open_lazy
    from napari_unet.images.normalization import Normalization
    from napari_unet.models.choice import resolve_model
    from napari_unet.models.files import load_model, save_model
    from napari_unet.models.model import Model, new_model
    from napari_unet.models.starting import load_starting_model
    from napari_unet.models.unet import PRESETS, UNet, UNetConfig
    from napari_unet.objects.config import ObjectConfig
    from napari_unet.predict.config import PredictConfig, Segmentation
    from napari_unet.predict.segment import iter_segment, predict_probabilities, segment
    from napari_unet.progress import drain
    from napari_unet.train.annotations import add_corrections, annotation_from_labels
    from napari_unet.train.augment import AugmentConfig
    from napari_unet.train.config import TrainConfig, TrainProgress
    from napari_unet.train.fit import fit


def __getattr__(name: str):
    """Import a public name on first use (and keep it, so the next use costs nothing)."""
    if name in _PUBLIC:
        value = getattr(importlib.import_module(f"{__name__}.{_PUBLIC[name]}"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    """The module's names, the public API included before it is imported."""
    return sorted({*globals(), *_PUBLIC})


__all__ = [
    "PRESETS",
    "AugmentConfig",
    "BlockConfig",
    "InputError",
    "LazySegmentation",
    "Model",
    "ModelFileError",
    "NapariUNetError",
    "Normalization",
    "ObjectConfig",
    "PredictConfig",
    "Segmentation",
    "TrainConfig",
    "TrainProgress",
    "TrainingError",
    "UNet",
    "UNetConfig",
    "__version__",
    "add_corrections",
    "annotation_from_labels",
    "drain",
    "fit",
    "iter_segment",
    "load_model",
    "load_starting_model",
    "new_model",
    "open_lazy",
    "predict_probabilities",
    "read_image",
    "resolve_model",
    "save_model",
    "segment",
    "segment_lazy",
    "write_labels",
]
