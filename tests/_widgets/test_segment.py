"""The Segment widget's object shapes: round objects split, packed cells filling the plane."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from .conftest import wait_for


def test_object_shapes_change_the_objects_written(plugin, qtbot):
    viewer, w = plugin
    segment = w["Segment"]
    shapes = [segment.object_shape.itemData(i) for i in range(segment.object_shape.count())]
    assert shapes == ["round", "packed", "connected"]  # round is the default
    found = {}
    for index, shape in enumerate(shapes):
        segment.object_shape.setCurrentIndex(index)
        wait_for(qtbot, segment.segment())
        found[shape] = np.array(viewer.layers["cells objects"].data)
    classes = viewer.layers["cells segmentation"].data
    assert (found["packed"] > 0).all()  # every pixel in a cell
    assert 0 < (found["round"] > 0).mean() < 0.9  # nuclei on a background
    # packed cells grow from the same confident cores as the connected objects, one cell per core
    cores = found["connected"] > 0
    assert len(np.unique(found["packed"][cores])) == len(np.unique(found["connected"][cores]))
    assert found["round"].max() >= found["connected"].max()  # splitting only adds objects
    assert ndimage.label(classes > 0)[1] > 3


def test_the_object_shape_is_only_offered_with_objects(plugin):
    _, w = plugin
    segment = w["Segment"]
    segment.objects.setChecked(False)
    assert not segment.object_shape.isEnabled()
    segment.objects.setChecked(True)
    assert segment.object_shape.isEnabled()
