import numpy as np
import pytest
from scipy import ndimage

from napari_unet.objects import peaks
from napari_unet.objects.instances import context_box
from napari_unet.objects.peaks import (
    CROSS,
    centre_height,
    context_margin,
    gaussian_smooth,
    maximum_3x3,
    packed_mosaics,
    peak_plateau_counts,
)


@pytest.mark.parametrize("shape", [(1, 1), (1, 7), (2, 3), (9, 5), (40, 33)])
@pytest.mark.parametrize("sigma", [0.5, 1.0, 1.7, 3.0])
def test_the_split_filters_equal_scipys_to_the_last_bit(shape, sigma):
    values = np.random.default_rng(len(shape) + shape[0]).random(shape) * 10
    assert np.array_equal(gaussian_smooth(values, sigma), ndimage.gaussian_filter(values, sigma))
    assert np.array_equal(maximum_3x3(values), ndimage.maximum_filter(values, size=3))


def _blobs(shape, seed, density=0.5):
    """Crowded blobs of many sizes and shapes, a pixel or two apart, touching the image border too."""
    rng = np.random.default_rng(seed)
    field = ndimage.gaussian_filter(rng.standard_normal(shape), 2.5)
    return field > np.quantile(field, 1 - density)


def _one_by_one(components, boxes, smoothing):
    """What the split looks at: each component alone in its grown box, its plateaus counted."""
    margin = context_margin(smoothing)
    counts = []
    for index, box in enumerate(boxes, start=1):
        own = components[context_box(box, margin, components.shape)] == index
        counts.append(ndimage.label(centre_height(own, smoothing)[1], CROSS)[1])
    return np.array(counts)


@pytest.mark.parametrize("smoothing", [0.0, 1.0, 2.0])
@pytest.mark.parametrize("mosaic_pixels", [2**22, 2000])
def test_packed_components_count_the_plateaus_each_has_alone(monkeypatch, smoothing, mosaic_pixels):
    monkeypatch.setattr(peaks, "MOSAIC_PIXELS", mosaic_pixels)  # 2000: one row of crops per mosaic
    for seed in range(3):
        components, _ = ndimage.label(_blobs((160, 190), seed, density=0.3))
        boxes = ndimage.find_objects(components)
        counts = peak_plateau_counts(components, boxes, smoothing)
        assert np.array_equal(peak_plateau_counts(components, boxes, smoothing, threads=3), counts)
        alone = _one_by_one(components, boxes, smoothing)
        packed = counts[1:] >= 0
        margin = context_margin(smoothing)
        clipped = np.array(
            [
                b[0].start < margin or b[1].start < margin or b[0].stop + margin > 160 or b[1].stop + margin > 190
                for b in boxes
            ]
        )
        assert (packed == ~clipped).all() and packed.sum() > 20  # only components off the border are packed
        assert np.array_equal(counts[1:][packed], alone[packed])
        assert (alone[packed] > 1).any() and (alone[packed] == 1).any()  # both kinds were there to count


def test_components_left_out_are_marked_and_none_boxes_skipped():
    mask = np.zeros((30, 30), dtype=bool)
    mask[0:5, 0:5] = True  # at the border: not packed
    mask[12:20, 12:20] = True
    components, _ = ndimage.label(mask)
    boxes = ndimage.find_objects(components)
    assert peak_plateau_counts(components, boxes, 1.0).tolist() == [-1, -1, 1]
    assert peak_plateau_counts(components, [boxes[0], None], 1.0).tolist() == [-1, -1, -1]


@pytest.mark.parametrize("smoothing", [0.0, 1.0, 2.0])
def test_a_packed_component_has_the_heights_it_has_alone_to_the_last_bit(monkeypatch, smoothing):
    monkeypatch.setattr(peaks, "MOSAIC_PIXELS", 3000)  # several mosaics
    components, _ = ndimage.label(_blobs((160, 190), 4, density=0.3))
    boxes = ndimage.find_objects(components)
    margin = context_margin(smoothing)
    seen = 0
    for mosaic in packed_mosaics(components, boxes, smoothing):
        height, found = centre_height(mosaic > 0, smoothing)
        for index in np.unique(mosaic[mosaic > 0]):
            own = components[context_box(boxes[index - 1], margin, components.shape)] == index
            alone_height, alone_peaks = centre_height(own, smoothing)
            assert np.array_equal(height[mosaic == index], alone_height[own])  # both row by row
            assert np.array_equal(found[mosaic == index], alone_peaks[own])
            seen += 1
    assert seen > 40
