"""How the defaults of ObjectConfig (threshold, split_depth, grow) were chosen: on synthetic data only.

Trains the light preset on synthetic touching-nuclei images (or touching rods, ``--images rods``)
annotated with the scribble protocol, then scores object F1@0.5 over a grid of confidence thresholds,
split depths and growing the objects back over the foreground or not. The real DSB2018 image stays out
of this choice, so that benchmarks on it remain an honest test; the rods come from other seeds than
the rods of quality.py and correction_loop.py.

    python benchmarks/object_defaults.py [--seeds 0 1 2] [--steps 300] [--images nuclei]

Writes benchmarks/results/object_defaults.json (object_defaults_rods.json, ..._full_objects.json) and
prints a table.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import napari_unet as nu
from napari_unet.images.synthetic import SyntheticConfig, synthetic_nuclei
from napari_unet.images.synthetic_rods import RodsConfig, synthetic_rods
from napari_unet.objects.config import THRESHOLD_OUTLINED, THRESHOLD_SCRIBBLED, ObjectConfig
from napari_unet.objects.instances import classes_to_objects
from napari_unet.objects.metrics import object_scores
from protocols import full_objects, scribbles

RESULTS = Path(__file__).resolve().parent / "results"
THRESHOLDS = (0.5, 0.7, 0.8, 0.9, 0.95)
DEPTHS = (0.5, 1.0, 1.5, 2.0, 3.0)
GROW = (False, True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument(
        "--protocol", choices=["scribbles", "full_objects"], default="scribbles", help="how the images are annotated"
    )
    parser.add_argument("--images", choices=["nuclei", "rods"], default="nuclei")
    args = parser.parse_args()
    annotate = scribbles if args.protocol == "scribbles" else (lambda t, seed: full_objects(t, 10, 10, seed=seed))
    scores: dict[str, list[float]] = {}
    for seed in args.seeds:
        if args.images == "rods":
            image, truth = synthetic_rods(RodsConfig(shape=(384, 384)), seed=500 + seed)
        else:
            nuclei = SyntheticConfig(shape=(512, 512), density=0.22, touching=0.5)
            image, truth = synthetic_nuclei(nuclei, seed=100 + seed)
        model = nu.new_model("light", ["nucleus"], seed=seed)
        nu.drain(nu.fit(model, [image], [annotate(truth, seed=seed)], nu.TrainConfig(steps=args.steps, seed=seed)))
        result = nu.segment(model, image, objects=False)
        for threshold in THRESHOLDS:
            for depth in DEPTHS:
                for grow in GROW:
                    config = ObjectConfig(threshold=threshold, split_depth=depth, grow=grow)
                    objects = classes_to_objects(result.classes, config, result.probabilities)
                    scores.setdefault(f"{threshold},{depth},{grow}", []).append(object_scores(truth, objects).f1)
            unsplit = ObjectConfig(threshold=threshold, split=False, grow=True)
            objects = classes_to_objects(result.classes, unsplit, result.probabilities)
            scores.setdefault(f"{threshold},no split,True", []).append(object_scores(truth, objects).f1)
        print(f"seed {seed} done", flush=True)
    ranked = sorted(scores.items(), key=lambda kv: -np.mean(kv[1]))
    RESULTS.mkdir(exist_ok=True)
    name = "object_defaults" + ("" if args.images == "nuclei" else f"_{args.images}")
    name += "" if args.protocol == "scribbles" else f"_{args.protocol}"
    (RESULTS / f"{name}.json").write_text(
        json.dumps(
            {
                "benchmark": f"object extraction defaults, synthetic {args.images}, {args.protocol} (light preset)",
                "steps": args.steps,
                "seeds": args.seeds,
                "f1_by_threshold_split_depth_and_grow": {k: [round(x, 4) for x in v] for k, v in ranked},
                "chosen": {
                    "threshold": THRESHOLD_SCRIBBLED if args.protocol == "scribbles" else THRESHOLD_OUTLINED,
                    "split_depth": ObjectConfig().split_depth,
                    "grow": ObjectConfig().grow,
                },
            },
            indent=2,
        )
        + "\n"
    )
    print("| threshold | split depth | grow | mean F1 | per seed |")
    print("| --- | --- | --- | --- | --- |")
    for key, values in ranked[:12]:
        threshold, depth, grow = key.split(",")
        print(f"| {threshold} | {depth} | {grow} | {np.mean(values):.3f} | {', '.join(f'{v:.3f}' for v in values)} |")


if __name__ == "__main__":
    main()
