"""Which threshold and splitting a model's objects get: from the objects painted whole, else from how it was trained."""

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


def painted_object_rules(model: Model) -> dict | None:
    """The object rules of the last training session that chose them from objects painted whole, if any."""
    return next((entry["object_rules"] for entry in reversed(model.history) if "object_rules" in entry), None)


def object_config_for(model: Model, config: ObjectConfig) -> ObjectConfig:
    """``config`` with the threshold, splitting and growing it leaves open (None) chosen for ``model``.

    Where objects were painted whole (with *Paint whole objects*, or as corrections), the rule of
    ``config``'s shape that best gave them back at the end of training
    (:func:`napari_unet.train.object_rules.choose_object_rules`): a network that has learned to separate
    touching objects keeps its separations unless splitting them again helps. Otherwise the threshold
    follows how the network was trained: one trained on scribbles never saw the boundaries and is unsure
    near them, so only its confident core (0.95) separates touching objects; one trained on outlined
    objects is calibrated at boundaries, and that threshold would erode its objects (0.7). The last
    session that trained the model hard enough to change that decides: a gentle fine-tuning on scribbles
    keeps the earlier calibration. Without a choice, round objects are split.
    """
    rules = painted_object_rules(model)
    if rules is not None and config.shape in rules:
        chosen = rules[config.shape]
        split = chosen["split"] if config.split is None else config.split
        if config.threshold is not None:  # a threshold set by hand: only the pixels above it, unless grow is set
            return replace(config, split=split, grow=config.grows)
        # rules chosen before growing was one of the candidates were chosen without it
        grow = chosen.get("grow", False) if config.grow is None else config.grow
        grow_to = chosen.get("grow_to", 0.5)
        return replace(config, threshold=chosen["threshold"], split=split, grow=grow, grow_to=grow_to)
    if config.threshold is not None:
        return replace(config, split=config.splits, grow=config.grows)
    session = _calibrating_session([entry for entry in model.history if "outlined_fraction" in entry])
    outlined = session is not None and session["outlined_fraction"] >= OUTLINED_FRACTION
    threshold = THRESHOLD_OUTLINED if outlined else THRESHOLD_SCRIBBLED
    return replace(config, threshold=threshold, split=config.splits, grow=config.grows)


def describe_object_rule(model: Model, config: ObjectConfig) -> str:
    """One line that says how ``model`` makes objects with ``config`` (the threshold and splitting) and why.

    For example "threshold 0.5, touching objects kept as the model separates them: chosen from 12 objects
    painted whole (F1 0.92 on them)", or "threshold 0.95, touching objects split at necks: the model was
    last trained on scribbles".
    """
    chosen = object_config_for(model, config)
    rule = f"threshold {chosen.threshold:g}, " + (
        "touching objects split at necks" if chosen.splits else "touching objects kept as the model separates them"
    )
    if chosen.fill:
        rule += ", cells grown to the predicted boundaries"
    elif chosen.grows and chosen.grow_to < 0.5:
        rule += f", grown over the pixels at least {chosen.grow_to:g} probable"
    elif chosen.grows and chosen.threshold > 0.5:
        rule += ", grown back over the foreground"
    rules = painted_object_rules(model)
    if rules is not None and config.shape in rules:
        found = rules[config.shape]
        why = f"chosen from {rules['painted_objects']} objects painted whole (F1 {found['f1']:.2f} on them)"
        return f"{rule}: {why}" + ("; threshold as set" if config.threshold is not None else "")
    if config.threshold is not None:
        return f"{rule}: threshold as set"
    session = _calibrating_session([entry for entry in model.history if "outlined_fraction" in entry])
    if session is None:
        return f"{rule}: the defaults for a model trained on scribbles"
    outlined = session["outlined_fraction"] >= OUTLINED_FRACTION
    return f"{rule}: the model was last trained on {'whole outlined objects' if outlined else 'scribbles'}"
