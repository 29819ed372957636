"""Segmentation quality against the anchors, on the protocols of BENCHMARKS.md, with ablations.

Every case trains a U-Net on simulated annotations and, on the same annotations in the same run, the
anchors: a random forest on multiscale features (ilastik / napari-APOC) and Otsu + distance watershed.

    python benchmarks/quality.py [--device cpu] [--cases dsb_scribbles isbi_full ...] [--seed 0]

Cases: dsb_scribbles, dsb_full_objects, isbi_scribbles, isbi_full, synthetic_touching (a few whole
objects painted), synthetic_touching_full (fully annotated, as in the paper: where border weights
matter), rods_scribbles and rods_whole_objects (densely packed, touching rod-shaped bacteria in
synthetic phase contrast: scribbles on one frame, and the same plus 8 rods painted whole; scored on 3
frames never painted), and the ablations (ablation_no_elastic, ablation_no_border, ablation_same_padding on the
few-full-objects protocol).
Writes benchmarks/results/quality.json and quality.md.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from scipy import ndimage
from skimage.metrics import adapted_rand_error

sys.path.insert(0, str(Path(__file__).resolve().parent))
import datasets
import napari_unet as nu
from anchors import RandomForestAnchor, distance_watershed, otsu_watershed
from napari_unet.devices import describe, select_device
from napari_unet.images.synthetic_rods import RodsConfig, synthetic_rods
from napari_unet.objects.classes import probabilities_to_classes
from napari_unet.objects.instances import classes_to_objects
from napari_unet.objects.metrics import foreground_iou, object_scores
from napari_unet.predict.object_thresholds import object_config_for
from napari_unet.train.annotations import instances_to_annotation
from protocols import full_objects, isbi_scribbles, scribbles

RESULTS = Path(__file__).resolve().parent / "results"
MAX_FOREST_PIXELS = 300_000


def train_unet(images, annotations, args, steps: int, preset: str | None = None, **overrides) -> tuple[nu.Model, dict]:
    """Train a new model; ``overrides`` go to TrainConfig (augment=..., border_w0=...) or the model (padding)."""
    padding = overrides.pop("padding", "valid")
    n_classes = max(int(a.max()) for a in annotations)
    names = ["object"] + [f"class{v}" for v in range(3, n_classes + 1)]
    if getattr(args, "init", None) == "starting" and n_classes == 2 and padding == "valid":
        from napari_unet.models.starting import load_starting_model

        model = load_starting_model()  # fine-tuned at the gentle default rate for trained models
    else:
        model = nu.new_model(preset or args.preset, names, seed=args.seed, padding=padding)
    base = nu.TrainConfig(steps=steps, seed=args.seed, device=args.device)
    if args.patch_size:
        base = replace(base, patch_size=args.patch_size)
    config = replace(base, **overrides)
    start = time.perf_counter()
    nu.drain(nu.fit(model, images, annotations, config))
    info = {
        "train_seconds": round(time.perf_counter() - start, 1),
        "steps": steps,
        "preset": preset or args.preset,
        "init": getattr(args, "init", None) or "new",
        "labelled_fraction": round(float(np.mean([(a > 0).mean() for a in annotations])), 5),
    }
    return model, info


def predict_config(args, **settings) -> nu.PredictConfig:
    """How every U-Net of the run predicts: on ``--device``, with test-time augmentation under ``--tta``."""
    return nu.PredictConfig(device=args.device, test_time_augmentation=getattr(args, "tta", False), **settings)


def object_row(name: str, truth: np.ndarray, objects: np.ndarray, classes: np.ndarray | None = None, **extra) -> dict:
    """F1@0.5 and foreground IoU of an instance prediction."""
    scores = object_scores(truth, objects)
    return {
        "method": name,
        "f1": round(scores.f1, 4),
        "foreground_iou": round(foreground_iou(truth, objects if classes is None else classes), 4),
        **extra,
    }


def forest_rows(images, annotations, tests) -> list[dict]:
    """The random-forest anchor with connected components and with a distance watershed."""
    forest = RandomForestAnchor(images, annotations)
    rows = {"random forest + components": [], "random forest + watershed": []}
    for image, truth in tests:
        mask = forest.classes(image) > 0
        rows["random forest + components"].append(object_row("", truth, ndimage.label(mask)[0]))
        rows["random forest + watershed"].append(object_row("", truth, distance_watershed(mask)))
    return [_mean_row(name, r, fit_seconds=round(forest.fit_seconds, 1)) for name, r in rows.items()]


def _mean_row(name: str, rows: list[dict], **extra) -> dict:
    return {
        "method": name,
        "f1": round(float(np.mean([r["f1"] for r in rows])), 4),
        "foreground_iou": round(float(np.mean([r["foreground_iou"] for r in rows])), 4),
        **extra,
    }


def unet_rows(model: nu.Model, info: dict, tests, name: str = "U-Net", args=None) -> list[dict]:
    """Objects of the U-Net on every test image, averaged."""
    rows = []
    start = time.perf_counter()
    for image, truth in tests:
        result = nu.segment(model, image, predict_config(args))
        rows.append(object_row(name, truth, result.objects, result.classes))
    return [_mean_row(name, rows, predict_seconds=round(time.perf_counter() - start, 1), **info)]


def case_dsb(protocol: Callable, args) -> list[dict]:
    image, truth = datasets.dsb2018()
    annotation = protocol(truth, n_objects=10, n_background=10, seed=args.seed)
    model, info = train_unet([image], [annotation], args, args.steps)
    rows = unet_rows(model, info, [(image, truth)], args=args)
    rows += forest_rows([image], [annotation], [(image, truth)])
    rows.append(object_row("Otsu + watershed", truth, otsu_watershed(image)))
    return rows


def isbi_scores(name: str, segment: Callable[[int], np.ndarray], interiors, **extra) -> dict:
    """Adapted Rand error and pixel error over the test slices.

    ``segment`` gives, for the index of a test slice, either a boolean interior mask (scored on its
    4-connected components) or a label image of cells (scored as is, without a pixel error).
    The membranes of the truth are ignored by the Rand error (skimage's ``ignore_labels=(0,)``), as in
    the challenge: cells may cover them.
    """
    rand, pixel = [], []
    for index, interior in enumerate(interiors):
        predicted = segment(index)
        truth_cc, _ = ndimage.label(interior)
        test_cc = ndimage.label(predicted)[0] if predicted.dtype == bool else predicted
        rand.append(adapted_rand_error(truth_cc, test_cc)[0])
        pixel.append(float((predicted != interior).mean()) if predicted.dtype == bool else np.nan)
    return {
        "method": name,
        "adapted_rand_error": round(float(np.mean(rand)), 4),
        "pixel_error": round(float(np.mean(pixel)), 4) if np.isfinite(np.mean(pixel)) else None,
        **extra,
    }


def case_isbi(full: bool, args) -> list[dict]:
    """ISBI 2012: the U-Net's interior components and its objects ("packed" cells and the default), and
    the random forest given the same annotations and the same post-processing."""
    train_slices = range(0, 20) if full else range(0, 3)
    images, interiors = datasets.isbi2012(train_slices)
    test_images, test_interiors = datasets.isbi2012(range(20, 30))
    if full:
        annotations = [np.where(i, 2, 1).astype(np.uint8) for i in interiors]
    else:
        annotations = [isbi_scribbles(i, seed=args.seed + k) for k, i in enumerate(interiors)]
    model, info = train_unet(list(images), annotations, args, args.steps_full if full else args.steps)
    probabilities = [nu.drain(nu.predict_probabilities(model, image, predict_config(args))) for image in test_images]
    threshold = object_config_for(model, nu.ObjectConfig()).threshold  # what Segment uses for this model
    rows = [
        isbi_scores("U-Net, interior > 0.5", lambda k: probabilities[k][1] > 0.5, test_interiors, **info),
        *packed_rows("U-Net", probabilities, threshold, test_interiors),
        isbi_scores(
            f"U-Net, round objects (the default shape, threshold {threshold})",
            lambda k: objects_of(probabilities[k], nu.ObjectConfig.for_shape("round", threshold=threshold)),
            test_interiors,
        ),
    ]
    rng = np.random.default_rng(args.seed)
    forest_annotations = []
    for annotation in annotations:  # the forest gets at most MAX_FOREST_PIXELS painted pixels in all
        keep = rng.random(annotation.shape) < MAX_FOREST_PIXELS / max((np.stack(annotations) > 0).sum(), 1)
        forest_annotations.append(np.where(keep, annotation, 0))
    forest = RandomForestAnchor(list(images), forest_annotations)
    votes = [forest.probabilities(image) for image in test_images]
    rows.append(
        isbi_scores(
            "random forest, interior > 0.5",
            lambda k: votes[k][1] > 0.5,
            test_interiors,
            fit_seconds=round(forest.fit_seconds, 1),
        )
    )
    rows += packed_rows("random forest", votes, threshold, test_interiors)
    return rows


def objects_of(probabilities: np.ndarray, config: nu.ObjectConfig) -> np.ndarray:
    """The objects Segment makes of (K, H, W) probabilities with ``config``."""
    return classes_to_objects(probabilities_to_classes(probabilities), config, probabilities)


def packed_rows(name: str, probabilities: list[np.ndarray], threshold: float, interiors) -> list[dict]:
    """Packed cells grown from ``probabilities`` at the threshold Segment picks for the U-Net, and at the
    best threshold on the test slices themselves (an oracle choice, for both methods alike)."""
    rows = {}
    for value in sorted({threshold, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95}):
        config = nu.ObjectConfig.for_shape("packed", threshold=value)
        rows[value] = isbi_scores("", lambda k, c=config: objects_of(probabilities[k], c), interiors)
    best = min(rows, key=lambda value: rows[value]["adapted_rand_error"])
    return [
        {**rows[threshold], "method": f"{name}, packed cells (--object-shape packed, threshold {threshold})"},
        {**rows[best], "method": f"{name}, packed cells, best threshold on the test slices ({best})"},
    ]


def case_synthetic(args, **overrides) -> list[dict]:
    """Few full objects on two synthetic images of touching nuclei; tested on three others."""
    train = datasets.synthetic_touching(2, seed=500)
    tests = datasets.synthetic_touching(3, seed=600)
    annotations = [
        full_objects(truth, n_objects=15, n_background=10, seed=args.seed + k) for k, (_, truth) in enumerate(train)
    ]
    images = [image for image, _ in train]
    rows = []
    for label, extra in (("U-Net", {}), ("U-Net without border weights", {"border_w0": 0.0})):
        model, info = train_unet(images, annotations, args, args.steps, **{**overrides, **extra})
        rows += unet_rows(model, info, tests, label, args)
    rows += forest_rows(images, annotations, tests)
    rows.append(_mean_row("Otsu + watershed", [object_row("", t, otsu_watershed(i)) for i, t in tests]))
    return rows


def case_rods(args, whole: int) -> list[dict]:
    """Touching rods: scribbles on one frame plus ``whole`` rods painted whole; three frames never painted.

    No Otsu anchor: the cells are dark in phase contrast, on a bright halo. Nothing is set by hand: the
    objects follow the model's defaults (the rule chosen from the rods painted
    whole, else the fallback after scribbles).
    """
    config = RodsConfig(shape=(384, 384))
    (image, truth), *tests = [synthetic_rods(config, seed=900 + k) for k in range(4)]
    annotation = scribbles(truth, seed=args.seed)
    if whole:
        painted = full_objects(truth, n_objects=whole, n_background=0, seed=args.seed)
        annotation = np.where(painted > 0, painted, annotation)
    model, info = train_unet([image], [annotation], args, args.steps)
    rows = unet_rows(model, info, tests, args=args)
    return rows + forest_rows([image], [annotation], tests)


def case_synthetic_full(args) -> list[dict]:
    """The paper's setting: training images fully annotated, touching objects separated by background gaps.

    Besides the default objects, reports the network's own separation (the argmax, no watershed split):
    what the border weights are for. Three training seeds (from ``--seed``); rows are their means.
    """
    train = datasets.synthetic_touching(2, seed=500)
    tests = datasets.synthetic_touching(3, seed=600)
    annotations = []
    for _, truth in train:
        painted = instances_to_annotation(truth, ring=0)  # objects 2, the gaps where they touch 1
        annotations.append(np.where(painted > 0, painted, 1).astype(np.uint8))
    images = [image for image, _ in train]
    own = predict_config(args, objects=nu.ObjectConfig(threshold=0.5, split=False))
    rows = []
    for label, extra in (("U-Net", {}), ("U-Net without border weights", {"border_w0": 0.0})):
        runs = []
        for seed in range(args.seed, args.seed + 3):
            model, info = train_unet(images, annotations, replace_seed(args, seed), args.steps, **extra)
            separation = np.mean([object_scores(t, nu.segment(model, i, own).objects).f1 for i, t in tests])
            runs.append({**unet_rows(model, info, tests, label, args)[0], "f1_network_separation": separation})
        rows.append(
            {
                "method": label,
                "f1": round(float(np.mean([r["f1"] for r in runs])), 4),
                "f1_network_separation": round(float(np.mean([r["f1_network_separation"] for r in runs])), 4),
                "foreground_iou": round(float(np.mean([r["foreground_iou"] for r in runs])), 4),
                "f1_per_seed": [r["f1"] for r in runs],
                "f1_network_separation_per_seed": [round(float(r["f1_network_separation"]), 4) for r in runs],
                "train_seconds": round(float(np.mean([r["train_seconds"] for r in runs])), 1),
                "steps": args.steps,
                "preset": args.preset,
            }
        )
    rows += forest_rows(images, annotations, tests)
    return rows


def replace_seed(args, seed: int):
    """A copy of the command-line arguments with another seed."""
    return argparse.Namespace(**{**vars(args), "seed": seed})


def case_ablation(args, label: str, **overrides) -> list[dict]:
    """The few-full-objects protocol on DSB2018 with one of the paper's ideas switched off."""
    image, truth = datasets.dsb2018()
    annotation = full_objects(truth, n_objects=10, n_background=10, seed=args.seed)
    model, info = train_unet([image], [annotation], args, args.steps, **overrides)
    return unet_rows(model, info, [(image, truth)], label, args)


def learning_curve(model: nu.Model, image, truth, annotation, args, steps: int, checkpoints) -> list[dict]:
    """F1@0.5 on the image at the given steps of one run, against training seconds (evaluation excluded)."""
    config = nu.TrainConfig(steps=steps, seed=args.seed, device=args.device, validate_every=10**9)
    predict = predict_config(args)
    points = [
        {
            "step": 0,
            "train_seconds": 0.0,
            "f1": round(object_scores(truth, nu.segment(model, image, predict).objects).f1, 4),
        }
    ]
    evaluating = 0.0
    start = time.perf_counter()
    for record in nu.fit(model, [image], [annotation], config):
        if record.step in checkpoints and not record.done:
            trained = time.perf_counter() - start - evaluating
            f1 = object_scores(truth, nu.segment(model, image, predict).objects).f1
            evaluating = time.perf_counter() - start - trained
            points.append({"step": record.step, "train_seconds": round(trained, 1), "f1": round(f1, 4)})
    return points


def case_starting_model(args) -> list[dict]:
    """Zero-shot quality of the shipped starting model on DSB2018, and fine-tuning from it vs from scratch."""
    from napari_unet.models.starting import load_starting_model

    image, truth = datasets.dsb2018()
    annotation = scribbles(truth, n_objects=10, n_background=10, seed=args.seed)
    zero = nu.segment(load_starting_model(), image, predict_config(args))
    rows = [object_row("starting model, zero-shot", truth, zero.objects, zero.classes)]
    checkpoints = {25, 50, 100, 150, 200, 300, 400, 500}
    for label, model in (
        ("from scratch", nu.new_model("light", ["nucleus"], seed=args.seed)),
        ("from the starting model", load_starting_model()),
    ):
        curve = learning_curve(model, image, truth, annotation, args, args.steps, checkpoints)
        reached = next((p["train_seconds"] for p in curve if p["f1"] >= 0.9), None)
        rows.append(
            {"method": f"U-Net {label}, scribbles", "f1": curve[-1]["f1"], "seconds_to_f1_0.9": reached, "curve": curve}
        )
    return rows


CASES: dict[str, Callable] = {
    "dsb_scribbles": lambda a: case_dsb(scribbles, a),
    "dsb_full_objects": lambda a: case_dsb(full_objects, a),
    "isbi_scribbles": lambda a: case_isbi(False, a),
    "isbi_full": lambda a: case_isbi(True, a),
    "synthetic_touching": case_synthetic,
    "synthetic_touching_full": case_synthetic_full,
    "rods_scribbles": lambda a: case_rods(a, 0),
    "rods_whole_objects": lambda a: case_rods(a, 8),
    "ablation_no_elastic": lambda a: case_ablation(
        a, "U-Net without elastic deformation", augment=nu.AugmentConfig(elastic_sigma=0.0)
    ),
    "ablation_no_border": lambda a: case_ablation(a, "U-Net without border weights", border_w0=0.0),
    "ablation_same_padding": lambda a: case_ablation(a, "U-Net with same padding", padding="same"),
    "starting_model": case_starting_model,
}


def markdown(results: dict) -> str:
    """The results as markdown tables, one per case."""
    lines = [f"# Quality benchmark ({results['device']}, {results['date']})", ""]
    for case, rows in results["cases"].items():
        lines += [f"## {case}", ""]
        if case in results.get("notes", {}):
            lines += [f"> {results['notes'][case]}", ""]
        keys = [k for k in dict.fromkeys(k for row in rows for k in row) if k not in ("method", "curve")]
        lines += ["| method | " + " | ".join(keys) + " |", "| --- |" + " --- |" * len(keys)]
        for row in rows:
            cells = ("" if row.get(k) is None else str(row[k]) for k in keys)
            lines.append(f"| {row['method']} | " + " | ".join(cells) + " |")
        lines.append("")
        for row in rows:
            if "curve" in row:
                points = ", ".join(f"{p['step']}: {p['f1']:.3f} ({p['train_seconds']:.0f} s)" for p in row["curve"])
                lines += [f"{row['method']}, F1 by step (training seconds): {points}", ""]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--cases", nargs="+", default=list(CASES), choices=list(CASES))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--preset", default="light")
    parser.add_argument("--steps", type=int, default=nu.TrainConfig().steps)
    parser.add_argument("--patch-size", type=int, default=0, help="training patch size (0: the default)")
    parser.add_argument("--steps-full", type=int, default=1500, help="steps for the fully labelled ISBI case")
    parser.add_argument("--out", default="quality", help="name of the result files")
    parser.add_argument("--fresh", action="store_true", help="drop the results of cases not run now")
    parser.add_argument("--init", choices=["new", "starting"], default="new", help="train new models or fine-tune")
    parser.add_argument("--tta", action="store_true", help="U-Nets predict with the 8 rotations and flips averaged")
    args = parser.parse_args()
    if not datasets.available():
        raise SystemExit(f"benchmark data not found in {datasets.DATA}")
    device = select_device(args.device)
    results = {
        "device": describe(device),
        "torch_threads": torch.get_num_threads(),
        "machine": platform.machine(),
        "date": time.strftime("%Y-%m-%d"),
        "seed": args.seed,
        "test_time_augmentation": args.tta,
        "preset": args.preset,
        "cases": {},
    }
    for case in args.cases:
        start = time.perf_counter()
        try:
            results["cases"][case] = CASES[case](args)
        except Exception as error:  # one failing case must not lose the others
            results["cases"][case] = [{"method": "failed", "error": f"{type(error).__name__}: {error}"}]
        print(f"{case}: {time.perf_counter() - start:.0f} s", json.dumps(results["cases"][case]), flush=True)
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{args.out}.json"
    if path.exists() and not args.fresh:  # cases run now replace theirs; the others are kept
        earlier = json.loads(path.read_text())
        results["cases"] = {**earlier.get("cases", {}), **results["cases"]}
        # notes on how older rows were measured; a case run now drops its note
        results["notes"] = {k: v for k, v in earlier.get("notes", {}).items() if k not in args.cases}
    path.write_text(json.dumps(results, indent=2) + "\n")
    (RESULTS / f"{args.out}.md").write_text(markdown(results))
    print(markdown(results))


if __name__ == "__main__":
    main()
