"""Nothing trained or painted is lost: Start keeps the trained model, every run is autosaved and can be restored."""

from __future__ import annotations

import json

import numpy as np
import torch

from napari_unet import new_model
from napari_unet._widgets._autosave import find_latest, folder_name, save_latest
from napari_unet._widgets._layers import CLASSES_KEY
from napari_unet._widgets.train import CURRENT, STARTING

from .conftest import FAST, scribbles_for, wait_for

CLASSES = {1: {"name": "background", "color": "#444444"}, 2: {"name": "nucleus", "color": "#ff00ff"}}


def _texts(messages, kind=None):
    return " | ".join(text for k, text in messages if kind is None or k == kind)


def _same_weights(a, b):
    first, second = a.net.state_dict(), b.net.state_dict()
    return first.keys() == second.keys() and all(torch.equal(first[k], second[k]) for k in first)


def _train(w, cells, qtbot, steps=8, continue_training=False):
    """Paint scribbles (once) and train ``steps`` steps; returns the session's model afterwards."""
    layer = w["Annotate"].ensure_annotation_layer()
    if not layer.data.any():
        layer.data = scribbles_for(cells[1])
    w["Train"].settings.budget_value.setValue(steps)
    wait_for(qtbot, w["Train"].start(continue_training=continue_training))
    return w["Train"].session.model


def _painted(cells):
    return np.where(cells[1] > 0, 2, 1).astype(np.uint8)


def _dock_train(viewer):
    _, train = viewer.window.add_plugin_dock_widget("napari-unet", "Train")
    train.settings.advanced_form.set_values(FAST)
    train.settings.preview_every.setValue(0)
    return train


def test_after_a_run_start_trains_the_same_model(plugin, cells, qtbot, messages, autosave_here):
    _, w = plugin
    train = w["Train"]
    assert train.source.currentText() == STARTING
    model = _train(w, cells, qtbot)
    assert train.source.currentText() == CURRENT
    assert train.session.unsaved
    steps = model.trained_steps
    wait_for(qtbot, train.start())  # Start, not Continue
    assert train.session.model is model and model.trained_steps == steps + 8
    assert not list(autosave_here.rglob("model-*.pt"))  # nothing was replaced, so nothing needed keeping
    assert not [m for m in messages if m[0] == "error"], messages


def test_starting_another_model_keeps_the_trained_one_even_if_the_start_fails(plugin, cells, qtbot, messages):
    _, w = plugin
    train = w["Train"]
    model = _train(w, cells, qtbot)
    label = train.session.model_label
    train.source.setCurrentText(STARTING)
    annotation = w["Annotate"].annotation_layer()
    annotation.data = np.where(annotation.data == 2, 2, 0).astype(np.uint8)  # one class only: the run cannot start
    wait_for(qtbot, train.start())
    assert "only class 2 is painted" in _texts(messages, "error")
    assert train.session.model is model and train.session.model_label == label
    assert train.continue_button.isEnabled()
    kept = [text for kind, text in messages if kind == "info" and "the model trained so far is kept in" in text]
    assert len(kept) == 1
    path = kept[0].split("kept in ", 1)[1].split(";")[0]
    assert path.endswith(".pt") and "/cells/model-" in path
    from napari_unet import load_model

    assert _same_weights(load_model(path), model)
    assert not train.session.unsaved
    wait_for(qtbot, train.start())  # saved already: not saved a second time
    assert len([t for k, t in messages if "the model trained so far is kept" in t]) == 1


def test_every_run_is_autosaved_and_a_new_viewer_offers_to_restore_it(
    plugin, make_napari_viewer, cells, qtbot, messages, autosave_here
):
    _, w = plugin
    annotation = w["Annotate"].ensure_annotation_layer()
    w["Annotate"].rename_class(2, "nucleus")
    _train(w, cells, qtbot)
    folder = autosave_here / "cells"
    assert sorted(p.name for p in folder.iterdir()) == ["annotation.tif", "autosave.json", "model.pt"]
    record = json.loads((folder / "autosave.json").read_text())
    assert record["image_shape"] == [128, 128] and record["classes"]["2"]["name"] == "nucleus"
    assert "kept with its annotation in" in _texts(messages, "info")
    annotation.data[:4, :4] = 1  # painted after the run: the next run's autosave replaces this one
    model = _train(w, cells, qtbot, continue_training=True)
    painted = np.array(annotation.data)
    assert not list(folder.glob(".*.part"))

    again = make_napari_viewer()
    train = _dock_train(again)
    assert train.restore_button.isHidden() and train.restore_button.found is None
    again.add_image(np.zeros((64, 64), np.float32), name="cells")  # another image of that name: nothing offered
    assert train.restore_button.found is None
    again.layers.clear()
    again.add_image(cells[0], name="cells")
    assert train.restore_button.found is not None and not train.restore_button.isHidden()
    assert train.restore_button.text().startswith("Restore model and annotation of 'cells' from ")
    assert "has an autosaved model" in _texts(messages, "info")

    train.restore_button.click()
    restored = again.layers["cells annotation"]
    np.testing.assert_array_equal(restored.data, painted)
    assert restored.data.dtype == painted.dtype
    assert restored.metadata[CLASSES_KEY][2]["name"] == "nucleus"
    assert _same_weights(train.session.model, model) and train.session.model.history == model.history
    assert train.session.unsaved  # its only copy is the autosave the next run replaces
    assert train.restore_button.isHidden() and train.source.currentText() == CURRENT
    assert train.annotation_picker.value is restored
    assert not [m for m in messages if m[0] == "error"], messages


def test_restoring_never_replaces_an_annotation_layer(make_napari_viewer, cells, messages):
    save_latest(new_model("light", ["nucleus"], depth=2, base_filters=4), "cells", (128, 128), _painted(cells), CLASSES)
    viewer = make_napari_viewer()
    viewer.add_image(cells[0], name="cells")
    mine = viewer.add_labels(np.full((128, 128), 2, np.uint8), name="cells annotation")
    train = _dock_train(viewer)  # the image was there before the widget: offered all the same
    assert train.restore_button.found is not None
    layer = train.restore_button.restore()
    assert layer.name == "cells annotation (restored)" and layer.data.dtype == np.uint8
    np.testing.assert_array_equal(layer.data, _painted(cells))
    assert (mine.data == 2).all() and viewer.layers["cells annotation"] is mine
    assert train.session.model is not None and train.session.model.class_names[-1] == "nucleus"


def test_nothing_is_offered_with_a_model_in_use_or_a_damaged_autosave(make_napari_viewer, cells, messages):
    save_latest(new_model("light", ["nucleus"], depth=2, base_filters=4), "cells", (128, 128), _painted(cells), CLASSES)
    viewer = make_napari_viewer()
    train = _dock_train(viewer)
    from napari_unet._widgets._session import set_model

    set_model(viewer, new_model("light", ["a"], depth=2, base_filters=4), "test")
    viewer.add_image(cells[0], name="cells")
    assert train.restore_button.found is None
    folder = find_latest("cells", (128, 128)).folder
    (folder / "autosave.json").write_text("{ not json")
    assert find_latest("cells", (128, 128)) is None
    assert not [m for m in messages if m[0] == "error"]


def test_a_stack_of_one_plane_comes_back_with_its_shape():
    annotation = np.zeros((1, 20, 30), np.uint8)
    annotation[0, 3, 4] = 2
    save_latest(new_model("light", ["a"], depth=2, base_filters=4), "one plane", (1, 20, 30), annotation, CLASSES)
    found = find_latest("one plane", (1, 20, 30))
    np.testing.assert_array_equal(found.read_annotation(), annotation)
    assert find_latest("one plane", (20, 30)) is None


def test_image_names_become_folder_names():
    assert folder_name("cells") == "cells"
    assert folder_name("a/b:c*?") == "a_b_c_"
    assert folder_name("..") == folder_name("") == "image"
    assert folder_name("x" * 300) == "x" * 100
