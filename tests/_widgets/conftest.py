"""Fixtures for the widget tests: a viewer with a small nuclei image, the plugin's widgets, captured messages."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from napari_unet.images.synthetic import SyntheticConfig, synthetic_nuclei

FAST = {"batch_size": 2, "patch_size": 60, "validate_every": 1000}


@pytest.fixture(autouse=True)
def autosave_here(monkeypatch, tmp_path):
    """The autosave and results folders, in the test's own folder (never the real home); returns the autosave one."""
    from napari_unet._widgets._autosave import AUTOSAVE_ENV
    from napari_unet._widgets._zarr_results import RESULTS_ENV

    monkeypatch.setenv(RESULTS_ENV, str(tmp_path / "results"))
    monkeypatch.delenv(AUTOSAVE_ENV, raising=False)
    return tmp_path / "results" / "autosave"


@pytest.fixture
def messages(monkeypatch):
    """Every notification the plugin shows, as (kind, text)."""
    from napari_unet._widgets import _jobs

    shown: list[tuple[str, str]] = []
    monkeypatch.setattr(_jobs, "show_error", lambda text: shown.append(("error", text)))
    monkeypatch.setattr(_jobs, "show_warning", lambda text: shown.append(("warning", text)))
    monkeypatch.setattr(_jobs, "show_info", lambda text: shown.append(("info", text)))
    return shown


@pytest.fixture
def cells():
    """A 128x128 synthetic nuclei image and its true objects."""
    return synthetic_nuclei(SyntheticConfig(shape=(128, 128)), seed=3)


def scribbles_for(objects: np.ndarray) -> np.ndarray:
    """What a person paints: object centres as class 2, a few far background strokes as 1."""
    annotation = np.zeros(objects.shape, dtype=np.uint8)
    annotation[ndimage.binary_erosion(objects > 0, iterations=3)] = 2
    far = ndimage.distance_transform_edt(objects == 0) > 6
    annotation[far & (np.indices(far.shape).sum(0) % 7 == 0)] = 1
    return annotation


@pytest.fixture
def plugin(make_napari_viewer, cells):
    """A viewer holding the image "cells" and all five dock widgets of the plugin."""
    viewer = make_napari_viewer()
    viewer.add_image(cells[0], name="cells")
    widgets = {}
    for name in ("Annotate", "Train", "Segment", "Correct and retrain", "Export"):
        _, widget = viewer.window.add_plugin_dock_widget("napari-unet", name)
        widgets[name] = widget
    widgets["Train"].settings.advanced_form.set_values(FAST)
    widgets["Train"].settings.preview_every.setValue(0)
    return viewer, widgets


def wait_for(qtbot, job, timeout=120_000):
    """Wait until a background job has finished."""
    qtbot.waitUntil(lambda: not job.running, timeout=timeout)


def train_in_background(widgets, cells, qtbot, budget=5000):
    """Paint scribbles, start a long training run and wait for its first steps; returns the job."""
    widgets["Annotate"].ensure_annotation_layer().data = scribbles_for(cells[1])
    train = widgets["Train"]
    train.settings.budget_value.setValue(budget)
    steps = []
    job = train.start()
    job.worker.yielded.connect(lambda record: steps.append(record))
    qtbot.waitUntil(lambda: len(steps) >= 3, timeout=60_000)
    return job
