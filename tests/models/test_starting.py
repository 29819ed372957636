import pytest

from napari_unet.errors import ModelFileError
from napari_unet.models.starting import load_starting_model, starting_model_path


def test_the_starting_model_ships_and_finds_nuclei():
    from napari_unet import segment
    from napari_unet.images.synthetic import SyntheticConfig, synthetic_nuclei
    from napari_unet.objects.metrics import object_scores

    model = load_starting_model()
    assert model.class_names == ("background", "nucleus")
    assert starting_model_path().stat().st_size < 5e6  # small enough to ship
    assert "recipe" in model.history[-1]
    assert load_starting_model() is not model  # a fresh copy each time
    image, truth = synthetic_nuclei(SyntheticConfig(shape=(256, 256)), seed=11)
    assert object_scores(truth, segment(model, image).objects).f1 > 0.8  # zero-shot, no training


def test_without_a_starting_model_the_message_says_what_to_do(monkeypatch):
    monkeypatch.setattr("napari_unet.models.starting.starting_model_path", lambda: None)
    with pytest.raises(ModelFileError, match="no starting model"):
        load_starting_model()
