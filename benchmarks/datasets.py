"""The benchmark images of ../shared/data (never shipped) and the synthetic sets, loaded the same way everywhere."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import tifffile
from skimage import io

from napari_unet.images.synthetic import SyntheticConfig, synthetic_nuclei

#: The benchmark data; NAPARI_UNET_BENCH_DATA points elsewhere (a copy carried to a GPU machine, say).
DATA = Path(os.environ.get("NAPARI_UNET_BENCH_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))


def available() -> bool:
    """Whether the shared benchmark data is on this machine."""
    return (DATA / "dsb2018" / "img2d.tif").exists()


def dsb2018() -> tuple[np.ndarray, np.ndarray]:
    """The DSB2018 nuclei image (512x512 uint16) and its hand-made instance mask (125 nuclei)."""
    folder = DATA / "dsb2018"
    return tifffile.imread(folder / "img2d.tif"), tifffile.imread(folder / "mask2d.tif")


def isbi2012(slices: range | list[int]) -> tuple[np.ndarray, np.ndarray]:
    """ISBI 2012 ssTEM slices (N, 512, 512) uint8 and their interior masks (True = cell interior)."""
    folder = DATA / "isbi2012"
    images = np.stack([io.imread(folder / "image" / f"{i}.png") for i in slices])
    interiors = np.stack([io.imread(folder / "label" / f"{i}.png") == 255 for i in slices])
    return images, interiors


def synthetic_touching(
    count: int, seed: int, shape: tuple[int, int] = (384, 384)
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Synthetic nuclei images with many touching pairs, and their true objects."""
    config = SyntheticConfig(shape=shape, density=0.3, touching=0.7)
    return [synthetic_nuclei(config, seed=seed + i) for i in range(count)]
