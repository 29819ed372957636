from pathlib import Path

import numpy as np
import pytest
import tifffile

from napari_unet import read_image, write_labels
from napari_unet.errors import InputError
from napari_unet.images.files import write_probabilities


def test_label_tiff_is_imagej_uint16_with_axes(tmp_path):
    labels = np.zeros((3, 20, 30), dtype=np.int64)
    labels[1, 5:9, 5:9] = 4
    path = write_labels(tmp_path / "l.tif", labels)
    with tifffile.TiffFile(path) as tif:
        assert tif.is_imagej
        assert tif.series[0].axes == "ZYX"
        data = tif.asarray()
    assert data.dtype == np.uint16
    np.testing.assert_array_equal(data, labels)


def test_many_labels_go_to_uint32(tmp_path):
    labels = np.arange(200 * 400, dtype=np.int64).reshape(200, 400)
    path = write_labels(tmp_path / "l.tif", labels)
    data = tifffile.imread(path)
    assert data.dtype == np.uint32
    np.testing.assert_array_equal(data, labels)


def test_label_tiff_refuses_overwrite_and_bad_labels(tmp_path):
    path = write_labels(tmp_path / "l.tif", np.ones((4, 4), np.uint8))
    with pytest.raises(InputError, match="exists"):
        write_labels(path, np.ones((4, 4), np.uint8))
    with pytest.raises(InputError, match="integers"):
        write_labels(tmp_path / "f.tif", np.ones((4, 4), np.float32))
    with pytest.raises(InputError, match="does not exist"):
        write_labels(tmp_path / "missing" / "l.tif", np.ones((4, 4), np.uint8))


def test_probabilities_tiff(tmp_path):
    probs = np.random.default_rng(0).random((3, 2, 10, 12)).astype(np.float32)
    path = write_probabilities(tmp_path / "p.tif", probs)
    with tifffile.TiffFile(path) as tif:
        assert tif.series[0].axes == "ZCYX"


@pytest.mark.parametrize("suffix", [".tif", ".png", ".npy"])
def test_read_image(tmp_path, suffix):
    image = (np.random.default_rng(0).random((20, 30)) * 255).astype(np.uint8)
    path = tmp_path / f"i{suffix}"
    if suffix == ".tif":
        tifffile.imwrite(path, image)
    elif suffix == ".npy":
        np.save(path, image)
    else:
        from skimage import io as skio

        skio.imsave(path, image)
    np.testing.assert_array_equal(read_image(path), image)


def test_read_image_errors(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        read_image(tmp_path / "x.tif")
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(InputError, match="unknown image type"):
        read_image(tmp_path / "notes.txt")
    (tmp_path / "bad.tif").write_bytes(b"II*\x00garbage")
    with pytest.raises(InputError, match="cannot read"):
        read_image(tmp_path / "bad.tif")
    good = tmp_path / "good.tif"
    tifffile.imwrite(good, np.ones((100, 100), np.uint16))
    (tmp_path / "cut.tif").write_bytes(good.read_bytes()[:300])
    with pytest.raises(InputError):
        read_image(tmp_path / "cut.tif")


def test_a_full_disk_keeps_the_previous_file_and_leaves_no_partial_one(tmp_path, monkeypatch):
    import errno

    path = write_labels(tmp_path / "l.tif", np.ones((4, 4), np.uint8))
    before = path.read_bytes()

    def full_disk(target, *args, **kwargs):
        Path(target).write_bytes(b"half a tiff")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(tifffile, "imwrite", full_disk)
    with pytest.raises(InputError, match="No space left on device"):
        write_labels(path, np.full((4, 4), 2, np.uint8), overwrite=True)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["l.tif"]


def test_a_folder_that_is_not_writable_is_explained(tmp_path, monkeypatch):
    import errno
    import tempfile

    def refused(*args, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(tempfile, "mkstemp", refused)  # chmod does not stop root, who runs CI
    with pytest.raises(InputError, match=f"cannot write to {tmp_path}: Permission denied"):
        write_labels(tmp_path / "l.tif", np.ones((4, 4), np.uint8))
