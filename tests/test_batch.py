import numpy as np
import tifffile

from napari_unet import PredictConfig, devices, drain
from napari_unet.batch import segment_files


def test_many_files_keep_the_gpu_cache_between_images_and_release_it_once(tiny_model, tmp_path, monkeypatch):
    released = []
    monkeypatch.setattr(devices, "release", lambda device: released.append(device.type))
    monkeypatch.setattr(devices, "worth_releasing", lambda device: True)  # as on a card the job fills
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


def test_zarr_images_and_tiffs_too_large_go_block_by_block_the_rest_to_tiffs(tiny_model, tmp_path, monkeypatch):
    import zarr

    from napari_unet import BlockConfig, segment
    from napari_unet.predict import host_memory

    pictures = {name: np.random.default_rng(i).integers(0, 1000, (90, 110), np.uint16) for i, name in enumerate("abc")}
    tifffile.imwrite(tmp_path / "small.tif", pictures["a"])
    tifffile.imwrite(tmp_path / "big.tif", pictures["b"])
    zarr.open_array(str(tmp_path / "slide.zarr"), mode="w", shape=(90, 110), chunks=(50, 50), dtype="u2")[:] = pictures[
        "c"
    ]
    real = host_memory.tiff_too_large
    monkeypatch.setattr(  # as if only big.tif were too large for this machine's memory
        host_memory,
        "tiff_too_large",
        lambda path, *args: (
            "segmenting this 90 x 110 image in memory needs a lot: ..." if path.name == "big.tif" else real(path, *args)
        ),
    )
    images = [tmp_path / "small.tif", tmp_path / "big.tif", tmp_path / "slide.zarr"]
    config = PredictConfig(device="cpu")
    records = list(segment_files(tiny_model, images, tmp_path / "out", config=config, blocks=BlockConfig(64, 16)))
    notes = {r.name: r.note for r in records if r.note}
    assert notes == {
        "big.tif": "segmenting this 90 x 110 image in memory needs a lot; writing zarr block by block instead",
        "slide.zarr": "a zarr image: segmenting it block by block into zarr",
    }
    assert any(r.tile is not None and r.tile.message == "block 4 of 4" for r in records)
    out = tmp_path / "out"
    expected = ["big_objects.zarr", "big_segmentation.zarr", "slide_objects.zarr", "slide_segmentation.zarr"]
    assert sorted(p.name for p in out.iterdir()) == sorted([*expected, "small_objects.tif", "small_segmentation.tif"])
    for stem, name in (("small", "a"), ("big", "b"), ("slide", "c")):
        reference = segment(tiny_model, pictures[name], config)
        path = out / f"{stem}_segmentation"
        found = tifffile.imread(f"{path}.tif") if stem == "small" else zarr.open_array(f"{path}.zarr", mode="r")[:]
        np.testing.assert_array_equal(found, reference.classes)
    # without blocks everything is read whole, a zarr image too
    outputs = drain(segment_files(tiny_model, [tmp_path / "slide.zarr"], tmp_path / "whole", config=config))
    np.testing.assert_array_equal(
        tifffile.imread(outputs[0]["segmentation"]), segment(tiny_model, pictures["c"], config).classes
    )
