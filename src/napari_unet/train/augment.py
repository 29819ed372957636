"""Data augmentation on the training device, batched: the paper's elastic deformation and the usual others.

Elastic deformation follows the paper: random displacement vectors on a coarse 3x3 grid, drawn from a
Gaussian with a standard deviation of 10 pixels, interpolated bicubically to a per-pixel displacement
field. It is composed with a random rotation, flips, a small scaling and a shift into one sampling grid,
so each batch is resampled once. Images are interpolated bilinearly; annotations with nearest neighbour,
so class values and the unlabelled value 0 survive, and whatever comes from outside the patch is
unlabelled.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch.nn import functional as F

from napari_unet.devices import to_device


@dataclass(frozen=True)
class AugmentConfig:
    """Random transformations applied to every training patch.

    Parameters
    ----------
    strength : float
        Scales every geometric and grey-value range at once (0 switches augmentation off).
    elastic_sigma : float
        Standard deviation of the coarse-grid displacements, in pixels (10 in the paper; 0 disables).
    elastic_grid : int
        Points per side of the coarse displacement grid (3 in the paper).
    rotate : bool
        Random rotation by any angle.
    flip : bool
        Random horizontal and vertical flips.
    scale : float
        Largest relative zoom in or out (0.1 means 0.9x to 1.1x).
    shift : float
        Largest shift in pixels on top of the random patch position.
    contrast : float
        Largest relative change of contrast.
    brightness : float
        Largest offset added to the normalised grey values.
    noise : float
        Largest standard deviation of added Gaussian noise (normalised grey values).
    """

    strength: float = 1.0
    elastic_sigma: float = 10.0
    elastic_grid: int = 3
    rotate: bool = True
    flip: bool = True
    scale: float = 0.1
    shift: float = 8.0
    contrast: float = 0.3
    brightness: float = 0.15
    noise: float = 0.05

    def to_dict(self) -> dict[str, Any]:
        """Plain-dict form."""
        return asdict(self)


def _uniform(n: int, low: float, high: float, gen: torch.Generator) -> torch.Tensor:
    return low + (high - low) * torch.rand(n, generator=gen)


def affine_matrices(
    batch: int,
    out_shape: tuple[int, int],
    in_shape: tuple[int, int],
    config: AugmentConfig,
    gen: torch.Generator,
) -> torch.Tensor:
    """Random affine maps (B, 2, 3) for ``affine_grid``: rotation, flips, zoom and shift.

    The maps work in pixel units around the centre, so the output (``out_shape``) looks at the central
    part of a larger input (``in_shape``) without stretching, whatever the aspect ratio.
    """
    s = config.strength
    angle = _uniform(batch, -math.pi, math.pi, gen) if config.rotate and s > 0 else torch.zeros(batch)
    zoom = 1.0 + _uniform(batch, -config.scale * s, config.scale * s, gen)
    flips = torch.ones(batch, 2)
    if config.flip and s > 0:
        flips = torch.where(torch.rand(batch, 2, generator=gen) < 0.5, -1.0, 1.0)
    cos, sin = torch.cos(angle) / zoom, torch.sin(angle) / zoom
    (oh, ow), (ih, iw) = out_shape, in_shape
    half_out = torch.tensor([max(ow - 1, 1) / 2, max(oh - 1, 1) / 2])
    to_in = torch.tensor([2 / max(iw - 1, 1), 2 / max(ih - 1, 1)])
    rotation = torch.stack([torch.stack([cos, -sin], -1), torch.stack([sin, cos], -1)], -2)
    matrix = torch.zeros(batch, 2, 3)
    matrix[:, :, :2] = to_in[None, :, None] * rotation * (flips * half_out)[:, None, :]
    shift = config.shift * s
    matrix[:, :, 2] = _uniform(2 * batch, -shift, shift, gen).view(batch, 2) * to_in
    return matrix


def elastic_field(
    batch: int,
    out_shape: tuple[int, int],
    in_shape: tuple[int, int],
    config: AugmentConfig,
    gen: torch.Generator,
    device: torch.device | None = None,
) -> torch.Tensor:
    """Displacement field (B, H, W, 2) in the input's normalised units: coarse Gaussian grid, bicubic.

    The coarse grid is drawn on the CPU (``gen``) and interpolated on ``device`` (the CPU if None).
    """
    sigma = config.elastic_sigma * config.strength
    coarse = torch.randn(batch, 2, config.elastic_grid, config.elastic_grid, generator=gen) * sigma
    if device is not None:
        coarse = to_device(coarse, device)
    field = F.interpolate(coarse, size=out_shape, mode="bicubic", align_corners=True)
    field[:, 0] *= 2.0 / max(in_shape[1] - 1, 1)
    field[:, 1] *= 2.0 / max(in_shape[0] - 1, 1)
    return field.permute(0, 2, 3, 1)


def affine_grid(matrices: torch.Tensor, out_shape: tuple[int, int]) -> torch.Tensor:
    """``F.affine_grid(matrices, (B, 1, *out_shape), align_corners=True)`` from elementwise products.

    No matrix product, so no cuBLAS call on a GPU (whose workspace would stay allocated for good).
    """
    axes = [
        torch.linspace(-1.0, 1.0, n, device=matrices.device) if n > 1 else torch.zeros(1, device=matrices.device)
        for n in out_shape
    ]
    y, x = axes[0][None, :, None, None], axes[1][None, None, :, None]
    m = matrices[:, None, None]  # (B, 1, 1, 2, 3)
    return m[..., 0] * x + m[..., 1] * y + m[..., 2]


def sampling_grid(
    batch: int,
    out_shape: tuple[int, int],
    in_shape: tuple[int, int],
    config: AugmentConfig,
    gen: torch.Generator,
    device: torch.device | None = None,
) -> torch.Tensor:
    """One sampling grid (B, H, W, 2) for ``grid_sample`` combining the affine map and the elastic field.

    The random parameters come from ``gen`` on the CPU; the grid itself is made on ``device`` (the CPU if
    None), so that only the few parameters travel to a GPU and the host does not compute the grid.
    """
    matrices = affine_matrices(batch, out_shape, in_shape, config, gen)
    if device is None or device.type == "cpu":
        grid = F.affine_grid(matrices, [batch, 1, *out_shape], align_corners=True)
    else:
        grid = affine_grid(to_device(matrices, device), out_shape)
    if config.elastic_sigma > 0 and config.strength > 0:
        grid = grid + elastic_field(batch, out_shape, in_shape, config, gen, device)
    return grid


def augment_intensity(
    images: torch.Tensor,
    config: AugmentConfig,
    gen: torch.Generator,
    noise_gen: torch.Generator | None = None,
) -> torch.Tensor:
    """Random contrast, brightness and Gaussian noise per image and channel (normalised grey values).

    ``noise_gen`` draws the noise itself on the images' device (``gen`` when that is the CPU).
    """
    if config.strength <= 0:
        return images
    b, c = images.shape[:2]
    s = config.strength
    contrast = (1.0 + _uniform(b * c, -config.contrast * s, config.contrast * s, gen)).view(b, c, 1, 1)
    offset = _uniform(b * c, -config.brightness * s, config.brightness * s, gen).view(b, c, 1, 1)
    noise_std = _uniform(b * c, 0.0, config.noise * s, gen).view(b, c, 1, 1)
    device = images.device
    mean = images.mean(dim=(-2, -1), keepdim=True)
    noise = torch.randn(images.shape, generator=noise_gen or gen, device=device, dtype=images.dtype)
    contrast, offset, noise_std = (to_device(t, device) for t in (contrast, offset, noise_std))
    return (images - mean) * contrast + mean + offset + noise * noise_std


def augment_batch(
    images: torch.Tensor,
    labels: torch.Tensor,
    weights: torch.Tensor,
    config: AugmentConfig,
    gen: torch.Generator,
    out_shape: tuple[int, int] | None = None,
    noise_gen: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Apply one random transformation per sample to images, annotations and weight maps alike.

    Parameters
    ----------
    images : torch.Tensor
        (B, C, H, W) float images on the training device.
    labels : torch.Tensor
        (B, H, W) annotation values (any integer or float dtype).
    weights : torch.Tensor
        (B, H, W) per-pixel loss weights.
    config : AugmentConfig
        Ranges of the transformations.
    gen : torch.Generator
        CPU generator for the random parameters (reproducible whatever the device).
    out_shape : (int, int), optional
        Size of the result, taken around the centre of the inputs; the margin gives rotations and
        deformations real image content to pull in. Defaults to the input size.
    noise_gen : torch.Generator, optional
        Generator on the images' device for the pixel noise; needed when that is not the CPU.

    Returns
    -------
    tuple of torch.Tensor
        Transformed images (float), labels (same dtype as given) and weights.
    """
    b, _, h, w = images.shape
    out_shape = out_shape or (h, w)
    if config.strength <= 0:
        crop = (
            slice((h - out_shape[0]) // 2, (h - out_shape[0]) // 2 + out_shape[0]),
            slice((w - out_shape[1]) // 2, (w - out_shape[1]) // 2 + out_shape[1]),
        )
        return images[(..., *crop)], labels[(..., *crop)], weights[(..., *crop)]
    on_gpu = images.device.type == "cuda"  # there the grid is made from a few random numbers sent over
    grid = sampling_grid(b, out_shape, (h, w), config, gen, images.device if on_gpu else None)
    grid = grid.to(images.device, images.dtype)
    warped = F.grid_sample(images, grid, mode="bilinear", padding_mode="reflection", align_corners=True)
    lab = F.grid_sample(
        labels[:, None].to(images.dtype), grid, mode="nearest", padding_mode="zeros", align_corners=True
    )
    wts = F.grid_sample(
        weights[:, None].to(images.dtype), grid, mode="bilinear", padding_mode="zeros", align_corners=True
    )
    new_labels = lab[:, 0].round().to(labels.dtype)
    return augment_intensity(warped, config, gen, noise_gen), new_labels, wts[:, 0]
