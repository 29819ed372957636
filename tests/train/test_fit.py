import itertools

import numpy as np
import pytest
import torch

from napari_unet import TrainConfig, drain, fit, new_model, segment
from napari_unet.errors import TrainingError
from napari_unet.objects.metrics import foreground_iou
from tests.conftest import cuda

FAST = TrainConfig(steps=40, batch_size=4, patch_size=60, validate_every=20, device="cpu")


def test_fit_yields_progress_and_learns(scribbled):
    image, annotation, objects = scribbled
    model = new_model("light", ["nucleus"], depth=2, base_filters=8, seed=0)
    records = list(fit(model, [image], [annotation], TrainConfig(steps=150, batch_size=4, patch_size=60, device="cpu")))
    assert [r.step for r in records[:-1]] == list(range(1, 151))
    assert records[-1].done and records[-1].message == "finished"
    assert records[-1].validation is not None and records[-1].validation.iou > 0.5
    assert np.mean([r.loss for r in records[-20:-1]]) < np.mean([r.loss for r in records[:20]])
    assert foreground_iou(objects, segment(model, image, objects=False).classes) > 0.6
    assert model.history[-1]["steps"] == 150 and not model.net.training


def test_fit_stops_cleanly_mid_run_and_leaves_a_usable_model(tiny_model, scribbled, monkeypatch):
    image, annotation, _ = scribbled
    updates = []
    real_update = torch.amp.GradScaler.step
    monkeypatch.setattr(torch.amp.GradScaler, "step", lambda *args: updates.append(1) or real_update(*args))
    job = fit(tiny_model, [image], [annotation], FAST)
    seen = list(itertools.islice(job, 7))
    job.close()
    assert seen[-1].step == 7
    assert len(updates) == 7  # the loop reads losses a step late, but no step after the last record has begun
    assert tiny_model.history[-1]["steps"] == 7 and tiny_model.history[-1]["ended"] == "stopped"
    assert next(tiny_model.net.parameters()).device.type == "cpu" and not tiny_model.net.training
    result = segment(tiny_model, image)
    assert result.classes.shape == image.shape


def test_fit_is_deterministic_on_cpu(scribbled):
    image, annotation, _ = scribbled
    weights = []
    for _ in range(2):
        model = new_model("light", ["nucleus"], depth=2, base_filters=4, seed=1)
        drain(fit(model, [image], [annotation], FAST))
        weights.append(torch.cat([p.detach().flatten() for p in model.net.parameters()]))
    assert torch.equal(weights[0], weights[1])


def test_fine_tuning_continues_from_a_model(tiny_model, scribbled):
    image, annotation, _ = scribbled
    drain(fit(tiny_model, [image], [annotation], FAST))
    before = [p.clone() for p in tiny_model.net.parameters()]
    drain(fit(tiny_model, [image], [annotation], FAST))
    assert len(tiny_model.history) == 2 and tiny_model.trained_steps == 80
    assert any(not torch.equal(a, b) for a, b in zip(before, tiny_model.net.parameters(), strict=True))


def test_time_budget_stops_training(tiny_model, scribbled):
    image, annotation, _ = scribbled
    config = TrainConfig(steps=None, minutes=0.02, batch_size=2, patch_size=60, device="cpu")
    records = list(fit(tiny_model, [image], [annotation], config))
    assert records[-1].done and records[-1].elapsed < 10
    assert records[-1].fraction == 1.0


def test_paper_recipe_is_available(tiny_model, scribbled):
    image, annotation, _ = scribbled
    config = TrainConfig(
        steps=5, batch_size=1, patch_size=60, optimizer="sgd", momentum=0.99, learning_rate=0.01, device="cpu"
    )
    assert list(fit(tiny_model, [image], [annotation], config))[-1].done


def test_errors_surface_before_the_first_step(tiny_model):
    job = fit(tiny_model, [np.zeros((40, 40))], [np.zeros((40, 40), np.uint8)], FAST)
    with pytest.raises(TrainingError):
        next(job)


@cuda
@pytest.mark.gpu
def test_fit_with_mixed_precision_on_gpu(scribbled):
    image, annotation, objects = scribbled
    model = new_model("light", ["nucleus"], depth=2, base_filters=8, seed=0)
    config = TrainConfig(steps=150, batch_size=8, patch_size=60, device="cuda", amp=True)
    records = list(fit(model, [image], [annotation], config))
    assert records[-1].done and records[-1].device != "cpu"
    assert next(model.net.parameters()).device.type == "cpu"
    result = segment(model, image, objects=False)
    assert foreground_iou(objects, result.classes) > 0.6
