"""napari-unet's zarr results open in napari as lazy layers named like the plugin's own."""

from __future__ import annotations

import dask.array as da
import numpy as np
import pytest
import zarr

from napari_unet._reader import ZARR_KEY, get_reader, read_results


@pytest.fixture
def results(tmp_path):
    """The zarr folders `napari-unet predict --format zarr --objects --probabilities` writes for slide.tif."""
    classes = np.ones((2100, 1500), np.uint8)
    classes[:40, :40] = 2
    objects = np.zeros((2100, 1500), np.uint32)
    objects[:40, :40] = 5
    probabilities = np.stack([classes == 1, classes == 2]).astype(np.float32)
    for kind, array in (("segmentation", classes), ("objects", objects), ("probabilities", probabilities)):
        target = zarr.open_array(str(tmp_path / f"slide_{kind}.zarr"), mode="w", shape=array.shape, dtype=array.dtype)
        target[:] = array
    return tmp_path


def test_only_napari_unet_results_are_taken(results, tmp_path):
    assert get_reader(str(results / "slide_objects.zarr")) is read_results
    assert get_reader([str(results / "slide_objects.zarr"), str(results / "slide_segmentation.zarr")]) is read_results
    zarr.open_array(str(tmp_path / "image.zarr"), mode="w", shape=(4, 4), dtype="u1")
    (tmp_path / "notes_objects.zarr").mkdir()  # named like one, but holds no zarr
    for other in ("image.zarr", "notes_objects.zarr", "missing_objects.zarr"):
        assert get_reader(str(tmp_path / other)) is None
    assert get_reader([str(results / "slide_objects.zarr"), str(tmp_path / "image.zarr")]) is None


def test_results_come_as_lazy_pyramids(results):
    ((objects, objects_meta, objects_type),) = read_results(str(results / "slide_objects.zarr"))
    assert objects_type == "labels" and objects_meta["name"] == "slide objects"
    assert objects_meta["metadata"][ZARR_KEY] == str(results / "slide_objects.zarr")
    assert [level.shape for level in objects] == [(2100, 1500), (1050, 750), (525, 375)]
    assert isinstance(objects[0], da.Array) and isinstance(objects[-1], np.ndarray)  # coarsest read already
    ((_, seg_meta, _),) = read_results(str(results / "slide_segmentation.zarr"))
    assert seg_meta["colormap"][1] == "transparent" and seg_meta["colormap"][2] != "transparent"  # background


def test_napari_opens_them_with_the_plugin(make_napari_viewer, results):
    viewer = make_napari_viewer()
    for kind in ("segmentation", "objects", "probabilities"):
        viewer.open(str(results / f"slide_{kind}.zarr"), plugin="napari-unet")
    names = [layer.name for layer in viewer.layers]
    assert names == [
        "slide segmentation",
        "slide objects",
        "slide probability of class 1",
        "slide probability of class 2",
    ]
    objects = viewer.layers["slide objects"]
    assert objects.multiscale and not objects.editable  # napari paints no multiscale labels
    assert int(objects.data[0][10, 10]) == 5
    assert float(viewer.layers["slide probability of class 2"].data[0][10, 10]) == 1.0
