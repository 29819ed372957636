"""Export: the File > Save writer, the export button, a folder in the background; and the sample data."""

import numpy as np
import tifffile
import zarr

from napari_unet import new_model
from napari_unet._widgets._session import set_model
from napari_unet._writer import write_labels_tiff

from .conftest import wait_for


def test_writer_writes_imagej_label_tiffs(tmp_path):
    labels = np.zeros((2, 30, 40), np.int32)
    labels[1, 5:10, 5:10] = 300
    written = write_labels_tiff(str(tmp_path / "cells_objects"), labels, {})
    assert written == [str(tmp_path / "cells_objects.tif")]
    with tifffile.TiffFile(written[0]) as tif:
        assert tif.is_imagej and tif.series[0].axes == "ZYX"
        np.testing.assert_array_equal(tif.asarray(), labels)


def test_save_selected_labels_layer_through_napari(make_napari_viewer, tmp_path):
    viewer = make_napari_viewer()
    layer = viewer.add_labels(np.eye(20, dtype=np.uint8) * 3, name="cells objects")
    written = layer.save(str(tmp_path / "saved.tif"), plugin="napari-unet")
    assert written
    np.testing.assert_array_equal(tifffile.imread(tmp_path / "saved.tif"), layer.data)


def test_segment_a_folder_in_the_background(plugin, qtbot, tmp_path, messages):
    viewer, w = plugin
    source = tmp_path / "in"
    source.mkdir()
    for i in range(3):
        tifffile.imwrite(source / f"img{i}.tif", np.random.default_rng(i).integers(0, 1000, (60, 70), np.uint16))
    zarr.open_array(str(source / "slide.zarr"), mode="w", shape=(60, 70), dtype="u2")[:] = 7
    set_model(viewer, new_model("light", ["nucleus"], depth=2, base_filters=4), "tiny")
    export = w["Export"]
    export.source.value = str(source)
    export.folder.value = str(tmp_path / "out")
    wait_for(qtbot, export.export_folder())
    names = sorted(p.name for p in (tmp_path / "out").iterdir())
    tiffs = [f"img{i}_{k}.tif" for i in range(3) for k in ("objects", "segmentation")]
    assert names == [*tiffs, "slide_objects.zarr", "slide_segmentation.zarr"]  # a zarr image stays zarr
    assert export.progress.value() == 4
    said = " ".join(text for _, text in messages)
    assert "segmented 4 images" in said and "slide.zarr: a zarr image: segmenting it block by block" in said


def test_sample_data_opens(make_napari_viewer):
    viewer = make_napari_viewer()
    viewer.open_sample("napari-unet", "nuclei")
    viewer.open_sample("napari-unet", "synthetic")
    assert viewer.layers["nuclei"].data.shape == (512, 512)
    assert viewer.layers["synthetic nuclei"].data.shape == (384, 384)


def test_a_folder_is_not_segmented_while_the_model_trains(plugin, cells, qtbot, tmp_path, messages):
    from .conftest import train_in_background

    _, w = plugin
    source = tmp_path / "in"
    source.mkdir()
    tifffile.imwrite(source / "img.tif", cells[0])
    export = w["Export"]
    export.source.value, export.folder.value = str(source), str(tmp_path / "out")
    train = w["Train"]
    job = train_in_background(w, cells, qtbot)  # a few steps made: stopping keeps a trained model
    assert export.export_folder() is None  # the network flips between training and inference
    assert not (tmp_path / "out").exists()
    warned = [text for kind, text in messages if kind == "warning"]
    assert any("training is running" in text and "Stop" in text for text in warned), messages
    train.stop()
    wait_for(qtbot, job)
    wait_for(qtbot, export.export_folder())  # the model trained so far segments the folder
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["img_objects.tif", "img_segmentation.tif"]
