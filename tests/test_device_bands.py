import numpy as np
import pytest
import torch

from napari_unet import PredictConfig, device_bands, drain, iter_segment
from napari_unet.device_bands import StreamedPlane, host_sample, streams
from napari_unet.device_tiling import MirroredPlanes, normalize_on_device, upload

CPU = torch.device("cpu")


def _raw(dtype: str, shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    values = np.random.default_rng(seed).gamma(2.0, 9000.0 if dtype == "uint16" else 40.0, shape)
    raw = values.astype(dtype)
    if raw.dtype.kind == "f":
        raw[..., 3, 5] = np.nan
        raw[..., -2, -4] = np.inf
    return raw


@pytest.mark.parametrize("dtype", ["uint16", "float32", "uint8"])
@pytest.mark.parametrize(
    ("shape", "before", "after"), [((1, 1, 70, 90), (13, 13), (29, 5)), ((1, 2, 41, 33), (8, 0), (0, 32))]
)
@pytest.mark.parametrize("band_bytes", [1, 200, 1000, 10**6])
def test_a_streamed_plane_is_the_mirrored_plane_row_for_row(monkeypatch, dtype, shape, before, after, band_bytes):
    monkeypatch.setattr(device_bands, "BAND_BYTES", band_bytes)
    raw = _raw(dtype, shape)
    ranges = [(3.0, 250.0)] * shape[1]
    expected = MirroredPlanes(normalize_on_device(upload(raw, CPU), ranges)).padded(0, 0, before, after)
    plane = StreamedPlane(raw, ranges, CPU)
    total = expected.shape[1]
    for rows in [1, before[0], before[0] + 1, total // 3, total // 3, total - after[0], total - after[0] + 1, total]:
        rows = max(rows, 1)
        padded = plane.padded(0, rows, before, after)
        assert padded.shape == expected.shape
        # the rows asked for are final (later bands do not touch them)
        assert torch.equal(padded[:, :rows], expected[:, :rows])
    with pytest.raises(IndexError):
        plane.padded(1, 1, before, after)


@pytest.mark.parametrize("dtype", ["uint16", "uint32", "uint64", "int8", "bool", "float16", "float64", "complex64"])
def test_the_host_sample_is_numpys(dtype):
    planes = (np.random.default_rng(1).random((2, 3, 37, 41)) * 200).astype(dtype)
    sample = host_sample(planes, 4)
    assert sample.dtype == planes.dtype and sample.flags.c_contiguous
    np.testing.assert_array_equal(sample, planes[:, :, ::4, ::4])


def test_streaming_is_for_single_cuda_planes_of_two_bands_when_switched_on(monkeypatch):
    raw = np.zeros((1, 1, 4096, 1024), np.uint16)  # 2 KiB rows: 8192 rows a band
    cuda = torch.device("cuda")
    monkeypatch.setitem(device_bands.STREAMING, "mode", "on")
    monkeypatch.setattr(device_bands, "BAND_BYTES", 1 << 20)
    assert streams(raw, cuda, (92, 92), (100, 100))
    assert not streams(raw, CPU, (92, 92), (100, 100))
    assert not streams(np.zeros((2, 1, 4096, 1024), np.uint16), cuda, (92, 92), (100, 100))
    assert not streams(raw, cuda, (92, 92), (1100, 100))  # a pad wider than the image
    monkeypatch.setattr(device_bands, "BAND_BYTES", 16 << 20)
    assert not streams(raw, cuda, (92, 92), (100, 100))  # one band: nothing to overlap
    monkeypatch.setitem(device_bands.STREAMING, "mode", "off")
    monkeypatch.setattr(device_bands, "BAND_BYTES", 1 << 20)
    assert not streams(raw, cuda, (92, 92), (100, 100))


@pytest.mark.parametrize("dtype", ["uint16", "float32"])
def test_a_streamed_prediction_equals_the_whole_image_one(tiny_model, monkeypatch, dtype):
    import napari_unet.predict as predict

    image = _raw(dtype, (130, 150), seed=2)
    config = PredictConfig(device="cpu", tile=60, batch_size=3, on_device=True)
    whole = drain(iter_segment(tiny_model, image, config))
    monkeypatch.setattr(device_bands, "BAND_BYTES", 150 * image.itemsize * 7)  # 7 rows a band
    used = []
    monkeypatch.setattr(predict, "streams", lambda *args: used.append(True) or True)
    streamed = drain(iter_segment(tiny_model, image, config))
    assert used
    np.testing.assert_array_equal(streamed.probabilities, whole.probabilities)
    np.testing.assert_array_equal(streamed.classes, whole.classes)
    np.testing.assert_array_equal(streamed.objects, whole.objects)


@pytest.mark.gpu
def test_a_streamed_prediction_on_a_gpu_equals_the_whole_image_one(monkeypatch):
    from napari_unet import new_model

    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA GPU")
    model = new_model("paper", ["nucleus"], seed=0)
    image = _raw("uint16", (3000, 2600), seed=3)
    config = PredictConfig(device="cuda")
    allocated = torch.cuda.memory_allocated()
    whole = drain(iter_segment(model, image, config, objects=False))
    monkeypatch.setitem(device_bands.STREAMING, "mode", "on")
    monkeypatch.setattr(device_bands, "BAND_BYTES", 1 << 20)  # 201 rows a band: 15 bands
    streamed = drain(iter_segment(model, image, config, objects=False))
    np.testing.assert_allclose(streamed.probabilities, whole.probabilities, rtol=0, atol=1e-6)
    sure = np.abs(whole.probabilities[0] - whole.probabilities[1]) > 1e-3
    np.testing.assert_array_equal(streamed.classes[sure], whole.classes[sure])
    assert torch.cuda.memory_allocated() == allocated
