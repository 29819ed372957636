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


def test_the_confidence_can_be_set_and_the_rule_used_is_said(plugin, qtbot):
    from napari_unet._widgets._session import set_model
    from napari_unet.models.starting import load_starting_model

    viewer, w = plugin
    segment = w["Segment"]
    assert segment.threshold.text() == "auto"
    assert segment.object_rule.text() == "chosen for the model when one is trained or loaded"
    set_model(viewer, load_starting_model(), "starting model")
    assert segment.object_rule.text().startswith("threshold 0.7, touching objects split at necks, grown back")
    wait_for(qtbot, segment.segment())
    auto = np.array(viewer.layers["cells objects"].data)
    segment.threshold.setValue(0.95)
    assert segment.object_rule.text().startswith("threshold 0.95, ")
    assert segment.object_rule.text().endswith("threshold as set")
    wait_for(qtbot, segment.segment())
    surer = np.array(viewer.layers["cells objects"].data)
    assert 0 < (surer > 0).sum() < (auto > 0).sum()  # only the pixels the model is surer of
    segment.objects.setChecked(False)
    assert not segment.threshold.isEnabled()


def test_the_model_remembers_the_object_shape(plugin, qtbot):
    from napari_unet._widgets._session import set_model
    from napari_unet.models.starting import load_starting_model

    viewer, w = plugin
    segment = w["Segment"]
    segment.object_shape.setCurrentIndex(segment.object_shape.findData("packed"))
    wait_for(qtbot, segment.segment())
    assert segment.session.model.object_shape == "packed"  # saved with the model from here on
    set_model(viewer, load_starting_model(), "starting model")  # a model for round nuclei
    assert segment.object_shape.currentData() == "round"
    packed = load_starting_model()
    packed.object_shape = "packed"
    set_model(viewer, packed, "loaded")
    assert segment.object_shape.currentData() == "packed"


def test_a_new_model_keeps_the_object_shape_chosen(plugin, cells, qtbot):
    from .conftest import scribbles_for

    _, w = plugin
    segment = w["Segment"]
    segment.object_shape.setCurrentIndex(segment.object_shape.findData("packed"))
    wait_for(qtbot, segment.segment())  # the starting model, now for packed cells
    w["Annotate"].ensure_annotation_layer().data = scribbles_for(cells[1])
    w["Train"].settings.budget_value.setValue(3)
    wait_for(qtbot, w["Train"].start())  # a fresh copy of the starting model
    assert w["Train"].session.model.object_shape == "packed"
    assert segment.object_shape.currentData() == "packed"


def test_the_status_says_when_the_tiles_are_done_and_the_objects_start(plugin, qtbot):
    _, w = plugin
    segment = w["Segment"]
    said = []
    job = segment.segment()
    job.worker.yielded.connect(lambda _: said.append(segment.status.text()))  # after the widget's own slot
    wait_for(qtbot, job)
    assert said[-2].startswith("tile ") and said[-1] == "finding objects…"
    assert segment.status.text().startswith("done: ")


def test_stop_while_the_objects_are_made_writes_nothing(plugin, qtbot, monkeypatch):
    import threading

    from napari_unet.predict import segment as predict

    viewer, w = plugin
    segment = w["Segment"]
    gate, real = threading.Event(), predict.classes_to_objects

    def held(*args, **kwargs):  # the objects wait until Stop was pressed: no race with a small image
        gate.wait(30)
        return real(*args, **kwargs)

    monkeypatch.setattr(predict, "classes_to_objects", held)

    def press_stop_once_the_objects_start(record):
        if record.message == predict.FINDING_OBJECTS:
            segment.cancel()
            gate.set()

    job = segment.segment()
    job.worker.yielded.connect(press_stop_once_the_objects_start)
    wait_for(qtbot, job)
    assert segment.status.text() == "cancelled; nothing was changed"
    assert [layer.name for layer in viewer.layers] == ["cells"]


def test_an_image_too_large_even_block_by_block_is_refused_before_it_is_read(plugin, messages, monkeypatch):
    import dask.array as da

    from napari_unet.predict import host_memory

    viewer, w = plugin
    reads = []

    def counted(block):
        reads.append(block.shape)
        return block

    viewer.add_image(da.zeros((256, 256), np.uint16, chunks=128).map_blocks(counted, dtype=np.uint16), name="slide")
    segment = w["Segment"]
    segment.image_picker.value = viewer.layers["slide"]
    monkeypatch.setattr(host_memory, "available_bytes", lambda: 10**6)
    before = len(reads)  # napari drew the layer from some blocks; segment() runs no event loop
    assert segment.segment() is None
    assert len(reads) == before  # refused before np.asarray read the image
    assert messages[-1][0] == "warning" and "even block by block it needs about" in messages[-1][1]
    assert not any(layer.name.startswith("slide ") for layer in viewer.layers)


def too_large_for_memory(monkeypatch) -> None:
    """The core decides that every image is too large to segment in memory and goes block by block.

    (How it decides is tested in tests/blockwise/test_route.py; the widget only asks.)
    """
    from napari_unet.blockwise.route import Route

    reason = "segmenting this image in memory needs about 3.0 GiB and 1.0 GiB is free"
    monkeypatch.setattr("napari_unet._widgets.segment.route_for_array", lambda *args, **kwargs: Route(True, reason))


def test_an_image_too_large_for_memory_is_segmented_block_by_block_into_zarr(
    plugin, qtbot, messages, monkeypatch, tmp_path
):
    import dask.array as da

    from napari_unet import PredictConfig, segment
    from napari_unet._reader import ZARR_KEY
    from napari_unet._widgets.segment import uncertainty
    from napari_unet.models.starting import load_starting_model
    from tests.blockwise.test_blocks import same_partition

    viewer, w = plugin
    pixels = np.tile(viewer.layers["cells"].data, (2, 3))[:200, :300]
    viewer.add_image(da.from_array(pixels, chunks=100), name="big slide", scale=(0.5, 0.5))
    seg_widget = w["Segment"]
    seg_widget.image_picker.value = viewer.layers["big slide"]
    seg_widget.large_folder.value = tmp_path / "results"
    seg_widget.uncertain.setChecked(True)
    too_large_for_memory(monkeypatch)
    wait_for(qtbot, seg_widget.segment())
    assert "block by block" in messages[-1][1] and str(tmp_path / "results") in messages[-1][1]
    written = sorted(p.name for p in (tmp_path / "results").iterdir())
    assert written == ["big_slide_objects.zarr", "big_slide_probabilities.zarr", "big_slide_segmentation.zarr"]
    reference = segment(load_starting_model(), pixels, PredictConfig())
    classes, objects = viewer.layers["big slide segmentation"], viewer.layers["big slide objects"]
    for layer in (classes, objects):
        assert isinstance(layer.data, da.Array) and not layer.editable and layer.metadata[ZARR_KEY]
        assert tuple(layer.scale) == (0.5, 0.5)
    np.testing.assert_array_equal(classes.data.compute(), reference.classes)
    assert same_partition(np.asarray(objects.data), reference.objects)
    lazy_uncertainty = viewer.layers["big slide uncertainty"].data
    assert isinstance(lazy_uncertainty, da.Array)
    np.testing.assert_allclose(lazy_uncertainty.compute(), uncertainty(reference.probabilities), atol=1e-6)
    assert seg_widget.status.text().startswith(f"done: written block by block to {tmp_path / 'results'}")

    wait_for(qtbot, seg_widget.segment())  # again: new folders, the first ones kept
    assert len(list((tmp_path / "results").iterdir())) == 6
    assert viewer.layers["big slide segmentation"].metadata[ZARR_KEY].endswith("big_slide-2_segmentation.zarr")
    assert [layer.name for layer in viewer.layers].count("big slide segmentation") == 1

    w["Export"].image_picker.value = viewer.layers["big slide"]
    assert w["Export"].export_image() == []  # nothing converted: the results are on disk already
    assert "saved as zarr already" in messages[-1][1]
    w["Correct and retrain"].image_picker.value = viewer.layers["big slide"]
    assert w["Correct and retrain"].apply_corrections() == 0
    assert messages[-1][0] == "warning" and "annotation layer" in messages[-1][1]

    from napari_unet.blockwise.route import IN_MEMORY

    monkeypatch.setattr("napari_unet._widgets.segment.route_for_array", lambda *args, **kwargs: IN_MEMORY)  # it fits
    wait_for(qtbot, seg_widget.segment())
    for name in ("big slide segmentation", "big slide objects", "big slide uncertainty"):
        layer = viewer.layers[name]
        assert isinstance(layer.data, np.ndarray) and ZARR_KEY not in layer.metadata  # replaced, editable again
    assert viewer.layers["big slide objects"].editable
    np.testing.assert_array_equal(viewer.layers["big slide segmentation"].data, reference.classes)


def test_stop_while_segmenting_block_by_block_writes_nothing(plugin, qtbot, monkeypatch, tmp_path):
    viewer, w = plugin
    segment = w["Segment"]
    segment.large_folder.value = tmp_path
    too_large_for_memory(monkeypatch)
    job = segment.segment()
    job.worker.yielded.connect(lambda record: segment.cancel())
    wait_for(qtbot, job)
    assert segment.status.text() == "cancelled; nothing was written"
    assert [layer.name for layer in viewer.layers] == ["cells"]
    qtbot.waitUntil(lambda: not any(tmp_path.iterdir()), timeout=5000)  # partial folders removed


def test_large_lazy_results_are_shown_as_pyramids(make_napari_viewer, tmp_path):
    import dask.array as da
    import zarr

    from napari_unet._reader import ZARR_KEY, pyramid, read_levels
    from napari_unet._widgets._zarr_results import show_zarr_result

    assert [level.shape for level in pyramid(da.zeros((2, 3000, 2100)))] == [
        (2, 3000, 2100),
        (2, 1500, 1050),
        (2, 750, 525),
    ]
    small = da.zeros((1024, 700))
    assert pyramid(small) is small  # one level: shown as it is
    path = tmp_path / "big_objects.zarr"
    zarr.open_array(str(path), mode="w", shape=(2100, 2100), chunks=(1024, 1024), dtype="u4")[:5, :5] = 7
    viewer = make_napari_viewer()
    image = viewer.add_image(np.zeros((2100, 2100), np.uint8), name="big", scale=(2, 2))
    layer = show_zarr_result(viewer, "labels", "big objects", read_levels(path), path, like=image)
    assert layer.multiscale and len(layer.data) == 3 and isinstance(layer.data[0], da.Array)
    assert isinstance(layer.data[2], np.ndarray) and layer.data[2][:3, :3].max() == 7  # read off the GUI thread
    assert not layer.editable and layer.metadata[ZARR_KEY] == str(path) and tuple(layer.scale) == (2, 2)
    again = show_zarr_result(
        viewer, "labels", "big objects", read_levels(path), path, like=image
    )  # replaces, never duplicates
    assert [lay.name for lay in viewer.layers] == ["big", "big objects"] and again is viewer.layers["big objects"]


def test_stop_while_the_block_by_block_result_is_finished_writes_nothing(plugin, qtbot, monkeypatch, tmp_path):
    import threading

    from napari_unet._widgets import segment as segment_module
    from napari_unet.blockwise.zarr_output import MERGING_OBJECTS

    viewer, w = plugin
    segment = w["Segment"]
    segment.large_folder.value = tmp_path
    too_large_for_memory(monkeypatch)
    gate, real = threading.Event(), segment_module.read_levels

    def held(*args, **kwargs):  # the folders are in place; reading them waits until Stop was pressed
        gate.wait(30)
        return real(*args, **kwargs)

    monkeypatch.setattr(segment_module, "read_levels", held)

    def press_stop_during_the_last_step(record):
        if record.message == MERGING_OBJECTS:
            segment.cancel()
            gate.set()

    job = segment.segment()
    job.worker.yielded.connect(press_stop_during_the_last_step)
    wait_for(qtbot, job)
    assert segment.status.text() == "cancelled; nothing was written"
    assert [layer.name for layer in viewer.layers] == ["cells"]
    assert list(tmp_path.iterdir()) == []  # the folders this run had finished were removed


def test_a_stack_too_large_for_memory_is_segmented_plane_by_plane_into_zarr(plugin, qtbot, monkeypatch, tmp_path):
    import dask.array as da

    from napari_unet import PredictConfig, segment
    from napari_unet.models.starting import load_starting_model

    viewer, w = plugin
    cells = viewer.layers["cells"].data
    stack = np.stack([cells[:96, :112], cells[32:, 16:]])
    viewer.add_image(da.from_array(stack, chunks=(1, 64, 64)), name="stack")
    seg_widget = w["Segment"]
    seg_widget.image_picker.value = viewer.layers["stack"]
    seg_widget.scope.setCurrentText("whole image")
    seg_widget.large_folder.value = tmp_path
    too_large_for_memory(monkeypatch)
    wait_for(qtbot, seg_widget.segment())
    classes = viewer.layers["stack segmentation"].data
    assert classes.shape == stack.shape
    reference = segment(load_starting_model(), stack, PredictConfig())
    np.testing.assert_array_equal(np.asarray(classes), reference.classes)
    objects = np.asarray(viewer.layers["stack objects"].data)
    assert len(np.intersect1d(np.unique(objects[0]), np.unique(objects[1]))) == 1  # only 0: ids unique over planes


def test_corrections_painted_on_the_results_are_kept_when_segmenting_again(plugin, qtbot, messages):
    viewer, w = plugin
    segment = w["Segment"]
    wait_for(qtbot, segment.segment())
    objects = viewer.layers["cells objects"]
    predicted = np.array(objects.data)
    wait_for(qtbot, segment.segment())  # nothing corrected: nothing added, nothing said
    assert "cells annotation" not in [layer.name for layer in viewer.layers]
    assert not [text for _, text in messages if "annotation pixels" in text]
    corrected = np.array(predicted)
    victim = corrected == int(corrected[corrected > 0][0])
    corrected[victim] = 0  # a false object erased
    corrected[2:10, 2:10] = corrected.max() + 1  # a missed object painted
    objects.data = corrected
    wait_for(qtbot, segment.segment())
    annotation = viewer.layers["cells annotation"]
    assert (annotation.data[2:10, 2:10] == 2).all() and (annotation.data[victim] == 1).all()
    added = int((annotation.data > 0).sum())
    said = [text for kind, text in messages if "annotation pixels" in text and kind == "info"]
    assert said == [
        f"{added} annotation pixels added to 'cells annotation' from the corrections painted on the previous "
        "results of 'cells', before the new results replaced them: retrain to use them (Ctrl-Z on the annotation "
        "takes them back)"
    ]
    np.testing.assert_array_equal(objects.data, predicted)  # the new results, written in place
    assert w["Correct and retrain"].apply_corrections() == 0  # added once, not twice
