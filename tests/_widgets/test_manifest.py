"""The plugin loads the way `napari -w napari-unet` loads it, and every widget of the manifest docks."""

from npe2 import PluginManager


def test_napari_with_plugin(make_napari_viewer):
    viewer = make_napari_viewer()
    _, widget = viewer.window.add_plugin_dock_widget("napari-unet", tabify=True)  # what `napari -w` does
    assert widget is not None


def test_every_widget_of_the_manifest_docks(make_napari_viewer):
    viewer = make_napari_viewer()
    names = [w.display_name for w in PluginManager.instance().get_manifest("napari-unet").contributions.widgets]
    assert names == ["Annotate", "Train", "Segment", "Correct and retrain", "Export"]
    for name in names:
        _, widget = viewer.window.add_plugin_dock_widget("napari-unet", name, tabify=True)
        assert hasattr(widget, "reset_choices")
