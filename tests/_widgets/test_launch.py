"""scripts/run.sh's launcher: napari with the sample image and every widget of the plugin."""

import napari

from napari_unet import _launch


def test_launcher_opens_the_sample_and_the_widgets(monkeypatch, qtbot):
    seen = {}

    def fake_run():
        viewer = napari.current_viewer()
        seen["layers"] = [layer.name for layer in viewer.layers]
        seen["docks"] = sorted(viewer.window.dock_widgets)
        viewer.close()

    monkeypatch.setattr(napari, "run", fake_run)
    _launch.main([])
    assert seen["layers"] == ["nuclei"]
    assert seen["docks"] == sorted(
        f"{name} (napari-unet)" for name in ["Annotate", "Train", "Segment", "Correct and retrain", "Export"]
    )
