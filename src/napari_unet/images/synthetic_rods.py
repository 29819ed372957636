"""Synthetic phase-contrast images of densely packed, touching rod-shaped bacteria, with their true objects."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

import numpy as np
from scipy import ndimage
from skimage import measure


@dataclass(frozen=True)
class RodsConfig:
    """Parameters of the generator (the defaults give a dense colony of rods in phase contrast).

    Parameters
    ----------
    shape : (int, int)
        Image size.
    width : (float, float)
        Range of the cells' width, in pixels (one width per patch of aligned cells).
    length : (float, float)
        Range of the cells' length, in cell widths.
    coverage : float
        Share of the image covered by the colony.
    patch : float
        Typical size of a patch of aligned cells, in pixels.
    bend : float
        Waviness of the rows (the largest slope of a row; 0: straight rows and rods).
    gap : float
        Largest gap between cells end to end, in pixels (cells side by side touch).
    dividing : float
        Share of long cells with a constriction in the middle.
    contrast : float
        Darkness of the cells (phase shift, background 1).
    halo : float
        Strength of the phase halo (bright ring at the colony's edge, shade-off inside).
    halo_width : float
        Width of the halo, in pixels.
    texture : float
        Relative strength of the cells' interior texture.
    blur : float
        Gaussian blur of the optics, in pixels.
    noise : float
        Standard deviation of the Gaussian camera noise (background about 1).
    photons : float
        Photons at background brightness for shot noise (0: none).
    illumination : float
        Strength of the smooth uneven illumination.
    mode : {"phase", "brightfield"}
        Phase contrast (dark cells, bright halo) or defocused bright field (bright cells, dark outlines).
    """

    shape: tuple[int, int] = (256, 256)
    width: tuple[float, float] = (7.0, 9.0)
    length: tuple[float, float] = (2.2, 5.0)
    coverage: float = 0.6
    patch: float = 90.0
    bend: float = 0.25
    gap: float = 1.0
    dividing: float = 0.15
    contrast: float = 1.3
    halo: float = 1.0
    halo_width: float = 10.0
    texture: float = 0.08
    blur: float = 1.0
    noise: float = 0.02
    photons: float = 400.0
    illumination: float = 0.25
    mode: Literal["phase", "brightfield"] = "phase"


def random_rods_config(rng: np.random.Generator, shape: tuple[int, int] = (256, 256)) -> RodsConfig:
    """Varied settings for training: thin to wide rods, short to long, small to large patches, any image quality."""
    width = rng.uniform(5.0, 10.0)
    shortest = rng.uniform(1.8, 3.0)
    return replace(
        RodsConfig(shape=shape),
        width=(width, width * rng.uniform(1.0, 1.3)),
        length=(shortest, shortest * rng.uniform(1.5, 2.5)),
        coverage=rng.uniform(0.3, 0.9),
        patch=rng.uniform(50.0, 160.0),
        bend=rng.uniform(0.0, 0.4),
        gap=rng.uniform(0.0, 2.0),
        dividing=rng.uniform(0.0, 0.3),
        contrast=rng.uniform(0.8, 1.6),
        halo=rng.uniform(0.3, 1.3),
        halo_width=rng.uniform(5.0, 20.0),
        texture=rng.uniform(0.0, 0.2),
        blur=rng.uniform(0.5, 2.0),
        noise=rng.uniform(0.005, 0.06),
        photons=float(rng.choice([0.0, rng.uniform(50, 1000)])),
        illumination=rng.uniform(0.0, 0.5),
        mode="brightfield" if rng.random() < 0.2 else "phase",
    )


def _smooth_noise(shape: tuple[int, int], scale: float, rng: np.random.Generator) -> np.ndarray:
    """Smooth random field of unit spread whose features are about ``scale`` pixels (smoothed coarse noise)."""
    step = max(scale / 2, 1.0)
    coarse = ndimage.gaussian_filter(rng.normal(size=(int(shape[0] / step) + 2, int(shape[1] / step) + 2)), 1.0)
    zoomed = ndimage.zoom(coarse, step, order=1, grid_mode=False)[: shape[0], : shape[1]]
    return ((zoomed - zoomed.mean()) / (zoomed.std() + 1e-6)).astype(np.float32)


def _patches(config: RodsConfig, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The colony (a smooth blob), each pixel's patch and next patch (a Voronoi partition with wobbly borders)."""
    h, w = config.shape
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    centre = np.array([h, w]) * rng.uniform(0.4, 0.6, 2)
    radial = -np.hypot((yy - centre[0]) / h, (xx - centre[1]) / w)
    blob = radial + 0.08 * _smooth_noise(config.shape, max(h, w) / 4, rng)
    colony = blob >= np.quantile(blob, 1.0 - config.coverage)
    seeds = rng.uniform(0, 1, (max(2, round(h * w / config.patch**2)), 2)) * (h, w)
    half = ((h + 1) // 2, (w + 1) // 2)  # the partition on every other pixel, for speed
    warp = 0.25 * config.patch * np.stack([_smooth_noise(half, config.patch / 4, rng) for _ in range(2)])
    wy, wx = warp + np.mgrid[0 : half[0], 0 : half[1]].astype(np.float32) * 2 + 0.5
    patch, second = np.zeros(half, dtype=np.intp), np.zeros(half, dtype=np.intp)
    nearest, next_nearest = np.full((2, *half), np.inf, dtype=np.float32)
    for index, (y, x) in enumerate(seeds):
        distance = (wy - y) ** 2 + (wx - x) ** 2
        closest, closer = distance < nearest, distance < next_nearest
        second = np.where(closest, patch, np.where(closer, index, second))
        next_nearest = np.where(closest, nearest, np.minimum(distance, next_nearest))
        nearest, patch = np.where(closest, distance, nearest), np.where(closest, index, patch)
    full = (np.repeat(np.repeat(p, 2, axis=0), 2, axis=1)[:h, :w] for p in (patch, second))
    return colony, *full


@dataclass(frozen=True)
class _Cells:
    """The rows of each patch (width, angle, waves), and every cell of every row, flat (start, length, radius ...)."""

    width: np.ndarray
    angle: np.ndarray
    wavelength: np.ndarray
    wave: np.ndarray
    shift: np.ndarray
    start: np.ndarray
    length: np.ndarray
    radius: np.ndarray
    constriction: np.ndarray
    slots: int
    rows: int


def _cells(config: RodsConfig, n: int, rng: np.random.Generator) -> _Cells:
    """Random rows for ``n`` patches; cell lengths, end gaps, radii and constrictions along rows crossing the image."""
    width = rng.uniform(*config.width, n)
    rows_of = (width, rng.uniform(0, np.pi, n), rng.uniform(3.0, 7.0, n) * np.mean(config.length) * width)
    half = np.hypot(*config.shape) / 2 + config.bend * rows_of[2].max() / 4
    rows = 2 * int(half / config.width[0] + 3)
    longest = config.length[1] * config.width[1] + config.gap
    slots = int(np.ceil((2 * half + longest) / (config.length[0] * config.width[0]))) + 2
    size = (n, rows, slots)
    ratio = rng.uniform(*config.length, size)
    length = ratio * width[:, None, None]
    slot = length + rng.uniform(0.0, config.gap, size)
    start = np.cumsum(slot, axis=-1) - slot - half - rng.uniform(0, longest, size[:2])[..., None]
    radius = width[:, None, None] / 2 * rng.uniform(0.96, 1.0, size)
    dividing = (ratio > np.mean(config.length)) & (rng.random(size) < 2 * config.dividing)
    constriction = np.where(dividing, rng.uniform(0.2, 0.45, size), 0.0)
    flat = [array.reshape(-1) for array in (start, length, radius, constriction)]
    return _Cells(*rows_of, rng.uniform(0, 2 * np.pi, n), rng.uniform(0, 1, n), *flat, slots=slots, rows=rows)


def _rows(
    config: RodsConfig, cells: _Cells, patch: np.ndarray, yy: np.ndarray, xx: np.ndarray
) -> tuple[np.ndarray, ...]:
    """The row, position along the row and distance across it of pixels (yy, xx), in the wavy rows of their patch."""
    yy, xx = yy - config.shape[0] / 2, xx - config.shape[1] / 2
    cos, sin = np.cos(cells.angle)[patch], np.sin(cells.angle)[patch]
    width, amplitude = cells.width[patch], (config.bend * cells.wavelength / (2 * np.pi))[patch]
    along = xx * cos + yy * sin
    wave = along * (2 * np.pi / cells.wavelength)[patch] + cells.wave[patch]
    across = yy * cos - xx * sin + amplitude * np.sin(wave) + (cells.shift * cells.width)[patch]
    band = np.floor(across / width)
    offset = (across - (band + 0.5) * width) / np.sqrt(1 + (config.bend * np.cos(wave)) ** 2)
    return patch * cells.rows + band.astype(np.intp) + cells.rows // 2, along, offset


def _rasterise(config: RodsConfig, cells: _Cells, patch: np.ndarray, pixels: np.ndarray) -> tuple[np.ndarray, ...]:
    """Cell ids (0 outside cells, else 1 + index in ``cells``) and normalised radius (0 on the axis, 1 outline)."""
    yy, xx = np.divmod(pixels, config.shape[1])
    row, along, offset = _rows(config, cells, patch[pixels], yy.astype(np.float32), xx.astype(np.float32))
    span = 4.0 * (np.abs(cells.start).max() + 1)
    keys = cells.start + np.repeat(np.arange(len(cells.start) // cells.slots), cells.slots) * span
    cell = np.searchsorted(keys, along + row * span, side="right") - 1
    length, radius = cells.length[cell], cells.radius[cell]
    centre = along - (cells.start[cell] + length / 2)
    axial = np.maximum(np.abs(centre) - (length / 2 - radius), 0.0)
    radius = radius * (1 - cells.constriction[cell] * np.exp(-((centre / (0.6 * radius)) ** 2)))
    rho = (np.sqrt(axial**2 + offset**2) / radius).astype(np.float32)
    return np.where(rho < 1.0, cell + 1, 0), rho


def _choose(config: RodsConfig, cells: _Cells, colony: np.ndarray, patches: tuple[np.ndarray, np.ndarray]):
    """Cell ids and radius: the cells of each pixel's patch, gaps filled by the next patch's; cut cells left out.

    The next patch's cells are drawn only where they may show: in gaps, and over cells cut by a patch border.
    """
    full = np.concatenate([[np.inf], np.pi * cells.radius**2 + (cells.length - 2 * cells.radius) * 2 * cells.radius])
    cell, rho = _rasterise(config, cells, patches[0].ravel(), np.arange(colony.size))
    cut = np.bincount(cell, minlength=len(full)) < 0.9 * full
    redo = np.flatnonzero(cut[cell])
    second, rho_second = _rasterise(config, cells, patches[1].ravel(), redo)
    first = cell[redo]
    cell[redo] = np.where(first > 0, first, second)
    area = np.bincount(cell, minlength=len(full))
    keep = (np.bincount(cell, weights=colony.ravel(), minlength=len(full)) >= 0.5 * area) & (area >= 0.55 * full)
    cell[redo] = np.where(keep[first], first, np.where(keep[second], second, 0))
    rho[redo] = np.where(keep[first], rho[redo], rho_second)
    cell = np.where(keep[cell], cell, 0)
    return cell.reshape(colony.shape), rho.reshape(colony.shape)


def _largest_pieces(cell: np.ndarray) -> np.ndarray:
    """Instance ids 1..n of the cells, each its largest connected piece."""
    pieces = measure.label(cell, connectivity=1)
    owner = np.zeros(pieces.max() + 1, dtype=np.intp)
    owner[pieces.ravel()] = cell.ravel()
    order = np.lexsort((np.bincount(pieces.ravel()), owner))
    largest = np.zeros(len(owner), dtype=bool)
    largest[order[np.r_[owner[order][1:] != owner[order][:-1], True]]] = True
    largest[0] = False
    lookup = np.zeros(len(owner), dtype=np.int32)
    lookup[largest] = np.searchsorted(np.unique(owner[largest]), owner[largest]) + 1
    return lookup[pieces]


def _optics(thickness: np.ndarray, config: RodsConfig) -> np.ndarray:
    """Phase contrast (dark cells, bright gaps and halo) or defocused bright field of the cells' thickness.

    Phase contrast subtracts the (blurred) phase shift and adds back its low frequencies, which the phase
    ring does not shift: a halo outside the colony, and shade-off inside. Exponentials keep light positive.
    """
    sharp = ndimage.gaussian_filter(thickness, config.blur) if config.blur > 0 else thickness
    if config.mode == "brightfield":
        outline = sharp - ndimage.gaussian_filter(thickness, config.blur + 2.0)
        return np.exp(config.contrast * (outline - 0.1 * sharp))
    return np.exp(config.halo * ndimage.gaussian_filter(thickness, config.halo_width) - config.contrast * sharp)


def synthetic_rods(config: RodsConfig = RodsConfig(), seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A synthetic phase-contrast image of a dense colony of rod-shaped bacteria, and its true objects.

    Parameters
    ----------
    config : RodsConfig
        Parameters of the generator.
    seed : int
        Seed of the random numbers: the same seed gives the same image and objects.

    Returns
    -------
    image : numpy.ndarray of uint16
        The image (background about 2000, cells darker, halo brighter).
    instances : numpy.ndarray of int32
        0 background, 1..n one id per cell (each one connected piece; touching cells share a border).

    Notes
    -----
    A colony of capsule-shaped rods (E. coli, B. subtilis on an agar pad). The colony is a smooth blob split
    into patches of aligned cells (a Voronoi partition with wobbly borders); in each patch the cells lie in
    gently wavy rows one cell width apart, so that cells touch their neighbours along their long sides, and
    each row is cut into cells of random length that touch, or nearly, end to end. Cells cut by a patch
    border keep a flat end, grow into the next patch's gaps, or are left out when too short; some long cells
    are dividing (a constriction in the middle). Phase contrast subtracts each cell's optical thickness (a
    cylinder with round caps) and adds back its low frequencies: dark cells, faintly bright lines between
    them, a bright halo around the colony; then texture, blur, uneven illumination, shot and camera noise.
    """
    rng = np.random.default_rng(seed)
    colony, patch, second = _patches(config, rng)
    cells = _cells(config, int(max(patch.max(), second.max())) + 1, rng)
    cell, rho = _choose(config, cells, colony, (patch, second))
    instances = _largest_pieces(cell)
    n = int(instances.max())
    inside = instances > 0
    texture = ndimage.gaussian_filter(rng.normal(size=config.shape), 1.0).astype(np.float32)
    texture /= texture.std() + 1e-6
    density = np.concatenate([[0.0], rng.uniform(0.85, 1.0, n)]).astype(np.float32)
    thickness = np.zeros(config.shape, dtype=np.float32)
    thickness[inside] = (
        density[instances[inside]] * (1 - rho[inside] ** 2) ** 0.25 * (1 + config.texture * texture[inside])
    )
    image = _optics(thickness, config)
    yy, xx = np.mgrid[0 : config.shape[0], 0 : config.shape[1]] / max(config.shape)
    phase = rng.uniform(0, 2 * np.pi, 2)
    image = image * (1.0 + config.illumination * 0.5 * (np.sin(2.5 * yy + phase[0]) + np.cos(2.0 * xx + phase[1])))
    if config.photons > 0:
        image = rng.poisson(np.clip(image, 0, None) * config.photons) / config.photons
    image = image + rng.normal(0.0, config.noise, config.shape)
    return np.clip(image * 2000 + 100, 0, 65535).astype(np.uint16), instances
