"""The trained model (models/model.py): a network with its classes, normalisation, history and object shape."""

import pytest
import torch

from napari_unet.errors import InputError
from napari_unet.models.model import BACKGROUND_NAME, Model, new_model
from napari_unet.models.unet import UNet, UNetConfig


def test_a_new_model_names_its_background_and_maps_classes_to_annotation_values():
    model = new_model("light", ["nucleus", "cytoplasm"], depth=2, base_filters=4)
    assert model.class_names == (BACKGROUND_NAME, "nucleus", "cytoplasm")
    assert model.n_classes == 3 and model.in_channels == 1
    assert model.object_classes == {2: "nucleus", 3: "cytoplasm"}
    assert not model.net.training and model.object_shape == "round"


def test_a_seed_makes_the_same_weights_without_touching_the_global_generator():
    torch.manual_seed(123)
    expected_next = torch.rand(1)
    torch.manual_seed(123)
    a = new_model("light", ["n"], depth=2, base_filters=4, seed=7)
    assert torch.equal(torch.rand(1), expected_next)  # the global random state went on as if untouched
    b = new_model("light", ["n"], depth=2, base_filters=4, seed=7)
    c = new_model("light", ["n"], depth=2, base_filters=4, seed=8)
    pairs = list(zip(a.net.parameters(), b.net.parameters(), strict=True))
    assert all(torch.equal(p, q) for p, q in pairs)
    assert not all(torch.equal(p, q) for p, q in zip(a.net.parameters(), c.net.parameters(), strict=True))


def test_presets_and_overrides_set_the_architecture():
    model = new_model("standard", ["n"], in_channels=3, depth=2, norm="none")
    assert (model.config.depth, model.config.base_filters, model.config.norm, model.in_channels) == (2, 32, "none", 3)


def test_inconsistent_models_are_refused_with_one_error_type():
    net = UNet(UNetConfig(depth=2, base_filters=4, n_classes=3))
    with pytest.raises(InputError, match="2 class names for a network with 3 outputs"):
        Model(net=net, class_names=(BACKGROUND_NAME, "a"))
    with pytest.raises(InputError, match="unknown object shape"):
        Model(net=net, class_names=(BACKGROUND_NAME, "a", "b"), object_shape="square")
    with pytest.raises(InputError, match="background class is implicit"):
        new_model("light", [BACKGROUND_NAME])
    with pytest.raises(InputError, match="at least one object class"):
        new_model("light", [])
    with pytest.raises(InputError, match="unknown preset"):
        new_model("huge", ["n"])


def test_the_history_counts_steps_and_the_description_says_what_the_model_is():
    model = new_model("light", ["nucleus"], depth=2, base_filters=4)
    model.history = [{"steps": 100, "device": "cpu"}, {"steps": 50, "device": "cpu", "config": {"seed": 0}}]
    assert model.trained_steps == 150
    text = model.describe()
    assert "U-Net depth 2, 4 base filters" in text
    assert "classes: 1=background, 2=nucleus" in text
    assert "trained: 150 steps in 2 session(s)" in text
    assert "steps 50, device cpu" in text and "config" not in text  # nested settings are left out
