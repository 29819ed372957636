import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import tifffile
import torch

from napari_unet import load_model, new_model, read_image, save_model, write_labels
from napari_unet.errors import InputError, ModelFileError
from napari_unet.io import FORMAT_VERSION, write_probabilities


def test_model_file_round_trip(tmp_path, tiny_model):
    tiny_model.history.append({"steps": 12, "final_loss": 0.1})
    path = save_model(tiny_model, tmp_path / "m.pt")
    loaded = load_model(path)
    assert loaded.config == tiny_model.config
    assert loaded.class_names == ("background", "nucleus")
    assert loaded.normalization == tiny_model.normalization
    assert loaded.history == tiny_model.history
    for a, b in zip(tiny_model.net.state_dict().values(), loaded.net.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    x = torch.rand(1, 1, 60, 60)
    assert torch.equal(tiny_model.net(x), loaded.net(x))


def test_the_object_shape_is_kept_with_the_model(tmp_path, tiny_model, monkeypatch):
    import napari_unet.io as io

    assert tiny_model.object_shape == "round"
    tiny_model.object_shape = "packed"
    assert load_model(save_model(tiny_model, tmp_path / "packed.pt")).object_shape == "packed"
    assert "objects: packed" in tiny_model.describe()
    older = dict(io.model_metadata(tiny_model))
    del older["object_shape"]  # a file written before models had one
    monkeypatch.setattr(io, "model_metadata", lambda model: older)
    assert load_model(save_model(tiny_model, tmp_path / "older.pt")).object_shape == "round"
    monkeypatch.setattr(io, "model_metadata", lambda model: {**older, "object_shape": "cubic"})
    with pytest.raises(ModelFileError, match="unknown object shape 'cubic'"):
        load_model(save_model(tiny_model, tmp_path / "odd.pt"))


def test_half_precision_file_is_smaller_and_close(tmp_path):
    model = new_model("light", ["n"], seed=0)
    full = save_model(model, tmp_path / "full.pt")
    half = save_model(model, tmp_path / "half.pt", half=True)
    assert half.stat().st_size < 0.6 * full.stat().st_size
    loaded = load_model(half)
    assert next(loaded.net.parameters()).dtype == torch.float32


def test_never_overwrites_silently(tmp_path, tiny_model):
    path = save_model(tiny_model, tmp_path / "m.pt")
    with pytest.raises(InputError, match="exists"):
        save_model(tiny_model, path)
    save_model(tiny_model, path, overwrite=True)
    assert [p.name for p in tmp_path.iterdir()] == ["m.pt"]  # no temporary file left


def test_missing_truncated_and_foreign_files(tmp_path, tiny_model):
    with pytest.raises(ModelFileError, match="does not exist"):
        load_model(tmp_path / "none.pt")
    path = save_model(tiny_model, tmp_path / "m.pt")
    data = path.read_bytes()
    (tmp_path / "cut.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelFileError, match="truncated"):
        load_model(tmp_path / "cut.pt")
    (tmp_path / "text.pt").write_text("hello")
    with pytest.raises(ModelFileError):
        load_model(tmp_path / "text.pt")
    torch.save({"weights": torch.zeros(3)}, tmp_path / "other.pt")
    with pytest.raises(ModelFileError, match="not a napari-unet model"):
        load_model(tmp_path / "other.pt")


def test_newer_format_is_refused_with_advice(tmp_path, tiny_model, monkeypatch):
    import napari_unet.io as io

    monkeypatch.setattr(io, "FORMAT_VERSION", FORMAT_VERSION + 1)
    path = save_model(tiny_model, tmp_path / "new.pt")
    monkeypatch.setattr(io, "FORMAT_VERSION", FORMAT_VERSION)
    with pytest.raises(ModelFileError, match="upgrade"):
        load_model(path)


def test_loading_never_runs_code_from_the_file(tmp_path):
    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {tmp_path / 'pwned'}",))

    torch.save({"metadata": Evil(), "state_dict": {}}, tmp_path / "evil.pt")
    with pytest.raises(ModelFileError):
        load_model(tmp_path / "evil.pt")
    assert not (tmp_path / "pwned").exists()


def test_crash_during_save_keeps_the_previous_file(tmp_path, tiny_model):
    """Kill the process in the middle of writing: the earlier model file must survive intact."""
    path = save_model(tiny_model, tmp_path / "m.pt")
    before = path.read_bytes()
    script = textwrap.dedent(f"""
        import os, torch
        from napari_unet import new_model, save_model
        real_save = torch.save
        def dying_save(obj, target):
            with open(target, "wb") as stream:
                stream.write(b"partial" * 1000)
                stream.flush()
            os._exit(9)
        torch.save = dying_save
        save_model(new_model("light", ["x"]), {str(path)!r}, overwrite=True)
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=120)
    assert result.returncode == 9
    assert path.read_bytes() == before
    load_model(path)


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
