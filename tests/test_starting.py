import pytest

from napari_unet import new_model, resolve_model, save_model
from napari_unet.errors import ModelFileError
from napari_unet.starting import STARTING, load_starting_model, starting_model_path


def test_the_shipped_starting_model_loads_if_present():
    if starting_model_path() is None:
        with pytest.raises(ModelFileError, match="no starting model"):
            load_starting_model()
        return
    model = load_starting_model()
    assert model.class_names == ("background", "nucleus")
    assert starting_model_path().stat().st_size < 5e6  # small enough to ship
    assert "recipe" in model.history[-1]
    assert load_starting_model() is not model  # a fresh copy each time


def test_resolve_model_prefers_a_real_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    save_model(new_model("light", ["x"], depth=1, base_filters=2), tmp_path / STARTING)
    assert resolve_model(STARTING).class_names == ("background", "x")
    assert resolve_model(tmp_path / STARTING).config.depth == 1
