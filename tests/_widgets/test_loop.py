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
    w["Correct and retrain"].retrain_steps.setValue(30)  # the retrain's length, whatever Train's budget says
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


def _matched(truth: np.ndarray, objects: np.ndarray, ids) -> list[int]:
    """The true objects among ``ids`` that some predicted object matches at IoU above 0.5."""
    found = []
    for t in ids:
        mine = truth == t
        candidates, counts = np.unique(objects[mine], return_counts=True)
        best = max((c for v, c in zip(candidates, counts, strict=True) if v), default=0)
        owner = candidates[counts == best][0] if best else 0
        if owner and best / (mine.sum() + (objects == owner).sum() - best) > 0.5:
            found.append(int(t))
    return found


def test_two_rounds_of_corrections_make_the_corrected_objects_come_out_right(make_napari_viewer, qtbot):
    """Touching rods, which the starting model (round nuclei) merges: scribbles, then two rounds of painting
    the largest wrong ones whole on the objects layer, Add corrections and retrain, Segment."""
    from scipy import ndimage

    from napari_unet.images.synthetic_rods import RodsConfig, synthetic_rods

    from .conftest import scribbles_for

    image, truth = synthetic_rods(RodsConfig(shape=(160, 160)), seed=4)
    viewer = make_napari_viewer()
    viewer.add_image(image, name="rods")
    names = ("Annotate", "Train", "Segment", "Correct and retrain")
    w = {name: viewer.window.add_plugin_dock_widget("napari-unet", name)[1] for name in names}
    w["Train"].settings.preview_every.setValue(0)
    w["Train"].settings.budget_value.setValue(300)
    w["Correct and retrain"].retrain_steps.setValue(300)
    scribbles = np.where(scribbles_for(truth) == 1, 1, 0).astype(np.uint8)  # far background strokes
    inner = (ndimage.minimum_filter(truth, 5) == ndimage.maximum_filter(truth, 5)) & (truth % 3 == 0) & (truth > 0)
    scribbles[inner] = 2  # strokes inside a third of the rods
    w["Annotate"].ensure_annotation_layer().data = scribbles
    wait_for(qtbot, w["Train"].start(), timeout=300_000)
    wait_for(qtbot, w["Segment"].segment())
    objects = viewer.layers["rods objects"]
    all_ids = np.unique(truth[truth > 0])
    right_before = len(_matched(truth, objects.data, all_ids))
    corrected: list[int] = []
    for _ in range(2):
        missing = [t for t in all_ids if t not in _matched(truth, objects.data, [t])]
        chosen = sorted(missing, key=lambda t: -(truth == t).sum())[:6]
        painted = np.array(objects.data)
        label = int(painted.max()) + 1
        for t in chosen:  # each painted whole with a new label, over what was there
            painted[truth == t] = label
            label += 1
        objects.data = painted
        assert w["Correct and retrain"].apply_and_retrain() > 0
        wait_for(qtbot, w["Train"].job, timeout=300_000)
        assert w["Train"].session.model.history[-1]["steps"] == 300
        wait_for(qtbot, w["Segment"].segment())
        corrected += [int(t) for t in chosen]
        assert objects is viewer.layers["rods objects"]  # written in place
    assert len(_matched(truth, objects.data, corrected)) >= 0.6 * len(corrected)  # none was right before
    assert len(_matched(truth, objects.data, all_ids)) > right_before  # and the rest of the colony gained
