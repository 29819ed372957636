"""Tiling on the compute device gives exactly what tiling on the host gives (run here on the CPU)."""

from __future__ import annotations

import numpy as np
import pytest

from napari_unet import PredictConfig, drain, predict_probabilities
from napari_unet.device_tiling import fits_on_device


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
    np.testing.assert_array_equal(on_device, drain(predict_probabilities(tiny_model, image, host)))
    assert records[-1].done == records[-1].total > 0


def test_only_images_that_fit_a_quarter_of_the_free_memory_stay_on_the_device():
    shape = (1, 1, 8192, 8192)  # 256 MiB of pixels, 512 MiB of probabilities for two classes
    assert fits_on_device(shape, 2, 92, free_bytes=80 << 30)
    assert not fits_on_device(shape, 2, 92, free_bytes=2 << 30)
