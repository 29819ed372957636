"""A trained U-Net together with everything needed to use it: classes, normalisation, history."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from napari_unet.errors import InputError
from napari_unet.images.normalization import Normalization
from napari_unet.models.unet import UNet, UNetConfig, preset
from napari_unet.objects.config import OBJECT_SHAPES

#: The name of output channel 0 (annotation value 1) in every model.
BACKGROUND_NAME = "background"


@dataclass
class Model:
    """A U-Net with its metadata; the unit that is trained, saved, loaded and used for prediction.

    Output channel ``i`` of the network is annotation value ``i + 1``: channel 0 is the background
    (annotation 1) and channel ``k`` the object class painted with value ``k + 1``.

    Attributes
    ----------
    net : UNet
        The network (on the CPU between jobs).
    class_names : tuple of str
        One name per output channel, ``class_names[0] == "background"``.
    normalization : Normalization
        Input normalisation applied before the network.
    history : list of dict
        One entry per training session (steps, final losses, device, date ...).
    object_shape : str
        The kind of objects its classes are (a key of :data:`napari_unet.objects.config.OBJECT_SHAPES`): what
        Segment and ``napari-unet predict`` make of them unless told otherwise. Saved with the model, so
        that a model for packed cells in EM keeps segmenting packed cells.
    """

    net: UNet
    class_names: tuple[str, ...]
    normalization: Normalization = field(default_factory=Normalization)
    history: list[dict[str, Any]] = field(default_factory=list)
    object_shape: str = "round"

    def __post_init__(self) -> None:
        if len(self.class_names) != self.config.n_classes:
            raise InputError(f"{len(self.class_names)} class names for a network with {self.config.n_classes} outputs")
        if self.object_shape not in OBJECT_SHAPES:
            raise InputError(f"unknown object shape {self.object_shape!r}, not one of {', '.join(OBJECT_SHAPES)}")

    @property
    def config(self) -> UNetConfig:
        """Architecture of the network."""
        return self.net.config

    @property
    def in_channels(self) -> int:
        """Input channels the network expects."""
        return self.config.in_channels

    @property
    def n_classes(self) -> int:
        """Output classes, background included."""
        return self.config.n_classes

    @property
    def object_classes(self) -> dict[int, str]:
        """Annotation value -> name of every object class (values 2, 3, ...)."""
        return {i + 1: name for i, name in enumerate(self.class_names) if i > 0}

    @property
    def trained_steps(self) -> int:
        """Optimisation steps over all training sessions."""
        return sum(int(entry.get("steps", 0)) for entry in self.history)

    def describe(self) -> str:
        """A few lines that say what the model is."""
        cfg = self.config
        n_params = sum(p.numel() for p in self.net.parameters())
        lines = [
            f"U-Net depth {cfg.depth}, {cfg.base_filters} base filters, norm {cfg.norm}, "
            f"{cfg.padding} convolutions, {n_params / 1e6:.2f} M parameters",
            f"input channels: {cfg.in_channels}; halo {cfg.halo} px",
            f"classes: {', '.join(f'{i + 1}={n}' for i, n in enumerate(self.class_names))}",
            f"normalisation: percentiles {self.normalization.low} - {self.normalization.high}",
            f"objects: {self.object_shape} ({OBJECT_SHAPES[self.object_shape][0]})",
            f"trained: {self.trained_steps} steps in {len(self.history)} session(s)",
        ]
        for entry in self.history:
            summary = ", ".join(f"{k} {v}" for k, v in entry.items() if not isinstance(v, (list, dict)))
            lines.append(f"  - {summary}")
        return "\n".join(lines)


def new_model(
    preset_name: str = "light",
    class_names: tuple[str, ...] | list[str] = ("object",),
    in_channels: int = 1,
    normalization: Normalization | None = None,
    seed: int | None = None,
    **overrides: Any,
) -> Model:
    """An untrained model from a preset.

    Parameters
    ----------
    preset_name : str
        "light" (CPU), "standard" (GPU) or "paper" (the 2015 network).
    class_names : sequence of str
        Names of the object classes (annotation values 2, 3, ...); the background is added.
    in_channels : int
        Channels of the input images.
    normalization : Normalization, optional
        Input normalisation (1st-99.8th percentile by default).
    seed : int, optional
        Seed for the weight initialisation.
    **overrides
        Architecture fields to change (depth, base_filters, norm, padding, dropout).
    """
    names = tuple(class_names)
    if not names or BACKGROUND_NAME in names:
        raise InputError("give at least one object class name; the background class is implicit")
    config = preset(preset_name, in_channels=in_channels, n_classes=len(names) + 1)
    if overrides:
        config = UNetConfig(**{**config.to_dict(), **overrides})
    if seed is not None:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            net = UNet(config)
    else:
        net = UNet(config)
    net.eval()
    return Model(net=net, class_names=(BACKGROUND_NAME, *names), normalization=normalization or Normalization())
