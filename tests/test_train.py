import itertools
import math

import numpy as np
import pytest
import torch

from napari_unet import TrainConfig, drain, fit, new_model, segment, trainer
from napari_unet.errors import TrainingError
from napari_unet.metrics import foreground_iou
from napari_unet.train import learning_rate_at

from .conftest import cuda

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


def test_diverging_loss_stops_with_the_last_good_model(tiny_model, scribbled):
    image, annotation, _ = scribbled
    good = [p.clone() for p in tiny_model.net.parameters()]
    config = TrainConfig(steps=30, batch_size=2, patch_size=60, learning_rate=float("inf"), warmup=0.0, device="cpu")
    records = list(fit(tiny_model, [image], [annotation], config))
    assert "NaN" in records[-1].message
    assert all(torch.isfinite(p).all() for p in tiny_model.net.parameters())
    assert all(torch.equal(a, b) for a, b in zip(good, tiny_model.net.parameters(), strict=True))


GPU = [cuda, pytest.mark.gpu]


@pytest.mark.parametrize(
    ("device", "optimizer", "bad_step"),
    [
        ("cpu", "adamw", 3),
        ("cpu", "sgd", 1),
        pytest.param("cuda", "adamw", 3, marks=GPU),
        pytest.param("cuda", "sgd", 1, marks=GPU),  # fused SGD: a skipped first step must not spoil momentum
    ],
)
def test_a_non_finite_step_changes_nothing_and_records_carry_their_own_loss(
    scribbled, monkeypatch, device, optimizer, bad_step
):
    image, annotation, _ = scribbled
    model = new_model("light", ["nucleus"], depth=2, base_filters=4, seed=0)
    losses: list[float] = []  # of every step launched, the NaN one included
    real_loss = trainer.weighted_cross_entropy

    def loss(*args):
        value = real_loss(*args)
        if len(losses) + 1 == bad_step:
            value = value * math.nan
        losses.append(float(value.detach()))
        return value

    unchanged = []
    real_step = trainer.TrainingRun.one_step

    def one_step(run, *args):
        before = [p.detach().clone() for p in run.net.parameters()]
        launched = real_step(run, *args)
        if len(losses) == bad_step:
            unchanged.append(all(torch.equal(a, b) for a, b in zip(before, run.net.parameters(), strict=True)))
        return launched

    monkeypatch.setattr(trainer, "weighted_cross_entropy", loss)
    monkeypatch.setattr(trainer.TrainingRun, "one_step", one_step)
    config = TrainConfig(steps=6, batch_size=2, patch_size=60, optimizer=optimizer, validate_every=4, device=device)
    records = list(fit(model, [image], [annotation], config))
    assert unchanged == [True]
    assert [r.step for r in records[:-1]] == list(range(1, 7)) and records[-1].message == "finished"
    assert len(losses) == 7 and math.isnan(losses[bad_step - 1])
    assert [r.loss for r in records[:-1]] == [v for v in losses if math.isfinite(v)]  # step k's, not k-1's
    assert model.history[-1]["steps"] == 6
    assert all(torch.isfinite(p).all() for p in model.net.parameters())


@cuda
@pytest.mark.gpu
def test_gpu_steps_are_queued_without_waiting_for_the_gpu(scribbled, monkeypatch):
    image, annotation, _ = scribbled

    def strict(method):
        def run(*args):
            torch.cuda.set_sync_debug_mode("error")  # raises on .item(), blocking copies, synchronize ...
            try:
                return method(*args)
            finally:
                torch.cuda.set_sync_debug_mode("default")

        return run

    for name in ("batch", "one_step"):  # making a batch and launching its step: all the per-step work
        monkeypatch.setattr(trainer.TrainingRun, name, strict(getattr(trainer.TrainingRun, name)))
    model = new_model("light", ["nucleus"], depth=2, base_filters=8, seed=0)
    config = TrainConfig(steps=20, batch_size=4, patch_size=60, device="cuda", amp=True, validate_every=10)
    records = list(fit(model, [image], [annotation], config))
    assert [r.step for r in records[:-1]] == list(range(1, 21)) and records[-1].message == "finished"
    assert all(math.isfinite(r.loss) for r in records)


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


def test_learning_rate_schedule():
    config = TrainConfig(learning_rate=1.0, warmup=0.1)
    assert learning_rate_at(0.05, config) == pytest.approx(0.5)
    assert learning_rate_at(0.1, config) == pytest.approx(1.0)
    assert learning_rate_at(1.0, config) == pytest.approx(0.01)


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


@pytest.mark.parametrize("prefetch", [False, True])
def test_out_of_memory_halves_the_batch_and_goes_on(tiny_model, scribbled, monkeypatch, prefetch):
    if prefetch:  # batches cut ahead by the helper thread (as on a GPU) are recut after the batch shrinks
        monkeypatch.setattr("napari_unet.trainer.PREFETCH_ON", ("cpu", "cuda"))
    image, annotation, _ = scribbled
    real_forward = tiny_model.net.forward

    def forward(x):
        if x.shape[0] > 2:
            raise torch.OutOfMemoryError("CUDA out of memory (simulated)")
        return real_forward(x)

    monkeypatch.setattr(tiny_model.net, "forward", forward)
    config = TrainConfig(steps=6, batch_size=8, patch_size=60, device="cpu")
    records = list(fit(tiny_model, [image], [annotation], config))
    assert [r.message for r in records if r.message.startswith("GPU")] == [
        "GPU memory full: batch size lowered to 4",
        "GPU memory full: batch size lowered to 2",
    ]
    assert records[-1].done and records[-1].step == 6 and records[-1].message == "finished"


def test_batches_cut_ahead_by_a_thread_give_the_same_training(scribbled, monkeypatch):
    import threading

    image, annotation, _ = scribbled
    weights, threads = [], []
    for prefetch in (False, True):
        if prefetch:
            monkeypatch.setattr("napari_unet.trainer.PREFETCH_ON", ("cpu", "cuda"))
        model = new_model("light", ["nucleus"], depth=2, base_filters=4, seed=1)
        drain(fit(model, [image], [annotation], FAST))
        weights.append(torch.cat([p.detach().flatten() for p in model.net.parameters()]))
        threads.append([t.name for t in threading.enumerate() if t.name.startswith("napari-unet-batches")])
    assert torch.equal(weights[0], weights[1])  # the same windows in the same order
    assert threads == [[], []]  # the helper thread ended with the run


def test_default_patch_depends_on_the_device():
    from napari_unet.model import preset
    from napari_unet.trainer import default_patch_size

    light, standard = preset("light"), preset("standard")
    assert default_patch_size(light, "cpu") == 132  # 44-pixel outputs: fast steps on a CPU
    assert standard.output_size(default_patch_size(standard, "cuda")) >= 96  # context where compute is cheap
    assert standard.output_size(default_patch_size(standard, "cpu")) >= 40
    assert light.output_size(default_patch_size(light, "cuda")) >= 96


@cuda
@pytest.mark.gpu
def test_real_gpu_out_of_memory_in_training_lowers_the_batch(scribbled, gpu_nearly_full):
    image, annotation, _ = scribbled
    big = np.tile(image, (5, 5))
    model = new_model("paper", ["nucleus"], seed=0)
    config = TrainConfig(steps=3, batch_size=64, patch_size=572, device="cuda")
    records = list(fit(model, [big], [np.tile(annotation, (5, 5))], config))
    assert any(r.message.startswith("GPU memory full") for r in records)
    assert records[-1].done and records[-1].step == 3
    assert torch.cuda.memory_allocated() == gpu_nearly_full


def test_compiled_training_steps_match_eager_ones_and_leave_the_network_uncompiled(scribbled, monkeypatch):
    from napari_unet.model import UNet

    image, annotation, _ = scribbled
    compiles = []
    real_compile = torch.compile

    def spy(net, **kwargs):
        compiles.append(kwargs)
        return real_compile(net, **kwargs)

    monkeypatch.setattr(trainer.torch, "compile", spy)
    losses, models = {}, {}
    for mode in ("off", "default"):
        models[mode] = model = new_model("light", ["nucleus"], depth=2, base_filters=4, seed=0)
        config = TrainConfig(steps=4, batch_size=2, patch_size=60, validate_every=4, device="cpu", compile=mode)
        records = list(fit(model, [image], [annotation], config))
        assert [r.step for r in records[:-1]] == [1, 2, 3, 4] and records[-1].message == "finished"
        losses[mode] = [r.loss for r in records[:-1]]
    assert compiles == [{"mode": "default", "dynamic": False}]  # no torch.compile with "off"
    assert all(math.isfinite(v) for v in losses["default"])
    np.testing.assert_allclose(losses["default"], losses["off"], rtol=1e-4)  # fused kernels round differently
    model = models["default"]
    assert type(model.net) is UNet and not model.net.training
    assert not any("_orig_mod" in key for key in model.net.state_dict())
    assert all(p.device.type == "cpu" for p in model.net.parameters())
    assert model.history[-1]["config"]["compile"] == "default"
    start, eager, compiled = (
        torch.cat([p.detach().flatten() for p in m.net.parameters()])
        for m in (new_model("light", ["nucleus"], depth=2, base_filters=4, seed=0), models["off"], model)
    )  # the optimizer trained the network itself (AdamW's steps on near-zero gradients amplify rounding)
    assert (compiled - eager).abs().mean() < 0.1 * (start - eager).abs().mean()


def test_a_failed_compilation_is_a_training_error_and_out_of_memory_still_lowers_the_batch(
    tiny_model, scribbled, monkeypatch
):
    from torch._dynamo.exc import BackendCompilerFailed

    image, annotation, _ = scribbled
    failure: list[Exception] = []

    def compile_(net, **kwargs):  # fails the way torch.compile does: on the first call
        def forward(x):
            if isinstance(failure[-1], torch.OutOfMemoryError) and x.shape[0] <= 2:
                return net(x)
            raise BackendCompilerFailed(compile_, failure[-1], None)

        return forward

    monkeypatch.setattr(trainer.torch, "compile", compile_)
    failure.append(torch.OutOfMemoryError("CUDA out of memory (simulated, while compiling)"))
    config = TrainConfig(steps=3, batch_size=8, patch_size=60, device="cpu", compile="default")
    records = list(fit(tiny_model, [image], [annotation], config))
    assert [r.message for r in records if r.message.startswith("GPU")] == [
        "GPU memory full: batch size lowered to 4",
        "GPU memory full: batch size lowered to 2",
    ]
    assert records[-1].step == 3 and records[-1].message == "finished"
    failure.append(RuntimeError("C++ compile error\nthe compiler's long log"))
    with pytest.raises(TrainingError, match=r"^torch.compile failed \(RuntimeError: C\+\+ compile error\); train wi"):
        drain(fit(tiny_model, [image], [annotation], config))
    assert tiny_model.history[-1]["steps"] == 0 and next(tiny_model.net.parameters()).device.type == "cpu"


def test_an_unknown_compile_mode_is_refused():
    with pytest.raises(ValueError, match=r"compile must be one of 'off', 'default', 'reduce-overhead', not 'fast'"):
        TrainConfig(compile="fast")


@cuda
@pytest.mark.gpu
@pytest.mark.parametrize("mode", ["default", "reduce-overhead"])
def test_compiled_training_on_a_gpu_learns_and_gives_the_memory_back(scribbled, mode):
    from napari_unet import device as devices

    image, annotation, objects = scribbled
    devices.release(torch.device("cuda"))  # earlier jobs' cache, cuBLAS's workspaces too, out of the count
    before = torch.cuda.memory_allocated()
    model = new_model("light", ["nucleus"], depth=2, base_filters=8, seed=0)
    config = TrainConfig(steps=150, batch_size=8, patch_size=60, device="cuda", compile=mode)
    records = list(fit(model, [image], [annotation], config))
    assert records[-1].done and records[-1].step == 150
    assert all(np.isfinite(r.loss) for r in records)
    assert type(model.net).__name__ == "UNet" and next(model.net.parameters()).device.type == "cpu"
    assert torch.cuda.memory_allocated() == before
    assert foreground_iou(objects, segment(model, image, objects=False).classes) > 0.6
