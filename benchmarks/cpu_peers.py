"""The CPU path against its peers: torch eager (what the product runs) vs oneDNN through TorchScript and
ONNX Runtime, on the tiles the product picks, interleaved so that a noisy machine treats all alike.

    python benchmarks/cpu_peers.py [--preset light] [--rounds 5] [--seconds 1.5]

Issue 5 asks what the CPU path uses (threads, channels-last, bf16 or ONNX if it wins). Each round times
every variant for ``--seconds`` in turn (the order rotates between rounds); the median output megapixels/s
of each variant over the rounds is kept, with its speed-up over the product's path, and the one-time cost
of each peer (export, session, freezing), which a product would pay again after every training run
since the weights change. ONNX Runtime needs ``pip install onnxruntime onnx`` (a peer only, not a
dependency of the product); without it that variant is left out.

Results go to benchmarks/results/cpu_peers.json and .md.
"""

from __future__ import annotations

import argparse
import copy
import io
import json
import platform
import statistics
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import napari_unet as nu
from napari_unet.models.geometry import TileGeometry
from napari_unet.predict.job_size import job_size
from napari_unet.predict.tiling import plan_axis

RESULTS = Path(__file__).resolve().parent / "results"

Runner = Callable[[torch.Tensor], object]


def eager(net: torch.nn.Module, channels_last: bool) -> tuple[Runner, Callable[[torch.Tensor], torch.Tensor]]:
    """The network itself, as the product runs it on a CPU (channels-last) or in torch's default layout."""
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    net = copy.deepcopy(net).to(memory_format=memory_format)  # Module.to works in place: a copy of its own

    def run(x: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode():
            return net(x.contiguous(memory_format=memory_format))

    return run, run


def onednn(net: torch.nn.Module, example: torch.Tensor) -> tuple[Runner, Callable[[torch.Tensor], torch.Tensor]]:
    """TorchScript frozen and optimised for inference: batch norm folded, convolutions in oneDNN's layout."""
    net = copy.deepcopy(net).to(memory_format=torch.contiguous_format)
    with torch.no_grad():
        frozen = torch.jit.optimize_for_inference(torch.jit.freeze(torch.jit.trace(net, example)))

    def run(x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return frozen(x)

    return run, run


def onnxruntime_runner(net: torch.nn.Module, example: torch.Tensor) -> tuple[Runner, Callable]:
    """The network exported to ONNX for any tile size, run by ONNX Runtime's CPU provider on torch's threads."""
    import onnxruntime

    buffer = io.BytesIO()
    axes = {0: "batch", 2: "height", 3: "width"}
    net = copy.deepcopy(net).to(memory_format=torch.contiguous_format)
    with warnings.catch_warnings():  # the TorchScript exporter: one second, where the dynamo one takes several
        warnings.simplefilter("ignore")
        torch.onnx.export(
            net, (example,), buffer, input_names=["x"], output_names=["y"], dynamo=False,
            dynamic_axes={"x": axes, "y": axes},
        )  # fmt: skip
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()
    session = onnxruntime.InferenceSession(buffer.getvalue(), options, providers=["CPUExecutionProvider"])

    def run(x: torch.Tensor) -> np.ndarray:
        return session.run(None, {"x": x.contiguous().numpy()})[0]

    return run, lambda x: torch.from_numpy(run(x))


def has_onnxruntime() -> bool:
    try:
        import onnx  # noqa: F401  (the exporter needs it)
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True


def rate(run: Runner, x: torch.Tensor, output_side: int, seconds: float) -> float:
    """Output megapixels/s of ``run`` on ``x`` over about ``seconds`` (after one call)."""
    run(x)
    calls, start = 0, time.perf_counter()
    while calls < 2 or time.perf_counter() - start < seconds:
        run(x)
        calls += 1
    return calls * x.shape[0] * output_side**2 / 1e6 / (time.perf_counter() - start)


def product_tiles(model: nu.Model) -> dict[str, int]:
    """The tile the product picks on a CPU for a 512 x 512 and a 4096 x 4096 image."""
    device, geom = torch.device("cpu"), TileGeometry(model.config.depth, model.config.padding)
    tiles = {}
    for side in (512, 4096):
        tile, _ = job_size(model, device, nu.PredictConfig(device="cpu"), (side, side))
        tiles[f"{side}x{side} image"] = plan_axis(side, tile, geom).tile  # the tile predict_tiled really runs
    return tiles


def measure(preset: str, rounds: int, seconds: float) -> dict:
    model = nu.new_model(preset, ["nucleus"], seed=0)
    net = model.net.eval()
    config = model.config
    rows = []
    for job, tile in product_tiles(model).items():
        x = torch.randn(1, config.in_channels, tile, tile)
        side = config.output_size(tile)
        reference = eager(net, False)[1](x)
        variants: dict[str, Runner] = {}
        one_time: dict[str, float] = {}
        difference: dict[str, float] = {}
        builders = {
            "torch eager, channels-last (the product)": lambda: eager(net, True),
            "torch eager, contiguous": lambda: eager(net, False),
            "oneDNN (TorchScript frozen)": lambda x=x: onednn(net, x),
        }
        if has_onnxruntime():
            builders["ONNX Runtime (CPU provider)"] = lambda x=x: onnxruntime_runner(net, x)
        for name, build in builders.items():
            start = time.perf_counter()
            variants[name], as_tensor = build()
            one_time[name] = time.perf_counter() - start
            difference[name] = float((as_tensor(x) - reference).abs().max())
        samples: dict[str, list[float]] = {name: [] for name in variants}
        names = list(variants)
        for r in range(rounds):
            for name in names[r % len(names) :] + names[: r % len(names)]:
                samples[name].append(rate(variants[name], x, side, seconds))
        base = statistics.median(samples[names[0]])
        for name in names:
            median = statistics.median(samples[name])
            rows.append(
                {
                    "job": job,
                    "tile": tile,
                    "output_tile": side,
                    "variant": name,
                    "megapixels_per_s": round(median, 3),
                    "speedup": round(median / base, 2),
                    "rounds": [round(v, 3) for v in samples[name]],
                    "one_time_s": round(one_time[name], 2),
                    "max_difference": float(f"{difference[name]:.2e}"),
                }
            )
            print(rows[-1], flush=True)
    return {"preset": preset, "rows": rows}


def markdown(results: dict) -> str:
    lines = [
        f"# The CPU path against its peers ({results['machine']}, {results['date']})",
        "",
        f"`python benchmarks/cpu_peers.py`: {results['preset']} preset, {results['torch_threads']} threads, "
        f"torch {results['torch']}, onnxruntime {results['onnxruntime']}; medians of {results['rounds']} "
        "interleaved rounds; speed-up over the product's path on the same tile; one-time cost paid again after "
        "every training run.",
        "",
    ]
    keys = ["job", "tile", "output_tile", "variant", "megapixels_per_s", "speedup", "one_time_s", "max_difference"]
    lines += ["| " + " | ".join(keys) + " |", "| " + " | ".join("---" for _ in keys) + " |"]
    lines += ["| " + " | ".join(str(row[k]) for k in keys) + " |" for row in results["rows"]]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="light")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=1.5)
    parser.add_argument("--out", default="cpu_peers")
    args = parser.parse_args()
    version = "not installed"
    if has_onnxruntime():
        import onnxruntime

        version = onnxruntime.__version__
    results = {
        "machine": f"{platform.machine()} CPU, {torch.get_num_threads()} threads",
        "date": time.strftime("%Y-%m-%d"),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "onnxruntime": version,
        "rounds": args.rounds,
        **measure(args.preset, args.rounds, args.seconds),
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{args.out}.json").write_text(json.dumps(results, indent=2) + "\n")
    (RESULTS / f"{args.out}.md").write_text(markdown(results))
    print(markdown(results))


if __name__ == "__main__":
    main()
