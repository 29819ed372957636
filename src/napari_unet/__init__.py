"""napari-unet: train and use U-Nets on microscopy images, in napari or headless.

The core (this package minus ``_widgets``, ``_writer``, ``_sample_data``) never imports napari or Qt.
The block-wise API (``segment_lazy``, ``open_lazy``, ``BlockConfig``, ``LazySegmentation``) loads dask
when first used, so that training and in-memory prediction also run where dask is not installed (a
bare GPU machine, say).
"""

from __future__ import annotations

__version__ = "0.1.0"

from .augment import AugmentConfig
from .bundle import Model, new_model
from .errors import InputError, ModelFileError, NapariUNetError, TrainingError
from .io import load_model, read_image, save_model, write_labels
from .model import PRESETS, UNet, UNetConfig
from .normalize import Normalization
from .objects import ObjectConfig
from .predict import PredictConfig, Segmentation, iter_segment, predict_probabilities, segment
from .progress import drain
from .starting import load_starting_model, resolve_model
from .train import TrainConfig, TrainProgress, fit

#: Names of the block-wise API and the modules that define them (which import dask).
_LAZY = {
    "BlockConfig": "blockwise",
    "LazySegmentation": "blockwise",
    "segment_lazy": "blockwise",
    "open_lazy": "lazy_io",
}


def __getattr__(name: str):
    """Import the block-wise API on first use."""
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


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
