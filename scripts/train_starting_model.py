"""Recipe of the shipped starting model: a light U-Net trained only on synthetic nuclei and cells.

    python scripts/train_starting_model.py [--device auto] [--minutes 3.5] [--pool 600]

Generates a pool of varied synthetic images (napari_unet.images.synthetic.random_config: small to large nuclei,
confluent cells, both contrast polarities, blur, noise, uneven light, debris), annotates them fully with
background gaps between touching objects (so the border weights teach separation), trains the light
preset, scores it on held-out synthetic images, and writes the model with float16 weights to
src/napari_unet/models/nuclei.pt. No real image is used, so the benchmark images stay clean.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

import napari_unet as nu
from napari_unet.images.synthetic import random_config, synthetic_nuclei
from napari_unet.objects.metrics import object_scores
from napari_unet.train.annotations import instances_to_annotation

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "src" / "napari_unet" / "models" / "nuclei.pt"


def pool(count: int, seed: int, size: int) -> tuple[list[np.ndarray], list[np.ndarray], list[np.ndarray]]:
    """Images, full annotations (1 background, 2 objects, gaps where objects touch) and true objects."""
    rng = np.random.default_rng(seed)
    images, annotations, truths = [], [], []
    for i in range(count):
        image, instances = synthetic_nuclei(random_config(rng, (size, size)), seed=seed * 100_000 + i)
        annotation = instances_to_annotation(instances, 2, gap=True, ring=0)
        annotation[annotation == 0] = 1
        images.append(image)
        annotations.append(annotation)
        truths.append(instances)
    return images, annotations, truths


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--minutes", type=float, default=3.5)
    parser.add_argument("--steps", type=int, default=None)
    parser.add_argument("--pool", type=int, default=600, help="synthetic training images")
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--patch-size", type=int, default=188)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=str(OUT))
    args = parser.parse_args()
    start = time.perf_counter()
    images, annotations, _ = pool(args.pool, args.seed + 1, args.size)
    print(f"generated {len(images)} images in {time.perf_counter() - start:.0f} s", flush=True)
    model = nu.new_model("light", ["nucleus"], seed=args.seed)
    config = nu.TrainConfig(
        steps=args.steps,
        minutes=None if args.steps else args.minutes,
        batch_size=args.batch_size,
        patch_size=args.patch_size,
        val_fraction=0.02,
        validate_every=500,
        seed=args.seed,
        device=args.device,
    )
    last = time.perf_counter()
    for record in nu.fit(model, images, annotations, config):
        if record.validation is not None or record.done or time.perf_counter() - last > 60:
            last = time.perf_counter()
            val = f" val IoU {record.validation.iou:.3f}" if record.validation else ""
            print(f"step {record.step} loss {record.loss:.4f}{val} {record.elapsed:.0f} s {record.device}", flush=True)
    held_images, _, held_truths = pool(20, 999, args.size)
    scores = [object_scores(t, nu.segment(model, i).objects).f1 for i, t in zip(held_images, held_truths, strict=True)]
    model.history[-1]["recipe"] = (
        f"scripts/train_starting_model.py --pool {args.pool} --size {args.size} --batch-size {args.batch_size} "
        f"--patch-size {args.patch_size} --device {args.device} "
        f"--seed {args.seed} " + (f"--steps {args.steps}" if args.steps else f"--minutes {args.minutes}")
    )
    model.history[-1]["synthetic_held_out_f1"] = round(float(np.mean(scores)), 4)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    nu.save_model(model, args.out, overwrite=True, half=True)
    print(
        f"held-out synthetic F1@0.5 {np.mean(scores):.3f}; saved {args.out} "
        f"({Path(args.out).stat().st_size / 1e6:.1f} MB) after {time.perf_counter() - start:.0f} s"
    )


if __name__ == "__main__":
    main()
