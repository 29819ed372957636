"""Command line: ``napari-unet train | predict | info``.

Errors print one line on stderr and exit with status 2; no traceback, no half-written output.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from . import __version__
from .bundle import Model, new_model
from .device import select_device
from .errors import InputError, NapariUNetError
from .io import IMAGE_SUFFIXES, load_model, read_image, save_model, write_labels, write_probabilities
from .model import PRESETS
from .predict import PredictConfig, iter_segment
from .train import TrainConfig, fit, prepare

EXIT_ERROR = 2
EXIT_INTERRUPTED = 130
LABEL_SUFFIXES = ("", "_labels", "_label", "_annotation", "_annotations", "_mask")


def expand_images(paths: Sequence[str]) -> list[Path]:
    """Files as given, folders replaced by their image files (sorted by name)."""
    found: list[Path] = []
    for name in paths:
        path = Path(name)
        if path.is_dir():
            files = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
            if not files:
                raise InputError(f"the folder {path} holds no images ({', '.join(IMAGE_SUFFIXES)})")
            found.extend(files)
        elif path.is_file():
            found.append(path)
        else:
            raise InputError(f"{path} does not exist")
    return found


def pair_annotations(images: list[Path], labels: list[Path], label_args: Sequence[str]) -> list[Path]:
    """Match annotations to images: in order for files, by name (``<stem>[_labels].tif``) for folders."""
    if not any(Path(a).is_dir() for a in label_args):
        if len(labels) != len(images):
            raise InputError(f"{len(images)} images but {len(labels)} annotations; give one --labels per --image")
        return labels
    by_stem = {p.stem: p for p in labels}
    paired = []
    for image in images:
        match = next((by_stem[image.stem + s] for s in LABEL_SUFFIXES if image.stem + s in by_stem), None)
        if match is None:
            raise InputError(f"no annotation for {image.name} (looked for {image.stem}[_labels].tif and similar)")
        paired.append(match)
    return paired


def class_names_for(annotations: list[np.ndarray], names: str | None) -> list[str]:
    """Object class names: given with --classes, or one per object value found in the annotations."""
    if names:
        return [n.strip() for n in names.split(",") if n.strip()]
    top = max((int(a.max()) for a in annotations if a.size), default=2)
    if top <= 2:
        return ["object"]
    return [f"class{v}" for v in range(2, top + 1)]


def run_train(args: argparse.Namespace) -> int:
    """``napari-unet train``."""
    select_device(args.device)
    out = Path(args.out)
    if out.exists() and not args.overwrite:
        raise InputError(f"{out} exists already; choose another --out or pass --overwrite")
    if not out.parent.is_dir():
        raise InputError(f"the folder of --out ({out.parent}) does not exist")
    image_paths = expand_images(args.image)
    label_paths = pair_annotations(image_paths, expand_images(args.labels), args.labels)
    images = [read_image(p) for p in image_paths]
    annotations = [read_image(p) for p in label_paths]
    if args.init:
        model = load_model(args.init)
    else:
        in_channels = 1 if args.channel_axis is None else int(images[0].shape[args.channel_axis])
        preset_name = args.preset if args.preset != "auto" else default_preset(args.device)
        model = new_model(preset_name, class_names_for(annotations, args.classes), in_channels, seed=args.seed)
    config = TrainConfig(
        steps=args.steps,
        minutes=args.minutes,
        device=args.device,
        seed=args.seed,
        **({"learning_rate": args.learning_rate} if args.learning_rate else {}),
    )
    data = prepare(model, images, annotations, config, channel_axis=args.channel_axis)
    job = fit(model, data, config=config)
    interrupted = train_with_progress(job, config)
    save_model(model, out, overwrite=True)
    steps = model.history[-1]["steps"] if model.history else 0
    if interrupted:
        print(f"interrupted after {steps} steps; the model trained so far is in {out}", file=sys.stderr)
        return EXIT_INTERRUPTED
    print(f"trained {steps} steps; model saved to {out}", file=sys.stderr)
    return 0


def default_preset(device: str) -> str:
    """The "standard" preset on a GPU, "light" on the CPU."""
    return "light" if select_device(device).type == "cpu" else "standard"


def train_with_progress(job, config: TrainConfig) -> bool:
    """Drive a training generator with a progress bar; return True if interrupted with Ctrl-C."""
    total = config.steps if config.steps and not config.minutes else 1000
    bar = tqdm(total=total, desc="training", unit="step" if total == config.steps else "‰", file=sys.stderr)
    try:
        for record in job:
            done = record.step if total == config.steps else int(record.fraction * 1000)
            bar.update(done - bar.n)
            postfix = {"loss": f"{record.loss:.4f}"}
            if record.validation is not None:
                postfix["val_iou"] = f"{record.validation.iou:.3f}"
            bar.set_postfix(postfix, refresh=False)
            if record.done and record.message != "finished":
                bar.write(record.message, file=sys.stderr)
    except KeyboardInterrupt:
        job.close()
        return True
    finally:
        bar.close()
    return False


def output_paths(images: list[Path], folder: Path, objects: bool, probabilities: bool) -> list[dict[str, Path]]:
    """Output files of every input image; stems must be unique."""
    stems = [p.stem for p in images]
    duplicates = {s for s in stems if stems.count(s) > 1}
    if duplicates:
        raise InputError(f"several inputs are named {sorted(duplicates)[0]}; their outputs would collide")
    kinds = ["segmentation"] + (["objects"] if objects else []) + (["probabilities"] if probabilities else [])
    return [{k: folder / f"{p.stem}_{k}.tif" for k in kinds} for p in images]


def run_predict(args: argparse.Namespace) -> int:
    """``napari-unet predict``."""
    select_device(args.device)
    model = load_model(args.model)
    images = expand_images(args.images)
    folder = Path(args.out)
    if folder.exists() and not folder.is_dir():
        raise InputError(f"--out {folder} is a file; give a folder")
    outputs = output_paths(images, folder, args.objects, args.probabilities)
    if not args.overwrite:
        existing = [p for o in outputs for p in o.values() if p.exists()]
        if existing:
            raise InputError(f"{existing[0]} exists already; pass --overwrite or choose another --out")
    folder.mkdir(parents=True, exist_ok=True)
    config = PredictConfig(tile=args.tile, batch_size=args.batch_size, device=args.device)
    for path, out in tqdm(
        list(zip(images, outputs, strict=True)), desc="images", unit="image", file=sys.stderr, disable=len(images) < 2
    ):
        segment_file(model, path, out, config, args)
    print(f"segmented {len(images)} image(s) into {folder}", file=sys.stderr)
    return 0


def segment_file(
    model: Model, path: Path, out: dict[str, Path], config: PredictConfig, args: argparse.Namespace
) -> None:
    """Segment one image file and write its outputs."""
    image = read_image(path)
    job = iter_segment(model, image, config, objects=args.objects, channel_axis=args.channel_axis)
    with tqdm(desc=path.name, unit="tile", file=sys.stderr, leave=False) as bar:
        while True:
            try:
                record = next(job)
            except StopIteration as stop:
                result = stop.value
                break
            bar.total = record.total
            bar.update(record.done - bar.n)
    write_labels(out["segmentation"], result.classes, overwrite=args.overwrite)
    if args.objects:
        write_labels(out["objects"], result.objects, overwrite=args.overwrite)
    if args.probabilities:
        write_probabilities(out["probabilities"], result.probabilities, overwrite=args.overwrite)


def run_info(args: argparse.Namespace) -> int:
    """``napari-unet info``."""
    print(load_model(args.model).describe())
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of all subcommands."""
    parser = argparse.ArgumentParser(prog="napari-unet", description="Train and use U-Nets on microscopy images.")
    parser.add_argument("--version", action="version", version=f"napari-unet {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    devices = ["auto", "cpu", "cuda", "mps"]

    train = sub.add_parser("train", help="train a U-Net from images and sparse annotations")
    train.add_argument("--image", action="append", required=True, help="image file or folder (repeatable)")
    train.add_argument(
        "--labels",
        action="append",
        required=True,
        help="annotation: 0 unlabelled, 1 background, 2.. object classes (repeatable)",
    )
    train.add_argument("--out", required=True, help="model file to write")
    train.add_argument("--init", help="model file to fine-tune from")
    train.add_argument("--steps", type=int, default=None, help="training steps (default 1000 without --minutes)")
    train.add_argument("--minutes", type=float, default=None, help="wall-clock budget in minutes")
    train.add_argument("--preset", default="auto", choices=["auto", *PRESETS], help="architecture of a new model")
    train.add_argument("--classes", help="comma-separated object class names (values 2, 3, ...)")
    train.add_argument("--learning-rate", type=float, default=None)
    train.add_argument("--device", default="auto", choices=devices)
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--channel-axis", type=int, default=None, help="channel axis of multichannel images")
    train.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    train.set_defaults(func=run_train)

    predict = sub.add_parser("predict", help="segment images with a trained model")
    predict.add_argument("model", help="model file")
    predict.add_argument("images", nargs="+", help="image files or folders")
    predict.add_argument("--out", required=True, help="output folder")
    predict.add_argument("--objects", action="store_true", help="also write one id per object")
    predict.add_argument("--probabilities", action="store_true", help="also write class probabilities")
    predict.add_argument("--tile", type=int, default=0, help="largest input tile side (default: from memory)")
    predict.add_argument("--batch-size", type=int, default=0, help="tiles per batch (default: from device)")
    predict.add_argument("--device", default="auto", choices=devices)
    predict.add_argument("--channel-axis", type=int, default=None, help="channel axis of multichannel images")
    predict.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    predict.set_defaults(func=run_predict)

    info = sub.add_parser("info", help="describe a model file")
    info.add_argument("model", help="model file")
    info.set_defaults(func=run_info)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``napari-unet`` command."""
    args = build_parser().parse_args(argv)
    if getattr(args, "command", None) == "train" and args.steps is None and args.minutes is None:
        args.steps = TrainConfig().steps
    try:
        return args.func(args)
    except NapariUNetError as error:
        print(f"napari-unet: error: {error}", file=sys.stderr)
    except (MemoryError, torch.OutOfMemoryError):
        print("napari-unet: error: out of memory; try a smaller --tile or --batch-size", file=sys.stderr)
    except OSError as error:
        print(f"napari-unet: error: {error.strerror or error}: {error.filename or ''}".rstrip(": "), file=sys.stderr)
    except KeyboardInterrupt:
        print("napari-unet: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    return EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())
