"""Shared fixtures: tiny models and small synthetic data so that core tests stay fast."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from napari_unet import new_model
from napari_unet.images.synthetic import SyntheticConfig, synthetic_nuclei

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")

#: How closely float32 probabilities of two computations that should agree (blocks or tiles and the whole
#: image, the device path and the host path) are compared. The convolutions differ only in how they sum:
#: oneDNN picks its kernels by tensor shape and by the CPU's instruction set, so results differ in the last
#: bits from one tiling or CPU to another (relative differences of 8e-8 were seen, on a few values in
#: 250,000). A misplaced tile or a wrong context is off by orders of magnitude more. Classes and objects
#: are compared exactly.
FLOAT32_AGREE = {"rtol": 1e-5, "atol": 1e-6}


@pytest.fixture
def tiny_model():
    """A depth-2 U-Net with 4 base filters: fast on the CPU."""
    return new_model("light", ["nucleus"], depth=2, base_filters=4, seed=0)


@pytest.fixture
def nuclei():
    """A 128x128 synthetic nuclei image and its true objects."""
    return synthetic_nuclei(SyntheticConfig(shape=(128, 128)), seed=3)


@pytest.fixture
def scribbled(nuclei):
    """The synthetic image with a sparse annotation: object centres (2) and far background (1)."""
    from scipy import ndimage

    image, objects = nuclei
    annotation = np.zeros(objects.shape, dtype=np.uint8)
    inner = ndimage.binary_erosion(objects > 0, iterations=3)
    annotation[inner] = 2
    far = ndimage.distance_transform_edt(objects == 0) > 6
    annotation[far & (np.indices(far.shape).sum(0) % 7 == 0)] = 1
    return image, annotation, objects


@pytest.fixture
def gpu_nearly_full():
    """Fill the GPU but for 3 GiB (what a second program or napari itself might hold); yields the rest."""
    from napari_unet import devices

    device = torch.device("cuda")
    devices.release(device)  # earlier jobs' cache, cuBLAS's workspaces too, out of the count
    free, _ = torch.cuda.mem_get_info(device)
    hog = torch.empty(max(int(free - 3 * 2**30), 0), dtype=torch.uint8, device=device)
    try:
        yield torch.cuda.memory_allocated(device)
    finally:
        del hog
        devices.release(device)


def tissue_probabilities(shape: tuple[int, int], n_cells: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Voronoi cells packed in a plane and (2, H, W) probabilities of a network that sees their membranes.

    The membrane (background) probability is high on the cell borders, blurred, noisy and with gaps:
    where the connected confident pixels of neighbouring cells run into each other.
    """
    from scipy import ndimage
    from skimage.segmentation import find_boundaries

    rng = np.random.default_rng(seed)
    centres = np.zeros(shape, bool)
    centres[tuple(rng.integers(0, s, n_cells) for s in shape)] = True
    _, (iy, ix) = ndimage.distance_transform_edt(~centres, return_indices=True)
    cells = ndimage.label(centres)[0][iy, ix]
    membrane = find_boundaries(cells).astype(np.float32)
    membrane[ndimage.binary_dilation(rng.random(shape) < 0.002, iterations=3)] *= 0.3
    background = ndimage.gaussian_filter(membrane, 1.5) * 3 + rng.normal(0, 0.05, shape)
    background = np.clip(background, 0, 1).astype(np.float32)
    return cells, np.stack([background, 1 - background])
