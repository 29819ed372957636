from dataclasses import replace

import numpy as np
import pytest
from scipy import ndimage
from skimage import measure

from napari_unet.images.synthetic_rods import RodsConfig, random_rods_config, synthetic_rods

CONFIG = RodsConfig(shape=(256, 256))


@pytest.fixture(scope="module")
def colony():
    return synthetic_rods(CONFIG, seed=0)


def neighbour_pairs(instances, reach):
    """Pairs (i, j), i < j, of cells with pixels at most ``reach`` apart (1.5: within a 1-pixel 3x3 dilation)."""
    h, w = instances.shape
    pairs = []
    for dy in range(int(reach) + 1):
        for dx in range(-int(reach), int(reach) + 1):
            if (dy == 0 and dx <= 0) or dy * dy + dx * dx > reach * reach:
                continue
            a = instances[: h - dy, max(-dx, 0) : w - max(dx, 0)]
            b = instances[dy:, max(dx, 0) : w - max(-dx, 0)]
            touching = (a > 0) & (b > 0) & (a != b)
            pairs.append(np.sort(np.stack([a[touching], b[touching]], axis=1), axis=1))
    return np.unique(np.concatenate(pairs), axis=0)


def neighbour_counts(instances):
    """Neighbours of each cell: other cells within its 1-pixel dilation."""
    return np.bincount(neighbour_pairs(instances, 1.5).ravel(), minlength=instances.max() + 1)[1:]


def test_rods_are_reproducible_with_types_and_shape():
    image, instances = synthetic_rods(RodsConfig(shape=(128, 192)), seed=3)
    again, instances_again = synthetic_rods(RodsConfig(shape=(128, 192)), seed=3)
    other, _ = synthetic_rods(RodsConfig(shape=(128, 192)), seed=4)
    assert image.shape == instances.shape == (128, 192)
    assert image.dtype == np.uint16 and instances.dtype == np.int32
    assert np.array_equal(image, again) and np.array_equal(instances, instances_again)
    assert not np.array_equal(image, other)
    assert np.array_equal(np.unique(instances), np.arange(instances.max() + 1))  # ids 0, 1..n


def test_every_rod_is_one_connected_elongated_piece(colony):
    _, instances = colony
    n = int(instances.max())
    assert n > 80
    pieces = measure.label(instances, connectivity=1)  # equal ids that touch form one piece
    assert pieces.max() == n
    props = measure.regionprops(instances)
    ratio = np.array([p.axis_major_length / p.axis_minor_length for p in props])
    assert np.mean(ratio >= 2.0) >= 0.9
    assert 2.5 <= np.median(ratio) <= 5.0
    assert 6.0 <= np.median([p.axis_minor_length for p in props]) <= 10.0


def test_rods_are_densely_packed_and_touch(colony):
    _, instances = colony
    cells = instances > 0
    extent = ndimage.binary_fill_holes(ndimage.binary_closing(cells, np.ones((9, 9)), iterations=2))
    assert cells[extent].mean() >= 0.7
    neighbours = neighbour_counts(instances)
    assert np.mean(neighbours >= 2) >= 0.8
    assert np.median(neighbours) >= 3


def test_close_rods_touch_without_gaps(colony):
    # of the cells at most 2 pixels apart, nearly all touch (share a border, or a corner)
    _, instances = colony
    touching = {tuple(pair) for pair in neighbour_pairs(instances, 1.5)}
    close = {tuple(pair) for pair in neighbour_pairs(instances, 2.9)}
    assert touching <= close
    assert len(touching) >= 0.8 * len(close)
    # and the colony has few gaps wider than a pixel between its cells
    cells = instances > 0
    extent = ndimage.binary_erosion(
        ndimage.binary_fill_holes(ndimage.binary_closing(cells, iterations=4)), iterations=4
    )
    assert (extent & ~ndimage.binary_dilation(cells)).sum() < 0.15 * extent.sum()


def test_phase_contrast_dark_cells_bright_halo(colony):
    image, instances = colony
    cells = instances > 0
    halo = ndimage.binary_dilation(cells, iterations=4) & ~cells
    far = ~ndimage.binary_dilation(cells, iterations=30)
    assert far.sum() > 1000
    assert image[cells].mean() < 0.85 * image[far].mean()
    assert image[halo].mean() > 1.1 * image[far].mean()


def test_brightfield_mode_has_bright_interiors_and_dark_outlines():
    image, instances = synthetic_rods(replace(CONFIG, mode="brightfield"), seed=0)
    cells = instances > 0
    interiors = ndimage.binary_erosion(cells, iterations=2)
    outlines = ndimage.binary_dilation(cells, iterations=2) & ~cells
    assert image[interiors].mean() > image[outlines].mean() * 1.1


def test_sizes_follow_the_configuration():
    config = replace(CONFIG, width=(6.0, 6.0), length=(4.0, 4.0), dividing=0.0)
    _, instances = synthetic_rods(config, seed=1)
    props = measure.regionprops(instances)
    assert 5.0 <= np.median([p.axis_minor_length for p in props]) <= 7.0
    assert 20.0 <= np.median([p.axis_major_length for p in props]) <= 28.0


def test_random_configurations_give_valid_colonies():
    rng = np.random.default_rng(0)
    for seed in range(4):
        image, instances = synthetic_rods(random_rods_config(rng, shape=(160, 160)), seed=seed)
        assert image.dtype == np.uint16 and image.max() > image.min()
        assert instances.max() >= 5
        assert measure.label(instances, connectivity=1).max() == instances.max()
