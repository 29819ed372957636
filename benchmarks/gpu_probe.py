"""GPU probe: traces and variants that explain the gaps the speed benchmark shows (one short CUDA run).

    OUT=/tmp/probe python benchmarks/gpu_probe.py [--parts e2e_trace train_trace step_variants]

- ``e2e_trace``: a torch.profiler trace of one 8192 x 8192 uint16 prediction to classes (paper preset,
  the product's defaults, after a first run), with the wall time of each phase;
- ``train_trace``: a trace of a few steps of ``fit`` (paper preset with batch norm, batch 4, 572 patches);
- ``repeat``: the 8192 image nine more times (three giving torch's GPU cache back after each) beside
  bursts of the network alone (a second sample of the headline figure);
- ``compiled_training``: fit of the paper preset with batch norm and CUDA graphs;
- ``blockwise``: the starting model on the 8192 image block by block into zarr, against in memory (needs
  dask and zarr);
- ``step_variants``: one optimisation step on a fixed batch (same network and batch) run as the product
  runs it, without the gradient scaler, as one CUDA graph of the whole step, and with torch.compile of
  the network: steps/s of each, to show what the loop's host work and the kernels themselves cost.

Traces go to $OUT as gzipped Chrome traces (read them with benchmarks/trace_gaps.py); the figures to
$OUT/probe.json, and a table is printed last.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import napari_unet as nu
from napari_unet import devices
from napari_unet.train.losses import weighted_cross_entropy
from speed import _training_data, end_to_end, mosaic, network_rate, training_rate

OUT = Path(os.environ.get("OUT", "/tmp/probe"))


def save_trace(profile: torch.profiler.profile, name: str) -> None:
    """The profile as a gzipped Chrome trace in $OUT."""
    raw = OUT / f"{name}.json"
    profile.export_chrome_trace(str(raw))
    with open(raw, "rb") as source, gzip.open(f"{raw}.gz", "wb") as target:
        shutil.copyfileobj(source, target)
    raw.unlink()


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def profiler() -> torch.profiler.profile:
    activities = [torch.profiler.ProfilerActivity.CPU, torch.profiler.ProfilerActivity.CUDA]
    return torch.profiler.profile(activities=activities)


def e2e_trace(device: torch.device, name: str = "e2e_trace") -> dict:
    """Trace of one 8192^2 segmentation to classes with the product's defaults, after a first one."""
    model = nu.new_model("paper", ["nucleus"], seed=0)
    image = mosaic(8192)
    config = nu.PredictConfig(device="cuda")
    times = {}
    for run in ("first", "again", "traced"):
        torch.cuda.synchronize()
        start = time.perf_counter()
        if run == "traced":
            with profiler() as profile:
                result = nu.drain(nu.iter_segment(model, image, config, objects=False))
        else:
            result = nu.drain(nu.iter_segment(model, image, config, objects=False))
        times[run] = round(time.perf_counter() - start, 3)
        del result  # freeing 0.9 GB of results (tens of ms) outside the timing, as speed.py does
    save_trace(profile, name)
    return times


def train_trace(device: torch.device) -> dict:
    """Trace of steps 30-45 of ``fit`` (paper + batch norm, batch 4, 572)."""
    image, annotation = _training_data()
    model = nu.new_model("paper", ["nucleus"], seed=0, norm="batch")
    config = nu.TrainConfig(
        steps=46, batch_size=4, patch_size=572, device="cuda", val_fraction=0.0, validate_every=10**9
    )
    profile = profiler()
    stamps = {}
    for record in nu.fit(model, [image], [annotation], config):
        stamps[record.step] = time.perf_counter()
        if record.step == 30 and not record.done:
            profile.start()
        if record.step == 45:
            profile.stop()
    save_trace(profile, "train_trace")
    return {"steps_per_s_30_45": round(15 / (stamps[45] - stamps[30]), 2)}


def network_fused(device: torch.device) -> dict:
    """The fused network alone at the 8192 job's tile and batch (1836, 4): the defaults (twice, for the
    spread), the first layer as a convolution, torch's pooling kernel; eager beside them."""
    from napari_unet.models import fused_inference as fused

    model = nu.new_model("paper", ["nucleus"], seed=0)
    rows = {"eager": network_rate(model.net, model.config, device, 1836, 4, "bf16", True, 1.5)["tflops"]}
    variants = [("defaults", {}), ("first_layer_conv", {"first": "conv"}), ("pool_max_pool2d", {"pool": "max_pool2d"})]
    for name, change in [*variants, variants[0]]:
        fused.CUDA_FIRST_LAYER["mode"] = change.get("first", "gemm")
        fused.CUDA_POOLING["mode"] = change.get("pool", "reshape")
        rate = network_rate(model.net, model.config, device, 1836, 4, "bf16", True, 1.5, "fused")["tflops"]
        rows.setdefault(f"fused_{name}", []).append(rate)
    fused.CUDA_FIRST_LAYER["mode"], fused.CUDA_POOLING["mode"] = "gemm", "reshape"
    return rows


def network_burst(model: nu.Model, device: torch.device, tile: int, tiles: int, batch: int) -> float:
    """Seconds the fused network alone takes for ``tiles`` tiles in batches of ``batch`` (the last one
    smaller), from idle to idle: the network's share of one end-to-end run, with its clocks and its
    last, smaller batch."""
    from napari_unet.models.fused_inference import FusedUNet

    with torch.inference_mode():
        net = FusedUNet(model.net, dtype=torch.bfloat16, device=device)
        x = torch.randn(batch, model.in_channels, tile, tile, device=device).contiguous(
            memory_format=torch.channels_last
        )
        sizes = [batch] * (tiles // batch) + ([tiles % batch] if tiles % batch else [])
        net(x[: sizes[-1]])  # the last batch's shape, seen once, as the end-to-end run has
        sync(device)
        start = time.perf_counter()
        for size in sizes:
            net(x[:size])
        sync(device)
        return time.perf_counter() - start


def repeat(device: torch.device) -> dict:
    """A second sample of the headline figure: the 8192 image nine more times against the network alone.

    Six runs with the defaults, then three giving torch's GPU cache back after each image
    (``release_memory=True``; by default a large card keeps it). Each run is followed by a burst of the
    network alone on the same tiles and batches (:func:`network_burst`), and the steady-state limit is
    measured before and after the runs: the spread of the ratio is either the pipeline's (the bursts stay
    put) or the GPU's (they move too).
    """
    model = nu.new_model("paper", ["nucleus"], seed=0)
    image = mosaic(8192)
    config = nu.PredictConfig(device="cuda")
    nu.drain(nu.iter_segment(model, image, config, objects=False))  # the first image
    first = end_to_end(model, image, device, False, config)
    tile, batch, tiles = first["tile"], first["batch"], first["tiles"]
    before = network_rate(model.net, model.config, device, tile, batch, "bf16", True, 2.0, "fused")
    runs = {"defaults": (config, 6), "given_back": (nu.PredictConfig(device="cuda", release_memory=True), 3)}
    rows, bursts = {name: [] for name in runs}, {name: [] for name in runs}
    for name, (run_config, times) in runs.items():
        for _ in range(times):
            rows[name].append(end_to_end(model, image, device, False, run_config))
            bursts[name].append(network_burst(model, device, tile, tiles, batch))
    devices.release(device)
    limit = network_rate(model.net, model.config, device, tile, batch, "bf16", True, 2.0, "fused")
    model.net.to("cpu", memory_format=torch.contiguous_format)
    pixels = image.size / 1e6
    result: dict = {"network_only_tflops_before_after": [before["tflops"], limit["tflops"]]}
    for name in runs:
        result[name] = {
            "end_to_end_s": [row["classes_s"] for row in rows[name]],
            "ratios": [round(pixels / row["classes_s"] / limit["megapixels_per_s"], 3) for row in rows[name]],
            "phases_s": [(row["before_tiles_s"], row["tiles_s"], row["after_tiles_s"]) for row in rows[name]],
            "network_burst_s": [round(b, 4) for b in bursts[name]],
            "ratios_to_burst": [round(b / r["classes_s"], 3) for b, r in zip(bursts[name], rows[name], strict=True)],
        }
    return result


def compiled_training(device: torch.device) -> dict:
    """fit of the paper preset with batch norm compiled with CUDA graphs, its warm-up included."""
    return training_rate("paper", device, 200, 4, 572, "batch", "reduce-overhead")


def blockwise(device: torch.device) -> dict:
    """The starting model on an 8192 x 8192 image block by block into zarr (2048-pixel blocks, four
    threads taking turns on the GPU, objects merged across borders), against the image in memory:
    seconds, and how many pixels' classes agree."""
    import tempfile

    import dask
    import zarr

    from napari_unet.blockwise.config import BlockConfig
    from napari_unet.blockwise.zarr_output import iter_segment_zarr
    from napari_unet.models.starting import load_starting_model

    model = load_starting_model()
    image = mosaic(8192)
    config = nu.PredictConfig(device="cuda")
    nu.segment(model, image[:2048, :2048], config)  # warm-up
    start = time.perf_counter()
    whole = nu.segment(model, image, config)
    in_memory_s = time.perf_counter() - start
    with tempfile.TemporaryDirectory() as folder, dask.config.set(scheduler="threads", num_workers=4):
        outputs = {kind: Path(folder) / f"mosaic_{kind}.zarr" for kind in ("segmentation", "objects")}
        start = time.perf_counter()
        nu.drain(iter_segment_zarr(model, image, outputs, config, blocks=BlockConfig()))
        blockwise_s = time.perf_counter() - start
        classes = zarr.open_array(outputs["segmentation"], mode="r")[:]
        n_objects = len(np.unique(zarr.open_array(outputs["objects"], mode="r")[:])) - 1
    return {
        "in_memory_s": round(in_memory_s, 2),
        "blockwise_s": round(blockwise_s, 2),
        "classes_agree": round(float((classes == whole.classes).mean()), 5),
        "objects_in_memory_blockwise": [len(np.unique(whole.objects)) - 1, n_objects],
    }


def step_variants(device: torch.device, seconds: float = 3.0) -> dict:
    """Steps/s of one step on a fixed batch: as the product, without the scaler, CUDA graph, compiled."""
    results = {}
    for variant in ("product", "no_scaler", "graph", "compiled"):
        try:
            results[variant] = _one_variant(variant, device, seconds)
        except Exception as error:  # a variant that fails is a result too
            results[variant] = {"error": repr(error)[:300]}
        print("step", variant, results[variant], flush=True)
    return results


def _one_variant(variant: str, device: torch.device, seconds: float, batch: int = 4, patch: int = 572) -> dict:
    torch.manual_seed(0)
    model = nu.new_model("paper", ["nucleus"], seed=0, norm="batch")
    net = model.net.to(device, memory_format=torch.channels_last).train()
    x = torch.randn(batch, 1, patch, patch, device=device).contiguous(memory_format=torch.channels_last)
    out = model.config.output_size(patch)
    y = torch.randint(0, 3, (batch, out, out), device=device, dtype=torch.uint8)
    w = torch.rand(batch, out, out, device=device)
    graph = variant == "graph"
    optimizer = torch.optim.AdamW(net.parameters(), lr=1e-4, fused=device.type == "cuda", capturable=graph)
    scaler = torch.amp.GradScaler(device.type, init_scale=1.0, enabled=variant == "product")
    module = torch.compile(net, dynamic=False) if variant == "compiled" else net

    def step() -> torch.Tensor:
        with torch.autocast(device.type, dtype=torch.bfloat16):
            logits = module(x)
        loss = weighted_cross_entropy(logits, y, w)
        optimizer.zero_grad(set_to_none=not graph)
        if variant == "product":
            loss = loss * torch.where(torch.isfinite(loss.detach()), 1.0, float("nan"))
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update(1.0)
        return loss.detach()

    start = time.perf_counter()
    if graph:
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(3):
                step()
        torch.cuda.current_stream().wait_stream(side)
        cuda_graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(cuda_graph):
            step()
        run = cuda_graph.replay
    else:
        run = step
        for _ in range(3):
            step()
    sync(device)
    warm_up = time.perf_counter() - start
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        for _ in range(10):
            run()
        n += 10
        sync(device)
    rate = n / (time.perf_counter() - start)
    return {"steps_per_s": round(rate, 2), "warm_up_s": round(warm_up, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parts", nargs="+", default=["network_fused", "e2e_trace", "train_trace", "step_variants"])
    args = parser.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    device = devices.select_device("cuda")
    results: dict = {"device": devices.describe(device), "torch": torch.__version__}
    for part in args.parts:
        start = time.perf_counter()
        try:
            results[part] = globals()[part](device)
        except Exception as error:  # each part on its own: one failure keeps the others
            results[part] = {"error": repr(error)[:300]}
        print(part, round(time.perf_counter() - start, 1), "s:", results[part], flush=True)
        (OUT / "probe.json").write_text(json.dumps(results, indent=2) + "\n")
        devices.release(device)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    np.set_printoptions(precision=3)
    main()
