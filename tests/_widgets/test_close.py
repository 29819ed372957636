"""Closing napari while the plugin works: the workers end cleanly and the model trained so far is kept."""

from __future__ import annotations

from napari_unet import load_model
from napari_unet._widgets._autosave import AUTOSAVE_ENV

from .conftest import train_in_background, wait_for


def test_closing_napari_mid_training_stops_and_saves_the_model(plugin, cells, qtbot, messages, tmp_path, monkeypatch):
    monkeypatch.setenv(AUTOSAVE_ENV, str(tmp_path / "autosave"))
    viewer, w = plugin
    job = train_in_background(w, cells, qtbot)
    session = w["Train"].session
    viewer.close()
    wait_for(qtbot, job, timeout=30_000)
    model = session.model
    assert model.history[-1]["ended"] == "stopped" and model.history[-1]["steps"] < 5000
    saved = list((tmp_path / "autosave" / "cells").glob("model-*.pt"))
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
