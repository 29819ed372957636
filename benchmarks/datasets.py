"""The benchmark images (never shipped; docs/benchmarks.md says how to get them) and the synthetic sets."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import tifffile
from skimage import io

from napari_unet.images.synthetic import SyntheticConfig, synthetic_nuclei

ROOT = Path(__file__).resolve().parents[1]


def data_folder() -> Path:
    """Where the benchmark data is: $NAPARI_UNET_BENCH_DATA, else benchmarks/data/ (git-ignored).

    Development machines also keep a read-only copy in a ``shared/data`` folder beside the checkout,
    found when neither is set.
    """
    if "NAPARI_UNET_BENCH_DATA" in os.environ:
        return Path(os.environ["NAPARI_UNET_BENCH_DATA"])
    local = ROOT / "benchmarks" / "data"
    beside = ROOT.parent / "shared" / "data"
    return beside if not local.exists() and beside.exists() else local


#: The benchmark data (see :func:`data_folder`).
DATA = data_folder()


def available() -> bool:
    """Whether the benchmark data is on this machine."""
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
