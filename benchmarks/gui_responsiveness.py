"""How responsive napari stays while the plugin trains: lateness of a timer on the GUI thread.

Starts napari with the DSB2018 sample, paints scribbles, and trains the light preset in the background
(live preview on) while a 10 ms QTimer on the GUI thread records when it actually fires. The same timer
is measured first with napari idle, as the baseline of this machine.

    xvfb-run -a -s "-screen 0 1280x1024x24" .venv/bin/python benchmarks/gui_responsiveness.py [--steps 200]

Writes benchmarks/results/gui_responsiveness.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
from screenshots import scribbles  # noqa: E402

INTERVAL_MS = 10


def measure(app, seconds: float | None = None, until=None) -> np.ndarray:
    """Lateness (ms) of every tick of a 10 ms timer while the event loop runs."""
    from qtpy.QtCore import QElapsedTimer, QTimer

    clock, ticks = QElapsedTimer(), []
    clock.start()
    timer = QTimer()
    timer.timeout.connect(lambda: ticks.append(clock.nsecsElapsed() / 1e6))
    timer.start(INTERVAL_MS)
    end = time.monotonic() + (seconds or 1e9)
    while time.monotonic() < end and (until is None or not until()):
        app.processEvents()
        time.sleep(0.001)
    timer.stop()
    return np.maximum(np.diff(ticks) - INTERVAL_MS, 0)


def summary(lateness: np.ndarray) -> dict:
    return {
        "ticks": len(lateness),
        "median_ms": round(float(np.median(lateness)), 2),
        "p99_ms": round(float(np.percentile(lateness, 99)), 2),
        "max_ms": round(float(lateness.max()), 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=200)
    args = parser.parse_args()
    import napari
    import torch
    from qtpy.QtWidgets import QApplication

    viewer = napari.Viewer()
    app = QApplication.instance()
    viewer.open_sample("napari-unet", "nuclei")
    _, annotate = viewer.window.add_plugin_dock_widget("napari-unet", "Annotate")
    annotate.ensure_annotation_layer().data = scribbles(np.asarray(viewer.layers["nuclei"].data))
    _, train = viewer.window.add_plugin_dock_widget("napari-unet", "Train")
    train.settings.budget_value.setValue(args.steps)
    train.settings.preview_every.setValue(2)
    idle = measure(app, seconds=5)
    clicked = time.perf_counter()
    job = train.start()
    start_click_ms = (time.perf_counter() - clicked) * 1000
    busy = measure(app, until=lambda: not job.running)
    result = {
        "benchmark": "GUI timer lateness while training in the background",
        "torch_threads": torch.get_num_threads(),
        "steps": args.steps,
        "device": train.settings.device_label.text(),
        "idle": summary(idle),
        "start_click_ms": round(start_click_ms, 1),
        "training": summary(busy),
        "training_seconds": train.session.model.history[-1]["seconds"],
    }
    viewer.close()
    out = ROOT / "benchmarks" / "results" / "gui_responsiveness.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
