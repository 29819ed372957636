"""Sample data for File > Open Sample: a real nuclei image (DSB2018) and a synthetic one."""

from __future__ import annotations

from importlib import resources
from typing import Any

import tifffile

from napari_unet.images.synthetic import SyntheticConfig, synthetic_nuclei

LayerData = tuple[Any, dict[str, Any], str]


def nuclei_sample() -> list[LayerData]:
    """The 512x512 DSB2018 fluorescence nuclei image (CC0, see sample_data/ATTRIBUTION.md)."""
    source = resources.files("napari_unet") / "sample_data" / "dsb2018_nuclei.tif"
    with resources.as_file(source) as path:
        image = tifffile.imread(path)
    return [(image, {"name": "nuclei", "colormap": "gray"}, "image")]


def synthetic_sample() -> list[LayerData]:
    """A 384x384 synthetic image of touching nuclei."""
    image, _ = synthetic_nuclei(SyntheticConfig(shape=(384, 384)), seed=7)
    return [(image, {"name": "synthetic nuclei", "colormap": "gray"}, "image")]
