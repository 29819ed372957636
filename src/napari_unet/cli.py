"""Command line: ``napari-unet train | predict | info``.

Errors print one line on stderr and exit with status 2; no traceback, no half-written output.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from napari_unet._version import __version__
from napari_unet.batch import expand_images, segment_files
from napari_unet.blockwise.cluster import dask_client
from napari_unet.blockwise.config import BlockConfig
from napari_unet.blockwise.zarr_output import MERGING_OBJECTS
from napari_unet.devices import DEVICES, select_device
from napari_unet.errors import InputError, NapariUNetError
from napari_unet.images.files import read_image
from napari_unet.models.choice import NEW, model_for_training, resolve_model
from napari_unet.models.files import save_model
from napari_unet.models.unet import PRESETS, preset_for_device
from napari_unet.objects.config import OBJECT_SHAPES, ObjectConfig
from napari_unet.predict.config import PredictConfig
from napari_unet.predict.object_thresholds import describe_object_rule
from napari_unet.predict.segment import FINDING_OBJECTS
from napari_unet.train.annotations import LABELS_ARE, annotation_from_labels
from napari_unet.train.config import COMPILE_MODES, LEARNING_RATE_FINE_TUNE, LEARNING_RATE_NEW, TrainConfig
from napari_unet.train.fit import fit, prepare

EXIT_ERROR = 2
EXIT_INTERRUPTED = 130
LABEL_SUFFIXES = ("", "_labels", "_label", "_annotation", "_annotations", "_mask")


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
    annotations = []
    for path in label_paths:
        annotation, note = annotation_from_labels(read_image(path), args.labels_are)
        if note:
            print(f"napari-unet: {path.name}: {note} (--labels-are classes reads them as classes)", file=sys.stderr)
        annotations.append(annotation)
    in_channels = 1 if args.channel_axis is None else int(images[0].shape[args.channel_axis])
    source = args.init or (NEW if args.preset == "auto" else f"{NEW}: {args.preset}")
    top_class = max((int(a.max()) for a in annotations if a.size), default=0)
    device_type = select_device(args.device).type
    chosen = model_for_training(
        source, None, class_names_for(annotations, args.classes), in_channels, top_class, device_type, args.seed
    )
    model = chosen.model
    if chosen.note:
        print(f"napari-unet: {chosen.note}", file=sys.stderr)
    if args.object_shape:
        model.object_shape = args.object_shape
    config = TrainConfig(
        steps=args.steps,
        minutes=args.minutes,
        device=args.device,
        seed=args.seed,
        compile=args.compile,
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


def train_with_progress(job, config: TrainConfig) -> bool:
    """Drive a training generator with a progress bar; return True if interrupted with Ctrl-C."""
    total = config.steps if config.steps and not config.minutes else 1000
    bar = tqdm(
        total=total, desc="training", unit="step" if total == config.steps else "‰", file=sys.stderr, disable=None
    )
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


def wants_zarr(args: argparse.Namespace) -> bool:
    """Whether every image goes block by block into zarr: when asked for, or to run on a dask cluster.

    Otherwise (``--format auto``) zarr images and TIFFs too large for memory go to zarr one by one
    (:func:`napari_unet.blockwise.route.route_for_file`, said on stderr) and the rest to TIFFs.
    """
    return args.format == "zarr" or (args.format == "auto" and bool(args.scheduler or args.workers))


def object_settings(args: argparse.Namespace, model_shape: str) -> ObjectConfig:
    """The object settings ``predict`` was given: a shape (the model's by default), threshold, splitting, growing."""
    names = ("threshold", "split", "grow")
    given = {name: getattr(args, name) for name in names if getattr(args, name) is not None}
    return ObjectConfig.for_shape(args.object_shape or model_shape, **given)


def run_predict(args: argparse.Namespace) -> int:
    """``napari-unet predict``: images to TIFFs, or block by block into zarr, here or on a dask cluster."""
    select_device(args.device)
    model = resolve_model(args.model)
    images = expand_images(args.images)
    config = PredictConfig(
        tile=args.tile,
        batch_size=args.batch_size,
        device=args.device,
        test_time_augmentation=args.tta,
        objects=object_settings(args, model.object_shape),
    )
    if args.objects:
        print(f"objects: {describe_object_rule(model, config.objects)}", file=sys.stderr)
    if args.workers < 0:
        raise InputError(f"--workers must be 0 (no cluster) or more, not {args.workers}")
    every_image_blockwise = wants_zarr(args)
    blocks = BlockConfig(block=args.block, overlap=args.overlap) if args.format != "tif" else None
    out, outputs = Path(args.out), (args.objects, args.probabilities, args.overwrite)
    cluster = dask_client(args.scheduler, args.workers) if every_image_blockwise else contextlib.nullcontext()
    with cluster as client:
        if every_image_blockwise:
            where = "here" if client is None else f"on the dask cluster at {client.scheduler.address}"
            print(f"segmenting {len(images)} image(s) block by block {where}", file=sys.stderr)
        job = segment_files(
            model, images, out, *outputs, config, args.channel_axis, blocks, every_image_blockwise, client
        )
        show_progress(job, len(images))
    kind = " (zarr)" if every_image_blockwise else ""
    print(f"segmented {len(images)} image(s) into {args.out}{kind}", file=sys.stderr)
    return 0


def show_progress(job, n_images: int) -> None:
    """Run a :func:`napari_unet.batch.segment_files` job with progress bars on stderr.

    The bars show on a terminal only: logs and scripts get the one-line messages alone (each image's
    name as it starts, when there are several, and its note).
    """
    images_bar = tqdm(
        total=n_images, desc="images", unit="image", file=sys.stderr, disable=True if n_images < 2 else None
    )
    tiles_bar = tqdm(desc="tiles", unit="tile", file=sys.stderr, leave=False, disable=None)
    current = None
    with images_bar, tiles_bar:
        for record in job:
            if record.name != current and record.done < record.total:
                current = record.name
                if n_images > 1:
                    images_bar.write(f"[{record.done + 1}/{n_images}] {record.name}", file=sys.stderr)
            images_bar.update(record.done - images_bar.n)
            if record.note:
                images_bar.write(f"{record.name}: {record.note}", file=sys.stderr)
            if record.tile is not None and record.tile.message in (FINDING_OBJECTS, MERGING_OBJECTS):
                tiles_bar.set_description(f"{record.name}: {record.tile.message}")
            elif record.tile is not None:
                tiles_bar.set_description(record.name)
                tiles_bar.total = record.tile.total
                tiles_bar.update(record.tile.done - tiles_bar.n)
            else:
                tiles_bar.reset()


def run_info(args: argparse.Namespace) -> int:
    """``napari-unet info``."""
    model = resolve_model(args.model)
    print(model.describe())
    print(f"objects as segmented: {describe_object_rule(model, ObjectConfig.for_shape(model.object_shape))}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of all subcommands."""
    parser = argparse.ArgumentParser(prog="napari-unet", description="Train and use U-Nets on microscopy images.")
    parser.add_argument("--version", action="version", version=f"napari-unet {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    devices, train_defaults, predict_defaults = list(DEVICES), TrainConfig(), PredictConfig()
    shapes_help = "; ".join(f"{name}: {description}" for name, (description, _) in OBJECT_SHAPES.items())

    train = sub.add_parser("train", help="train a U-Net from images and sparse annotations")
    train.add_argument("--image", action="append", required=True, help="image file or folder (repeatable)")
    train.add_argument(
        "--labels",
        action="append",
        required=True,
        help="annotation: 0 unlabelled, 1 background, 2.. object classes (repeatable)",
    )
    train.add_argument(
        "--labels-are",
        default="auto",
        choices=list(LABELS_ARE),
        help="auto: labels with many values, each one blob, are an instance mask and are trained on as whole "
        "objects (with gaps and rings); classes: always 0 unlabelled, 1 background, 2.. classes; objects: always "
        "an instance mask",
    )
    train.add_argument("--out", required=True, help="model file to write")
    train.add_argument("--init", help="model file to fine-tune from ('starting': the shipped nuclei model)")
    train.add_argument(
        "--steps", type=int, default=None, help=f"training steps (default {train_defaults.steps} without --minutes)"
    )
    train.add_argument("--minutes", type=float, default=None, help="wall-clock budget in minutes")
    train.add_argument(
        "--preset",
        default="auto",
        choices=["auto", *PRESETS],
        help=f"architecture of a new model (auto: {preset_for_device('cpu')} on a CPU, "
        f"{preset_for_device('cuda')} on a GPU)",
    )
    train.add_argument("--classes", help="comma-separated object class names (values 2, 3, ...)")
    train.add_argument(
        "--learning-rate",
        type=float,
        default=None,
        help=f"peak learning rate (default: {LEARNING_RATE_NEW:g} new, {LEARNING_RATE_FINE_TUNE:g} with --init)",
    )
    train.add_argument("--device", default=train_defaults.device, choices=devices)
    train.add_argument(
        "--compile",
        default=train_defaults.compile,
        choices=list(COMPILE_MODES),
        help="torch.compile the training steps: tens of seconds at the start, then faster steps on a GPU "
        f"(worth it for runs of several minutes); reduce-overhead also uses CUDA graphs (default: "
        f"{train_defaults.compile})",
    )
    train.add_argument(
        "--object-shape",
        default=None,
        choices=list(OBJECT_SHAPES),
        help=f"what the objects are, saved with the model for predict ({shapes_help}; default: --init's, or round)",
    )
    train.add_argument("--seed", type=int, default=train_defaults.seed, help="seed of sampling and augmentation")
    train.add_argument("--channel-axis", type=int, default=None, help="channel axis of multichannel images")
    train.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    train.set_defaults(func=run_train)

    predict = sub.add_parser("predict", help="segment images with a trained model")
    predict.add_argument("model", help="model file ('starting': the shipped nuclei model)")
    predict.add_argument("images", nargs="+", help="image files or folders")
    predict.add_argument("--out", required=True, help="output folder")
    predict.add_argument("--objects", action="store_true", help="also write one id per object")
    predict.add_argument(
        "--object-shape",
        default=None,
        choices=list(OBJECT_SHAPES),
        help=f"{shapes_help}; default: the model's (napari-unet info shows it)",
    )
    predict.add_argument(
        "--threshold",
        type=float,
        default=None,
        help="smallest probability of its class for a pixel to be in an object (default: chosen for the model "
        "from the objects painted whole, else from how it was trained; napari-unet info shows it)",
    )
    predict.add_argument(
        "--split",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="split touching round objects at necks, or keep them as the model separates them (default: as the "
        "objects painted whole showed best, else split)",
    )
    predict.add_argument(
        "--grow",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="grow the objects above the threshold back over the pixels the model finds most probably object, "
        "or keep only the pixels above it (default: as the objects painted whole showed best, else grow)",
    )
    predict.add_argument("--probabilities", action="store_true", help="also write class probabilities")
    predict.add_argument(
        "--tile", type=int, default=predict_defaults.tile, help="largest input tile side (default: from memory)"
    )
    predict.add_argument(
        "--batch-size", type=int, default=predict_defaults.batch_size, help="tiles per batch (default: from device)"
    )
    predict.add_argument("--device", default=predict_defaults.device, choices=devices)
    predict.add_argument(
        "--tta", action="store_true", help="average the 8 rotations and flips of every tile (8x slower, smoother)"
    )
    predict.add_argument("--channel-axis", type=int, default=None, help="channel axis of multichannel images")
    predict.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    predict.add_argument(
        "--format",
        default="auto",
        choices=["auto", "tif", "zarr"],
        help="outputs: TIFF files, or zarr written block by block (auto: each zarr image and each TIFF too large to "
        "segment in memory here goes to zarr, the rest to TIFFs; all to zarr on a cluster)",
    )
    predict.add_argument("--block", type=int, default=BlockConfig().block, help="zarr: block side in pixels")
    predict.add_argument(
        "--overlap", type=int, default=BlockConfig().overlap, help="zarr: context for objects across block borders"
    )
    predict.add_argument("--workers", type=int, default=0, help="zarr: run on a local dask cluster of N processes")
    predict.add_argument("--scheduler", help="zarr: address of a dask.distributed scheduler to run on")
    predict.set_defaults(func=run_predict)

    info = sub.add_parser("info", help="describe a model file")
    info.add_argument("model", help="model file ('starting': the shipped nuclei model)")
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
