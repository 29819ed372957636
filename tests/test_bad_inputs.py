"""Every kind of image, annotation and model file a user may bring: it works, or says what is wrong.

The table of images below is the list the reliability issue asks for; each row says what happens.
"""

from __future__ import annotations

import numpy as np
import pytest
import tifffile

from napari_unet import InputError, NapariUNetError, PredictConfig, TrainConfig, drain, fit, new_model, segment
from napari_unet.cli import main

CPU = PredictConfig(device="cpu")
RNG = np.random.default_rng(0)
SPOTS = (RNG.random((64, 80)) * 100).astype(np.float32)


def _with_nan() -> np.ndarray:
    image = SPOTS.copy()
    image[10:20, 10:20] = np.nan
    image[0, 0], image[1, 1] = np.inf, -np.inf
    return image


#: name -> (image, channel_axis, expected spatial shape or None for an InputError)
IMAGES = {
    "uint8": (SPOTS.astype(np.uint8), None, (64, 80)),
    "uint16": (SPOTS.astype(np.uint16), None, (64, 80)),
    "int32": (SPOTS.astype(np.int32) - 50, None, (64, 80)),
    "float32": (SPOTS, None, (64, 80)),
    "float64": (SPOTS.astype(np.float64), None, (64, 80)),
    "constant": (np.full((64, 80), 7, np.uint16), None, (64, 80)),
    "all zero": (np.zeros((64, 80), np.float32), None, (64, 80)),
    "NaN and inf": (_with_nan(), None, (64, 80)),
    "all NaN": (np.full((64, 80), np.nan, np.float32), None, (64, 80)),
    "RGB": (np.stack([SPOTS] * 3, axis=-1).astype(np.uint8), None, (64, 80)),
    "RGBA": (np.stack([SPOTS] * 4, axis=-1).astype(np.uint8), None, (64, 80)),
    "channels first (RGB)": (np.stack([SPOTS] * 3).astype(np.uint8), 0, (64, 80)),
    "3D stack": (np.stack([SPOTS] * 3), None, (3, 64, 80)),
    "4D stack": (np.stack([SPOTS] * 4).reshape(2, 2, 64, 80), None, (2, 2, 64, 80)),
    "smaller than one tile": (SPOTS[:5, :7], None, (5, 7)),
    "one pixel": (SPOTS[:1, :1], None, (1, 1)),
    "1 x 100000": (np.tile(SPOTS[0], 1250)[None, :100000], None, (1, 100000)),
    "empty": (np.zeros((0, 80), np.float32), None, None),
    "1D": (SPOTS[0], None, None),
    "channel axis of the wrong size": (np.stack([SPOTS] * 5), 0, None),
}


@pytest.fixture(scope="module")
def tiny():
    return new_model("light", ["nucleus"], depth=2, base_filters=4, seed=0)


@pytest.mark.parametrize("name", list(IMAGES))
def test_images_of_every_kind(tiny, name):
    image, axis, expected = IMAGES[name]
    if expected is None:
        with pytest.raises(InputError):
            segment(tiny, image, CPU, channel_axis=axis)
        return
    result = segment(tiny, image, CPU, channel_axis=axis)
    assert result.classes.shape == expected and result.objects.shape == expected
    assert np.isfinite(result.probabilities).all()


@pytest.mark.filterwarnings("ignore:.*zero-size array")
@pytest.mark.parametrize("name", ["not an image", "truncated TIFF", "empty file", "zero-size TIFF"])
def test_unreadable_files_are_one_line_on_the_command_line(tmp_path, capsys, name):
    path = tmp_path / "image.tif"
    if name == "not an image":
        path.write_text("sample,value\n1,2\n")
    elif name == "truncated TIFF":
        tifffile.imwrite(path, SPOTS)
        path.write_bytes(path.read_bytes()[:300])
    elif name == "empty file":
        path.write_bytes(b"")
    else:
        tifffile.imwrite(path, np.zeros((0, 5), np.uint8))
    assert main(["predict", "starting", str(path), "--out", str(tmp_path / "out"), "--device", "cpu"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("napari-unet: error:") and "image.tif" in err[0]
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


#: name -> annotation for the 64 x 80 image (None: the error message expected)
def _annotation(kind: str) -> np.ndarray:
    base = np.zeros((64, 80), np.int64)
    base[5:15, 5:15], base[40:50, 40:50] = 1, 2
    return {
        "nothing painted": np.zeros((64, 80), np.uint8),
        "only background": np.where(base == 2, 1, base),
        "only objects": np.where(base == 1, 2, base),
        "negative values": np.where(base == 2, -1, base),
        "fractional values": base + 0.5 * (base == 2),
        "another shape": base[:32],
        "class above the model's": np.where(base == 2, 3, base),
    }[kind]


@pytest.mark.parametrize(
    ("kind", "message"),
    [
        ("nothing painted", "nothing is painted"),
        ("only background", "only class 1 is painted"),
        ("only objects", "only class 2 is painted"),
        ("negative values", "negative"),
        ("fractional values", "non-integer"),
        ("another shape", "shape"),
        ("class above the model's", "class"),
    ],
)
def test_bad_annotations_are_explained(tiny, kind, message):
    config = TrainConfig(steps=1, batch_size=1, patch_size=60, device="cpu")
    with pytest.raises(NapariUNetError, match=message):  # InputError or TrainingError: one line each
        drain(fit(tiny, [SPOTS], [_annotation(kind)], config))


def test_float_label_arrays_with_whole_values_train(tiny):
    config = TrainConfig(steps=1, batch_size=1, patch_size=60, device="cpu")
    annotation = np.zeros((64, 80), np.float32)
    annotation[5:15, 5:15], annotation[40:50, 40:50] = 1.0, 2.0
    drain(fit(tiny, [SPOTS], [annotation], config))
    assert tiny.history[-1]["steps"] == 1
