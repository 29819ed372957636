"""Tiling on the compute device gives exactly what tiling on the host gives (run here on the CPU)."""

from __future__ import annotations

import numpy as np
import pytest

from napari_unet import PredictConfig, drain, predict_probabilities
from napari_unet.predict.device_tiling import fits_on_device
from tests.conftest import FLOAT32_AGREE, cuda


@pytest.mark.parametrize(
    ("shape", "tile", "batch"),
    [((150, 170), 60, 3), ((2, 90, 80), 44, 2), ((5, 7), 0, 0), ((1, 300), 92, 4)],
)
def test_same_result_as_the_host_path(tiny_model, shape, tile, batch):
    image = np.random.default_rng(0).gamma(2.0, 50.0, size=shape).astype(np.float32)
    host = PredictConfig(device="cpu", tile=tile, batch_size=batch, on_device=False)
    resident = PredictConfig(device="cpu", tile=tile, batch_size=batch, on_device=True)
    records = []
    on_device = drain(predict_probabilities(tiny_model, image, resident), records.append)
    np.testing.assert_allclose(on_device, drain(predict_probabilities(tiny_model, image, host)), **FLOAT32_AGREE)
    assert records[-1].done == records[-1].total > 0


def test_only_images_that_fit_a_quarter_of_the_free_memory_stay_on_the_device():
    shape = (1, 1, 8192, 8192)  # 256 MiB of float32 pixels, 512 MiB while a channel is normalised
    assert fits_on_device(shape, 92, free_bytes=80 << 30)
    assert not fits_on_device(shape, 92, free_bytes=2 << 30)
    assert fits_on_device(shape, 92, 6 << 30, itemsize=1) and not fits_on_device(shape, 92, 6 << 30, itemsize=8)


@pytest.mark.parametrize("n", [1, 2, 3, 10, 501, 4096])
def test_percentiles_are_numpys_to_the_last_bit(n):
    import torch

    from napari_unet.predict.device_tiling import percentiles_like_numpy

    rng = np.random.default_rng(n)
    percents = (0.0, 1.0, 37.5, 50.0, 99.8, 100.0)
    for values in (rng.normal(size=n) * 1e3, rng.integers(0, 5, n).astype(float), np.full(n, 7.25)):
        ours = percentiles_like_numpy(torch.sort(torch.from_numpy(values)).values, percents)
        assert ours == [float(v) for v in np.percentile(values, percents)]


@pytest.mark.parametrize("dtype", ["uint8", "uint16", "uint32", "int16", "int32", "float32", "float64", "bool"])
def test_normalisation_on_the_device_is_numpys(dtype):
    import torch

    from napari_unet.images.normalization import Normalization
    from napari_unet.predict.device_tiling import device_ranges, normalize_on_device, upload

    rng = np.random.default_rng(0)
    planes = (rng.gamma(2.0, 40000.0 if dtype in ("uint16", "uint32") else 60.0, (2, 3, 70, 90))).astype(dtype)
    if dtype.startswith("float"):
        planes[0, 1, :5] = np.nan
        planes[1, 2, 3:7, 10] = np.inf
        planes[:, 0] = -np.inf  # a channel without one finite value
    normalization = Normalization(low=2.0, high=99.5)
    on_device = upload(planes, torch.device("cpu"))
    np.testing.assert_array_equal(on_device.numpy(), planes.astype(on_device.numpy().dtype))
    ranges = device_ranges(normalization, on_device)
    assert ranges == normalization.ranges(planes)
    np.testing.assert_array_equal(normalize_on_device(on_device, ranges).numpy(), normalization.apply(planes))


def test_device_path_gives_the_classes_of_the_host_path(tiny_model):
    from napari_unet import iter_segment

    image = np.random.default_rng(3).gamma(2.0, 9000.0, size=(2, 130, 150)).astype(np.uint16)
    host = drain(iter_segment(tiny_model, image, PredictConfig(device="cpu", tile=60, on_device=False)))
    resident = drain(iter_segment(tiny_model, image, PredictConfig(device="cpu", tile=60, on_device=True)))
    np.testing.assert_allclose(resident.probabilities, host.probabilities, **FLOAT32_AGREE)
    np.testing.assert_array_equal(resident.classes, host.classes)
    assert resident.classes.dtype == np.uint8 and resident.classes.shape == image.shape
    np.testing.assert_array_equal(resident.objects, host.objects)


@pytest.mark.gpu
def test_device_path_on_a_gpu_matches_the_host_path(tiny_model, monkeypatch):
    import torch

    from napari_unet import iter_segment

    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA GPU")
    from napari_unet import devices

    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", False)
    cuda = torch.device("cuda")
    devices.release(cuda)  # what earlier jobs cached (cuBLAS's workspaces too) is not counted
    allocated = torch.cuda.memory_allocated()
    image = np.random.default_rng(4).gamma(2.0, 9000.0, size=(3, 700, 900)).astype(np.uint16)
    config = {"device": "cuda", "tile": 252, "batch_size": 3, "amp": False}
    host = drain(iter_segment(tiny_model, image, PredictConfig(**config, on_device=False)))
    resident = drain(iter_segment(tiny_model, image, PredictConfig(**config, on_device=True)))
    np.testing.assert_allclose(resident.probabilities, host.probabilities, atol=1e-5)
    sure = np.abs(host.probabilities[0] - host.probabilities[1]) > 1e-3
    np.testing.assert_array_equal(resident.classes[sure], host.classes[sure])
    devices.release(cuda)  # a large card keeps its cache between jobs; no tensor of the job is left
    assert torch.cuda.memory_allocated() == allocated


@cuda
@pytest.mark.gpu
@pytest.mark.parametrize("dtype", ["uint16", "float32", "uint8"])
def test_a_large_image_goes_to_the_gpu_exactly_through_page_locked_blocks(dtype, monkeypatch):
    import torch

    from napari_unet.predict import device_tiling

    monkeypatch.setattr(device_tiling, "UPLOAD_BLOCK_BYTES", 1 << 20)  # 7-29 blocks through 3: each reused
    top = 255 if dtype == "uint8" else 65535
    planes = np.random.default_rng(0).integers(0, top, (1, 1, 2500, 2900), endpoint=True).astype(dtype)
    on_device = device_tiling.upload(planes, torch.device("cuda"))
    np.testing.assert_array_equal(on_device.cpu().numpy(), planes)  # uint16 comes back widened to int32
