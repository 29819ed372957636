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
