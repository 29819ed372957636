"""Where a GPU waits: busy time, idle gaps and what the host was doing in them, from a Chrome trace.

    python benchmarks/trace_gaps.py TRACE.json.gz [--gap-ms 0.3] [--top 15]

Reads a torch.profiler Chrome trace (``benchmarks/gpu_probe.py`` writes them), and prints for each CUDA
stream its busy share of the traced span, then the longest gaps during which no stream computed, each
with the host operations running at its start, and the GPU time by kernel name.
"""

from __future__ import annotations

import argparse
import gzip
import json
from collections import defaultdict
from itertools import pairwise


def load(path: str) -> list[dict]:
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rt") as f:
        trace = json.load(f)
    return [e for e in trace["traceEvents"] if e.get("ph") == "X"]


def union(intervals: list[tuple[float, float]]) -> list[tuple[float, float]]:
    merged: list[list[float]] = []
    for start, end in sorted(intervals):
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    return [(a, b) for a, b in merged]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("trace")
    parser.add_argument("--gap-ms", type=float, default=0.3)
    parser.add_argument("--top", type=int, default=15)
    args = parser.parse_args()
    events = load(args.trace)
    gpu = [e for e in events if e.get("cat") in ("kernel", "gpu_memcpy", "gpu_memset")]
    host = [e for e in events if e.get("cat") in ("cpu_op", "python_function", "user_annotation")]
    everything = [(e["ts"], e["ts"] + e["dur"]) for e in gpu + host]
    span = (min(a for a, _ in everything), max(b for _, b in everything))
    total = span[1] - span[0]
    print(f"traced span {total / 1e3:.1f} ms, {len(gpu)} GPU events, {len(host)} host events")
    by_stream = defaultdict(list)
    for e in gpu:
        by_stream[(e["cat"] == "kernel", e["args"].get("stream"))].append((e["ts"], e["ts"] + e["dur"]))
    for (kernel, stream), intervals in sorted(by_stream.items(), key=lambda kv: str(kv[0])):
        busy = sum(b - a for a, b in union(intervals))
        kind = "kernels" if kernel else "copies/sets"
        print(f"stream {stream} {kind}: busy {busy / 1e3:.1f} ms ({busy / total:.0%}), {len(intervals)} events")
    compute = union([(e["ts"], e["ts"] + e["dur"]) for e in gpu if e["cat"] == "kernel"])
    print(f"any kernel running: {sum(b - a for a, b in compute) / 1e3:.1f} ms of {total / 1e3:.1f}")
    first, last = compute[0][0], compute[-1][1]
    print(f"before the first kernel {(first - span[0]) / 1e3:.1f} ms, after the last {(span[1] - last) / 1e3:.1f} ms")
    gaps = [(b, c) for (_, b), (c, _) in pairwise(compute) if c - b > args.gap_ms * 1e3]
    gaps = [(span[0], first), *gaps, (last, span[1])]
    print(f"\nlongest idle gaps of the kernels (over {args.gap_ms} ms), with the host ops running at their start:")
    for start, end in sorted(gaps, key=lambda g: g[0] - g[1])[: args.top]:
        running = [e for e in host if e["ts"] <= start + 1 <= e["ts"] + e["dur"] and e["dur"] > 50]
        running.sort(key=lambda e: -e["dur"])
        names = "; ".join(f"{e['name'][:60]} ({e['dur'] / 1e3:.1f} ms)" for e in running[:4])
        print(f"  at {(start - span[0]) / 1e3:8.1f} ms: {(end - start) / 1e3:6.2f} ms  | {names}")
    kernels = defaultdict(float)
    for e in gpu:
        kernels[e["name"][:90]] += e["dur"]
    print("\nGPU time by kernel:")
    for name, dur in sorted(kernels.items(), key=lambda kv: -kv[1])[: args.top]:
        print(f"  {dur / 1e3:8.2f} ms  {name}")


if __name__ == "__main__":
    main()
