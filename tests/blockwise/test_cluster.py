"""Large images into zarr: the command line, a 2-worker dask cluster, and napari showing the result lazily."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile
import zarr

from napari_unet import BlockConfig, ObjectConfig, PredictConfig, segment, segment_lazy
from napari_unet.batch import segment_to_zarr
from napari_unet.blockwise.cluster import dask_client
from napari_unet.cli import main
from napari_unet.images.synthetic import SyntheticConfig, synthetic_nuclei
from napari_unet.models.starting import load_starting_model
from tests.conftest import FLOAT32_AGREE

from .test_blocks import crossing_objects, same_partition


@pytest.fixture(scope="module")
def cells():
    return synthetic_nuclei(SyntheticConfig(shape=(260, 330)), seed=2)[0]


@pytest.fixture
def zarr_image(tmp_path, cells):
    path = tmp_path / "cells.zarr"
    zarr.open_array(str(path), mode="w", shape=cells.shape, chunks=(100, 100), dtype=cells.dtype)[:] = cells
    return path


def test_the_cli_segments_a_zarr_image_into_zarr(tmp_path, zarr_image, cells, capsys):
    args = ["predict", "starting", str(zarr_image), "--out", str(tmp_path / "out"), "--objects", "--probabilities"]
    assert main([*args, "--block", "128", "--overlap", "48", "--device", "cpu"]) == 0
    reference = segment(load_starting_model(), cells, PredictConfig(device="cpu"))
    out = tmp_path / "out"
    assert sorted(p.name for p in out.iterdir()) == [
        "cells_objects.zarr",
        "cells_probabilities.zarr",
        "cells_segmentation.zarr",
    ]
    classes = zarr.open_array(str(out / "cells_segmentation.zarr"))
    assert classes.chunks == (128, 128)
    np.testing.assert_array_equal(classes[:], reference.classes)
    assert same_partition(zarr.open_array(str(out / "cells_objects.zarr"))[:], reference.objects)
    written = zarr.open_array(str(out / "cells_probabilities.zarr"))[:]
    np.testing.assert_allclose(written, reference.probabilities, **FLOAT32_AGREE)
    assert main([*args, "--device", "cpu"]) == 2  # outputs exist: nothing is overwritten
    assert "exists already" in capsys.readouterr().err


def test_a_tiff_goes_to_zarr_on_request(tmp_path, cells):
    tifffile.imwrite(tmp_path / "cells.tif", cells)
    args = ["predict", "starting", str(tmp_path / "cells.tif"), "--out", str(tmp_path / "out"), "--format", "zarr"]
    assert main([*args, "--device", "cpu"]) == 0
    assert (tmp_path / "out" / "cells_segmentation.zarr").is_dir()


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--scheduler", "tcp://127.0.0.1:9"], "could not reach the dask scheduler"),
        (["--workers", "-2"], "--workers must be 0"),
        (["--block", "8"], "blocks must be at least 64"),
    ],
)
def test_bad_cluster_and_block_settings_are_one_line(tmp_path, zarr_image, capsys, extra, message):
    args = ["predict", "starting", str(zarr_image), "--out", str(tmp_path / "out"), "--device", "cpu"]
    assert main([*args, *extra]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith(f"napari-unet: error: {message}")
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_a_two_worker_local_cluster_gives_the_in_memory_result_exactly(tmp_path, zarr_image, cells):
    model = load_starting_model()
    reference = segment(model, cells, PredictConfig(device="cpu"))
    with dask_client(workers=2) as client:
        assert len(client.scheduler_info()["workers"]) == 2
        job = segment_to_zarr(
            model,
            [zarr_image],
            tmp_path,
            config=PredictConfig(device="cpu"),
            blocks=BlockConfig(128, 48),
            client=client,
        )
        for _ in job:
            pass
        ran_on = client.run(lambda: "napari_unet.blockwise.blocks" in __import__("sys").modules)
    assert all(ran_on.values())  # both workers predicted blocks with their own copy of the model
    np.testing.assert_array_equal(zarr.open_array(str(tmp_path / "cells_segmentation.zarr"))[:], reference.classes)
    assert same_partition(zarr.open_array(str(tmp_path / "cells_objects.zarr"))[:], reference.objects)


@pytest.mark.slow
def test_a_tiff_goes_to_a_two_worker_cluster_from_the_command_line(tmp_path, cells, capsys):
    tifffile.imwrite(tmp_path / "cells.tif", cells, tile=(64, 64))
    args = ["predict", "starting", str(tmp_path / "cells.tif"), "--out", str(tmp_path / "out"), "--workers", "2"]
    assert main([*args, "--block", "128", "--overlap", "48", "--device", "cpu"]) == 0
    assert "on the dask cluster at" in capsys.readouterr().err
    reference = segment(load_starting_model(), cells, PredictConfig(device="cpu"), objects=False)
    classes = zarr.open_array(str(tmp_path / "out" / "cells_segmentation.zarr"))[:]
    np.testing.assert_array_equal(classes, reference.classes)


def test_napari_shows_the_lazy_result(make_napari_viewer, cells):
    import dask.array as da

    from napari_unet import segment_lazy

    result = segment_lazy(load_starting_model(), cells, PredictConfig(device="cpu"), BlockConfig(128, 48))
    viewer = make_napari_viewer(show=True)
    layer = viewer.add_labels(result.objects, name="objects")
    assert isinstance(layer.data, da.Array)
    shot = viewer.screenshot(canvas_only=True, flash=False)
    assert shot[..., :3].std() > 0  # the objects were computed and drawn


def test_objects_larger_than_the_overlap_come_out_whole(tmp_path, zarr_image, cells):
    args = ["predict", "starting", str(zarr_image), "--out", str(tmp_path / "out"), "--objects"]
    extra = ["--block", "128", "--overlap", "4", "--object-shape", "connected", "--device", "cpu"]
    assert main([*args, *extra]) == 0  # nuclei of 10-30 pixels, 4 pixels of overlap
    config = PredictConfig(device="cpu", objects=ObjectConfig.for_shape("connected"))
    reference = segment(load_starting_model(), cells, config)
    objects = zarr.open_array(str(tmp_path / "out" / "cells_objects.zarr"))[:]
    assert crossing_objects(objects, ((128, 132), (128, 202))) >= 3
    assert same_partition(objects, reference.objects)
    cut = segment_lazy(load_starting_model(), cells, config, BlockConfig(block=128, overlap=4)).objects.compute()
    assert not same_partition(cut, reference.objects)  # before the merge, they were cut


def test_the_network_and_the_objects_run_once_per_block(tmp_path, zarr_image, monkeypatch):
    from napari_unet.blockwise import blocks as blockwise

    calls = {"network": 0, "objects": 0}
    predict_block, objects_block = blockwise._predict_block, blockwise.objects_block

    def counted_predict(block, model, config, ranges, halo_chunks, block_id=None):
        calls["network"] += 1
        return predict_block(block, model, config, ranges, halo_chunks, block_id=block_id)

    def counted_objects(confident, *background, block_id=None, **settings):
        calls["objects"] += 1
        return objects_block(confident, *background, block_id=block_id, **settings)

    monkeypatch.setattr(blockwise, "_predict_block", counted_predict)
    monkeypatch.setattr(blockwise, "objects_block", counted_objects)
    job = segment_to_zarr(
        load_starting_model(),
        [zarr_image],
        tmp_path / "out",
        config=PredictConfig(device="cpu"),
        blocks=BlockConfig(128, 48),
    )
    for _ in job:
        pass
    grid = segment_lazy(load_starting_model(), zarr.open_array(str(zarr_image)), blocks=BlockConfig(128, 48))
    n_blocks = int(np.prod(grid.classes.numblocks))
    assert n_blocks >= 4
    assert calls == {"network": n_blocks, "objects": n_blocks}  # the border pairs reuse the blocks' work
