from napari_unet import new_model
from napari_unet.objects.config import THRESHOLD_OUTLINED, THRESHOLD_SCRIBBLED, ObjectConfig
from napari_unet.predict.object_thresholds import describe_object_rule, object_config_for


def session_with_rules(round_threshold: float, round_f1: float, packed_threshold: float) -> dict:
    """A training session that chose object rules from 12 objects painted whole, none of them splitting."""
    rules = {
        "painted_objects": 12,
        "round": {"threshold": round_threshold, "split": False, "f1": round_f1},
        "packed": {"threshold": packed_threshold, "split": False, "f1": 0.9},
        "connected": {"threshold": round_threshold, "split": False, "f1": round_f1},
    }
    return {"steps": 10, "outlined_fraction": 0.2, "object_rules": rules}


def test_object_threshold_follows_how_the_model_was_trained():
    model = new_model("light", ["nucleus"])
    assert object_config_for(model, ObjectConfig()).threshold == THRESHOLD_SCRIBBLED  # never trained
    model.history.append({"steps": 10, "outlined_fraction": 0.19})
    assert object_config_for(model, ObjectConfig()).threshold == THRESHOLD_OUTLINED
    gentle = {"steps": 10, "outlined_fraction": 0.0, "config": {"learning_rate": 1e-4}}
    model.history.append(gentle)  # gently fine-tuned on scribbles: still calibrated at boundaries
    assert object_config_for(model, ObjectConfig()).threshold == THRESHOLD_OUTLINED
    model.history.append({"steps": 10, "outlined_fraction": 0.0, "config": {"learning_rate": 3e-3}})
    assert object_config_for(model, ObjectConfig()).threshold == THRESHOLD_SCRIBBLED  # retrained hard since
    model.history.append(gentle)
    assert object_config_for(model, ObjectConfig()).threshold == THRESHOLD_SCRIBBLED
    assert object_config_for(model, ObjectConfig(threshold=0.6)).threshold == 0.6  # a choice is kept
    fresh = new_model("light", ["nucleus"])
    fresh.history.append(gentle)  # a first session decides, however gentle
    assert object_config_for(fresh, ObjectConfig()).threshold == THRESHOLD_SCRIBBLED


def test_rules_chosen_from_objects_painted_whole_win_and_split_is_decided():
    model = new_model("light", ["nucleus"])
    assert object_config_for(model, ObjectConfig()).split is True  # never chosen: round objects are split
    model.history.append({"steps": 10, "outlined_fraction": 0.19})
    model.history.append(session_with_rules(round_threshold=0.5, round_f1=0.97, packed_threshold=0.6))
    chosen = object_config_for(model, ObjectConfig())
    assert (chosen.threshold, chosen.split) == (0.5, False)  # the painted objects showed splitting hurts
    assert object_config_for(model, ObjectConfig.for_shape("packed")).threshold == 0.6
    kept = object_config_for(model, ObjectConfig(threshold=0.8, split=True))
    assert (kept.threshold, kept.split, kept.grow) == (0.8, True, False)  # a choice made is kept, not grown
    model.history.append({"steps": 10, "outlined_fraction": 0.0})  # a later session chose nothing
    assert object_config_for(model, ObjectConfig()).split is False  # the last choice holds


def test_the_object_rule_is_described_with_where_it_came_from():
    model = new_model("light", ["nucleus"])
    assert describe_object_rule(model, ObjectConfig()) == (
        "threshold 0.95, touching objects split at necks, grown back over the foreground: "
        "the defaults for a model trained on scribbles"
    )
    model.history.append({"steps": 10, "outlined_fraction": 0.19})
    assert describe_object_rule(model, ObjectConfig()).endswith("last trained on whole outlined objects")
    assert describe_object_rule(model, ObjectConfig(threshold=0.8)).startswith("threshold 0.8, ")
    assert describe_object_rule(model, ObjectConfig(threshold=0.8)).endswith(": threshold as set")
    model.history.append(session_with_rules(round_threshold=0.6, round_f1=0.917, packed_threshold=0.7))
    assert describe_object_rule(model, ObjectConfig()) == (
        "threshold 0.6, touching objects kept as the model separates them: "
        "chosen from 12 objects painted whole (F1 0.92 on them)"
    )
    packed = describe_object_rule(model, ObjectConfig.for_shape("packed", threshold=0.9))
    assert packed.startswith("threshold 0.9, touching objects kept as the model separates them, cells grown")
    assert packed.endswith("(F1 0.90 on them); threshold as set")


def test_growing_follows_the_rule_chosen_and_a_threshold_set_by_hand_does_not_grow():
    model = new_model("light", ["nucleus"])
    model.history.append(session_with_rules(round_threshold=0.7, round_f1=0.9, packed_threshold=0.6))
    assert object_config_for(model, ObjectConfig()).grow is False  # rules recorded before growing was tried
    model.history[-1]["object_rules"]["round"].update(grow=True, grow_to=0.2)
    chosen = object_config_for(model, ObjectConfig())
    assert (chosen.threshold, chosen.grow, chosen.grow_to) == (0.7, True, 0.2)
    assert "grown over the pixels at least 0.2 probable" in describe_object_rule(model, ObjectConfig())
    assert object_config_for(model, ObjectConfig(threshold=0.9)).grow is False
    assert object_config_for(model, ObjectConfig(threshold=0.9, grow=True)).grow is True
    assert object_config_for(model, ObjectConfig(grow=False)).grow is False  # a choice made is kept
