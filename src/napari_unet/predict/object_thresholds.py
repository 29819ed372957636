"""Which confidence threshold a model's objects get, from how the model was trained."""

from __future__ import annotations

from dataclasses import replace

from napari_unet.models.model import Model
from napari_unet.objects.config import THRESHOLD_OUTLINED, THRESHOLD_SCRIBBLED, ObjectConfig

#: A training session whose painted objects touch painted background at this share of their pixels or
#: more outlined whole objects (scribbles: 0; whole objects painted with the background around: 0.15-0.2).
OUTLINED_FRACTION = 0.05

#: A scribble session at this learning rate or lower refines a trained model without changing how sure
#: it is at boundaries: after 200 steps at 1e-4 from the (outlined) starting model on DSB2018 scribbles,
#: the outlined threshold still scored best (mean F1 0.89 vs 0.87 at 0.95, 3 seeds).
GENTLE_LEARNING_RATE = 3e-4


def _calibrating_session(sessions: list[dict]) -> dict | None:
    """The last training session that set how sure the model is at boundaries (gentle scribbles do not)."""
    for index in range(len(sessions) - 1, 0, -1):
        entry = sessions[index]
        rate = entry.get("config", {}).get("learning_rate")
        gentle = rate is not None and rate <= GENTLE_LEARNING_RATE
        if not (gentle and entry["outlined_fraction"] < OUTLINED_FRACTION):
            return entry
    return sessions[0] if sessions else None


def object_config_for(model: Model, config: ObjectConfig) -> ObjectConfig:
    """``config`` with its confidence threshold chosen for ``model`` if it has none.

    A network trained on scribbles never saw the boundaries and is unsure near them: only its confident
    core (0.95) separates touching objects. One trained on outlined objects is calibrated at boundaries,
    and that threshold would erode its objects (0.7). The last session that trained the model hard
    enough to change that decides: a gentle fine-tuning on scribbles keeps the earlier calibration.
    """
    if config.threshold is not None:
        return config
    session = _calibrating_session([entry for entry in model.history if "outlined_fraction" in entry])
    outlined = session is not None and session["outlined_fraction"] >= OUTLINED_FRACTION
    return replace(config, threshold=THRESHOLD_OUTLINED if outlined else THRESHOLD_SCRIBBLED)
