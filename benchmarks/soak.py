"""Soak: train for a long time while segmenting repeatedly; host (and GPU) memory must stay flat.

    python benchmarks/soak.py [--minutes 20] [--device cpu] [--segment-every 20]

What the plugin does during a long session, in one process: a training run (fine-tuning the starting
model on a synthetic 512 x 512 image, with a live preview of a 256 x 256 region every 2 s, as the Train
widget does) in a background thread, while the main thread segments a different 1024 x 1024 image
every ``--segment-every`` seconds with another model (as batch export or a second viewer would).
Resident memory (and CUDA memory) is sampled every 5 s. The verdict compares the last five minutes
with the five after warm-up (minutes 2-7): growth under 5% (or 64 MiB) counts as flat.
Results go to benchmarks/results/soak_<device>.json and .md.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import napari_unet as nu
from napari_unet.devices import describe, select_device
from napari_unet.images.synthetic import SyntheticConfig, synthetic_nuclei
from napari_unet.train.preview import Preview, with_previews
from protocols import scribbles

RESULTS = Path(__file__).resolve().parent / "results"
MIB = 2**20


def rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def train(minutes: float, device: str, stats: dict) -> None:
    """Fine-tune the starting model for ``minutes`` with live previews; counts steps and previews."""
    image, truth = synthetic_nuclei(SyntheticConfig(shape=(512, 512)), seed=1)
    annotation = scribbles(truth, n_objects=10, n_background=10, seed=1)
    model = nu.load_starting_model()
    config = nu.TrainConfig(steps=None, minutes=minutes, device=device, validate_every=200)
    job = with_previews(
        model, nu.fit(model, [image], [annotation], config), image, lambda: ((), (slice(0, 256), slice(0, 256))), 2.0
    )
    for record in job:
        if isinstance(record, Preview):
            stats["previews"] += 1
        else:
            stats["steps"] = record.step
            stats["loss"] = record.loss
    stats["ended"] = model.history[-1]["ended"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=20.0)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--segment-every", type=float, default=20.0)
    args = parser.parse_args()
    device = select_device(args.device)
    stats = {"steps": 0, "previews": 0, "segmentations": 0, "loss": None, "ended": None}
    trainer = threading.Thread(target=train, args=(args.minutes, device.type, stats), daemon=True)
    other, _ = synthetic_nuclei(SyntheticConfig(shape=(1024, 1024)), seed=7)
    segmenter = nu.load_starting_model()
    samples = []
    start = time.monotonic()
    trainer.start()
    next_segment = start
    while trainer.is_alive():
        now = time.monotonic()
        if now >= next_segment:
            nu.segment(segmenter, other, nu.PredictConfig(device=device.type))
            stats["segmentations"] += 1
            next_segment = now + args.segment_every
        cuda = torch.cuda.memory_allocated(device) if device.type == "cuda" else 0
        samples.append(
            {"minute": round((time.monotonic() - start) / 60, 2), "rss_mib": rss() // MIB, "cuda_mib": cuda // MIB}
        )
        print(samples[-1], stats, flush=True)
        trainer.join(timeout=5.0)
    report = verdict(samples, args.minutes)
    report.update(device=describe(device), date=time.strftime("%Y-%m-%d"), minutes=args.minutes, **stats)
    name = "cpu" if device.type == "cpu" else "gpu"
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"soak_{name}.json").write_text(json.dumps({**report, "samples": samples}, indent=2) + "\n")
    (RESULTS / f"soak_{name}.md").write_text(markdown(report))
    print(markdown(report))


def verdict(samples: list[dict], minutes: float) -> dict:
    """Memory after warm-up (minutes 2-7) against the last five minutes, and the overall peak."""

    def mean(key: str, low: float, high: float) -> float:
        values = [s[key] for s in samples if low <= s["minute"] < high]
        return float(np.mean(values)) if values else float("nan")

    early_end = min(7.0, minutes / 2)
    late_start = max(minutes - 5.0, early_end)
    result = {}
    for key in ("rss_mib", "cuda_mib"):
        early, late = mean(key, min(2.0, early_end / 2), early_end), mean(key, late_start, minutes + 1)
        growth = late - early
        result[key] = {
            "early_mean": round(early, 1),
            "late_mean": round(late, 1),
            "growth": round(growth, 1),
            "peak": max(s[key] for s in samples),
            "flat": bool(growth <= max(0.05 * early, 64)),
        }
    return result


def markdown(report: dict) -> str:
    r, c = report["rss_mib"], report["cuda_mib"]
    return "\n".join(
        [
            f"# Soak ({report['device']}, {report['date']})",
            "",
            f"{report['minutes']} minutes of training (fine-tuning the starting model, live preview every 2 s) "
            f"while segmenting a 1024 x 1024 image in the main thread: {report['steps']} steps, "
            f"{report['previews']} previews, {report['segmentations']} segmentations; training ended: "
            f"{report['ended']}.",
            "",
            "| memory | after warm-up (MiB) | last 5 minutes (MiB) | growth (MiB) | peak (MiB) | flat |",
            "| --- | --- | --- | --- | --- | --- |",
            f"| host (resident) | {r['early_mean']} | {r['late_mean']} | {r['growth']} | {r['peak']} | {r['flat']} |",
            f"| CUDA (allocated) | {c['early_mean']} | {c['late_mean']} | {c['growth']} | {c['peak']} | {c['flat']} |",
            "",
        ]
    )


if __name__ == "__main__":
    main()
