from napari_unet import new_model
from napari_unet.objects.config import THRESHOLD_OUTLINED, THRESHOLD_SCRIBBLED, ObjectConfig
from napari_unet.predict.object_thresholds import object_config_for


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
