"""Start napari with the sample nuclei image (or the given files) and the plugin's widgets."""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> None:
    """Open a viewer, load images, dock the plugin's widgets and run the Qt event loop."""
    import napari

    paths = sys.argv[1:] if argv is None else argv
    viewer = napari.Viewer(title="napari-unet")
    if paths:
        viewer.open(paths)
    else:
        viewer.open_sample("napari-unet", "nuclei")
    from npe2 import PluginManager

    docks = [
        viewer.window.add_plugin_dock_widget("napari-unet", contribution.display_name, tabify=True)[0]
        for contribution in PluginManager.instance().get_manifest("napari-unet").contributions.widgets or []
    ]
    if docks:
        docks[0].raise_()  # Annotate first: the loop starts with painting
    napari.run()


if __name__ == "__main__":
    main()
