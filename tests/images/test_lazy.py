"""Lazy reading of zarr, OME-Zarr and TIFF images; zarr results written whole or not at all."""

from __future__ import annotations

import time

import dask.array as da
import numpy as np
import pytest
import tifffile
import zarr

from napari_unet import InputError, open_lazy
from napari_unet.images.lazy import is_zarr, iter_store_zarr, store_zarr

IMAGE = np.arange(3 * 40 * 50, dtype=np.uint16).reshape(3, 40, 50)
AXES = [{"name": "c", "type": "channel"}, {"name": "y", "type": "space"}, {"name": "x", "type": "space"}]


def test_a_zarr_array_opens_lazily(tmp_path):
    path = tmp_path / "image.zarr"
    zarr.open_array(str(path), mode="w", shape=IMAGE.shape, chunks=(1, 16, 16), dtype=IMAGE.dtype)[:] = IMAGE
    array, channel_axis = open_lazy(path)
    assert isinstance(array, da.Array) and array.chunks[1] == (16, 16, 8)
    assert channel_axis is None
    np.testing.assert_array_equal(array.compute(), IMAGE)


@pytest.mark.parametrize("version", ["0.4", "0.5"])
def test_ome_zarr_gives_its_full_resolution_and_channel_axis(tmp_path, version):
    group = zarr.open_group(str(tmp_path / "image.ome.zarr"), mode="w")
    group.create_array("0", shape=IMAGE.shape, dtype=IMAGE.dtype)[:] = IMAGE
    group.create_array("1", shape=(3, 20, 25), dtype=IMAGE.dtype)
    multiscales = [{"axes": AXES, "datasets": [{"path": "0"}, {"path": "1"}]}]
    group.attrs.update({"multiscales": multiscales} if version == "0.4" else {"ome": {"multiscales": multiscales}})
    array, channel_axis = open_lazy(tmp_path / "image.ome.zarr")
    assert array.shape == IMAGE.shape and channel_axis == 0


def test_a_group_of_several_arrays_asks_for_one(tmp_path):
    group = zarr.open_group(str(tmp_path / "g.zarr"), mode="w")
    group.create_array("a", shape=(4, 4), dtype="u1")
    group.create_array("b", shape=(4, 4), dtype="u1")
    with pytest.raises(InputError, match="2 arrays"):
        open_lazy(tmp_path / "g.zarr")


def test_a_tiled_tiff_opens_lazily(tmp_path):
    tifffile.imwrite(tmp_path / "big.tif", IMAGE[0], tile=(16, 16))
    array, _ = open_lazy(tmp_path / "big.tif")
    assert isinstance(array, da.Array)
    np.testing.assert_array_equal(array.compute(), IMAGE[0])


def test_a_lazy_tiff_pickles_as_its_path_for_dask_workers(tmp_path):
    import pickle

    tifffile.imwrite(tmp_path / "big.tif", IMAGE[0], tile=(16, 16))
    array, _ = open_lazy(tmp_path / "big.tif")
    array[:8, :8].compute()  # the file is open here now
    again = pickle.loads(pickle.dumps(array))  # as the graph goes to a worker process
    np.testing.assert_array_equal(again.compute(), IMAGE[0])
    assert open_lazy(tmp_path / "big.tif")[0].name == array.name  # the same file, the same dask name
    tifffile.imwrite(tmp_path / "big.tif", IMAGE[0] + 1, tile=(16, 16))
    assert open_lazy(tmp_path / "big.tif")[0].name != array.name  # a changed file is not taken from a cache


def test_not_an_image_is_an_input_error(tmp_path):
    (tmp_path / "notes.tif").write_text("hello")
    (tmp_path / "empty.zarr").mkdir()
    for name in ("notes.tif", "empty.zarr"):
        with pytest.raises(InputError, match=name):
            open_lazy(tmp_path / name)
    assert is_zarr(tmp_path / "empty.zarr") and not is_zarr(tmp_path / "notes.tif")


def test_results_are_stored_block_by_block(tmp_path):
    target = tmp_path / "out.zarr"
    store_zarr({target: da.from_array(IMAGE, chunks=(1, 16, 16))})
    stored = zarr.open_array(str(target))
    assert stored.chunks == (1, 16, 16)
    np.testing.assert_array_equal(stored[:], IMAGE)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.zarr"]


def test_an_existing_result_is_kept_unless_overwriting(tmp_path):
    target = tmp_path / "out.zarr"
    store_zarr({target: da.from_array(IMAGE)})
    with pytest.raises(InputError, match="exists already"):
        store_zarr({target: da.from_array(IMAGE + 1)})
    store_zarr({target: da.from_array(IMAGE + 1)}, overwrite=True)
    np.testing.assert_array_equal(zarr.open_array(str(target))[:], IMAGE + 1)


def test_a_failure_half_way_leaves_the_old_result_and_no_partial_one(tmp_path):
    target = tmp_path / "out.zarr"
    store_zarr({target: da.from_array(IMAGE)})

    def fail_on_the_last_block(block, block_id=None):
        if block_id == (2, 0, 0):
            raise RuntimeError("disk full")
        return block

    failing = da.from_array(IMAGE + 1, chunks=(1, 40, 50)).map_blocks(fail_on_the_last_block, dtype=IMAGE.dtype)
    with pytest.raises(RuntimeError, match="disk full"):
        store_zarr({target: failing}, overwrite=True)
    np.testing.assert_array_equal(zarr.open_array(str(target))[:], IMAGE)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.zarr"]


def test_storing_reports_every_block_once_written(tmp_path):
    arrays = {
        tmp_path / "a.zarr": da.from_array(IMAGE, chunks=(1, 16, 16)),  # 3 x 3 x 4 = 36 blocks
        tmp_path / "b.zarr": da.from_array(IMAGE, chunks=(1, 16, 16)) + 1,
    }
    job = iter_store_zarr(arrays, heartbeat=10)
    records = list(job)
    done = [r.done for r in records]
    assert done == sorted(done) and done[0] == 0 and done[-1] == 36
    assert {r.total for r in records} == {36}
    assert len(records) == 1 + 2 * 36  # one for each chunk of each output: none counted twice, none missed
    np.testing.assert_array_equal(zarr.open_array(str(tmp_path / "b.zarr"))[:], IMAGE + 1)


def test_a_stopped_store_starts_no_more_blocks_and_leaves_the_old_result(tmp_path):
    target = tmp_path / "out.zarr"
    store_zarr({target: da.from_array(IMAGE)})
    started = []

    def slow(block, block_id=None):
        started.append(block_id)
        time.sleep(0.05)
        return block + 1

    blocks = da.from_array(IMAGE, chunks=(1, 8, 10)).map_blocks(slow, dtype=IMAGE.dtype)  # 75 blocks
    job = iter_store_zarr({target: blocks}, overwrite=True, threads=2, heartbeat=0.01)
    for record in job:
        if record.done >= 3:
            break
    job.close()
    assert len(started) < 10  # the blocks running when stopped finished; no other started
    time.sleep(0.2)
    assert len(started) < 10
    np.testing.assert_array_equal(zarr.open_array(str(target))[:], IMAGE)  # the earlier result, whole
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.zarr"]


def test_a_stop_is_seen_between_blocks_however_long_they_take(tmp_path):
    def slow(block):
        time.sleep(0.3)
        return block

    job = iter_store_zarr({tmp_path / "out.zarr": da.from_array(IMAGE, chunks=(1, 40, 50)).map_blocks(slow)}, threads=1)
    start = time.monotonic()
    next(job), next(job)  # the first record, then a heartbeat before any block is done
    assert time.monotonic() - start < 0.3
    job.close()
    assert list(tmp_path.iterdir()) == []


def test_a_stop_cancels_the_compute_on_a_dask_cluster(tmp_path):
    distributed = pytest.importorskip("distributed")

    def slow(block):
        time.sleep(0.2)
        return block

    blocks = da.from_array(IMAGE, chunks=(1, 8, 10)).map_blocks(slow, dtype=IMAGE.dtype)  # 75 blocks: 15 s on one
    with (
        distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None) as cluster,
        distributed.Client(cluster) as client,
    ):
        job = iter_store_zarr({tmp_path / "out.zarr": blocks}, scheduler=client, heartbeat=0.05)
        next(job), next(job)
        start = time.monotonic()
        job.close()
        assert time.monotonic() - start < 5  # not the 15 s the whole compute takes
        assert not (tmp_path / "out.zarr").exists()
