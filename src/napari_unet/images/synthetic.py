"""Synthetic fluorescence images of nuclei and cells with touching clusters, with their true objects.

Used for the small sample image, for tests, and as the only training data of the shipped starting model,
so that the real images stay clean for evaluation. Each object is a star-shaped blob (an ellipse with a
wavy outline) with a textured, centre-bright interior and optional bright spots; touching objects share
a border where their shapes meet; the image gets optical blur, out-of-focus blobs, debris, uneven
illumination, shot and camera noise, and optionally inverted contrast. :func:`random_config` draws
varied settings for training.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
from scipy import ndimage

Blob = tuple[float, float, float, float, float]


@dataclass(frozen=True)
class SyntheticConfig:
    """Parameters of the generator (the defaults give clean, round nuclei).

    Parameters
    ----------
    shape : (int, int)
        Image size.
    density : float
        Share of the image covered by objects (roughly).
    radius : (float, float)
        Range of the objects' larger semi-axis, in pixels.
    touching : float
        Probability that a new object is placed against an existing one.
    blur : float
        Gaussian blur of the optics, in pixels.
    noise : float
        Standard deviation of the Gaussian camera noise (signal range about 0..1).
    illumination : float
        Strength of the smooth uneven illumination.
    dark_objects : bool
        Dark objects on a bright background (inverted contrast).
    irregularity : float
        Relative amplitude of the wavy outline (0: ellipses).
    texture : float
        Relative strength of the interior texture.
    spots : float
        Mean number of bright spots (nucleoli, foci) per object.
    brightness : (float, float)
        Range of the objects' brightness.
    debris : float
        Small bright specks per 10,000 pixels (not objects).
    out_of_focus : float
        Large dim blurred blobs per 100,000 pixels (not objects).
    photons : float
        Photons at brightness 1 for shot noise (0: none).
    """

    shape: tuple[int, int] = (256, 256)
    density: float = 0.25
    radius: tuple[float, float] = (7.0, 14.0)
    touching: float = 0.4
    blur: float = 1.0
    noise: float = 0.04
    illumination: float = 0.3
    dark_objects: bool = False
    irregularity: float = 0.0
    texture: float = 0.12
    spots: float = 0.0
    brightness: tuple[float, float] = (0.4, 1.0)
    debris: float = 0.0
    out_of_focus: float = 0.0
    photons: float = 0.0


def random_config(rng: np.random.Generator, shape: tuple[int, int] = (256, 256)) -> SyntheticConfig:
    """Varied settings for training: small to large nuclei or confluent cells, any quality of image."""
    cells = rng.random() < 0.25
    small = rng.uniform(4.0, 9.0) if not cells else rng.uniform(12.0, 20.0)
    return replace(
        SyntheticConfig(shape=shape),
        density=rng.uniform(0.1, 0.35) if not cells else rng.uniform(0.35, 0.6),
        radius=(small, small * rng.uniform(1.4, 2.2)),
        touching=rng.uniform(0.1, 0.8) if not cells else rng.uniform(0.6, 0.95),
        blur=rng.uniform(0.3, 2.5),
        noise=rng.uniform(0.005, 0.08),
        illumination=rng.uniform(0.0, 0.6),
        dark_objects=bool(rng.random() < 0.2),
        irregularity=rng.uniform(0.0, 0.25) if not cells else rng.uniform(0.1, 0.35),
        texture=rng.uniform(0.05, 0.35),
        spots=rng.uniform(0.0, 3.0),
        brightness=(rng.uniform(0.15, 0.6), rng.uniform(0.7, 1.0)),
        debris=rng.uniform(0.0, 1.5),
        out_of_focus=rng.uniform(0.0, 3.0),
        photons=float(rng.choice([0.0, rng.uniform(20, 400)])),
    )


def _place(config: SyntheticConfig, rng: np.random.Generator) -> list[Blob]:
    """Centres, semi-axes and angles (y, x, a, b, theta) of separate or touching blobs."""
    h, w = config.shape
    target = config.density * h * w
    placed: list[Blob] = []
    area = 0.0
    for _ in range(5000):
        if area >= target:
            break
        a = rng.uniform(*config.radius)
        b = a * rng.uniform(0.6, 1.0)
        theta = rng.uniform(0, np.pi)
        if placed and rng.random() < config.touching:
            y0, x0, a0, b0, _ = placed[rng.integers(len(placed))]
            direction = rng.uniform(0, 2 * np.pi)
            distance = ((a0 + b0) / 2 + (a + b) / 2) * rng.uniform(0.8, 0.95)
            y, x = y0 + distance * np.sin(direction), x0 + distance * np.cos(direction)
            min_gap = 0.75
        else:
            y, x = rng.uniform(0, h), rng.uniform(0, w)
            min_gap = 1.05
        if not (0 <= y < h and 0 <= x < w):
            continue
        if all(np.hypot(y - p[0], x - p[1]) > min_gap * ((a + b) / 2 + (p[2] + p[3]) / 2) for p in placed):
            placed.append((y, x, a, b, theta))
            area += np.pi * a * b
    return placed


def _outline(rng: np.random.Generator, irregularity: float) -> tuple[np.ndarray, np.ndarray]:
    """Amplitudes and phases of harmonics 2-4 of a wavy outline."""
    return rng.uniform(0, irregularity, 3) / np.arange(1, 4), rng.uniform(0, 2 * np.pi, 3)


def _rasterise(
    shape: tuple[int, int], blobs: list[Blob], irregularity: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Instance ids and normalised radius (0 centre, 1 outline) of every pixel; overlaps go to the nearer."""
    instances = np.zeros(shape, dtype=np.uint16)
    radius = np.full(shape, np.inf, dtype=np.float32)
    for index, (y, x, a, b, theta) in enumerate(blobs, start=1):
        amplitudes, phases = _outline(rng, irregularity) if irregularity > 0 else (np.zeros(3), np.zeros(3))
        r = int(np.ceil(a * (1 + amplitudes.sum()))) + 1
        y0, y1 = max(int(y) - r, 0), min(int(y) + r + 1, shape[0])
        x0, x1 = max(int(x) - r, 0), min(int(x) + r + 1, shape[1])
        if y0 >= y1 or x0 >= x1:
            continue
        yy, xx = np.mgrid[y0:y1, x0:x1]
        dy, dx = yy - y, xx - x
        u = dx * np.cos(theta) + dy * np.sin(theta)
        v = -dx * np.sin(theta) + dy * np.cos(theta)
        rho = np.sqrt((u / a) ** 2 + (v / b) ** 2)
        if irregularity > 0:
            angle = np.arctan2(v, u)[..., None]
            rho = rho / (1 + (amplitudes * np.sin(np.arange(2, 5) * angle + phases)).sum(-1))
        rho = rho.astype(np.float32)
        window = radius[y0:y1, x0:x1]
        closer = (rho < 1.0) & (rho < window)
        window[closer] = rho[closer]
        instances[y0:y1, x0:x1][closer] = index
    return instances, radius


def _spots(shape: tuple[int, int], instances: np.ndarray, config: SyntheticConfig, rng: np.random.Generator):
    """Bright spots inside objects (nucleoli, foci), debris and out-of-focus blobs outside them."""
    h, w = shape
    extra = np.zeros(shape, dtype=np.float32)
    n_objects = int(instances.max())
    inside = np.argwhere(instances > 0)
    if n_objects and len(inside):
        for y, x in inside[rng.integers(len(inside), size=rng.poisson(config.spots * n_objects))]:
            extra[y, x] += rng.uniform(2.0, 8.0)
    for _ in range(rng.poisson(config.debris * h * w / 1e4)):
        extra[rng.integers(h), rng.integers(w)] += rng.uniform(2.0, 10.0)
    extra = ndimage.gaussian_filter(extra, 1.0)
    blobs = np.zeros(shape, dtype=np.float32)
    for _ in range(rng.poisson(config.out_of_focus * h * w / 1e5)):
        blobs[rng.integers(h), rng.integers(w)] = rng.uniform(200.0, 800.0)
    return extra + ndimage.gaussian_filter(blobs, rng.uniform(8.0, 15.0))


def synthetic_nuclei(config: SyntheticConfig = SyntheticConfig(), seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A synthetic fluorescence image and its true objects.

    Returns
    -------
    image : numpy.ndarray of uint16
        The fluorescence image.
    instances : numpy.ndarray of uint16
        0 background, 1..n one id per object (touching objects share a border).
    """
    rng = np.random.default_rng(seed)
    instances, radius = _rasterise(config.shape, _place(config, rng), config.irregularity, rng)
    n = int(instances.max())
    brightness = np.concatenate([[0.0], rng.uniform(*config.brightness, n)]).astype(np.float32)
    inside = instances > 0
    texture = ndimage.gaussian_filter(rng.normal(size=config.shape), 1.5).astype(np.float32)
    texture /= texture.std() + 1e-6
    signal = np.zeros(config.shape, dtype=np.float32)
    signal[inside] = (
        brightness[instances[inside]] * (1.0 - 0.35 * radius[inside] ** 2) * (1 + config.texture * texture[inside])
    )
    if config.spots or config.debris or config.out_of_focus:
        signal += _spots(config.shape, instances, config, rng) * (0.1 + 0.9 * inside)
    signal = ndimage.gaussian_filter(signal, config.blur) if config.blur > 0 else signal
    yy, xx = np.mgrid[0 : config.shape[0], 0 : config.shape[1]] / max(config.shape)
    phase = rng.uniform(0, 2 * np.pi, 2)
    light = 1.0 + config.illumination * 0.5 * (np.sin(2.5 * yy + phase[0]) + np.cos(2.0 * xx + phase[1]))
    image = (0.08 + signal) * light
    if config.dark_objects:
        image = 1.1 * light - image
    if config.photons > 0:
        image = rng.poisson(np.clip(image, 0, None) * config.photons) / config.photons
    image = image + rng.normal(0.0, config.noise, config.shape)
    return np.clip(image * 4000 + 200, 0, 65535).astype(np.uint16), instances
