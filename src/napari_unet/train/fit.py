"""Training from sparse annotations: ``fit`` is a generator of progress records that can stop at any step."""

from __future__ import annotations

from collections.abc import Generator, Sequence

import numpy as np

from napari_unet import devices
from napari_unet.errors import TrainingError
from napari_unet.models.model import Model
from napari_unet.train.config import TrainConfig, TrainProgress, learning_rate_at
from napari_unet.train.data import TrainingData, prepare_training_data
from napari_unet.train.loop import TrainingRun
from napari_unet.train.patches import patch_geometry

__all__ = ["TrainConfig", "TrainProgress", "fit", "learning_rate_at", "patch_geometry", "prepare"]


def prepare(
    model: Model,
    images: Sequence[np.ndarray],
    annotations: Sequence[np.ndarray] | None,
    config: TrainConfig = TrainConfig(),
    channel_axis: int | None = None,
) -> TrainingData:
    """Check and prepare images and annotations for :func:`fit` with the settings of ``config``.

    Raises
    ------
    InputError, TrainingError
        If the data cannot be used (nothing painted, one class only, shapes differ ...).
    """
    if annotations is None:
        raise TrainingError("annotations are missing: give one label image per image")
    return prepare_training_data(
        images,
        annotations,
        model.in_channels,
        model.n_classes,
        model.normalization,
        val_fraction=config.val_fraction,
        class_balance=config.class_balance,
        border_w0=config.border_w0,
        border_sigma=config.border_sigma,
        channel_axis=channel_axis,
        seed=config.seed,
    )


def fit(
    model: Model,
    images: Sequence[np.ndarray] | TrainingData,
    annotations: Sequence[np.ndarray] | None = None,
    config: TrainConfig = TrainConfig(),
    channel_axis: int | None = None,
) -> Generator[TrainProgress, None, Model]:
    """Train ``model`` in place on images with sparse annotations, yielding a record after every step.

    Stop at any time by leaving the loop (or ``close()``-ing the generator): the model keeps what it
    has learned, is back on the CPU in eval mode, and the run is recorded in ``model.history``.

    Parameters
    ----------
    model : Model
        The model to train (new, or loaded for fine-tuning).
    images : sequence of numpy.ndarray or TrainingData
        Images (any layout the model accepts), or data already made by :func:`prepare`.
    annotations : sequence of numpy.ndarray
        One label image per image: 0 unlabelled, 1 background, 2.. object classes.
    config : TrainConfig
        Settings of the run.
    channel_axis : int, optional
        Channel axis of multichannel images.

    Yields
    ------
    TrainProgress
        After every step; the last one has ``done=True``.

    Returns
    -------
    Model
        The same model, trained.

    Raises
    ------
    InputError, TrainingError
        If the data cannot be used (nothing painted, one class only, shapes differ ...).
    """
    data = images if isinstance(images, TrainingData) else prepare(model, images, annotations, config, channel_axis)
    device = devices.select_device(config.device)
    run = TrainingRun(model, data, config, device)
    try:
        yield from run.steps()
    finally:
        run.finish()
    return model
