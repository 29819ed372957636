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
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, str(Path(__file__).resolve().parent))
import napari_unet as nu
from napari_unet import devices
from napari_unet.images.synthetic import SyntheticConfig, synthetic_nuclei
from napari_unet.models.fused_inference import FusedUNet
from napari_unet.models.geometry import TileGeometry
from napari_unet.models.unet import UNet
from napari_unet.objects.instances import classes_to_objects
from napari_unet.predict.job_size import fuses, job_size, keep_on_device
from napari_unet.predict.object_thresholds import object_config_for
from napari_unet.predict.tiling import plan_axis
from napari_unet.train.patches import patch_geometry
from napari_unet.train.preview import Preview, with_previews

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


def runner(net: torch.nn.Module, device: torch.device, kernels: str, bf16: bool) -> torch.nn.Module:
    """The module timed: the network itself ("eager"), its fused copy ("fused"), or torch.compile of it."""
    if kernels == "fused":
        return FusedUNet(net, dtype=torch.bfloat16 if bf16 else torch.float32, device=device)
    if kernels == "compiled":
        return torch.compile(net, dynamic=False)
    return net


def network_rate(
    net: torch.nn.Module,
    config: nu.UNetConfig,
    device: torch.device,
    tile: int,
    batch: int,
    precision: str,
    channels_last: bool,
    seconds: float,
    kernels: str = "eager",
    cudnn_benchmark: bool = False,
) -> dict:
    """Forward passes on random tiles for about ``seconds``: the network's own throughput."""
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    if kernels != "fused":  # a fused copy is made on the device from the network where it is, as the product does
        net = net.to(device=device, memory_format=memory_format)
    net = net.eval()
    x = torch.randn(batch, config.in_channels, tile, tile, device=device).contiguous(memory_format=memory_format)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    before = torch.backends.cudnn.benchmark
    torch.backends.cudnn.benchmark = cudnn_benchmark
    try:
        return _timed(net, config, device, x, tile, batch, precision, channels_last, seconds, kernels, cudnn_benchmark)
    finally:
        torch.backends.cudnn.benchmark = before


def _timed(net, config, device, x, tile, batch, precision, channels_last, seconds, kernels, cudnn_benchmark) -> dict:
    bf16 = precision == "bf16"
    with torch.inference_mode(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
        start = time.perf_counter()
        net = runner(net, device, kernels, bf16)
        for _ in range(2):
            net(x)
        sync(device)
        warm_up_s = time.perf_counter() - start
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
        "kernels": kernels,
        "cudnn_benchmark": cudnn_benchmark,
        "warm_up_s": round(warm_up_s, 2),
        "megapixels_per_s": round(megapixels / elapsed, 3),
        "tflops": round(flops / elapsed / 1e12, 2),
        "ms_per_call": round(1000 * elapsed / calls, 2),
    }
    if device.type == "cuda":
        row["peak_gpu_gib"] = gib(torch.cuda.max_memory_allocated(device))
    return row


def network_section(model: nu.Model, device: torch.device, quick: bool, compiled: bool = False) -> list[dict]:
    """Network-only throughput over tile sizes, precisions and kernels (``compiled``: torch.compile only)."""
    config = model.config
    rows = []
    if device.type == "cuda":
        tiles = [572, 1836, 4188] if not quick else [572]
        variants = [
            ("bf16", True, "eager", False),
            ("bf16", True, "eager", True),
            ("bf16", True, "fused", False),
            ("bf16", True, "fused", True),
        ]
        extra = [(572, "fp32", True, "eager", False), (572, "fp32", False, "eager", False)]
        if compiled:
            tiles, variants, extra = [], [], [(1836, "bf16", True, "compiled", False)]
    else:
        tiles = [252, 508] if not quick else [124]
        variants = [("fp32", False, "eager", False), ("fp32", True, "eager", False), ("bf16", False, "eager", False)]
        extra = []
    seconds = 1.0 if device.type == "cuda" else 3.0
    jobs = [(tile, *variant) for tile in tiles for variant in variants] + extra
    for tile, precision, channels_last, kernels, bench in jobs:
        tile = config.valid_input_size(tile)
        batch = max(1, round((2108 / tile) ** 2)) if device.type == "cuda" else 1
        try:
            rows.append(
                network_rate(model.net, config, device, tile, batch, precision, channels_last, seconds, kernels, bench)
            )
        except Exception as error:  # a variant that fails is a result too
            rows.append(
                {
                    "tile": tile,
                    "batch": batch,
                    "precision": precision,
                    "kernels": kernels,
                    "cudnn_benchmark": bench,
                    "error": f"{type(error).__name__}: {str(error)[:200]}",
                }
            )
            devices.release(device)
        print("network", rows[-1], flush=True)
    model.net.to("cpu", memory_format=torch.contiguous_format)
    devices.release(device)
    return rows


def kernel_profile(model: nu.Model, device: torch.device, tile: int, batch: int, kernels: str) -> list[dict]:
    """The GPU kernels of a few forward passes that take the most time (share of the total device time)."""
    from torch.profiler import ProfilerActivity, profile

    net = model.net.to(device=device, memory_format=torch.channels_last).eval()
    x = torch.randn(batch, model.in_channels, tile, tile, device=device).contiguous(memory_format=torch.channels_last)
    with torch.inference_mode(), torch.autocast(device.type, dtype=torch.bfloat16):
        run = runner(net, device, kernels, True)
        for _ in range(2):
            run(x)
        sync(device)
        with profile(activities=[ProfilerActivity.CUDA]) as prof:
            for _ in range(3):
                run(x)
            sync(device)
    model.net.to("cpu", memory_format=torch.contiguous_format)
    events = [e for e in prof.key_averages() if e.device_time_total > 0]
    total = sum(e.device_time_total for e in events)
    events.sort(key=lambda e: -e.device_time_total)
    return [
        {
            "kernels": kernels,
            "tile": tile,
            "kernel": e.key[:90],
            "calls": e.count // 3,
            "ms_per_pass": round(e.device_time_total / 3 / 1000, 3),
            "share": round(e.device_time_total / total, 3),
        }
        for e in events[:12]
    ]


def mosaic(side: int, seed: int = 0) -> np.ndarray:
    """A large synthetic nuclei image: 1024 x 1024 synthetic images side by side."""
    image, _ = synthetic_nuclei(SyntheticConfig(shape=(1024, 1024)), seed=seed)
    reps = -(-side // 1024)
    return np.tile(image, (reps, reps))[:side, :side]


def end_to_end(
    model: nu.Model, image: np.ndarray, device: torch.device, objects: bool, config: nu.PredictConfig
) -> dict:
    """``iter_segment`` of one image: probabilities and classes, then objects, with memory peaks."""
    tile, batch, *_ = _job(model, device, config, image)  # the job predict_tiled really runs
    plan = plan_axis(max(image.shape), tile, TileGeometry(model.config.depth, model.config.padding))
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    with PeakRss() as rss:
        start = time.perf_counter()
        seen: list[float] = []  # when each progress record arrives: the first once the tiles start
        segmentation = nu.drain(
            nu.iter_segment(model, image, config, objects=False), lambda _: seen.append(time.perf_counter())
        )
        t_classes = time.perf_counter()
        if objects:
            classes_to_objects(
                segmentation.classes, object_config_for(model, config.objects), segmentation.probabilities
            )
        t_objects = time.perf_counter()
    pixels = image.size / 1e6
    geom = TileGeometry(model.config.depth, model.config.padding)
    resident = keep_on_device(config, device, (1, model.in_channels, *image.shape), image.dtype.itemsize, geom)
    row = {
        "image": f"{image.shape[0]}x{image.shape[1]} {image.dtype}",
        "tiles_cut_on": "device" if resident else "host",
        "kernels": _kernels(model, device, config),
        "tile": tile,
        "tiles": len(plan.offsets) ** 2,
        "batch": batch,
        "classes_s": round(t_classes - start, 3),
        # before the first tile (copies of the network and the image, normalisation), the tiles, and
        # after the last tile was queued (its results coming back, the result's last writes)
        "before_tiles_s": round(seen[0] - start, 3),
        "tiles_s": round(seen[-1] - seen[0], 3),
        "after_tiles_s": round(t_classes - seen[-1], 3),
        "objects_s": round(t_objects - t_classes, 3) if objects else None,
        "total_s": round(t_objects - start, 3),
        "megapixels_per_s": round(pixels / (t_objects - start), 3),
        "megapixels_per_s_to_classes": round(pixels / (t_classes - start), 3),
        "peak_host_gib": gib(rss.peak),
    }
    if device.type == "cuda":
        row["peak_gpu_gib"] = gib(torch.cuda.max_memory_allocated(device))
    return row


def _job(model: nu.Model, device: torch.device, config: nu.PredictConfig, image: np.ndarray) -> tuple:
    """(tile, batch, precision, channels-last) of the job ``predict_tiled`` runs for ``image``."""
    tile, batch = job_size(model, device, config, image.shape)
    plan = plan_axis(max(image.shape), tile, TileGeometry(model.config.depth, model.config.padding))
    return plan.tile, min(batch, len(plan.offsets) ** 2), "bf16" if device.type == "cuda" else "fp32", True


def _kernels(model: nu.Model, device: torch.device, config: nu.PredictConfig) -> str:
    """The kernels the product runs the job with: its fused copy or the network itself."""
    return "fused" if fuses(model, device, config) else "eager"


#: How many times each kind of end-to-end run is timed (the median is kept): a first run only once.
REPEATS = {"first": 1, "again": 3}


def end_to_end_section(
    model: nu.Model,
    device: torch.device,
    quick: bool,
    label: str,
    objects: bool,
    large_objects: tuple[str, ...] = ("first", "again"),
) -> list[dict]:
    """End-to-end segmentation of a small and a large image, each against the network alone at the same job.

    On a GPU the large image is segmented twice with the default settings (the first run pays for
    cuDNN's and the pinned memory's first use: a user's first image), then keeping torch's GPU cache
    between runs (``release_memory=False``, as for many files), then on the device with the unfused
    network, then with tiles cut on the host, to show what each step buys. ``large_objects``: the runs
    (first, again) of the large image that also make its objects, with the default settings.
    """
    large = 8192 if device.type == "cuda" else 4096
    sides = [512] if quick else [512, large]
    gpu = device.type == "cuda"
    jobs = [(side, {}, "first") for side in sides]
    if gpu and not quick:
        jobs = [(512, {}, "first"), (512, {}, "again"), (large, {}, "first"), (large, {}, "again")]
        # torch's cache given back after each image (the default gives it back only from a card the job
        # fills: devices.worth_releasing), and kept (as segment_files runs many images)
        jobs += [(large, {"release_memory": True}, "again"), (large, {"release_memory": False}, "again")]
        jobs += [(large, {"fuse": False}, "again"), (large, {"on_device": False, "fuse": False}, "again")]
    rows = []
    for side, settings, run in jobs:
        rows += _end_to_end_job(model, device, label, objects, large_objects, side, settings, run)
    return rows


def _end_to_end_job(
    model: nu.Model,
    device: torch.device,
    label: str,
    objects: bool,
    large_objects: tuple[str, ...],
    side: int,
    settings: dict,
    run: str,
) -> list[dict]:
    """One row of :func:`end_to_end_section`: the image ``side`` pixels square with ``settings``."""
    gpu = device.type == "cuda"
    image = mosaic(side)
    config = nu.PredictConfig(device=device.type, **settings)
    nu.drain(nu.predict_probabilities(model, image[:512, :512], config))  # warm-up
    with_objects = objects and (side <= 512 or (run in large_objects and not settings))
    job = _job(model, device, config, image)
    before = None  # not before a first run on a GPU, which would then find cuDNN's choices made
    if not (gpu and run == "first"):
        before = network_rate(model.net, model.config, device, *job, 1.0, _kernels(model, device, config))
        model.net.to("cpu", memory_format=torch.contiguous_format)
    try:
        # a repeated run is timed REPEATS times and its median kept (the ratio varied by 6% between runs)
        samples = [end_to_end(model, image, device, with_objects, config) for _ in range(REPEATS[run])]
        samples.sort(key=lambda sample: sample["total_s"])
        row = {"model": label, "run": run, **samples[len(samples) // 2]}
        if gpu:
            row["release_memory"] = config.release_memory
        if len(samples) > 1:
            row["total_s_runs"] = [sample["total_s"] for sample in samples]
    except Exception as error:  # a run that fails is a result too; the others still run
        failed = {"model": label, "run": run, "image": side, **settings, "error": repr(error)[:300]}
        print("end-to-end", failed, flush=True)
        devices.release(device)
        return [failed]
    # the network alone at the same job, channels-last as the product runs it (on CPUs too), after the
    # runs and before them (network_only_before_after): the faster is the limit, as a machine's speed
    # drifts (a 2-core CPU by 20% within minutes)
    after = network_rate(model.net, model.config, device, *job, 1.0, row["kernels"])
    model.net.to("cpu", memory_format=torch.contiguous_format)
    rates = {"before": before["megapixels_per_s"] if before else None, "after": after["megapixels_per_s"]}
    limit = before if before and rates["before"] > rates["after"] else after
    row["network_only_megapixels_per_s"] = limit["megapixels_per_s"]
    row["network_only_tflops"] = limit["tflops"]
    row["network_only_before_after"] = [rates["before"], rates["after"]]
    row["ratio_to_classes"] = round(row["megapixels_per_s_to_classes"] / limit["megapixels_per_s"], 3)
    row["ratio_end_to_end"] = round(row["megapixels_per_s"] / limit["megapixels_per_s"], 3)
    if "total_s_runs" in row:
        pixels = image.size / 1e6
        row["ratio_runs"] = [round(pixels / t / limit["megapixels_per_s"], 3) for t in row.pop("total_s_runs")]
    print("end-to-end", row, flush=True)
    devices.release(device)
    return [row]


def _training_data() -> tuple[np.ndarray, np.ndarray]:
    """A 1024 x 1024 synthetic nuclei image, fully annotated (1 background, 2 nuclei)."""
    image, truth = synthetic_nuclei(SyntheticConfig(shape=(1024, 1024)), seed=1)
    return image, np.where(truth > 0, 2, 1).astype(np.uint8)


def training_rate(
    preset: str, device: torch.device, steps: int, batch: int, patch: int, norm: str = "", compile: str = "off"
) -> dict:
    """Steps/s and output pixels/s of ``fit`` with the default (elastic) augmentation, after 10 warm-up steps.

    With ``compile`` (``TrainConfig.compile``) the compilation falls in the first step, before the timing.
    """
    image, annotation = _training_data()
    model = nu.new_model(preset, ["nucleus"], seed=0, **({"norm": norm} if norm else {}))
    config = nu.TrainConfig(
        steps=steps, batch_size=batch, patch_size=patch, device=device.type, val_fraction=0.0, validate_every=10**9
    )
    if compile != "off":
        config = replace(config, compile=compile)
    size, out, _ = patch_geometry(model, config, device.type)
    start = time.perf_counter()
    times = {record.step: time.perf_counter() for record in nu.fit(model, [image], [annotation], config)}
    warm = min(10, steps // 3)
    seconds = times[steps] - times[warm]
    return {
        "preset": preset,
        "norm": model.config.norm,
        "batch": batch,
        "compile": compile,
        "patch": size,
        "output_patch": out,
        "steps_per_s": round((steps - warm) / seconds, 2),
        "seconds_to_step_10": round(times[warm] - start, 1),  # compilation included
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
    if results.get("note"):
        lines += [results["note"], ""]
    if results.get("carried_over"):
        earlier = ", ".join(f"{section} ({date})" for section, date in results["carried_over"].items())
        lines += [f"Sections not run this time, kept from earlier runs on the same device: {earlier}.", ""]
    for section in ("network", "profile", "end_to_end", "training", "first_preview"):
        rows = results.get(section) or []
        if not rows:
            continue
        keys = list(dict.fromkeys(k for row in rows for k in row))
        lines += [f"## {section}", "", "| " + " | ".join(keys) + " |", "|" + " --- |" * len(keys)]
        lines += ["| " + " | ".join(str(row.get(k, "")) for k in keys) + " |" for row in rows]
        lines.append("")
    return "\n".join(lines)


#: The sections of a results file (first_preview is measured with training).
SECTIONS = {"network": "network", "profile": "profile", "end_to_end": "end_to_end", "training": "training",
            "first_preview": "training"}  # fmt: skip


def carry_over(results: dict, path: Path, sections: list[str] | None) -> None:
    """Keep the sections of an earlier results file on the same device that this run does not measure
    (a short GPU session may run some sections only), noting the date each was measured; a quick run
    (``sections`` None) keeps nothing."""
    if sections is None or not path.exists():
        return
    earlier = json.loads(path.read_text())
    if earlier.get("device") != results["device"]:
        return
    carried = dict(earlier.get("carried_over", {}))
    for section, measured_by in SECTIONS.items():
        if measured_by in sections or section not in earlier:
            carried.pop(section, None)
            continue
        results[section] = earlier[section]
        carried.setdefault(section, earlier.get("date", "unknown date"))
    if carried:
        results["carried_over"] = carried


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
    carry_over(results, RESULTS / f"{name}.json", args.sections if not args.quick else None)

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
        from napari_unet.models.starting import starting_model_path

        if starting_model_path() is not None:
            starting = nu.starting.load_starting_model()
            rows += end_to_end_section(
                starting,
                device,
                args.quick,
                "starting model (light)",
                objects=True,
                large_objects=("first",) if gpu else ("first", "again"),  # the 8192 image's objects once
            )
        results["end_to_end"] = rows
        save()
    if "training" in args.sections:
        jobs = (
            [("standard", 8, 0, ""), ("paper", 4, 572, ""), ("paper", 4, 572, "batch")]
            if gpu
            else [("light", 8, 0, "")]
        )
        # the paper preset with batch norm is the anchor's training step (BENCHMARKS.md)
        compiled_jobs = [
            ("paper", 4, 572, "batch", "default"),
            ("paper", 4, 572, "batch", "reduce-overhead"),
            ("standard", 8, 0, "", "default"),
        ]
        compiled_jobs = compiled_jobs if gpu and not args.quick else []
        steps = 12 if args.quick else (200 if gpu else 30)
        results["training"] = []
        for job_preset, batch, patch, norm, *compile in [*jobs, *compiled_jobs]:
            try:
                results["training"].append(training_rate(job_preset, device, steps, batch, patch, norm, *compile))
            except Exception as error:  # a run that fails is a result too
                row = {"preset": job_preset, "norm": norm, "compile": compile, "error": repr(error)[:300]}
                results["training"].append(row)
            print("training", results["training"][-1], flush=True)
            save()
        results["first_preview"] = [first_preview(jobs[0][0], device, jobs[0][1], jobs[0][2])]
        print("first preview", results["first_preview"][-1], flush=True)
    if "profile" in args.sections and gpu:
        results["profile"] = []
        for kernels in ("eager", "fused"):
            try:
                results["profile"] += kernel_profile(model, device, 1836, 1, kernels)
            except Exception as error:  # the profile is a diagnosis; a failure must not stop the run
                results["profile"].append({"kernels": kernels, "error": repr(error)[:300]})
        save()
    if "compiled" in args.sections and gpu:  # last: about a minute of compilation
        results["network"] = results.get("network", []) + network_section(model, device, args.quick, compiled=True)
    save()
    print(markdown(results))


if __name__ == "__main__":
    main()
