import numpy as np
import tifffile

from napari_unet import PredictConfig, drain
from napari_unet import device as devices
from napari_unet.batch import segment_files


def test_many_files_keep_the_gpu_cache_between_images_and_release_it_once(tiny_model, tmp_path, monkeypatch):
    released = []
    monkeypatch.setattr(devices, "release", lambda device: released.append(device.type))
    paths = []
    for i in range(3):
        paths.append(tmp_path / f"image{i}.tif")
        tifffile.imwrite(paths[-1], np.random.default_rng(i).random((40, 50)).astype(np.float32))
    outputs = drain(segment_files(tiny_model, paths, tmp_path / "out", config=PredictConfig(device="cpu")))
    assert [out["segmentation"].exists() for out in outputs] == [True] * 3
    assert released == ["cpu"]  # once, after the last image, not after each


def test_many_files_release_nothing_when_asked_not_to(tiny_model, tmp_path, monkeypatch):
    released = []
    monkeypatch.setattr(devices, "release", lambda device: released.append(device.type))
    paths = [tmp_path / "a.tif", tmp_path / "b.tif"]
    for path in paths:
        tifffile.imwrite(path, np.zeros((40, 50), dtype=np.uint8))
    config = PredictConfig(device="cpu", release_memory=False)
    drain(segment_files(tiny_model, paths, tmp_path / "out", config=config))
    assert released == []
