"""How the defaults of ObjectConfig (threshold, split_depth) were chosen: on synthetic data only.

Trains the light preset on synthetic touching-nuclei images annotated with the scribble protocol, then
scores object F1@0.5 over a grid of confidence thresholds and split depths. The real DSB2018 image stays
out of this choice, so that benchmarks on it remain an honest test.

    python benchmarks/object_defaults.py [--seeds 0 1 2] [--steps 300]

Writes benchmarks/results/object_defaults.json and prints a table.
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
from napari_unet.objects.config import THRESHOLD_OUTLINED, THRESHOLD_SCRIBBLED, ObjectConfig
from napari_unet.objects.instances import classes_to_objects
from napari_unet.objects.metrics import object_scores
from protocols import full_objects, scribbles

RESULTS = Path(__file__).resolve().parent / "results"
THRESHOLDS = (0.5, 0.7, 0.8, 0.9, 0.95)
DEPTHS = (0.5, 1.0, 1.5, 2.0, 3.0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument(
        "--protocol", choices=["scribbles", "full_objects"], default="scribbles", help="how the images are annotated"
    )
    args = parser.parse_args()
    annotate = scribbles if args.protocol == "scribbles" else (lambda t, seed: full_objects(t, 10, 10, seed=seed))
    scores: dict[str, list[float]] = {}
    for seed in args.seeds:
        image, truth = synthetic_nuclei(SyntheticConfig(shape=(512, 512), density=0.22, touching=0.5), seed=100 + seed)
        model = nu.new_model("light", ["nucleus"], seed=seed)
        nu.drain(nu.fit(model, [image], [annotate(truth, seed=seed)], nu.TrainConfig(steps=args.steps, seed=seed)))
        result = nu.segment(model, image, objects=False)
        for threshold in THRESHOLDS:
            for depth in DEPTHS:
                config = ObjectConfig(threshold=threshold, split_depth=depth)
                objects = classes_to_objects(result.classes, config, result.probabilities)
                scores.setdefault(f"{threshold},{depth}", []).append(object_scores(truth, objects).f1)
        print(f"seed {seed} done", flush=True)
    ranked = sorted(scores.items(), key=lambda kv: -np.mean(kv[1]))
    RESULTS.mkdir(exist_ok=True)
    name = "object_defaults" if args.protocol == "scribbles" else f"object_defaults_{args.protocol}"
    (RESULTS / f"{name}.json").write_text(
        json.dumps(
            {
                "benchmark": f"object extraction defaults, synthetic {args.protocol} (light preset)",
                "steps": args.steps,
                "seeds": args.seeds,
                "f1_by_threshold_and_split_depth": {k: [round(x, 4) for x in v] for k, v in ranked},
                "chosen": {
                    "threshold": THRESHOLD_SCRIBBLED if args.protocol == "scribbles" else THRESHOLD_OUTLINED,
                    "split_depth": ObjectConfig().split_depth,
                },
            },
            indent=2,
        )
        + "\n"
    )
    print("| threshold | split depth | mean F1 | per seed |")
    print("| --- | --- | --- | --- |")
    for key, values in ranked[:10]:
        threshold, depth = key.split(",")
        print(f"| {threshold} | {depth} | {np.mean(values):.3f} | {', '.join(f'{v:.3f}' for v in values)} |")


if __name__ == "__main__":
    main()
