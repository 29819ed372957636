import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from napari_unet import PredictConfig, drain, iter_segment, new_model, predict_probabilities, segment
from napari_unet.errors import InputError
from napari_unet.predict.segment import FINDING_OBJECTS
from napari_unet.progress import TileProgress
from tests.conftest import FLOAT32_AGREE


def test_probabilities_sum_to_one_and_have_the_image_shape(tiny_model):
    image = np.random.default_rng(0).random((50, 70))
    probs = drain(predict_probabilities(tiny_model, image))
    assert probs.shape == (2, 50, 70)
    np.testing.assert_allclose(probs.sum(0), 1, atol=1e-5)


def test_tile_size_does_not_change_the_result(tiny_model):
    image = np.random.default_rng(0).random((150, 170)).astype(np.float32)
    a = segment(tiny_model, image, PredictConfig(tile=40, batch_size=3))
    b = segment(tiny_model, image, PredictConfig(tile=400))
    np.testing.assert_allclose(a.probabilities, b.probabilities, atol=1e-5)


@pytest.mark.parametrize(
    ("shape", "channels", "axis"),
    [
        ((3, 40, 50), 1, None),
        ((2, 3, 40, 50), 1, None),
        ((40, 50, 2), 2, None),
        ((2, 40, 50), 2, 0),
        ((40, 50, 3), 1, None),
        ((1, 100000 // 50), 1, None),
    ],
)
def test_layouts_give_outputs_of_the_spatial_shape(shape, channels, axis):
    model = new_model("light", ["a", "b"], in_channels=channels, depth=1, base_filters=2, seed=0)
    image = np.random.default_rng(0).random(shape)
    result = segment(model, image, channel_axis=axis)
    spatial = tuple(
        s
        for i, s in enumerate(shape)
        if i != (axis if axis is not None else (len(shape) - 1 if len(shape) == 3 and shape[-1] in (2, 3) else -99))
    )
    assert result.classes.shape == spatial
    assert result.objects.shape == spatial
    assert result.probabilities.shape == (3, *spatial)
    assert set(np.unique(result.classes)) <= {0, 2, 3}


def test_progress_reports_every_tile(tiny_model):
    image = np.zeros((300, 300))
    records = []
    drain(iter_segment(tiny_model, image, PredictConfig(tile=100, batch_size=2)), records.append)
    assert all(isinstance(r, TileProgress) for r in records)
    *tiles, objects = records
    assert tiles[-1].done == tiles[-1].total > 4 and not any(r.message for r in tiles)
    assert objects == TileProgress(1, 1, FINDING_OBJECTS)  # the objects start: seconds on a large image
    without = []
    drain(iter_segment(tiny_model, image, PredictConfig(tile=100, batch_size=2), objects=False), without.append)
    assert without == tiles


def test_wrong_channel_count_is_an_input_error(tiny_model):
    with pytest.raises(InputError):
        segment(tiny_model, np.zeros((40, 50, 2)), channel_axis=2)


def test_model_is_left_on_cpu_in_eval_mode(tiny_model):
    segment(tiny_model, np.zeros((40, 40)))
    assert not tiny_model.net.training
    assert next(tiny_model.net.parameters()).device.type == "cpu"


def test_prediction_leaves_a_network_where_it_was(tiny_model):
    """A preview during training must not move the network off the training device."""
    import torch

    from napari_unet.devices import on_device

    net = tiny_model.net
    with on_device(net, torch.device("cpu")):
        assert next(net.parameters()).device.type == "cpu"
    net.train()
    segment(tiny_model, np.zeros((40, 40)))
    assert net.training


@pytest.mark.parametrize("on_device", [False, True])  # tiles cut on the host, or on the device
def test_out_of_memory_retries_with_smaller_batches_and_tiles(tiny_model, monkeypatch, on_device):
    """Simulated GPU memory exhaustion: a batch above one tile or a tile above 100 px fails."""
    import torch

    real_forward = tiny_model.net.forward

    def forward(x):
        if x.shape[0] > 1 or x.shape[-1] > 100:
            raise torch.OutOfMemoryError("CUDA out of memory (simulated)")
        return real_forward(x)

    monkeypatch.setattr(tiny_model.net, "forward", forward)
    records = []
    image = np.random.default_rng(0).random((150, 150))
    config = PredictConfig(tile=300, batch_size=4, on_device=on_device)
    probs = drain(predict_probabilities(tiny_model, image, config), records.append)
    messages = [r.message for r in records if r.message]
    assert len(messages) >= 3 and "GPU memory full" in messages[0]
    monkeypatch.setattr(tiny_model.net, "forward", real_forward)
    np.testing.assert_allclose(probs, drain(predict_probabilities(tiny_model, image)), atol=1e-5)


def test_out_of_memory_at_the_smallest_size_is_reported(tiny_model, monkeypatch):
    import torch

    from napari_unet.errors import ResourceError

    def forward(x):
        raise torch.OutOfMemoryError("CUDA out of memory (simulated)")

    monkeypatch.setattr(tiny_model.net, "forward", forward)
    with pytest.raises(ResourceError, match="smallest tile"):
        drain(predict_probabilities(tiny_model, np.zeros((50, 50)), PredictConfig(tile=100, batch_size=2)))


def test_test_time_augmentation_averages_and_stays_seamless(tiny_model):
    image = np.random.default_rng(0).random((90, 130)).astype(np.float32)
    averaged = drain(predict_probabilities(tiny_model, image, PredictConfig(test_time_augmentation=True)))
    np.testing.assert_allclose(averaged.sum(0), 1, atol=1e-5)
    assert np.abs(averaged - drain(predict_probabilities(tiny_model, image))).max() > 1e-3
    tiled = drain(predict_probabilities(tiny_model, image, PredictConfig(test_time_augmentation=True, tile=60)))
    np.testing.assert_allclose(tiled, averaged, atol=1e-5)  # valid sizes share their remainder: no seams


def test_prediction_leaves_a_training_networks_memory_layout_alone():
    import torch

    from napari_unet import devices, new_model

    net = new_model("light", ["nucleus"]).net.to(memory_format=torch.channels_last)  # as training on a CPU
    with devices.on_device(net, torch.device("cpu"), channels_last=True):
        pass
    assert devices._is_channels_last(net)
    net.to(memory_format=torch.contiguous_format)  # as between jobs
    with devices.on_device(net, torch.device("cpu"), channels_last=True):
        assert devices._is_channels_last(net)  # channels-last for the job
    assert not devices._is_channels_last(net)  # and back


@settings(max_examples=20, deadline=None)
@given(
    dtype=st.sampled_from(["uint8", "uint16", "int16", "int32", "float32", "float64"]),
    height=st.integers(1, 90),
    width=st.integers(1, 90),
    tile=st.integers(1, 120),
    seed=st.integers(0, 100),
)
def test_any_dtype_shape_and_tile_gives_finite_probabilities_that_do_not_depend_on_the_tile(
    dtype, height, width, tile, seed
):
    model = new_model("light", ["nucleus"], depth=2, base_filters=4, seed=0)
    rng = np.random.default_rng(seed)
    image = (rng.random((height, width)) * 200).astype(dtype)
    tiled = segment(model, image, PredictConfig(device="cpu", tile=tile), objects=False)
    whole = segment(model, image, PredictConfig(device="cpu"), objects=False)
    assert tiled.probabilities.shape == (2, height, width)
    assert np.isfinite(tiled.probabilities).all()
    np.testing.assert_allclose(tiled.probabilities.sum(axis=0), 1.0, atol=1e-5)
    np.testing.assert_allclose(tiled.probabilities, whole.probabilities, rtol=0, atol=1e-5)


def test_the_device_memory_is_released_after_a_job_unless_kept(tiny_model, monkeypatch):
    from napari_unet import devices

    released = []
    monkeypatch.setattr(devices, "release", lambda device: released.append(device.type))
    image = np.random.default_rng(0).random((40, 50)).astype(np.float32)
    # a fused copy is made for the job (as on CUDA), then released; an unfused network already on the CPU
    # stays there, with nothing to give back
    kept = segment(tiny_model, image, PredictConfig(device="cpu", fuse=True, release_memory=False))
    assert released == []
    given_back = segment(tiny_model, image, PredictConfig(device="cpu", fuse=True, release_memory=True))
    assert released == ["cpu"]
    np.testing.assert_allclose(kept.probabilities, given_back.probabilities, **FLOAT32_AGREE)
    # by default, when it is worth it (a large share of the card, or the card nearly full)
    monkeypatch.setattr(devices, "worth_releasing", lambda device: True)
    segment(tiny_model, image, PredictConfig(device="cpu", fuse=True))
    assert released == ["cpu", "cpu"]
    monkeypatch.setattr(devices, "worth_releasing", lambda device: False)
    segment(tiny_model, image, PredictConfig(device="cpu", fuse=True))
    assert released == ["cpu", "cpu"]


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_a_kept_gpu_cache_serves_the_next_job_sized_as_if_given_back():
    from napari_unet import devices
    from napari_unet.predict.job_size import job_size

    model = new_model("paper", ["nucleus"], seed=0)
    image = np.random.default_rng(0).gamma(2.0, 9000.0, (3000, 3000)).astype(np.uint16)
    device = torch.device("cuda")
    devices.release(device)
    reserved, job = torch.cuda.memory_reserved(), job_size(model, device, PredictConfig(device="cuda"), image.shape)
    first = segment(model, image, PredictConfig(device="cuda", release_memory=False), objects=False)
    assert torch.cuda.memory_reserved() > reserved + (1 << 30)  # the job's memory stayed in torch's cache
    assert job_size(model, device, PredictConfig(device="cuda"), image.shape) == job
    again = segment(model, image, PredictConfig(device="cuda", release_memory=True), objects=False)
    np.testing.assert_array_equal(again.classes, first.classes)
    np.testing.assert_allclose(again.probabilities, first.probabilities, rtol=0, atol=1e-6)
    assert torch.cuda.memory_reserved() == reserved  # and given back after the second
    by_default = segment(model, image, PredictConfig(device="cuda"), objects=False)
    np.testing.assert_array_equal(by_default.classes, first.classes)
    # by default kept where it is a small share of a large card (an H100), else given back
    kept = torch.cuda.memory_reserved() > reserved + (1 << 30)
    if kept:
        assert not devices.worth_releasing(device)  # what the default judged at the job's end
    else:
        assert torch.cuda.memory_reserved() == reserved
    if torch.cuda.mem_get_info()[1] > 40 << 30:
        assert kept
    devices.release(device)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_real_gpu_out_of_memory_is_retried_and_the_memory_given_back(gpu_nearly_full):
    model = new_model("paper", ["nucleus"], seed=0)
    image = np.random.default_rng(0).random((2500, 2500)).astype(np.float32)
    records = []
    config = PredictConfig(device="cuda", tile=2140, batch_size=16)  # needs tens of GiB
    probabilities = drain(predict_probabilities(model, image, config), records.append)
    assert any("GPU memory full" in r.message for r in records)
    assert probabilities.shape == (2, 2500, 2500) and np.isfinite(probabilities).all()
    assert torch.cuda.memory_allocated() == gpu_nearly_full  # the network went back to the CPU
    assert next(model.net.parameters()).device.type == "cpu"
