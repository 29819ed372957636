import numpy as np
from scipy import ndimage

from napari_unet.images.synthetic import SyntheticConfig, synthetic_nuclei


def test_synthetic_nuclei_touch_and_are_reproducible():
    image, objects = synthetic_nuclei(SyntheticConfig(shape=(200, 200), touching=0.8), seed=1)
    again, _ = synthetic_nuclei(SyntheticConfig(shape=(200, 200), touching=0.8), seed=1)
    assert image.dtype == np.uint16 and np.array_equal(image, again)
    assert objects.max() > 10
    # some objects touch: a dilated object overlaps a neighbour
    touching = sum(
        (ndimage.binary_dilation(objects == i) & (objects > 0) & (objects != i)).any()
        for i in range(1, objects.max() + 1)
    )
    assert touching >= 4
    assert image[objects > 0].mean() > image[objects == 0].mean()


def test_dark_objects_invert_contrast():
    image, objects = synthetic_nuclei(SyntheticConfig(shape=(128, 128), dark_objects=True), seed=2)
    assert image[objects > 0].mean() < image[objects == 0].mean()
