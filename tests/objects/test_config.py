"""Object settings (objects/config.py): the named object shapes."""

import pytest

from napari_unet import InputError
from napari_unet.objects.config import OBJECT_SHAPES, ObjectConfig


def test_object_shapes_by_name():
    for name in OBJECT_SHAPES:
        assert ObjectConfig.for_shape(name).shape == name
    assert ObjectConfig.for_shape("packed", threshold=0.8).threshold == 0.8
    assert ObjectConfig(split=True, fill=True).shape == "packed"  # filled objects are packed cells, however seeded
    with pytest.raises(InputError, match="round, packed, connected"):
        ObjectConfig.for_shape("square")


@pytest.mark.parametrize("threshold", [0.0, 1.0, -0.2, 1.5])
def test_a_threshold_that_is_not_a_probability_is_refused(threshold):
    with pytest.raises(InputError, match="the object threshold is a probability between 0 and 1"):
        ObjectConfig(threshold=threshold)
