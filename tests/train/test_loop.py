"""The training loop (train/loop.py): device-side checks, recovery from bad steps and full memory, compiled steps."""

import math

import numpy as np
import pytest
import torch

from napari_unet import TrainConfig, drain, fit, new_model, segment
from napari_unet.errors import TrainingError
from napari_unet.objects.metrics import foreground_iou
from napari_unet.train import loop as trainer
from napari_unet.train.config import with_learning_rate
from napari_unet.train.fit import prepare
from napari_unet.train.loop import TrainingRun
from napari_unet.train.optimizers import make_optimizer
from tests.conftest import cuda

FAST = TrainConfig(steps=40, batch_size=4, patch_size=60, validate_every=20, device="cpu")
GPU = [cuda, pytest.mark.gpu]


def test_diverging_loss_stops_with_the_last_good_model(tiny_model, scribbled):
    image, annotation, _ = scribbled
    good = [p.clone() for p in tiny_model.net.parameters()]
    config = TrainConfig(steps=30, batch_size=2, patch_size=60, learning_rate=float("inf"), warmup=0.0, device="cpu")
    records = list(fit(tiny_model, [image], [annotation], config))
    assert "NaN" in records[-1].message
    assert all(torch.isfinite(p).all() for p in tiny_model.net.parameters())
    assert all(torch.equal(a, b) for a, b in zip(good, tiny_model.net.parameters(), strict=True))


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


@pytest.mark.parametrize("prefetch", [False, True])
def test_out_of_memory_halves_the_batch_and_goes_on(tiny_model, scribbled, monkeypatch, prefetch):
    if prefetch:  # batches cut ahead by the helper thread (as on a GPU) are recut after the batch shrinks
        monkeypatch.setattr("napari_unet.train.loop.PREFETCH_ON", ("cpu", "cuda"))
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
            monkeypatch.setattr("napari_unet.train.loop.PREFETCH_ON", ("cpu", "cuda"))
        model = new_model("light", ["nucleus"], depth=2, base_filters=4, seed=1)
        drain(fit(model, [image], [annotation], FAST))
        weights.append(torch.cat([p.detach().flatten() for p in model.net.parameters()]))
        threads.append([t.name for t in threading.enumerate() if t.name.startswith("napari-unet-batches")])
    assert torch.equal(weights[0], weights[1])  # the same windows in the same order
    assert threads == [[], []]  # the helper thread ended with the run


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
    from napari_unet.models.unet import UNet

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


@cuda
@pytest.mark.gpu
@pytest.mark.parametrize("mode", ["default", "reduce-overhead"])
def test_compiled_training_on_a_gpu_learns_and_gives_the_memory_back(scribbled, mode):
    from napari_unet import devices

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


def run_for(model, scribbled, **settings):
    image, annotation, _ = scribbled
    config = TrainConfig(**{"steps": 10, "batch_size": 2, "patch_size": 60, "device": "cpu", **settings})
    data = prepare(model, [image], [annotation], config)
    return TrainingRun(model, data, config, torch.device("cpu"))


def test_a_run_that_never_stepped_still_leaves_the_model_usable_and_recorded(tiny_model, scribbled):
    run = run_for(tiny_model, scribbled)
    run.finish()
    entry = tiny_model.history[-1]
    assert (entry["steps"], entry["ended"], entry["final_loss"]) == (0, "stopped", None)
    assert entry["labelled_pixels"] > 0 and 0 <= entry["outlined_fraction"] <= 1
    assert entry["config"]["learning_rate"] == 3e-3 and "augment" not in entry["config"]
    assert not tiny_model.net.training and next(tiny_model.net.parameters()).device.type == "cpu"


def test_the_budget_used_is_the_larger_share_of_steps_and_minutes(tiny_model, scribbled, monkeypatch):
    run = run_for(tiny_model, scribbled, steps=10, minutes=1.0)
    run.step = 5
    assert run.fraction() == pytest.approx(0.5, abs=0.01)
    assert run.fraction(ahead=1) == pytest.approx(0.6, abs=0.01)
    run.start -= 45  # three quarters of the minute gone
    assert run.fraction() == pytest.approx(0.75, abs=0.01)
    run.step = 20
    assert run.fraction() == 1.0


def test_a_batch_is_cut_augmented_and_cropped_to_the_network_output(tiny_model, scribbled):
    run = run_for(tiny_model, scribbled)
    x, y, w = run.batch()
    assert x.shape == (2, 1, run.size, run.size) and x.is_contiguous(memory_format=torch.channels_last)
    assert y.shape == w.shape == (2, run.out, run.out)
    assert run.out == tiny_model.config.output_size(run.size)
    assert set(np.unique(y.numpy())) <= {0, 1, 2} and (w >= 0).all()


@pytest.mark.parametrize(("name", "kind"), [("adamw", torch.optim.AdamW), ("sgd", torch.optim.SGD)])
def test_the_optimiser_is_the_one_asked_for(tiny_model, name, kind):
    config = with_learning_rate(TrainConfig(optimizer=name, momentum=0.9), trained_before=False)
    optimizer = make_optimizer(tiny_model.net, config)
    assert isinstance(optimizer, kind) and optimizer.param_groups[0]["lr"] == config.learning_rate
    if name == "sgd":
        assert optimizer.param_groups[0]["momentum"] == 0.9


def test_a_retrain_learns_first_where_the_network_is_wrong(tiny_model, scribbled):
    image, annotation, _ = scribbled
    drain(fit(tiny_model, [image], [annotation], TrainConfig(steps=40, batch_size=4, patch_size=60, device="cpu")))
    corrected = annotation.copy()
    box = (slice(0, 40), slice(0, 40))
    corrected[box] = np.where(corrected[box] > 0, 3 - corrected[box], 0)  # every painted pixel there swapped
    run = run_for(tiny_model, (image, corrected, None))
    run.net.to(run.device)
    run.focus_on_mistakes()
    focus = np.zeros(corrected.shape, bool)
    for _, y, x in np.concatenate(run.data._focus):
        focus[y, x] = True
    painted = run.data.planes[0].labels > 0
    in_box = np.zeros(painted.shape, bool)
    in_box[box] = True
    assert focus[in_box].sum() >= 0.8 * painted[in_box].sum()  # the swapped pixels are wrong now
    assert focus[~in_box].sum() <= 0.3 * painted[~in_box].sum()  # the rest much less


def test_slow_validations_are_spaced_to_a_tenth_of_the_time(tiny_model, scribbled, monkeypatch):
    import time

    from napari_unet.train.config import Validation

    image, annotation, _ = scribbled
    calls = []

    def slow_validation(*args, **kwargs):
        calls.append(1)
        time.sleep(0.3)  # far longer than ten steps of this run
        return Validation(loss=0.1, iou=0.9, pixels=10)

    monkeypatch.setattr(trainer, "validate", slow_validation)
    config = TrainConfig(steps=30, batch_size=2, patch_size=60, validate_every=3, device="cpu")
    records = list(fit(tiny_model, [image], [annotation], config))
    assert records[-1].validation is not None  # there is always one at the end
    assert 2 <= len(calls) < 5  # not ten: each spaced so that validating takes about a tenth of the time
