"""Larger than memory: block-wise prediction into zarr against the in-memory path, time and peak memory.

    python benchmarks/large_image.py [--device cpu] [--sides 2048 4096 8192] [--block 2048]

For each image side, a synthetic nuclei mosaic is written to a zarr array (1024-pixel chunks) and
segmented with the shipped starting model, each run in a fresh process:

- in memory: the whole image read into numpy, ``segment`` (probabilities, classes, objects), classes and
  objects written to zarr;
- block-wise: ``napari-unet predict --format zarr`` (``segment_to_zarr``), every block read, predicted,
  written and released.

Reports wall time, peak resident memory above the process's baseline (after imports and loading the
model), and checks that both give the same classes and the same objects (up to their ids).
Results go to benchmarks/results/large_image_<device>.json and .md.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results"


def peak_rss() -> int:
    """Peak resident memory of this process so far, in bytes (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def child(mode: str, image: Path, out: Path, device: str, block: int) -> dict:
    """One measurement, in this (fresh) process."""
    import zarr

    import napari_unet as nu
    from napari_unet.batch import segment_to_zarr
    from napari_unet.images.lazy import open_lazy, store_zarr

    model = nu.load_starting_model()
    config = nu.PredictConfig(device=device)
    nu.segment(model, np.zeros((64, 64), np.uint16), config)  # warm-up: allocators, oneDNN kernels
    baseline = peak_rss()
    start = time.perf_counter()
    if mode == "in_memory":
        array = zarr.open_array(str(image))[:]
        result = nu.segment(model, array, config)
        import dask.array as da

        store_zarr(
            {
                out / f"{image.stem}_segmentation.zarr": da.from_array(result.classes, chunks=block),
                out / f"{image.stem}_objects.zarr": da.from_array(result.objects, chunks=block),
            }
        )
    else:
        lazy, _ = open_lazy(image)
        del lazy
        for _ in segment_to_zarr(model, [image], out, config=config, blocks=nu.BlockConfig(block=block)):
            pass
    seconds = time.perf_counter() - start
    row = {"mode": mode, "seconds": round(seconds, 1), "peak_rss_gib": round((peak_rss() - baseline) / 2**30, 3)}
    if mode == "in_memory":  # what the product's check before segmenting in memory expects
        from napari_unet.predict.host_memory import segmentation_bytes

        meta = zarr.open_array(str(image))
        estimate = segmentation_bytes(meta.size, 1, meta.dtype.itemsize, model.n_classes, objects=True, loaded=False)
        row["estimated_gib"] = round(estimate / 2**30, 3)
    return row


def write_mosaic(path: Path, side: int) -> None:
    """A side x side synthetic nuclei mosaic of 1024 x 1024 tiles (different seeds) as a zarr array."""
    import zarr

    from napari_unet.images.synthetic import SyntheticConfig, synthetic_nuclei

    target = zarr.open_array(str(path), mode="w", shape=(side, side), chunks=(1024, 1024), dtype=np.uint16)
    tiles = [synthetic_nuclei(SyntheticConfig(shape=(1024, 1024)), seed=s)[0] for s in range(4)]
    for y in range(0, side, 1024):
        for x in range(0, side, 1024):
            target[y : y + 1024, x : x + 1024] = tiles[(y // 1024 + 2 * (x // 1024)) % 4][: side - y, : side - x]


def same_outputs(a: Path, b: Path, stem: str) -> dict:
    """Whether two output folders hold the same classes and the same objects up to ids."""
    import zarr

    classes_equal = bool(
        np.array_equal(
            zarr.open_array(str(a / f"{stem}_segmentation.zarr"))[:],
            zarr.open_array(str(b / f"{stem}_segmentation.zarr"))[:],
        )
    )
    first, second = (zarr.open_array(str(p / f"{stem}_objects.zarr"))[:] for p in (a, b))
    inside = first > 0
    pairs = np.unique(np.stack([first[inside], second[inside]]), axis=1).shape[1]
    n_first, n_second = len(np.unique(first[inside])), len(np.unique(second[second > 0]))
    same = bool(np.array_equal(inside, second > 0)) and pairs == n_first == n_second
    return {"classes_equal": classes_equal, "objects_same": same, "objects": int(n_first)}


def markdown(report: dict) -> str:
    lines = [
        f"# Larger than memory ({report['device']}, {report['date']})",
        "",
        f"Starting model (light preset); block {report['block']} px; peak memory above the process baseline; "
        "estimated: what napari-unet expects an in-memory segmentation to take (`host_memory.segmentation_bytes`, "
        "checked against the free memory before one starts).",
        "",
        "| side | Mpx | in memory s | in memory GiB | estimated GiB | block-wise s | block-wise GiB | same classes "
        "| same objects | objects |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for row in report["rows"]:
        m, b = row["in_memory"], row["blockwise"]
        lines.append(
            f"| {row['side']} | {row['side'] ** 2 / 1e6:.0f} | {m['seconds']} | {m['peak_rss_gib']} | "
            f"{m.get('estimated_gib', '')} | {b['seconds']} | "
            f"{b['peak_rss_gib']} | {row['classes_equal']} | {row['objects_same']} | {row['objects']} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--sides", type=int, nargs="+", default=[2048, 4096, 8192])
    parser.add_argument("--block", type=int, default=2048)
    parser.add_argument("--child", nargs=3, metavar=("MODE", "IMAGE", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        mode, image, out = args.child
        print(json.dumps(child(mode, Path(image), Path(out), args.device, args.block)))
        return
    from napari_unet.devices import describe, select_device

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for side in args.sides:
            image = Path(tmp) / f"mosaic{side}.zarr"
            write_mosaic(image, side)
            row = {"side": side}
            for mode in ("in_memory", "blockwise"):
                out = Path(tmp) / f"{mode}{side}"
                command = [sys.executable, __file__, "--device", args.device, "--block", str(args.block)]
                done = subprocess.run([*command, "--child", mode, str(image), str(out)], capture_output=True, text=True)
                if done.returncode:
                    raise SystemExit(done.stderr)
                row[mode] = json.loads(done.stdout.strip().splitlines()[-1])
            row.update(same_outputs(Path(tmp) / f"in_memory{side}", Path(tmp) / f"blockwise{side}", image.stem))
            print(row, flush=True)
            rows.append(row)
    report = {
        "device": describe(select_device(args.device)),
        "date": time.strftime("%Y-%m-%d"),
        "python": platform.python_version(),
        "block": args.block,
        "rows": rows,
    }
    name = "cpu" if args.device == "cpu" else "gpu"
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"large_image_{name}.json").write_text(json.dumps(report, indent=2) + "\n")
    (RESULTS / f"large_image_{name}.md").write_text(markdown(report))
    print(markdown(report))


if __name__ == "__main__":
    main()
