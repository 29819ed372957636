"""Settings of a prediction and its result."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from napari_unet.objects.config import ObjectConfig


@dataclass(frozen=True)
class PredictConfig:
    """Settings of a prediction.

    Parameters
    ----------
    tile : int
        Largest input tile side in pixels; 0 picks one from the free memory of the device.
    batch_size : int
        Tiles per network call; 0 picks one for the device.
    device : str
        "auto", "cpu", "cuda" or "mps".
    amp : bool
        Mixed precision on GPUs.
    test_time_augmentation : bool
        Average the predictions of the 8 rotations and flips of every tile (8 times the work).
    objects : ObjectConfig
        How classes become objects.
    on_device : bool or None
        Normalise, cut tiles, stitch and take the classes on the compute device (the image goes over once,
        results come back while the next tiles compute) rather than on the host; None (default): on CUDA
        GPUs when the image fits in a quarter of the free memory. Both give the same result.
    fuse : bool or None
        Run a frozen copy of the network with each convolution, its bias or batch norm and its ReLU in one
        cuDNN kernel (see :mod:`napari_unet.models.fused_inference`); None (default): on CUDA GPUs, for networks without
        group norm.
    release_memory : bool or None
        Give the GPU memory torch cached for the job back to the driver when it ends, for napari's canvas
        and other programs (True), or keep it for the next job, which then starts sooner (False:
        ``segment_files`` does between images). None (default): give it back when it is more than a
        quarter of the card's memory or less than a quarter is free (:func:`napari_unet.devices.worth_releasing`),
        so a large card keeps it and a small one gets it back.
    """

    tile: int = 0
    batch_size: int = 0
    device: str = "auto"
    amp: bool = True
    test_time_augmentation: bool = False
    objects: ObjectConfig = field(default_factory=ObjectConfig)
    on_device: bool | None = None
    fuse: bool | None = None
    release_memory: bool | None = None


@dataclass
class Segmentation:
    """Result of :func:`segment` for one image.

    Attributes
    ----------
    classes : numpy.ndarray
        Spatial shape of the image; 0 background, k the object class painted with value k.
    objects : numpy.ndarray or None
        One id per object (0 background), unique over the whole image.
    probabilities : numpy.ndarray
        (K, *spatial shape) class probabilities, channel 0 the background.
    """

    classes: np.ndarray
    objects: np.ndarray | None
    probabilities: np.ndarray
