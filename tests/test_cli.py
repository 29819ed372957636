import subprocess
import sys
from dataclasses import replace

import numpy as np
import pytest
import tifffile

from napari_unet import load_model, new_model, save_model
from napari_unet.cli import main
from napari_unet.models.starting import load_starting_model


@pytest.fixture
def files(tmp_path, scribbled):
    image, annotation, _ = scribbled
    tifffile.imwrite(tmp_path / "cells.tif", image)
    tifffile.imwrite(tmp_path / "cells_labels.tif", annotation)
    return tmp_path


@pytest.fixture
def model_file(tmp_path):
    return save_model(new_model("light", ["nucleus"], depth=2, base_filters=4, seed=0), tmp_path / "tiny.pt")


def _error_line(capsys):
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith("napari-unet: error: ")
    assert "Traceback" not in err[0]
    return err[0]


def test_train_then_predict_then_info(files, capsys):
    code = main(
        [
            "train",
            "--image",
            str(files / "cells.tif"),
            "--labels",
            str(files / "cells_labels.tif"),
            "--out",
            str(files / "m.pt"),
            "--steps",
            "20",
            "--preset",
            "light",
            "--device",
            "cpu",
            "--classes",
            "nucleus",
        ]
    )
    assert code == 0
    model = load_model(files / "m.pt")
    assert model.class_names == ("background", "nucleus") and model.trained_steps == 20
    code = main(
        [
            "predict",
            str(files / "m.pt"),
            str(files / "cells.tif"),
            "--out",
            str(files / "out"),
            "--objects",
            "--probabilities",
            "--device",
            "cpu",
        ]
    )
    assert code == 0
    seg = tifffile.imread(files / "out" / "cells_segmentation.tif")
    obj = tifffile.imread(files / "out" / "cells_objects.tif")
    assert seg.shape == obj.shape == (128, 128)
    assert (files / "out" / "cells_probabilities.tif").exists()
    capsys.readouterr()
    assert main(["info", str(files / "m.pt")]) == 0
    assert "nucleus" in capsys.readouterr().out


def test_fine_tune_from_init_and_folders(files, model_file):
    images, labels = files / "imgs", files / "anns"
    images.mkdir()
    labels.mkdir()
    (files / "cells.tif").rename(images / "cells.tif")
    (files / "cells_labels.tif").rename(labels / "cells_labels.tif")
    code = main(
        [
            "train",
            "--image",
            str(images),
            "--labels",
            str(labels),
            "--init",
            str(model_file),
            "--out",
            str(files / "tuned.pt"),
            "--steps",
            "5",
            "--device",
            "cpu",
        ]
    )
    assert code == 0
    assert load_model(files / "tuned.pt").trained_steps == 5
    code = main(["predict", str(files / "tuned.pt"), str(images), "--out", str(files / "o"), "--device", "cpu"])
    assert code == 0 and (files / "o" / "cells_segmentation.tif").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["train", "--image", "{d}/missing.tif", "--labels", "{d}/cells_labels.tif", "--out", "{d}/m.pt"],
            "does not exist",
        ),
        (["train", "--image", "{d}/cells.tif", "--labels", "{d}/wrong.tif", "--out", "{d}/m.pt"], "shape"),
        (["train", "--image", "{d}/cells.tif", "--labels", "{d}/empty.tif", "--out", "{d}/m.pt"], "nothing is painted"),
        (
            ["train", "--image", "{d}/cells.tif", "--labels", "{d}/cells_labels.tif", "--out", "{d}/exists.pt"],
            "exists already",
        ),
        (
            [
                "train",
                "--image",
                "{d}/cells.tif",
                "--labels",
                "{d}/cells_labels.tif",
                "--out",
                "{d}/m.pt",
                "--init",
                "{d}/notes.txt",
            ],
            "not a napari-unet model",
        ),
        (["predict", "{d}/notes.txt", "{d}/cells.tif", "--out", "{d}/o"], "not a napari-unet model"),
        (["predict", "{d}/model.pt", "{d}/notes.txt", "--out", "{d}/o"], "unknown image type"),
        (["predict", "{d}/model.pt", "{d}/cells.tif", "--out", "{d}/o", "--device", "cuda"], "cuda"),
        (["info", "{d}/nothing.pt"], "does not exist"),
    ],
)
def test_errors_are_one_line_with_status_2(files, model_file, capsys, args, message):
    if "cuda" in args and __import__("torch").cuda.is_available():
        pytest.skip("CUDA is available here")
    tifffile.imwrite(files / "wrong.tif", np.zeros((10, 10), np.uint8))
    tifffile.imwrite(files / "empty.tif", np.zeros((128, 128), np.uint8))
    (files / "exists.pt").write_bytes(b"precious")
    (files / "notes.txt").write_text("not a model")
    model_file.rename(files / "model.pt")
    code = main([a.format(d=files) for a in args])
    assert code == 2
    assert message in _error_line(capsys)
    assert (files / "exists.pt").read_bytes() == b"precious"
    assert not (files / "m.pt").exists()
    assert not list(files.glob(".*.part"))


def test_predict_refuses_to_overwrite_outputs(files, model_file, capsys):
    out = files / "o"
    out.mkdir()
    (out / "cells_segmentation.tif").write_bytes(b"mine")
    code = main(["predict", str(model_file), str(files / "cells.tif"), "--out", str(out)])
    assert code == 2 and "exists already" in _error_line(capsys)
    assert (out / "cells_segmentation.tif").read_bytes() == b"mine"
    assert main(["predict", str(model_file), str(files / "cells.tif"), "--out", str(out), "--overwrite"]) == 0
    assert tifffile.imread(out / "cells_segmentation.tif").shape == (128, 128)


def test_console_script_runs_without_traceback(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "napari_unet.cli", "info", str(tmp_path / "x.pt")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and "Traceback" not in result.stderr


def test_predict_with_test_time_augmentation(files, model_file):
    out = files / "averaged"
    assert (
        main(["predict", str(model_file), str(files / "cells.tif"), "--out", str(out), "--tta", "--device", "cpu"]) == 0
    )
    assert (out / "cells_segmentation.tif").is_file()


@pytest.mark.parametrize("fmt", ["tif", "zarr"])
def test_packed_cells_fill_the_objects_image(tmp_path, fmt):
    from napari_unet.images.synthetic import SyntheticConfig, synthetic_nuclei

    image = synthetic_nuclei(SyntheticConfig(shape=(200, 200)), seed=1)[0]
    tifffile.imwrite(tmp_path / "cells.tif", image)
    written = {}
    for shape in ("round", "packed"):
        out = tmp_path / shape
        args = ["predict", "starting", str(tmp_path / "cells.tif"), "--out", str(out), "--objects"]
        assert main([*args, "--object-shape", shape, "--format", fmt, "--device", "cpu"]) == 0
        path = out / f"cells_objects.{fmt}"
        if fmt == "tif":
            written[shape] = tifffile.imread(path)
        else:
            import zarr

            written[shape] = zarr.open_array(str(path))[:]
    assert (written["packed"] > 0).all() and not (written["round"] > 0).all()


def test_an_unknown_object_shape_is_one_line(files, model_file, capsys):
    args = ["predict", str(model_file), str(files / "cells.tif"), "--out", str(files / "o"), "--object-shape", "cube"]
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    assert exit_info.value.code == 2
    assert "invalid choice: 'cube'" in capsys.readouterr().err


def test_the_model_remembers_its_object_shape(files, capsys):
    model = files / "packed.pt"
    train = ["train", "--image", str(files / "cells.tif"), "--labels", str(files / "cells_labels.tif")]
    assert main([*train, "--out", str(model), "--steps", "2", "--device", "cpu", "--object-shape", "packed"]) == 0
    assert load_model(model).object_shape == "packed"
    assert main(["info", str(model)]) == 0
    assert "objects: packed" in capsys.readouterr().out
    starting = load_starting_model()  # a model that finds cells in 2 steps' time
    starting.object_shape = "packed"
    out = files / "remembered"
    predict = ["predict", str(save_model(starting, files / "s.pt")), str(files / "cells.tif"), "--out", str(out)]
    assert main([*predict, "--objects", "--device", "cpu"]) == 0
    assert (tifffile.imread(out / "cells_objects.tif") > 0).all()  # packed: every pixel in a cell
    fine_tuned = files / "fine.pt"
    assert main([*train, "--out", str(fine_tuned), "--init", str(model), "--steps", "1", "--device", "cpu"]) == 0
    assert load_model(fine_tuned).object_shape == "packed"  # kept from --init


def test_the_object_threshold_and_splitting_can_be_set_and_are_said(files, capsys):
    starting = save_model(load_starting_model(), files / "s.pt")
    assert main(["info", str(starting)]) == 0
    said = capsys.readouterr().out
    rule = "threshold 0.7, touching objects split at necks, grown back over the foreground"
    assert f"objects as segmented: {rule}: the model was last trained" in said
    predict = ["predict", str(starting), str(files / "cells.tif"), "--objects", "--device", "cpu"]
    assert main([*predict, "--out", str(files / "auto")]) == 0
    assert f"objects: {rule}" in capsys.readouterr().err
    assert main([*predict, "--out", str(files / "set"), "--threshold", "0.9", "--no-split", "--no-grow"]) == 0
    assert "objects: threshold 0.9, touching objects kept as the model separates them: threshold as set" in (
        capsys.readouterr().err
    )
    auto = tifffile.imread(files / "auto" / "cells_objects.tif")
    chosen = tifffile.imread(files / "set" / "cells_objects.tif")
    assert (chosen > 0).sum() < (auto > 0).sum()  # surer pixels only: smaller objects
    assert main([*predict, "--out", str(files / "bad"), "--threshold", "1.5"]) == 2
    assert "the object threshold is a probability between 0 and 1, not 1.5" in _error_line(capsys)
    assert not (files / "bad").exists()


def test_train_passes_compile_on_and_refuses_an_unknown_mode(files, capsys, monkeypatch):
    import napari_unet.cli as cli

    configs = []
    real_fit = cli.fit

    def fit(model, data, config):
        configs.append(config)
        return real_fit(model, data, config=replace(config, compile="off"))  # compiling takes half a minute

    monkeypatch.setattr(cli, "fit", fit)
    train = ["train", "--image", str(files / "cells.tif"), "--labels", str(files / "cells_labels.tif")]
    train += ["--steps", "1", "--device", "cpu"]
    assert main([*train, "--out", str(files / "m.pt"), "--compile", "reduce-overhead"]) == 0
    assert main([*train, "--out", str(files / "n.pt")]) == 0
    assert [c.compile for c in configs] == ["reduce-overhead", "off"]
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        main([*train, "--out", str(files / "o.pt"), "--compile", "fast"])
    assert exit_info.value.code == 2
    assert "argument --compile: invalid choice: 'fast'" in capsys.readouterr().err
    assert not (files / "o.pt").exists()


def test_an_image_too_large_for_memory_is_one_line_that_names_the_zarr_route(files, model_file, capsys, monkeypatch):
    from napari_unet.predict import host_memory

    monkeypatch.setattr(host_memory, "available_bytes", lambda: 10**6)
    out = files / "o"
    args = ["predict", str(model_file), str(files / "cells.tif"), "--out", str(out), "--device", "cpu"]
    code = main([*args, "--format", "tif"])  # TIFF outputs asked for: they would need it in memory
    assert code == 2 and "--format zarr" in _error_line(capsys)
    assert not list(out.glob("*.tif"))


def test_a_tiff_too_large_for_memory_goes_block_by_block_into_zarr_by_default(files, model_file, capsys, monkeypatch):
    import zarr

    from napari_unet.predict import host_memory

    # 0.2 GB: less than the whole 128 x 128 image with its object mosaics needs, more than its one block
    monkeypatch.setattr(host_memory, "available_bytes", lambda: 2 * 10**8)
    out = files / "o"
    args = ["predict", str(model_file), str(files / "cells.tif"), "--out", str(out), "--objects", "--device", "cpu"]
    assert main(args) == 0
    assert "cells.tif: segmenting this 128 x 128 image in memory needs about" in capsys.readouterr().err
    assert zarr.open_array(str(out / "cells_segmentation.zarr"), mode="r").shape == (128, 128)
    assert not list(out.glob("*.tif"))
    monkeypatch.setattr(host_memory, "available_bytes", lambda: None)  # fits (not known): TIFFs as before
    assert main([*args[:3], "--out", str(files / "p"), *args[5:]]) == 0
    assert (files / "p" / "cells_segmentation.tif").exists()


def test_an_instance_mask_given_as_labels_trains_whole_objects_of_one_class(files, scribbled, capsys):
    _, _, objects = scribbled
    tifffile.imwrite(files / "cells_objects.tif", objects.astype(np.uint16))
    common = ["--image", str(files / "cells.tif"), "--labels", str(files / "cells_objects.tif")]
    common += ["--steps", "2", "--preset", "light", "--device", "cpu"]
    assert main(["train", *common, "--out", str(files / "objects.pt")]) == 0
    err = capsys.readouterr().err
    assert "cells_objects.tif: the labels hold" in err and "instance mask" in err and "--labels-are classes" in err
    assert load_model(files / "objects.pt").class_names == ("background", "object")  # not one class per nucleus
    assert main(["train", *common, "--out", str(files / "classes.pt"), "--labels-are", "classes"]) == 0
    assert load_model(files / "classes.pt").n_classes == int(objects.max())  # what was asked for
