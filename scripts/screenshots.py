"""Drive the whole loop in a real napari window and save a screenshot of each widget in use to docs/images/.

    xvfb-run -s "-screen 0 1280x1024x24" .venv/bin/python scripts/screenshots.py

Uses the shipped DSB2018 sample image. Scribbles follow the benchmark protocol when the benchmark data is
there (docs/benchmarks.md; its hand-made mask gives the objects to scribble on); otherwise a rough
threshold stands in.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from scipy import ndimage

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "docs" / "images"
sys.path.insert(0, str(ROOT / "benchmarks"))
from datasets import DATA  # noqa: E402  (benchmarks/ is not a package)

MASK = DATA / "dsb2018" / "mask2d.tif"


def wait(app, condition, timeout=600.0):
    """Process Qt events until ``condition()`` holds."""
    start = time.monotonic()
    while not condition():
        app.processEvents()
        time.sleep(0.02)
        if time.monotonic() - start > timeout:
            raise TimeoutError("the plugin did not finish in time")


def settle(app, seconds=0.5):
    """Let the window redraw."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        app.processEvents()
        time.sleep(0.02)


def shoot(viewer, app, name):
    """Save the whole window (canvas and dock widgets)."""
    from napari._qt.dialogs.qt_notification import NapariQtNotification
    from skimage.io import imsave

    settle(app)
    for toast in viewer.window._qt_window.findChildren(NapariQtNotification):
        toast.close()  # the widget's status line says the same; a toast would cover the canvas
    settle(app)
    OUT.mkdir(parents=True, exist_ok=True)
    imsave(OUT / f"{name}.png", viewer.screenshot(canvas_only=False, flash=False), check_contrast=False)
    print("saved", OUT / f"{name}.png")


def scribbles(image):
    """Annotation strokes as a person would paint them."""
    if MASK.exists():
        import tifffile

        from protocols import scribbles as protocol

        return protocol(tifffile.imread(MASK), n_objects=10, n_background=10, seed=0)
    smooth = ndimage.gaussian_filter(image.astype(float), 2)
    annotation = np.zeros(image.shape, np.uint8)
    annotation[smooth > np.percentile(smooth, 92)] = 2
    annotation[(smooth < np.percentile(smooth, 30)) & (np.indices(image.shape).sum(0) % 9 == 0)] = 1
    return annotation


def dock(viewer, name):
    """Show one of the plugin's widgets alone on the right (the others stay alive, hidden)."""
    from qtpy.QtWidgets import QDockWidget

    for inner in list(viewer.window.dock_widgets.values()):
        holder = inner
        while holder is not None and not isinstance(holder, QDockWidget):
            holder = holder.parentWidget()
        if holder is not None:
            holder.hide()
    dock_widget, widget = viewer.window.add_plugin_dock_widget("napari-unet", name)
    dock_widget.show()
    return widget


def main():
    import os

    # the plugin's autosaves and results go to a scratch folder: none of the user's, none offered back
    os.environ["NAPARI_UNET_RESULTS"] = tempfile.mkdtemp(prefix="napari-unet-screenshots-")
    import napari
    from qtpy.QtWidgets import QApplication

    viewer = napari.Viewer(title="napari-unet")
    app = QApplication.instance()
    viewer.window.resize(1280, 900)
    viewer.open_sample("napari-unet", "nuclei")
    image = viewer.layers["nuclei"]
    image.contrast_limits = (0, 150)

    annotate = dock(viewer, "Annotate")
    annotation = annotate.ensure_annotation_layer()
    annotate.rename_class(2, "nucleus")
    annotation.data = scribbles(np.asarray(image.data))
    annotate.table.selectRow(1)
    viewer.layers.selection.active = annotation
    shoot(viewer, app, "annotate")

    train = dock(viewer, "Train")
    train.settings.budget_value.setValue(300)
    train.settings.preview_every.setValue(3)
    job = train.start()
    wait(app, lambda: train.progress.value() > 600 or not job.running)
    shoot(viewer, app, "train")
    wait(app, lambda: not job.running)
    for name in [layer.name for layer in viewer.layers if layer.name.endswith("preview")]:
        viewer.layers.remove(name)

    segment = dock(viewer, "Segment")
    segment.uncertain.setChecked(False)
    job = segment.segment()
    wait(app, lambda: not job.running)
    viewer.layers["nuclei annotation"].visible = False
    viewer.layers["nuclei segmentation"].visible = False
    shoot(viewer, app, "segment")

    correct = dock(viewer, "Correct and retrain")
    objects = viewer.layers["nuclei objects"]
    data = np.array(objects.data)
    merged = np.bincount(data.ravel())[1:].argmax() + 1  # the largest object: most likely two nuclei
    ys, xs = np.nonzero(data == merged)
    centre = np.array([ys.mean(), xs.mean()])
    axis = np.linalg.eigh(np.cov(np.stack([ys, xs])))[1][:, -1]
    half = ((np.stack([ys, xs], 1) - centre) @ axis) > 0
    data[ys[half], xs[half]] = data.max() + 1  # the correction: split it in two
    objects.data = data
    correct.apply_corrections()
    viewer.layers["nuclei annotation"].visible = True
    objects.opacity = 0.35
    viewer.layers.move(viewer.layers.index("nuclei annotation"), len(viewer.layers))
    camera = viewer.scene.camera if hasattr(viewer, "scene") else viewer.camera
    camera.center = (0, *centre)
    camera.zoom = 6
    shoot(viewer, app, "correct")
    camera.zoom = 1.6
    camera.center = (0, 256, 256)

    export = dock(viewer, "Export")
    export.folder.value = tempfile.mkdtemp(prefix="napari-unet-export-")
    export.overwrite.setChecked(True)
    export.export_image()
    shoot(viewer, app, "export")
    viewer.close()


if __name__ == "__main__":
    main()
