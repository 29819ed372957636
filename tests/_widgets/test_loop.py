"""The whole loop a biologist goes through: annotate, train, stop, continue, segment, correct, retrain, export."""

import numpy as np
import tifffile
from qtpy.QtCore import QElapsedTimer, QTimer
from scipy import ndimage

from .conftest import scribbles_for, wait_for


def test_annotate_train_stop_continue_segment_correct_retrain_export(plugin, cells, qtbot, tmp_path, messages):
    viewer, w = plugin
    image, objects = cells

    # annotate: the annotation layer, painted programmatically
    annotation = w["Annotate"].ensure_annotation_layer()
    assert annotation.name == "cells annotation" and annotation.data.shape == image.shape
    annotation.data = scribbles_for(objects)

    # train, and stop mid-run: the model trained so far is kept
    train = w["Train"]
    assert train.annotation_picker.value.name == annotation.name
    train.settings.budget_value.setValue(400)
    seen = []
    job = train.start()
    job.worker.yielded.connect(lambda r: seen.append(getattr(r, "step", None)))
    qtbot.waitUntil(lambda: len(seen) >= 5, timeout=60_000)
    train.stop()
    wait_for(qtbot, job)
    model = train.session.model
    assert model is not None and model.history[-1]["ended"] == "stopped"
    stopped_at, trained_before = model.history[-1]["steps"], model.trained_steps
    assert 5 <= stopped_at < 400
    assert next(model.net.parameters()).device.type == "cpu"

    # continue from the same model
    train.settings.budget_value.setValue(120)
    wait_for(qtbot, train.start(continue_training=True))
    assert train.session.model is model and model.trained_steps == trained_before + 120
    assert model.history[-1]["ended"] == "finished"

    # segment: classes and objects layers
    segment = w["Segment"]
    segment.uncertain.setChecked(True)
    wait_for(qtbot, segment.segment())
    seg = viewer.layers["cells segmentation"]
    obj = viewer.layers["cells objects"]
    assert seg.data.shape == obj.data.shape == image.shape
    assert obj.data.max() > 5
    assert viewer.layers["cells uncertainty"].data.shape == image.shape

    # correct: erase one predicted object and paint a new one, then retrain
    victim = int(obj.data[obj.data > 0][0])
    erased = np.asarray(obj.data) == victim
    corrected = np.array(obj.data)
    corrected[erased] = 0
    corrected[2:10, 2:10] = corrected.max() + 1
    obj.data = corrected
    before = np.array(annotation.data)
    train.settings.budget_value.setValue(30)
    changed = w["Correct and retrain"].apply_and_retrain()
    assert changed > 0
    assert (annotation.data[2:10, 2:10] == 2).all()  # the new object, whole
    assert (annotation.data[erased] == 1).all()  # the erased object became background
    near = ndimage.binary_dilation(erased | (corrected == corrected.max()), iterations=3)
    assert (annotation.data[~near] == before[~near]).all()  # nothing else changed
    wait_for(qtbot, train.job)
    assert model.trained_steps == trained_before + 150

    # segment again: the layers are updated in place
    wait_for(qtbot, segment.segment())
    assert [layer.name for layer in viewer.layers].count("cells objects") == 1
    assert viewer.layers["cells objects"] == obj

    # export
    export = w["Export"]
    export.folder.value = str(tmp_path)
    written = export.export_image()
    assert sorted(p.name for p in written) == ["cells_objects.tif", "cells_segmentation.tif"]
    with tifffile.TiffFile(tmp_path / "cells_objects.tif") as tif:
        assert tif.is_imagej and tif.series[0].axes == "YX"
        np.testing.assert_array_equal(tif.asarray(), obj.data)
    assert not [m for m in messages if m[0] == "error"], messages


def test_gui_stays_responsive_while_training(plugin, cells, qtbot):
    """A 20 ms timer on the GUI thread keeps firing while the model trains in the background."""
    _, w = plugin
    w["Annotate"].ensure_annotation_layer().data = scribbles_for(cells[1])
    train = w["Train"]
    train.settings.budget_value.setValue(60)
    ticks, clock = [], QElapsedTimer()
    clock.start()
    timer = QTimer()
    timer.timeout.connect(lambda: ticks.append(clock.elapsed()))
    timer.start(20)
    job = train.start()
    wait_for(qtbot, job)
    timer.stop()
    assert job is not None and train.session.model.history[-1]["steps"] == 60
    gaps = np.diff(ticks)
    assert len(ticks) > 10
    assert np.median(gaps) < 100
