"""The U-Net of Ronneberger, Fischer & Brox (2015): architecture, configuration and presets."""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from napari_unet.errors import InputError
from napari_unet.models import geometry

NORMALIZATIONS = ("none", "batch", "group")
PADDINGS = ("valid", "same")


@dataclass(frozen=True)
class UNetConfig:
    """Architecture of a U-Net.

    Parameters
    ----------
    in_channels : int
        Channels of the input image (1 for a grey-value image).
    n_classes : int
        Output classes, background included (2 for background + one object class).
    depth : int
        Number of 2x2 max-pooling steps (4 in the paper).
    base_filters : int
        Filters of the first level; each level doubles them (64 -> 1024 in the paper).
    norm : {"none", "batch", "group"}
        Normalisation after each convolution. "none" is the paper's. "group" computes statistics over
        each tile, so tiled prediction then depends on the tile size; "none" and "batch" keep the
        overlap-tile strategy exact.
    padding : {"valid", "same"}
        "valid" is the paper's unpadded convolution; "same" exists for ablations.
    dropout : float
        Dropout at the end of the contracting path (the paper uses it as implicit augmentation).
    """

    in_channels: int = 1
    n_classes: int = 2
    depth: int = 3
    base_filters: int = 16
    norm: str = "batch"
    padding: str = "valid"
    dropout: float = 0.0

    def __post_init__(self) -> None:
        if self.norm not in NORMALIZATIONS:
            raise InputError(f"norm must be one of {NORMALIZATIONS}, not {self.norm!r}")
        if self.padding not in PADDINGS:
            raise InputError(f"padding must be one of {PADDINGS}, not {self.padding!r}")
        if self.depth < 1 or self.base_filters < 1 or self.in_channels < 1 or self.n_classes < 2:
            raise InputError(
                "depth, base_filters and in_channels must be positive and n_classes at least 2 "
                f"(got {self.depth}, {self.base_filters}, {self.in_channels}, {self.n_classes})"
            )

    @property
    def halo(self) -> int:
        """Context lost on each side of a tile, in pixels."""
        return geometry.halo(self.depth, self.padding)

    def output_size(self, input_size: int) -> int:
        """Output side length for an input side length."""
        return geometry.output_size(input_size, self.depth, self.padding)

    def valid_input_size(self, at_least: int) -> int:
        """Smallest valid input side length of at least ``at_least``."""
        return geometry.valid_input_size(at_least, self.depth, self.padding)

    def to_dict(self) -> dict[str, Any]:
        """Plain-dict form, for model files."""
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> UNetConfig:
        """Inverse of :meth:`to_dict`; unknown keys are an error."""
        return cls(**values)


#: Named architectures. "paper" is the 2015 network (23 convolutions, 31.0 M parameters for 2 classes).
PRESETS: dict[str, UNetConfig] = {
    "light": UNetConfig(depth=3, base_filters=16, norm="batch"),
    "standard": UNetConfig(depth=4, base_filters=32, norm="batch"),
    "paper": UNetConfig(depth=4, base_filters=64, norm="none", dropout=0.5),
}


def preset_for_device(device_type: str) -> str:
    """The preset to start from on a device: "light" on the CPU, "standard" on a GPU."""
    return "light" if device_type == "cpu" else "standard"


def preset(name: str, in_channels: int = 1, n_classes: int = 2) -> UNetConfig:
    """Architecture of a named preset for the given numbers of input channels and classes.

    Raises
    ------
    InputError
        If the preset is unknown.
    """
    if name not in PRESETS:
        raise InputError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}")
    return replace(PRESETS[name], in_channels=in_channels, n_classes=n_classes)


def _norm_layer(kind: str, channels: int) -> nn.Module:
    """The normalisation layer of a convolution block."""
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "group":
        return nn.GroupNorm(min(8, channels), channels)
    return nn.Identity()


class ConvBlock(nn.Sequential):
    """Two 3x3 convolutions, each followed by optional normalisation and a ReLU."""

    def __init__(self, in_channels: int, out_channels: int, norm: str, padding: str) -> None:
        pad = 1 if padding == "same" else 0
        bias = norm == "none"
        super().__init__(
            nn.Conv2d(in_channels, out_channels, 3, padding=pad, bias=bias),
            _norm_layer(norm, out_channels),
            nn.ReLU(inplace=True),
            nn.Conv2d(out_channels, out_channels, 3, padding=pad, bias=bias),
            _norm_layer(norm, out_channels),
            nn.ReLU(inplace=True),
        )


def center_crop(features: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Centre crop of an NCHW tensor to ``height`` x ``width`` (the paper's skip-connection crop)."""
    top = (features.shape[-2] - height) // 2
    left = (features.shape[-1] - width) // 2
    return features[..., top : top + height, left : left + width]


class UNet(nn.Module):
    """The U-Net: a contracting path, an expanding path with centre-cropped skips, and a 1x1 head.

    The forward pass returns class logits of shape (N, n_classes, H_out, W_out); with valid padding
    ``H_out = config.output_size(H_in)``.
    """

    def __init__(self, config: UNetConfig) -> None:
        super().__init__()
        self.config = config
        widths = [config.base_filters * 2**level for level in range(config.depth + 1)]
        self.down = nn.ModuleList()
        channels = config.in_channels
        for width in widths[:-1]:
            self.down.append(ConvBlock(channels, width, config.norm, config.padding))
            channels = width
        self.dropout = nn.Dropout2d(config.dropout) if config.dropout > 0 else nn.Identity()
        self.bottom = ConvBlock(channels, widths[-1], config.norm, config.padding)
        self.up = nn.ModuleList()
        self.up_blocks = nn.ModuleList()
        for width in reversed(widths[:-1]):
            self.up.append(nn.ConvTranspose2d(2 * width, width, kernel_size=2, stride=2))
            self.up_blocks.append(ConvBlock(2 * width, width, config.norm, config.padding))
        self.head = nn.Conv2d(widths[0], config.n_classes, kernel_size=1)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """He initialisation (Gaussian, std sqrt(2/N)), as in the paper."""
        for module in self.modules():
            if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
                nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
                if module.bias is not None:
                    nn.init.zeros_(module.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Class logits for a batch of images."""
        skips = []
        for block in self.down:
            x = block(x)
            skips.append(x)
            x = F.max_pool2d(x, 2)
        x = self.bottom(self.dropout(x))
        for up, block in zip(self.up, self.up_blocks, strict=True):
            x = up(x)
            skip = center_crop(skips.pop(), x.shape[-2], x.shape[-1])
            x = block(torch.cat([skip, x], dim=1))
        return self.head(x)


def count_parameters(module: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


def count_conv_layers(module: nn.Module) -> int:
    """Number of convolution and up-convolution layers (23 in the paper's network)."""
    return sum(isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)) for m in module.modules())
