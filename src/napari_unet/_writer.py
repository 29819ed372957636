"""File > Save for labels layers: label TIFFs that Fiji opens with the right dimensions (no napari import)."""

from __future__ import annotations

from typing import Any

import numpy as np

from napari_unet.images.files import write_labels


def write_labels_tiff(path: str, data: Any, meta: dict) -> list[str]:
    """Write one labels layer for napari; napari's save dialog has already asked before replacing a file."""
    path = path if path.lower().endswith((".tif", ".tiff")) else f"{path}.tif"
    write_labels(path, np.asarray(data), overwrite=True)
    return [path]
