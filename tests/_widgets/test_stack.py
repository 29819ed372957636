"""Stacks and time series: annotate one plane, train, segment the current plane or the whole stack."""

import numpy as np

from napari_unet.images.synthetic import SyntheticConfig, synthetic_nuclei

from .conftest import FAST, scribbles_for, wait_for


def _train(viewer, qtbot, steps, channels="single channel"):
    """Train a new model for a few steps with the Train widget; returns the widget."""
    _, train = viewer.window.add_plugin_dock_widget("napari-unet", "Train")
    train.channels.setCurrentText(channels)
    train.settings.advanced_form.set_values(FAST)
    train.settings.preview_every.setValue(0)
    train.settings.budget_value.setValue(steps)
    wait_for(qtbot, train.start())
    return train


def test_stack_plane_by_plane(make_napari_viewer, qtbot, messages):
    viewer = make_napari_viewer()
    planes = [synthetic_nuclei(SyntheticConfig(shape=(96, 96)), seed=s) for s in range(3)]
    stack = np.stack([p[0] for p in planes])
    viewer.add_image(stack, name="movie")
    _, annotate = viewer.window.add_plugin_dock_widget("napari-unet", "Annotate")
    annotation = annotate.ensure_annotation_layer()
    annotation.data[1] = scribbles_for(planes[1][1])  # only the middle plane is painted
    train = _train(viewer, qtbot, 30)
    assert train.session.model.history[-1]["steps"] == 30
    _, segment = viewer.window.add_plugin_dock_widget("napari-unet", "Segment")
    viewer.dims.set_current_step(0, 2)
    wait_for(qtbot, segment.segment())
    objects = viewer.layers["movie objects"].data
    assert objects.shape == stack.shape
    assert objects[2].max() > 0 and objects[0].max() == 0 and objects[1].max() == 0
    segment.scope.setCurrentText("whole image")
    wait_for(qtbot, segment.segment())
    objects = viewer.layers["movie objects"].data
    assert all(objects[i].max() > 0 for i in range(3))
    ids = [set(np.unique(objects[i])) - {0} for i in range(3)]
    assert not (ids[0] & ids[1]) and not (ids[1] & ids[2])  # ids unique over the stack
    assert not [m for m in messages if m[0] == "error"]


def test_multichannel_channels_last(make_napari_viewer, qtbot, messages):
    viewer = make_napari_viewer()
    image, objects = synthetic_nuclei(SyntheticConfig(shape=(96, 96)), seed=5)
    two = np.stack([image, image[::-1]], axis=-1)
    viewer.add_image(two, name="two", rgb=False)
    _, annotate = viewer.window.add_plugin_dock_widget("napari-unet", "Annotate")
    annotate.channels.setCurrentText("channels last")
    annotate.ensure_annotation_layer().data = scribbles_for(objects)
    train = _train(viewer, qtbot, 10, channels="channels last")
    assert train.session.model.in_channels == 2  # the one-channel starting model gave way to a new one
    assert any("training a new" in text for _, text in messages)
    _, segment = viewer.window.add_plugin_dock_widget("napari-unet", "Segment")
    segment.channels.setCurrentText("channels last")
    wait_for(qtbot, segment.segment())
    assert viewer.layers["two segmentation"].data.shape == (96, 96)
    assert not [m for m in messages if m[0] == "error"], messages


def test_a_plane_of_a_lazy_stack_is_read_alone(make_napari_viewer, qtbot, messages):
    import dask.array as da

    viewer = make_napari_viewer()
    planes = np.stack([synthetic_nuclei(SyntheticConfig(shape=(96, 96)), seed=s)[0] for s in range(4)])
    reads = []

    def counted(block, block_info=None):
        reads.append(block_info[0]["chunk-location"][0])
        return block

    stack = da.from_array(planes, chunks=(1, 96, 96)).map_blocks(counted, dtype=planes.dtype)
    viewer.add_image(stack, name="lazy")
    viewer.dims.set_current_step(0, 3)
    _, segment = viewer.window.add_plugin_dock_widget("napari-unet", "Segment")  # the starting model
    reads.clear()
    wait_for(qtbot, segment.segment())
    assert set(reads) == {3}
    assert viewer.layers["lazy objects"].data[3].max() > 0
    assert not [m for m in messages if m[0] == "error"]


def test_segment_can_average_rotations_and_flips(make_napari_viewer, qtbot, messages):
    viewer = make_napari_viewer()
    image, _ = synthetic_nuclei(SyntheticConfig(shape=(96, 96)), seed=2)
    viewer.add_image(image, name="cells")
    _, segment = viewer.window.add_plugin_dock_widget("napari-unet", "Segment")
    segment.averaged.setChecked(True)
    wait_for(qtbot, segment.segment())
    assert viewer.layers["cells objects"].data.max() > 0
    assert not [m for m in messages if m[0] == "error"]
