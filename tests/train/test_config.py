"""Training settings (train/config.py): checks, the learning-rate schedule and its defaults."""

import subprocess
import sys

import pytest

from napari_unet import TrainConfig, drain, fit
from napari_unet.errors import InputError
from napari_unet.train.config import (
    LEARNING_RATE_FINE_TUNE,
    LEARNING_RATE_NEW,
    LEARNING_RATE_RETRAIN,
    MISTAKES_TO_LEARN,
    learning_rate_at,
    with_learning_rate,
)


def test_learning_rate_schedule():
    config = TrainConfig(learning_rate=1.0, warmup=0.1)
    assert learning_rate_at(0.05, config) == pytest.approx(0.5)
    assert learning_rate_at(0.1, config) == pytest.approx(1.0)
    assert learning_rate_at(1.0, config) == pytest.approx(0.01)


def test_an_unknown_compile_mode_is_refused():
    with pytest.raises(InputError, match=r"compile must be one of 'off', 'default', 'reduce-overhead', not 'fast'"):
        TrainConfig(compile="fast")


def test_a_second_run_on_paint_the_model_gets_wrong_learns_at_the_retrain_rate(scribbled, tiny_model):
    image, annotation, _ = scribbled
    config = TrainConfig(steps=2, batch_size=1, patch_size=60, device="cpu")
    drain(fit(tiny_model, [image], [annotation], config))  # two steps: most of the paint is still wrong
    drain(fit(tiny_model, [image], [annotation], config))
    rates = [entry["config"]["learning_rate"] for entry in tiny_model.history]
    assert rates == [LEARNING_RATE_NEW, LEARNING_RATE_RETRAIN]
    first, second = tiny_model.history
    assert "painted_wrong_at_start" not in first  # a new model: nothing to measure
    assert MISTAKES_TO_LEARN <= second["painted_wrong_at_start"] <= 1.0  # why the rate was chosen, recorded


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"steps": None, "minutes": None}, "give steps, minutes or both"),
        ({"optimizer": "adam"}, "optimizer must be 'adamw' or 'sgd'"),
        ({"batch_size": 0}, "batch_size must be at least 1"),
    ],
)
def test_settings_that_cannot_train_are_one_error_type(settings, message):
    with pytest.raises(InputError, match=message):
        TrainConfig(**settings)


def test_a_learning_rate_is_chosen_only_where_none_was_given():
    assert with_learning_rate(TrainConfig(), trained_before=False).learning_rate == LEARNING_RATE_NEW
    assert with_learning_rate(TrainConfig(), trained_before=True).learning_rate == LEARNING_RATE_FINE_TUNE
    assert with_learning_rate(TrainConfig(learning_rate=0.5), trained_before=True).learning_rate == 0.5


def test_a_trained_model_is_refined_gently_unless_it_gets_the_paint_wrong():
    def rate(mistakes):
        return with_learning_rate(TrainConfig(), trained_before=True, mistakes=mistakes).learning_rate

    assert rate(0.0) == rate(MISTAKES_TO_LEARN / 2) == LEARNING_RATE_FINE_TUNE
    assert rate(MISTAKES_TO_LEARN) == rate(0.5) == LEARNING_RATE_RETRAIN
    with pytest.raises(ValueError, match="chosen first"):
        learning_rate_at(0.5, TrainConfig())


def test_the_settings_load_nothing_of_prediction():
    """A config module is cheap to import: building a TrainConfig loads no prediction or training machinery."""
    code = (
        "import sys\nfrom napari_unet.train.config import TrainConfig\nTrainConfig()\n"
        "print(sorted(m for m in sys.modules if m.startswith(('napari_unet.predict', 'napari_unet.train.'))))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "['napari_unet.train.augment', 'napari_unet.train.config']"
