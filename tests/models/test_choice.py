"""Which model a job uses (models/choice.py), whichever front end asks."""

import pytest

from napari_unet import new_model, resolve_model, save_model
from napari_unet.errors import InputError
from napari_unet.models import choice
from napari_unet.models.choice import (
    CURRENT,
    NEW,
    default_training_source,
    model_for_segmenting,
    model_for_training,
)
from napari_unet.models.starting import STARTING


def test_resolve_model_prefers_a_real_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    save_model(new_model("light", ["x"], depth=1, base_filters=2), tmp_path / STARTING)
    assert resolve_model(STARTING).class_names == ("background", "x")
    assert resolve_model(tmp_path / STARTING).config.depth == 1


def test_segmenting_uses_the_current_model_else_the_starting_one_with_a_note(tiny_model):
    chosen = model_for_segmenting(tiny_model)
    assert chosen.model is tiny_model and chosen.note == ""
    chosen = model_for_segmenting(None)
    assert chosen.label == "starting model" and "starting model" in chosen.note
    assert chosen.model.class_names == ("background", "nucleus")


def test_segmenting_with_no_model_at_all_says_what_to_do(monkeypatch):
    monkeypatch.setattr(choice, "starting_model_path", lambda: None)
    with pytest.raises(InputError, match="train one"):
        model_for_segmenting(None)


def test_a_named_source_wins_over_the_current_model(tmp_path, tiny_model):
    save_model(new_model("light", ["x"], depth=1, base_filters=2), tmp_path / "other.pt")
    chosen = model_for_segmenting(tiny_model, tmp_path / "other.pt")
    assert chosen.model.config.depth == 1 and chosen.label == "other.pt"
    assert model_for_segmenting(tiny_model, STARTING).label == "starting model"


def test_training_starts_from_the_starting_model_when_it_fits_the_data():
    chosen = model_for_training(STARTING, None, ["nucleus"], in_channels=1, top_class=2, device_type="cpu")
    assert chosen.label == "starting model" and chosen.note == "" and chosen.model.trained_steps > 0


@pytest.mark.parametrize(("in_channels", "top_class"), [(3, 2), (1, 3)])
def test_a_starting_model_that_cannot_read_the_data_gives_way_to_a_new_one(in_channels, top_class):
    chosen = model_for_training(STARTING, None, ["a", "b"], in_channels, top_class, device_type="cpu", seed=0)
    assert chosen.label == "new light model"
    assert chosen.note.startswith("the starting model reads 1 channel(s)")
    assert chosen.note.endswith("training a new light model")
    assert chosen.model.in_channels == in_channels and chosen.model.class_names == ("background", "a", "b")


def test_new_models_take_the_devices_preset_unless_one_is_named():
    assert model_for_training(NEW, None, [], 1, 2, device_type="cpu").label == "new light model"
    assert model_for_training(NEW, None, [], 1, 2, device_type="cuda").label == "new standard model"
    chosen = model_for_training(f"{NEW}: paper", None, ["cell"], 1, 2, device_type="cpu")
    assert chosen.model.config.base_filters == 64 and chosen.model.class_names == ("background", "cell")
    chosen = model_for_training(NEW, None, [], 1, 2, device_type="cpu")
    assert chosen.model.class_names == ("background", "object")  # an unnamed class
    with pytest.raises(InputError, match="unknown preset"):
        model_for_training(f"{NEW}: huge", None, [], 1, 2, device_type="cpu")


def test_the_current_model_goes_on_and_new_ones_keep_the_object_shape_chosen(tmp_path, tiny_model):
    with pytest.raises(InputError, match="no current model"):
        model_for_training(CURRENT, None, [], 1, 2, device_type="cpu")
    tiny_model.object_shape = "packed"
    assert model_for_training(CURRENT, tiny_model, [], 1, 2, device_type="cpu").model is tiny_model
    assert model_for_training(NEW, tiny_model, [], 1, 2, device_type="cpu").model.object_shape == "packed"
    assert model_for_training(STARTING, tiny_model, [], 1, 2, device_type="cpu").model.object_shape == "packed"
    save_model(new_model("light", ["x"], depth=1, base_filters=2), tmp_path / "file.pt")
    from_file = model_for_training(tmp_path / "file.pt", tiny_model, [], 1, 2, device_type="cpu")
    assert from_file.label == "file.pt" and from_file.model.object_shape == "round"  # a file keeps its own


def test_a_model_that_knows_fewer_classes_than_painted_is_refused(tiny_model):
    with pytest.raises(InputError, match="uses class 3 but the model knows 1 object class"):
        model_for_training(CURRENT, tiny_model, [], 1, 3, device_type="cpu")


def test_training_starts_from_the_shipped_model_by_default(monkeypatch):
    assert default_training_source("cpu") == STARTING
    monkeypatch.setattr(choice, "starting_model_path", lambda: None)
    assert default_training_source("cpu") == f"{NEW}: light"
    assert default_training_source("cuda") == f"{NEW}: standard"
