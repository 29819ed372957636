"""Every failure the widgets can meet ends in an actionable notification, and nothing painted is lost."""

import numpy as np
import pytest
import torch

from napari_unet import new_model, save_model

from .conftest import scribbles_for, train_in_background, wait_for


def _texts(messages, kind=None):
    return " | ".join(text for k, text in messages if kind is None or k == kind)


def test_no_annotation_painted(plugin, qtbot, messages):
    _, w = plugin
    w["Annotate"].ensure_annotation_layer()
    wait_for(qtbot, w["Train"].start())
    assert "nothing is painted" in _texts(messages, "error")
    assert w["Train"].start_button.isEnabled()


def test_only_one_class_painted(plugin, qtbot, messages):
    _, w = plugin
    layer = w["Annotate"].ensure_annotation_layer()
    layer.data[10:20, 10:20] = 2
    wait_for(qtbot, w["Train"].start())
    assert "only class 2 is painted" in _texts(messages, "error")


def test_annotation_of_another_shape(plugin, qtbot, messages):
    viewer, w = plugin
    wrong = viewer.add_labels(np.ones((50, 60), np.uint8), name="other annotation")
    wrong.data[:10] = 2
    w["Train"].annotation_picker.value = wrong
    wait_for(qtbot, w["Train"].start())
    assert "shape" in _texts(messages, "error")
    assert wrong.data.max() == 2  # untouched


def test_no_image_or_annotation_chosen(make_napari_viewer, messages):
    viewer = make_napari_viewer()
    _, train = viewer.window.add_plugin_dock_widget("napari-unet", "Train")
    assert train.start() is None
    assert "choose an image" in _texts(messages, "warning")


def test_image_deleted_during_training(plugin, cells, qtbot, messages):
    viewer, w = plugin
    train = w["Train"]
    job = train_in_background(w, cells, qtbot)
    viewer.layers.remove("cells")
    wait_for(qtbot, job)
    assert "was removed" in _texts(messages, "warning")
    model = train.session.model
    assert model.history[-1]["ended"] == "stopped" and model.history[-1]["steps"] < 5000
    assert "cells annotation" in [layer.name for layer in viewer.layers]  # the painting survives


def test_gpu_out_of_memory_is_retried_then_reported(plugin, cells, qtbot, messages, monkeypatch):
    """Simulated: every network call fails for lack of GPU memory."""
    _, w = plugin
    w["Annotate"].ensure_annotation_layer().data = scribbles_for(cells[1])
    model = new_model("light", ["object"], depth=2, base_filters=4)

    def out_of_memory(x):
        raise torch.OutOfMemoryError("CUDA out of memory (simulated)")

    monkeypatch.setattr(model.net, "forward", out_of_memory)
    from napari_unet._widgets._session import set_model

    set_model(w["Segment"].viewer, model, "test")
    wait_for(qtbot, w["Segment"].segment())
    assert "out of GPU memory even with the smallest tile" in _texts(messages, "error")
    w["Train"].source.setCurrentText("current model")
    w["Train"].settings.budget_value.setValue(3)
    wait_for(qtbot, w["Train"].start())
    assert "out of GPU memory even with batch size 1" in _texts(messages, "warning")


@pytest.mark.parametrize(("channels", "classes", "message"), [(2, ["a"], "expects 2 channels"), (1, ["a", "b"], None)])
def test_model_for_other_channels_or_classes(plugin, cells, qtbot, messages, tmp_path, channels, classes, message):
    viewer, w = plugin
    annotation = w["Annotate"].ensure_annotation_layer()
    annotation.data = scribbles_for(cells[1])
    path = save_model(new_model("light", classes, in_channels=channels, depth=2, base_filters=4), tmp_path / "m.pt")
    assert w["Train"].load_model(str(path)) is not None
    wait_for(qtbot, w["Segment"].segment())
    if message:
        assert message in _texts(messages, "error")
    else:  # a model with more classes works on a two-class annotation
        assert "cells segmentation" in [layer.name for layer in viewer.layers]
    annotation.data[0:5, 0:5] = 4  # a class neither model knows
    assert w["Train"].start(continue_training=True) is None
    assert "start a new model to add classes" in _texts(messages, "error")


def test_broken_model_file(plugin, messages, tmp_path):
    _, w = plugin
    (tmp_path / "broken.pt").write_bytes(b"not a model")
    assert w["Train"].load_model(str(tmp_path / "broken.pt")) is None
    assert "not a napari-unet model" in _texts(messages, "error")


def test_segment_without_any_model(plugin, messages, monkeypatch):
    _, w = plugin
    monkeypatch.setattr("napari_unet.models.choice.starting_model_path", lambda: None)
    assert w["Segment"].segment() is None
    assert "there is no model yet" in _texts(messages, "warning")


def test_first_segment_uses_the_starting_model(plugin, qtbot, messages):
    viewer, w = plugin
    wait_for(qtbot, w["Segment"].segment())
    assert "segmenting with the starting model" in _texts(messages, "info")
    objects = viewer.layers["cells objects"].data
    assert objects.shape == (128, 128) and objects.max() > 3  # the synthetic nuclei are found


def test_segment_while_training(plugin, cells, qtbot, messages):
    _, w = plugin
    w["Annotate"].ensure_annotation_layer().data = scribbles_for(cells[1])
    w["Train"].settings.budget_value.setValue(5000)
    job = w["Train"].start()
    qtbot.waitUntil(lambda: w["Train"].session.model is not None, timeout=30_000)
    assert w["Segment"].segment() is None
    assert "training is running" in _texts(messages, "warning")
    w["Train"].stop()
    wait_for(qtbot, job)


def test_export_never_overwrites_silently(plugin, cells, qtbot, messages, tmp_path):
    viewer, w = plugin
    viewer.add_labels(np.ones((128, 128), np.uint8), name="cells segmentation")
    export = w["Export"]
    export.folder.value = str(tmp_path)
    (tmp_path / "cells_segmentation.tif").write_bytes(b"precious")
    assert export.export_image() == []
    assert "exists already" in _texts(messages, "error")
    assert (tmp_path / "cells_segmentation.tif").read_bytes() == b"precious"
    export.overwrite.setChecked(True)
    assert len(export.export_image()) == 1


def test_layer_pickers_follow_the_viewer(plugin):
    viewer, w = plugin
    picker = w["Segment"].image_picker
    viewer.add_image(np.zeros((10, 10)), name="new image")
    assert "new image" in [c for c in picker.choices if c is not None and isinstance(c, str)] or "new image" in [
        getattr(c, "name", None) for c in picker.choices
    ]
    viewer.layers["new image"].name = "renamed"
    names = [getattr(c, "name", None) for c in picker.choices]
    assert "renamed" in names and "new image" not in names


def test_an_instance_mask_as_annotation_trains_whole_objects(plugin, cells, qtbot, messages):
    viewer, w = plugin
    mask = viewer.add_labels(cells[1].astype(np.uint16), name="cells annotation")  # nuclei numbered 1..n
    train = w["Train"]
    train.annotation_picker.value = mask
    train.settings.budget_value.setValue(3)
    wait_for(qtbot, train.start())
    assert "instance mask" in _texts(messages, "info") and "whole objects of one class" in _texts(messages, "info")
    assert train.session.model.class_names == ("background", "nucleus")  # the starting model, not n classes
    assert train.session.model.history[-1]["steps"] == 3
    np.testing.assert_array_equal(mask.data, cells[1])  # the layer is left as painted
