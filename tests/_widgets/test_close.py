"""Closing napari while the plugin works: the workers end cleanly and the model trained so far is kept."""

from __future__ import annotations

from napari_unet import load_model
from napari_unet._widgets._autosave import AUTOSAVE_ENV

from .conftest import scribbles_for, wait_for


def test_closing_napari_mid_training_stops_and_saves_the_model(plugin, cells, qtbot, messages, tmp_path, monkeypatch):
    monkeypatch.setenv(AUTOSAVE_ENV, str(tmp_path / "autosave"))
    viewer, w = plugin
    w["Annotate"].ensure_annotation_layer().data = scribbles_for(cells[1])
    train = w["Train"]
    train.settings.budget_value.setValue(5000)
    steps = []
    job = train.start()
    job.worker.yielded.connect(lambda r: steps.append(r))
    qtbot.waitUntil(lambda: len(steps) >= 3, timeout=60_000)
    session = train.session
    viewer.close()
    wait_for(qtbot, job, timeout=30_000)
    model = session.model
    assert model.history[-1]["ended"] == "stopped" and model.history[-1]["steps"] < 5000
    saved = list((tmp_path / "autosave").glob("model-*.pt"))
    assert len(saved) == 1
    assert load_model(saved[0]).history[-1]["steps"] == model.history[-1]["steps"]
    assert not [m for m in messages if m[0] == "error"]


def test_closing_napari_mid_segmentation_writes_nothing(plugin, qtbot, messages):
    viewer, w = plugin
    segment = w["Segment"]
    job = segment.segment()  # the starting model
    viewer.close()
    wait_for(qtbot, job, timeout=30_000)
    assert job.abandoned
    assert not [m for m in messages if m[0] == "error"]
