"""Model files (models/files.py): weights and metadata round trip, atomic writes, safe and clear loading."""

import os
import subprocess
import sys
import textwrap

import pytest
import torch

from napari_unet import load_model, new_model, save_model
from napari_unet.errors import InputError, ModelFileError
from napari_unet.models.files import FORMAT_VERSION


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
    import napari_unet.models.files as io

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
    import napari_unet.models.files as io

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
