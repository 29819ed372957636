import numpy as np
import pytest

from napari_unet import segment
from napari_unet.errors import ResourceError
from napari_unet.predict import host_memory
from napari_unet.predict.host_memory import GIB, available_bytes, check_fits, segmentation_bytes


def test_the_free_memory_is_told_on_this_machine():
    free = available_bytes()
    assert free is None or free > 0


def test_the_estimate_grows_with_what_the_job_holds():
    base = segmentation_bytes(8192**2, channels=1, itemsize=2, n_classes=2, objects=False)
    assert segmentation_bytes(2 * 8192**2, 1, 2, 2, False) > base  # more pixels
    assert segmentation_bytes(8192**2, 1, 2, 3, False) > base  # more classes
    assert segmentation_bytes(8192**2, 3, 2, 2, False) > base  # more channels
    assert segmentation_bytes(8192**2, 1, 2, 2, True) > base  # objects: their mosaics
    assert segmentation_bytes(8192**2, 1, 2, 2, False, loaded=False) == base + 2 * 8192**2  # the image read too
    # in the range this project's large-image benchmark measured (1.35-1.46 GB at 8192 x 8192)
    assert 1.3e9 < segmentation_bytes(8192**2, 1, 2, 2, objects=True, loaded=False) < 1.7e9


def test_a_job_too_large_for_the_free_memory_is_refused_with_what_to_do():
    with pytest.raises(ResourceError, match=r"8192 x 8192 image in memory needs about 1\.\d GiB and 1\.0 GiB is free"):
        check_fits((8192, 8192), 1, 2, 2, objects=True, available=GIB)
    with pytest.raises(ResourceError, match="--format zarr"):
        check_fits((8192, 8192), 1, 2, 2, objects=True, available=GIB)
    check_fits((8192, 8192), 1, 2, 2, objects=True, available=4 * GIB)  # fits


def test_nothing_is_checked_where_the_free_memory_cannot_be_told(monkeypatch):
    monkeypatch.setattr(host_memory, "available_bytes", lambda: None)
    check_fits((10**6, 10**6), 1, 2, 2, objects=True)


def test_segment_refuses_before_any_tile_when_the_image_would_not_fit(tiny_model, monkeypatch):
    image = np.zeros((300, 300), np.uint16)
    needed = segmentation_bytes(300 * 300, 1, 2, tiny_model.n_classes, objects=True)
    monkeypatch.setattr(host_memory, "available_bytes", lambda: needed - 1)
    with pytest.raises(ResourceError, match="300 x 300 image"):
        segment(tiny_model, image)
    monkeypatch.setattr(host_memory, "available_bytes", lambda: needed)
    assert segment(tiny_model, image).objects.shape == (300, 300)


def test_a_tiffs_size_is_told_from_its_header(tmp_path, monkeypatch):
    import tifffile

    from napari_unet.predict.host_memory import tiff_too_large

    tifffile.imwrite(tmp_path / "a.tif", np.zeros((64, 80), np.uint16))
    (tmp_path / "broken.tif").write_bytes(b"not a tiff")
    np.save(tmp_path / "a.npy", np.zeros((64, 80)))
    monkeypatch.setattr(host_memory, "available_bytes", lambda: 10**6)
    assert "64 x 80 image" in tiff_too_large(tmp_path / "a.tif", 1, 2, objects=False)
    assert tiff_too_large(tmp_path / "broken.tif", 1, 2, objects=False) is None  # reading it will say why
    assert tiff_too_large(tmp_path / "a.npy", 1, 2, objects=False) is None  # only TIFFs are looked into
    monkeypatch.setattr(host_memory, "available_bytes", lambda: 10**10)
    assert tiff_too_large(tmp_path / "a.tif", 1, 2, objects=True) is None


def test_the_block_by_block_estimate_follows_the_measured_peak():
    from napari_unet.predict.host_memory import GIB, blockwise_bytes

    # benchmarks/results/large_image_cpu.md: 0.50-0.52 GiB for two threads of 2048-pixel blocks
    assert 0.5 <= blockwise_bytes(2048, 128, threads=2) / GIB <= 0.6
    assert blockwise_bytes(2048, 128, threads=4) == 2 * blockwise_bytes(2048, 128, threads=2)
    assert blockwise_bytes(512, 128, threads=2) < blockwise_bytes(2048, 128, threads=2)
