import pytest

from napari_unet import new_model, resolve_model, save_model
from napari_unet.errors import ModelFileError
from napari_unet.starting import STARTING, load_starting_model, starting_model_path


def test_the_starting_model_ships_and_finds_nuclei():
    from napari_unet import segment
    from napari_unet.metrics import object_scores
    from napari_unet.synthetic import SyntheticConfig, synthetic_nuclei

    model = load_starting_model()
    assert model.class_names == ("background", "nucleus")
    assert starting_model_path().stat().st_size < 5e6  # small enough to ship
    assert "recipe" in model.history[-1]
    assert load_starting_model() is not model  # a fresh copy each time
    image, truth = synthetic_nuclei(SyntheticConfig(shape=(256, 256)), seed=11)
    assert object_scores(truth, segment(model, image).objects).f1 > 0.8  # zero-shot, no training


def test_without_a_starting_model_the_message_says_what_to_do(monkeypatch):
    monkeypatch.setattr("napari_unet.starting.starting_model_path", lambda: None)
    with pytest.raises(ModelFileError, match="no starting model"):
        load_starting_model()


def test_resolve_model_prefers_a_real_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    save_model(new_model("light", ["x"], depth=1, base_filters=2), tmp_path / STARTING)
    assert resolve_model(STARTING).class_names == ("background", "x")
    assert resolve_model(tmp_path / STARTING).config.depth == 1
