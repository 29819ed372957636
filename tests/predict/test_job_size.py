"""Job sizes (predict/job_size.py): tiles and batches for the device, and retries after running out of memory."""

import torch

from napari_unet import new_model


def test_job_size_uses_one_tile_for_small_images_and_cache_sized_tiles_for_large_ones():

    from napari_unet.predict.config import PredictConfig
    from napari_unet.predict.job_size import job_size

    model, cpu = new_model("light", ["nucleus"]), torch.device("cpu")
    small, _ = job_size(model, cpu, PredictConfig(), (512, 512))
    large, _ = job_size(model, cpu, PredictConfig(), (4096, 4096))
    assert model.config.output_size(small) >= 512  # the whole image in one tile
    assert large < small  # cache-sized tiles on the CPU
    assert job_size(model, cpu, PredictConfig(tile=252, batch_size=3), (4096, 4096)) == (252, 3)
