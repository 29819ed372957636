"""Speed: the network alone (the limit) against end-to-end tiled prediction and training, in one run.

    python benchmarks/speed.py [--device auto] [--quick]

Measures, on the device chosen:

- network-only forward throughput of a preset at several tile sizes and precisions (output megapixels/s,
  effective TFLOP/s counted from the convolutions, peak GPU memory);
- end-to-end ``segment`` of a 512 x 512 and a large image (8192 x 8192 on a GPU, 4096 x 4096 on a CPU) from
  a numpy array to the class and object arrays, split into probabilities / classes / objects, with peak
  GPU and host memory, and its ratio to the network-only rate at the same tile and batch measured here;
- training steps/s and output pixels/s with elastic augmentation, and the time from the start of a
  training run to its first live preview.

On a GPU the paper preset (random weights) is measured, on a CPU the light preset. Object extraction is
timed on the trained starting model when it is installed (random weights give no realistic objects).
Results go to benchmarks/results/speed_<device>.json and .md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import threading
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, str(Path(__file__).resolve().parent))
import napari_unet as nu
from napari_unet import device as devices
from napari_unet.model import UNet
from napari_unet.objects import classes_to_objects, probabilities_to_classes
from napari_unet.predict import job_size, keep_on_device
from napari_unet.preview import Preview, with_previews
from napari_unet.synthetic import SyntheticConfig, synthetic_nuclei
from napari_unet.tiling import TileGeometry, plan_axis
from napari_unet.trainer import patch_geometry

RESULTS = Path(__file__).resolve().parent / "results"


class PeakRss:
    """Peak resident memory of this process while the block runs, sampled every 5 ms."""

    def __enter__(self) -> PeakRss:
        self.peak = self._rss()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def _watch(self) -> None:
        while not self._stop.wait(0.005):
            self.peak = max(self.peak, self._rss())

    @staticmethod
    def _rss() -> int:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def gib(n: float) -> float:
    return round(n / 2**30, 3)


def conv_flops(config: nu.UNetConfig, tile: int) -> float:
    """Floating-point operations of one forward pass on one tile (convolutions and up-convolutions)."""
    with torch.device("meta"):
        net = UNet(config)
        x = torch.empty(1, config.in_channels, tile, tile)
    with FlopCounterMode(display=False) as counter:
        net(x)
    return float(counter.get_total_flops())


def network_rate(
    net: torch.nn.Module,
    config: nu.UNetConfig,
    device: torch.device,
    tile: int,
    batch: int,
    precision: str,
    channels_last: bool,
    seconds: float,
) -> dict:
    """Forward passes on random tiles for about ``seconds``: the network's own throughput."""
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    net = net.to(device=device, memory_format=memory_format).eval()
    x = torch.randn(batch, config.in_channels, tile, tile, device=device).contiguous(memory_format=memory_format)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    bf16 = precision == "bf16"
    with torch.inference_mode(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
        for _ in range(2):
            net(x)
        sync(device)
        calls, start = 0, time.perf_counter()
        while True:
            for _ in range(3 if device.type == "cuda" else 1):
                net(x)
                calls += 1
            sync(device)
            elapsed = time.perf_counter() - start
            if elapsed >= seconds and calls >= 3:
                break
    side = config.output_size(tile)
    megapixels = calls * batch * side * side / 1e6
    flops = conv_flops(config, tile) * batch * calls
    row = {
        "tile": tile,
        "output_tile": side,
        "batch": batch,
        "precision": precision,
        "channels_last": channels_last,
        "megapixels_per_s": round(megapixels / elapsed, 3),
        "tflops": round(flops / elapsed / 1e12, 2),
        "ms_per_call": round(1000 * elapsed / calls, 2),
    }
    if device.type == "cuda":
        row["peak_gpu_gib"] = gib(torch.cuda.max_memory_allocated(device))
    return row


def network_section(model: nu.Model, device: torch.device, quick: bool) -> list[dict]:
    """Network-only throughput over tile sizes and precisions."""
    config = model.config
    rows = []
    if device.type == "cuda":
        tiles = [572, 1084, 2108, 4188] if not quick else [572]
        variants = [("fp32", False), ("fp32", True), ("bf16", True)]
    else:
        tiles = [252, 508] if not quick else [124]
        variants = [("fp32", False), ("fp32", True), ("bf16", False)]
    seconds = 1.0 if device.type == "cuda" else 3.0
    for tile in tiles:
        tile = config.valid_input_size(tile)
        batch = max(1, round((2108 / tile) ** 2)) if device.type == "cuda" else 1
        for precision, channels_last in variants:
            try:
                rows.append(network_rate(model.net, config, device, tile, batch, precision, channels_last, seconds))
            except torch.OutOfMemoryError:
                rows.append({"tile": tile, "batch": batch, "precision": precision, "error": "out of memory"})
                devices.release(device)
            print("network", rows[-1], flush=True)
    model.net.to("cpu", memory_format=torch.contiguous_format)
    devices.release(device)
    return rows


def mosaic(side: int, seed: int = 0) -> np.ndarray:
    """A large synthetic nuclei image: 1024 x 1024 synthetic images side by side."""
    image, _ = synthetic_nuclei(SyntheticConfig(shape=(1024, 1024)), seed=seed)
    reps = -(-side // 1024)
    return np.tile(image, (reps, reps))[:side, :side]


def end_to_end(
    model: nu.Model, image: np.ndarray, device: torch.device, objects: bool, on_device: bool | None = None
) -> dict:
    """``segment`` of one image, split into probabilities, classes and objects, with memory peaks."""
    config = nu.PredictConfig(device=device.type, on_device=on_device)
    tile, batch = job_size(model, device, config, image.shape)
    plan = plan_axis(max(image.shape), tile, TileGeometry(model.config.depth, model.config.padding))
    tile, batch = plan.tile, min(batch, len(plan.offsets) ** 2)  # the job predict_tiled really runs
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    with PeakRss() as rss:
        start = time.perf_counter()
        probabilities = nu.drain(nu.predict_probabilities(model, image, config))
        t_prob = time.perf_counter()
        classes = probabilities_to_classes(probabilities)
        t_classes = time.perf_counter()
        if objects:
            classes_to_objects(classes, config.objects, probabilities)
        t_objects = time.perf_counter()
    pixels = image.size / 1e6
    geom = TileGeometry(model.config.depth, model.config.padding)
    resident = keep_on_device(config, device, (1, model.in_channels, *image.shape), model.n_classes, geom)
    row = {
        "image": f"{image.shape[0]}x{image.shape[1]}",
        "tiles_cut_on": "device" if resident else "host",
        "tile": tile,
        "batch": batch,
        "probabilities_s": round(t_prob - start, 3),
        "classes_s": round(t_classes - t_prob, 3),
        "objects_s": round(t_objects - t_classes, 3) if objects else None,
        "total_s": round(t_objects - start, 3),
        "megapixels_per_s": round(pixels / (t_objects - start), 3),
        "megapixels_per_s_to_probabilities": round(pixels / (t_prob - start), 3),
        "peak_host_gib": gib(rss.peak),
    }
    if device.type == "cuda":
        row["peak_gpu_gib"] = gib(torch.cuda.max_memory_allocated(device))
    return row


def end_to_end_section(model: nu.Model, device: torch.device, quick: bool, label: str, objects: bool) -> list[dict]:
    """End-to-end prediction of a small and a large image, each against the network alone at the same job."""
    large = 8192 if device.type == "cuda" else 4096
    sides = [512] if quick else [512, large]
    rows = []
    # on a GPU the large image also goes through the host path, to show what tiling on the device buys
    jobs = [(side, None) for side in sides] + ([(large, False)] if device.type == "cuda" and not quick else [])
    for side, on_device in jobs:
        image = mosaic(side)
        nu.drain(nu.predict_probabilities(model, image[:512, :512], nu.PredictConfig(device=device.type)))  # warm-up
        row = {"model": label, **end_to_end(model, image, device, objects, on_device)}
        tile, batch = row["tile"], row["batch"]
        precision = "bf16" if device.type == "cuda" else "fp32"
        limit = network_rate(model.net, model.config, device, tile, batch, precision, device.type == "cuda", 1.0)
        model.net.to("cpu", memory_format=torch.contiguous_format)
        row["network_only_megapixels_per_s"] = limit["megapixels_per_s"]
        row["ratio_to_probabilities"] = round(row["megapixels_per_s_to_probabilities"] / limit["megapixels_per_s"], 3)
        row["ratio_end_to_end"] = round(row["megapixels_per_s"] / limit["megapixels_per_s"], 3)
        rows.append(row)
        print("end-to-end", row, flush=True)
        devices.release(device)
    return rows


def _training_data() -> tuple[np.ndarray, np.ndarray]:
    """A 1024 x 1024 synthetic nuclei image, fully annotated (1 background, 2 nuclei)."""
    image, truth = synthetic_nuclei(SyntheticConfig(shape=(1024, 1024)), seed=1)
    return image, np.where(truth > 0, 2, 1).astype(np.uint8)


def training_rate(preset: str, device: torch.device, steps: int, batch: int, patch: int) -> dict:
    """Steps/s and output pixels/s of ``fit`` with the default (elastic) augmentation, after 10 warm-up steps."""
    image, annotation = _training_data()
    model = nu.new_model(preset, ["nucleus"], seed=0)
    config = nu.TrainConfig(
        steps=steps, batch_size=batch, patch_size=patch, device=device.type, val_fraction=0.0, validate_every=10**9
    )
    size, out, _ = patch_geometry(model, config, device.type)
    times = {record.step: time.perf_counter() for record in nu.fit(model, [image], [annotation], config)}
    warm = min(10, steps // 3)
    seconds = times[steps] - times[warm]
    return {
        "preset": preset,
        "batch": batch,
        "patch": size,
        "output_patch": out,
        "steps_per_s": round((steps - warm) / seconds, 2),
        "output_megapixels_per_s": round((steps - warm) * batch * out * out / seconds / 1e6, 3),
    }


def first_preview(preset: str, device: torch.device, batch: int, patch: int) -> dict:
    """Seconds from starting a training run (data preparation included) to its first live preview of 512 x 512."""
    image, annotation = _training_data()
    model = nu.new_model(preset, ["nucleus"], seed=0)
    config = nu.TrainConfig(steps=1000, batch_size=batch, patch_size=patch, device=device.type)
    start = time.perf_counter()
    run = with_previews(
        model,
        nu.fit(model, [image], [annotation], config),
        image,
        lambda: ((), (slice(0, 512), slice(0, 512))),
        every=0.0,
        device=device.type,
    )
    for record in run:
        if isinstance(record, Preview):
            seconds = time.perf_counter() - start
            run.close()
            return {"preset": preset, "batch": batch, "seconds_to_first_preview": round(seconds, 2)}
    raise RuntimeError("training ended without a preview")


def markdown(results: dict) -> str:
    """The results as markdown tables."""
    lines = [f"# Speed benchmark ({results['device']}, {results['date']})", ""]
    for section in ("network", "end_to_end", "training", "first_preview"):
        rows = results.get(section) or []
        if not rows:
            continue
        keys = list(dict.fromkeys(k for row in rows for k in row))
        lines += [f"## {section}", "", "| " + " | ".join(keys) + " |", "|" + " --- |" * len(keys)]
        lines += ["| " + " | ".join(str(row.get(k, "")) for k in keys) + " |" for row in rows]
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--quick", action="store_true", help="small sizes only (a smoke test of the benchmark)")
    parser.add_argument("--sections", nargs="+", default=["network", "end_to_end", "training"])
    args = parser.parse_args()
    device = devices.select_device(args.device)
    gpu = device.type == "cuda"
    preset = "paper" if gpu else "light"
    results = {
        "device": devices.describe(device),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "machine": platform.machine(),
        "date": time.strftime("%Y-%m-%d"),
        "preset": preset,
    }
    name = "speed_gpu" if gpu else "speed_cpu"

    def save() -> None:  # after every section, so that a run cut short keeps what it measured
        RESULTS.mkdir(exist_ok=True)
        (RESULTS / f"{name}.json").write_text(json.dumps(results, indent=2) + "\n")
        (RESULTS / f"{name}.md").write_text(markdown(results))

    model = nu.new_model(preset, ["nucleus"], seed=0)
    if "network" in args.sections:
        results["network"] = network_section(model, device, args.quick)
        save()
    if "end_to_end" in args.sections:
        rows = end_to_end_section(model, device, args.quick, f"{preset} (random weights)", objects=not gpu)
        from napari_unet.starting import starting_model_path

        if starting_model_path() is not None:
            starting = nu.starting.load_starting_model()
            rows += end_to_end_section(starting, device, args.quick, "starting model (light)", objects=True)
        results["end_to_end"] = rows
        save()
    if "training" in args.sections:
        jobs = [("standard", 8, 0), ("paper", 4, 572)] if gpu else [("light", 8, 0)]
        steps = 12 if args.quick else (150 if gpu else 30)
        results["training"] = []
        for job_preset, batch, patch in jobs:
            results["training"].append(training_rate(job_preset, device, steps, batch, patch))
            print("training", results["training"][-1], flush=True)
            save()
        results["first_preview"] = [first_preview(jobs[0][0], device, jobs[0][1], jobs[0][2])]
        print("first preview", results["first_preview"][-1], flush=True)
    save()
    print(markdown(results))


if __name__ == "__main__":
    main()
