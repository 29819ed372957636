"""In memory or block by block (blockwise/route.py): one decision for the Segment button, batches and the CLI."""

import numpy as np
import pytest
import tifffile

from napari_unet.blockwise.config import BlockConfig
from napari_unet.blockwise.route import IN_MEMORY, ZARR_IMAGE, route_for_array, route_for_file
from napari_unet.errors import ResourceError
from napari_unet.predict.host_memory import GIB, segmentation_bytes

SHAPE = (8192, 8192)


def needed(shape=SHAPE, objects=True, loaded=True):
    return segmentation_bytes(int(np.prod(shape)), 1, 2, 2, objects, loaded)


def test_an_image_that_fits_is_segmented_in_memory():
    assert route_for_array(SHAPE, 1, 2, 2, True, available=needed() + 1) == IN_MEMORY
    assert not IN_MEMORY.blockwise and IN_MEMORY.reason == ""


def test_an_image_too_large_goes_block_by_block_and_says_why():
    route = route_for_array(SHAPE, 1, 2, 2, True, available=needed() - 1)
    assert route.blockwise
    assert route.reason.startswith("segmenting this 8192 x 8192 image in memory needs about")
    # an image not yet read (a dask or zarr layer) also needs room for its pixels
    assert route_for_array(SHAPE, 1, 2, 2, True, loaded=False, available=needed() + 1).blockwise


def test_a_plane_of_a_stack_is_never_cut_into_blocks():
    with pytest.raises(ResourceError, match="segment the whole image, block by block"):
        route_for_array(SHAPE, 1, 2, 2, True, whole_image=False, available=needed() - 1)


def test_when_even_the_blocks_do_not_fit_it_is_refused_with_what_they_need():
    with pytest.raises(ResourceError, match=r"even block by block it needs about \d+\.\d GiB"):
        route_for_array(SHAPE, 1, 2, 2, True, blocks=BlockConfig(block=2048), available=GIB // 100)


def test_a_zarr_image_goes_block_by_block_and_a_small_file_is_read_whole(tmp_path, tiny_model):
    import zarr

    zarr.open_array(str(tmp_path / "slide.zarr"), mode="w", shape=(64, 64), chunks=(32, 32), dtype="u2")[:] = 1
    tifffile.imwrite(tmp_path / "small.tif", np.zeros((64, 64), np.uint16))
    np.save(tmp_path / "small.npy", np.zeros((64, 64), np.uint16))
    assert route_for_file(tmp_path / "slide.zarr", tiny_model, objects=True).reason == ZARR_IMAGE
    assert route_for_file(tmp_path / "small.tif", tiny_model, objects=True) == IN_MEMORY
    assert route_for_file(tmp_path / "small.npy", tiny_model, objects=True) == IN_MEMORY


def test_a_tiff_too_large_is_told_from_its_header(tmp_path, tiny_model, monkeypatch):
    from napari_unet.predict import host_memory

    tifffile.imwrite(tmp_path / "big.tif", np.zeros((64, 80), np.uint16))
    monkeypatch.setattr(host_memory, "available_bytes", lambda: 1000)
    route = route_for_file(tmp_path / "big.tif", tiny_model, objects=False)
    assert route.blockwise
    assert route.reason.startswith("segmenting this 64 x 80 image in memory needs about")
    assert route.reason.endswith("; writing zarr block by block instead")
