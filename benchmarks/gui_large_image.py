"""An image too large for memory, segmented from napari's Segment button: time, memory, responsiveness, Stop.

    xvfb-run -a -s "-screen 0 1280x1024x24" .venv/bin/python benchmarks/gui_large_image.py [--side 8192]

A side x side synthetic nuclei mosaic (the one of ``large_image.py``) is written to zarr and opened in
napari as a lazy (dask) image layer. The Segment widget is made to see it as too large for memory (as
on a machine with less free memory than the in-memory estimate), so it takes the block-wise route:
zarr folders written block by block in a background thread, then shown as lazy labels layers. Measured
in one run:

- the Segment button's wall time, against ``napari-unet predict --format zarr`` on the same image in a
  fresh process (the peer: the same blocks without napari);
- the lateness of a 10 ms timer on napari's GUI thread while it runs (idle first, as this machine's
  baseline), and napari's resident memory above its level before the click: sampled while segmenting,
  and the peak including the result layers shown;
- a second click stopped after two blocks: the seconds from Stop to the end of the job, and that no
  folder is left;
- the results shown: classes and objects equal to the command line's (objects up to their ids).

Writes benchmarks/results/gui_large_image.json.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
from gui_responsiveness import measure, summary  # noqa: E402
from large_image import same_outputs, write_mosaic  # noqa: E402


def peak_rss() -> int:
    """Peak resident memory of this process so far, in bytes."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def current_rss() -> int:
    """Resident memory of this process now, in bytes (Linux)."""
    import os

    return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def command_line_seconds(image: Path, out: Path) -> float:
    """``napari-unet predict starting IMAGE --format zarr --objects`` in a fresh process: its wall time."""
    command = [sys.executable, "-m", "napari_unet.cli", "predict", "starting", str(image), "--out", str(out)]
    start = time.perf_counter()
    subprocess.run([*command, "--objects", "--format", "zarr", "--device", "cpu"], check=True, capture_output=True)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--side", type=int, default=8192)
    args = parser.parse_args()
    import dask.array as da
    import napari
    import torch
    from qtpy.QtWidgets import QApplication

    from napari_unet._widgets import segment as segment_module

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        image = tmp / "slide.zarr"
        write_mosaic(image, args.side)
        peer_seconds = command_line_seconds(image, tmp / "cli")

        viewer = napari.Viewer()
        app = QApplication.instance()
        viewer.add_image(da.from_zarr(str(image)), name="slide")
        _, widget = viewer.window.add_plugin_dock_widget("napari-unet", "Segment")
        widget.large_folder.value = tmp / "gui"
        # as on a machine with less free memory than segmenting it in memory needs; the blocks fit
        segment_module.shortfall = lambda *a, **k: (3 * 2**30, 2**30)
        segment_module.available_bytes = lambda: None
        idle = measure(app, seconds=5)
        baseline, before = peak_rss(), current_rss()
        start = time.perf_counter()
        job = widget.segment()
        while_segmenting = []  # sampled at every progress record (at least every 0.25 s), before the layers are shown
        job.worker.yielded.connect(lambda _: while_segmenting.append(current_rss()))
        busy = measure(app, until=lambda: not job.running)
        gui_seconds = time.perf_counter() - start
        peak_gib = (peak_rss() - baseline) / 2**30
        segmenting_gib = (max(while_segmenting) - before) / 2**30
        shown = {kind: type(viewer.layers[f"slide {kind}"].data).__name__ for kind in ("segmentation", "objects")}
        written = sorted(p.name for p in (tmp / "gui").iterdir())
        # the same as the command line's (the GUI folder is named after the layer, "slide")
        same = same_outputs(tmp / "cli", tmp / "gui", "slide")

        blocks_seen = []
        job = widget.segment()
        job.worker.yielded.connect(lambda record: blocks_seen.append(record.done))
        measure(app, until=lambda: any(done >= 2 for done in blocks_seen) or not job.running)
        stopped = time.perf_counter()
        widget.cancel()
        measure(app, until=lambda: not job.running)
        stop_seconds = time.perf_counter() - stopped
        left = sorted(p.name for p in (tmp / "gui").iterdir())
        status_after_stop = widget.status.text()
        viewer.close()

    result = {
        "benchmark": "Segment button on an image too large for memory (block by block into zarr)",
        "date": time.strftime("%Y-%m-%d"),
        "side": args.side,
        "torch_threads": torch.get_num_threads(),
        "gui_seconds": round(gui_seconds, 1),
        "command_line_seconds": round(peer_seconds, 1),
        "ratio_gui_to_command_line": round(gui_seconds / peer_seconds, 2),
        "rss_while_segmenting_above_before_click_gib": round(segmenting_gib, 3),
        "peak_rss_above_before_click_gib_with_layers_shown": round(peak_gib, 3),
        "idle": summary(idle),
        "segmenting": summary(busy),
        "layers": shown,
        "written": written,
        **same,
        "stop": {
            "blocks_done_when_stopped": max(blocks_seen, default=0),
            "seconds_from_stop_to_end": round(stop_seconds, 2),
            "left_in_folder_after_stop": left,
            "status": status_after_stop,
        },
    }
    out = ROOT / "benchmarks" / "results" / "gui_large_image.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
