"""End-to-end check of the command line on DSB2018 with the scribble protocol (BENCHMARKS.md).

Writes the simulated annotation, runs ``napari-unet train`` and ``napari-unet predict --objects`` as a
user would, scores the objects against the hand-made mask, and compares with the anchors measured in the
same run (Otsu + distance watershed; the random forest lives in quality.py).

    python benchmarks/scribble_cli.py [--device cpu] [--seeds 0 1 2] [--init starting] [--tta] [--extra-train-args ...]

Results go to benchmarks/results/scribble_cli.json and a table on stdout.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import tifffile
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import datasets
from anchors import otsu_watershed
from napari_unet.devices import describe, select_device
from napari_unet.objects.metrics import foreground_iou, object_scores
from protocols import scribbles

ROOT = Path(__file__).resolve().parents[1]
DATA = datasets.DATA / "dsb2018"
RESULTS = ROOT / "benchmarks" / "results"


def run(command: list[str]) -> float:
    """Run a command, fail loudly, return its wall-clock seconds."""
    start = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{result.stderr[-2000:]}")
    return time.perf_counter() - start


def one_seed(seed: int, device: str, extra: list[str], work: Path, predict_extra: list[str]) -> dict:
    """Annotate with the scribble protocol, train and predict through the CLI, score."""
    image = tifffile.imread(DATA / "img2d.tif")
    truth = tifffile.imread(DATA / "mask2d.tif")
    annotation = scribbles(truth, n_objects=10, n_background=10, seed=seed)
    tifffile.imwrite(work / "img2d.tif", image)
    tifffile.imwrite(work / "img2d_labels.tif", annotation)
    cli = [sys.executable, "-m", "napari_unet.cli"]
    model = work / f"model{seed}.pt"
    train_s = run(
        [
            *cli,
            "train",
            "--image",
            str(work / "img2d.tif"),
            "--labels",
            str(work / "img2d_labels.tif"),
            "--out",
            str(model),
            "--device",
            device,
            "--seed",
            str(seed),
            *extra,
        ]
    )
    out = work / f"out{seed}"
    predict_s = run(
        [
            *cli,
            "predict",
            str(model),
            str(work / "img2d.tif"),
            "--out",
            str(out),
            "--objects",
            "--device",
            device,
            *predict_extra,
        ]
    )
    objects = tifffile.imread(out / "img2d_objects.tif")
    classes = tifffile.imread(out / "img2d_segmentation.tif")
    scores = object_scores(truth, objects)
    return {
        "seed": seed,
        "labelled_fraction": round(float((annotation > 0).mean()), 5),
        "f1": round(scores.f1, 4),
        "precision": round(scores.precision, 4),
        "recall": round(scores.recall, 4),
        "foreground_iou": round(foreground_iou(truth, classes), 4),
        "train_command_s": round(train_s, 1),
        "predict_command_s": round(predict_s, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--out", default="scribble_cli", help="name of the result file")
    parser.add_argument("--init", help="train from this model ('starting': the shipped one) rather than a new one")
    parser.add_argument("--tta", action="store_true", help="predict with test-time augmentation")
    parser.add_argument("--extra-train-args", nargs=argparse.REMAINDER, default=[])
    args = parser.parse_args()
    train_args = [*(["--init", args.init] if args.init else []), *args.extra_train_args]
    predict_args = ["--tta"] if args.tta else []
    if not DATA.is_dir():
        raise SystemExit(f"benchmark data not found at {DATA}")
    truth = tifffile.imread(DATA / "mask2d.tif")
    image = tifffile.imread(DATA / "img2d.tif")
    anchor = otsu_watershed(image)
    anchor_scores = {
        "f1": round(object_scores(truth, anchor).f1, 4),
        "foreground_iou": round(foreground_iou(truth, anchor), 4),
    }
    with tempfile.TemporaryDirectory() as tmp:
        rows = [one_seed(s, args.device, train_args, Path(tmp), predict_args) for s in args.seeds]
    summary = {
        "benchmark": "DSB2018 scribbles through the command line",
        "device": describe(select_device(args.device)),
        "cpu_threads": torch.get_num_threads(),
        "machine": platform.processor() or platform.machine(),
        "train_args": train_args,
        "predict_args": predict_args,
        "runs": rows,
        "mean_f1": round(float(np.mean([r["f1"] for r in rows])), 4),
        "min_f1": round(float(np.min([r["f1"] for r in rows])), 4),
        "mean_foreground_iou": round(float(np.mean([r["foreground_iou"] for r in rows])), 4),
        "anchor_otsu_watershed": anchor_scores,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{args.out}.json").write_text(json.dumps(summary, indent=2) + "\n")
    print("| seed | labelled | F1@0.5 | fg IoU | train s | predict s |")
    print("| --- | --- | --- | --- | --- | --- |")
    for r in rows:
        print(
            f"| {r['seed']} | {r['labelled_fraction']:.4f} | {r['f1']:.3f} | {r['foreground_iou']:.3f} | "
            f"{r['train_command_s']} | {r['predict_command_s']} |"
        )
    print(f"| mean | | {summary['mean_f1']:.3f} | {summary['mean_foreground_iou']:.3f} | | |")
    print(f"| Otsu + watershed (same run) | | {anchor_scores['f1']:.3f} | {anchor_scores['foreground_iou']:.3f} | | |")


if __name__ == "__main__":
    main()
