"""Annotate: the annotation layer, its classes, and the aid for painting whole objects."""

import numpy as np

from napari_unet._widgets._layers import classes_of
from napari_unet._widgets.annotate import paint_event_box


def test_annotation_layer_with_classes(plugin):
    _, w = plugin
    annotate = w["Annotate"]
    layer = annotate.ensure_annotation_layer()
    assert layer.data.dtype == np.uint8 and layer.data.shape == (128, 128)
    assert layer.mode == "paint" and layer.brush_size == 4
    assert annotate.ensure_annotation_layer() == layer  # the same layer, not a second one
    value = annotate.add_class("mitosis")
    assert value == 3
    annotate.rename_class(2, "nucleus")
    annotate.set_class_colour(3, "#ff0000")
    classes = classes_of(layer)
    assert classes[2]["name"] == "nucleus" and classes[3] == {"name": "mitosis", "color": "#ff0000"}
    assert annotate.table.rowCount() == 3
    annotate.table.selectRow(2)
    assert layer.selected_label == 3
    annotate.rename_class(1, "not background")  # the background keeps its name
    assert classes_of(layer)[1]["name"] == "background"


def test_painting_whole_objects_adds_gaps_and_rings(plugin):
    _, w = plugin
    annotate = w["Annotate"]
    annotation = annotate.ensure_annotation_layer()
    annotation.data[100:105, 100:120] = 1  # a hand-painted background stroke
    objects = annotate.start_object_painting()
    assert objects.name == "cells objects to paint"
    objects.data[20:40, 20:40] = 1
    objects.data[20:40, 40:60] = 2  # touching the first
    annotate.update_from_objects()
    assert annotation.data[30, 30] == 2 and annotation.data[30, 50] == 2
    assert (annotation.data[20:40, 39:41] == 1).all()  # gap where they touch
    assert (annotation.data[18, 25:55] == 1).all()  # ring
    assert (annotation.data[100:105, 100:120] == 1).all()  # the hand-painted stroke is kept
    objects.data[20:40, 40:60] = 0  # erase the second object
    annotate.update_from_objects()
    assert annotation.data[30, 50] == 0 and annotation.data[30, 30] == 2


def test_painting_with_the_brush_goes_through_paint_events(plugin, qtbot):
    _, w = plugin
    annotate = w["Annotate"]
    annotate.ensure_annotation_layer()
    objects = annotate.start_object_painting()
    objects.brush_size = 10
    objects.selected_label = 1
    objects.paint((64, 64), 1)
    annotation = annotate.annotation_layer()
    qtbot.waitUntil(lambda: annotation.data[64, 64] == 2, timeout=5000)
    assert (annotation.data > 0).sum() > (objects.data > 0).sum()  # object plus ring


def test_paint_event_box_of_index_atoms():
    atoms = [((np.array([3, 5]), np.array([7, 2])), np.array([0, 0]), 1)]
    assert paint_event_box(atoms, 2) == (slice(3, 6), slice(2, 8))
    assert paint_event_box([], 2) is None


def test_stacks_and_multichannel_images(make_napari_viewer):
    viewer = make_napari_viewer()
    viewer.add_image(np.zeros((5, 40, 50)), name="stack")
    viewer.add_image(np.zeros((40, 50, 2)), name="two channels")
    _, annotate = viewer.window.add_plugin_dock_widget("napari-unet", "Annotate")
    annotate.image_picker.value = viewer.layers["stack"]
    assert annotate.ensure_annotation_layer().data.shape == (5, 40, 50)
    annotate.image_picker.value = viewer.layers["two channels"]
    annotate.channels.setCurrentText("channels last")
    assert annotate.ensure_annotation_layer().data.shape == (40, 50)


def test_only_the_pixels_written_over_the_aid_stop_being_its_own(plugin):
    _, w = plugin
    annotate = w["Annotate"]
    annotation = annotate.ensure_annotation_layer()
    objects = annotate.start_object_painting()
    objects.data[20:40, 20:40] = 1
    annotate.update_from_objects()
    assert annotation.data[30, 30] == 2
    # pixels written far apart (as corrections are merged): their bounding box covers the object
    annotation.data_setitem((np.array([0, 25, 127]), np.array([0, 25, 127])), 3)
    objects.data[20:40, 20:40] = 0  # the object erased
    annotate.update_from_objects()
    assert annotation.data[30, 30] == 0  # still the aid's: erased with it
    assert annotation.data[0, 0] == annotation.data[25, 25] == annotation.data[127, 127] == 3  # written: kept
