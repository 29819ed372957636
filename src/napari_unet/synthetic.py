"""Synthetic fluorescence images of nuclei with touching clusters, with their true objects.

Used for the small sample image, for tests, and as training data that keeps the real images clean for
evaluation. Each nucleus is an ellipse with a textured, centre-bright interior; touching nuclei share a
border at the bisector of their ellipses; the image is blurred, unevenly lit and noisy.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage


@dataclass(frozen=True)
class SyntheticConfig:
    """Parameters of the generator.

    Parameters
    ----------
    shape : (int, int)
        Image size.
    density : float
        Share of the image covered by nuclei (roughly).
    radius : (float, float)
        Range of the nuclei's semi-axes, in pixels.
    touching : float
        Probability that a new nucleus is placed against an existing one.
    blur : float
        Gaussian blur of the optics, in pixels.
    noise : float
        Standard deviation of the Gaussian camera noise (signal range about 0..1).
    illumination : float
        Strength of the smooth uneven illumination.
    dark_objects : bool
        Dark nuclei on a bright background (inverted contrast).
    """

    shape: tuple[int, int] = (256, 256)
    density: float = 0.25
    radius: tuple[float, float] = (7.0, 14.0)
    touching: float = 0.4
    blur: float = 1.0
    noise: float = 0.04
    illumination: float = 0.3
    dark_objects: bool = False


def _place(config: SyntheticConfig, rng: np.random.Generator) -> list[tuple[float, float, float, float, float]]:
    """Centres, semi-axes and angles (y, x, a, b, theta) of non-overlapping or touching ellipses."""
    h, w = config.shape
    target = config.density * h * w
    placed: list[tuple[float, float, float, float, float]] = []
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


def _rasterise(shape: tuple[int, int], ellipses: list) -> tuple[np.ndarray, np.ndarray]:
    """Instance ids and normalised elliptic radius (0 centre, 1 border) of every pixel."""
    instances = np.zeros(shape, dtype=np.uint16)
    radius = np.full(shape, np.inf, dtype=np.float32)
    for index, (y, x, a, b, theta) in enumerate(ellipses, start=1):
        r = int(np.ceil(a)) + 1
        y0, y1 = max(int(y) - r, 0), min(int(y) + r + 1, shape[0])
        x0, x1 = max(int(x) - r, 0), min(int(x) + r + 1, shape[1])
        if y0 >= y1 or x0 >= x1:
            continue
        yy, xx = np.mgrid[y0:y1, x0:x1]
        dy, dx = yy - y, xx - x
        u = dx * np.cos(theta) + dy * np.sin(theta)
        v = -dx * np.sin(theta) + dy * np.cos(theta)
        rho = np.sqrt((u / a) ** 2 + (v / b) ** 2).astype(np.float32)
        window = radius[y0:y1, x0:x1]
        closer = (rho < 1.0) & (rho < window)
        window[closer] = rho[closer]
        instances[y0:y1, x0:x1][closer] = index
    return instances, radius


def synthetic_nuclei(config: SyntheticConfig = SyntheticConfig(), seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A synthetic nuclei image and its true objects.

    Returns
    -------
    image : numpy.ndarray of uint16
        The fluorescence image.
    instances : numpy.ndarray of uint16
        0 background, 1..n one id per nucleus (touching nuclei share a border).
    """
    rng = np.random.default_rng(seed)
    instances, radius = _rasterise(config.shape, _place(config, rng))
    n = int(instances.max())
    brightness = np.concatenate([[0.0], rng.uniform(0.4, 1.0, n)]).astype(np.float32)
    inside = instances > 0
    texture = ndimage.gaussian_filter(rng.normal(size=config.shape), 1.5).astype(np.float32)
    texture /= texture.std() + 1e-6
    signal = np.zeros(config.shape, dtype=np.float32)
    signal[inside] = brightness[instances[inside]] * (1.0 - 0.35 * radius[inside] ** 2) * (1 + 0.12 * texture[inside])
    signal = ndimage.gaussian_filter(signal, config.blur) if config.blur > 0 else signal
    yy, xx = np.mgrid[0 : config.shape[0], 0 : config.shape[1]] / max(config.shape)
    phase = rng.uniform(0, 2 * np.pi, 2)
    light = 1.0 + config.illumination * 0.5 * (np.sin(2.5 * yy + phase[0]) + np.cos(2.0 * xx + phase[1]))
    background = 0.08
    image = (background + signal) * light
    if config.dark_objects:
        image = 1.1 * light - image
    image = image + rng.normal(0.0, config.noise, config.shape)
    return np.clip(image * 4000 + 200, 0, 65535).astype(np.uint16), instances
