import numpy as np
import pytest

from napari_unet.errors import InputError
from napari_unet.images.axes import from_planes, infer_layout, to_planes


@pytest.mark.parametrize(
    ("shape", "channels", "axis", "planes_shape"),
    [
        ((30, 40), 1, None, (1, 1, 30, 40)),
        ((5, 30, 40), 1, None, (5, 1, 30, 40)),
        ((2, 5, 30, 40), 1, None, (10, 1, 30, 40)),
        ((30, 40, 3), 3, None, (1, 3, 30, 40)),
        ((3, 30, 40), 3, None, (1, 3, 30, 40)),
        ((5, 2, 30, 40), 2, 1, (5, 2, 30, 40)),
        ((30, 40, 3), 1, None, (1, 1, 30, 40)),  # RGB -> grey for a one-channel model
        ((30, 40, 4), 1, None, (1, 1, 30, 40)),  # RGBA
    ],
)
def test_layouts(shape, channels, axis, planes_shape):
    image = np.random.default_rng(0).random(shape)
    layout = infer_layout(shape, channels, axis)
    assert to_planes(image, layout).shape == planes_shape
    back = from_planes(np.zeros((planes_shape[0], 30, 40)), layout)
    assert back.shape == layout.spatial_shape


def test_channels_last_values_are_kept():
    image = np.random.default_rng(0).random((20, 30, 2))
    planes = to_planes(image, infer_layout(image.shape, 2))
    np.testing.assert_array_equal(planes[0, 1], image[..., 1])


@pytest.mark.parametrize("shape", [(0, 10), (10,), (10, 0)])
def test_empty_or_1d_arrays_are_refused(shape):
    with pytest.raises(InputError):
        infer_layout(shape, 1)


def test_channel_mismatch_is_explained():
    with pytest.raises(InputError, match="expects 2 channels"):
        infer_layout((30, 40), 2)
    with pytest.raises(InputError, match="has 5 channels"):
        infer_layout((5, 30, 40), 2, channel_axis=0)
