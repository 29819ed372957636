"""Ctrl-Z takes back the plugin's bulk writes: Segment written again, corrections merged, whole objects painted."""

import numpy as np

from napari_unet._widgets._layers import write_with_history

from .conftest import wait_for


def _correct_one_object(objects):
    """Erase one object and paint a new one in a corner, as a person would; returns the corrected array."""
    corrected = np.array(objects.data)
    corrected[corrected == int(corrected[corrected > 0][0])] = 0
    corrected[2:10, 2:10] = corrected.max() + 1
    objects.data = corrected
    return corrected


def test_write_with_history_writes_planes_and_regions_as_one_undo_step(make_napari_viewer):
    viewer = make_napari_viewer()
    layer = viewer.add_labels(np.zeros((3, 20, 30), np.uint8))
    plane = np.zeros((20, 30), np.uint8)
    plane[5:10, 5:10] = 7
    assert write_with_history(layer, plane, (1,)) == 25
    assert (layer.data[1] == plane).all() and not layer.data[[0, 2]].any()
    assert write_with_history(layer, plane, (1,)) == 0  # nothing changed, nothing kept
    region = np.full((2, 4, 5), 300)  # more labels than uint8 holds: the layer widens
    assert write_with_history(layer, region, (slice(1, 3), slice(8, 12), slice(20, 25))) == 40
    assert layer.data.dtype == np.uint16 and (layer.data[1:3, 8:12, 20:25] == 300).all()
    layer.undo()
    assert (layer.data[1] == plane).all() and not layer.data[2].any()
    layer.undo()
    assert not layer.data.any()
    layer.redo()
    assert (layer.data[1] == plane).all()


def test_undo_takes_back_objects_written_again(plugin, qtbot):
    viewer, w = plugin
    segment = w["Segment"]
    wait_for(qtbot, segment.segment())
    objects = viewer.layers["cells objects"]
    round_objects = np.array(objects.data)
    segment.object_shape.setCurrentIndex(segment.object_shape.findData("packed"))
    wait_for(qtbot, segment.segment())
    assert viewer.layers["cells objects"] is objects  # written in place
    packed = np.array(objects.data)
    assert (packed != round_objects).any()
    objects.undo()
    np.testing.assert_array_equal(objects.data, round_objects)
    objects.redo()
    np.testing.assert_array_equal(objects.data, packed)


def test_undo_takes_back_corrections_added_to_the_annotation(plugin, qtbot):
    viewer, w = plugin
    wait_for(qtbot, w["Segment"].segment())
    annotation = w["Annotate"].ensure_annotation_layer()
    annotation.data[100:105, 100:120] = 1  # painted by hand before
    before = np.array(annotation.data)
    _correct_one_object(viewer.layers["cells objects"])
    assert w["Correct and retrain"].apply_corrections() > 0
    merged = np.array(annotation.data)
    assert (merged[2:10, 2:10] == 2).all()
    annotation.undo()
    np.testing.assert_array_equal(annotation.data, before)
    annotation.redo()
    np.testing.assert_array_equal(annotation.data, merged)


def test_undo_takes_back_whole_objects_painted_into_the_annotation(plugin):
    _, w = plugin
    annotate = w["Annotate"]
    annotation = annotate.ensure_annotation_layer()
    annotation.data[100:105, 100:120] = 1
    before = np.array(annotation.data)
    objects = annotate.start_object_painting()
    objects.data[20:40, 20:40] = 1
    annotate.update_from_objects()
    painted = np.array(annotation.data)
    assert painted[30, 30] == 2 and (painted != before).any()
    annotation.undo()
    np.testing.assert_array_equal(annotation.data, before)
    annotation.redo()
    np.testing.assert_array_equal(annotation.data, painted)
