"""A simulated biologist in the correction loop, with the random forest's loop (ilastik's) in the same run.

Round 0: scribbles (the protocol of docs/benchmarks.md), train, segment. Each later round: compare the
objects with the truth, pick the K worst mistakes as a person would (missed objects, merged pairs, split
objects, false objects; largest first), paint them on the objects layer (the true object whole with a new
label, the wrong ones erased), turn that into annotation with the Correct widget's code
(``nu.add_corrections``), retrain (Correct and retrain: the current model goes on) and
segment again. A round that finds no mistake on the painted images paints nothing and, as the Correct
widget, does not retrain. The random forest gets the same protocol, corrected where *it* is wrong.

    python benchmarks/correction_loop.py [--cases dsb synthetic rods isbi] [--seeds 0 1 2] [--rounds 3]
        [--errors 8] [--steps 300] [--retrain-steps 300] [--device cpu] [--out correction_loop]

Cases: ``dsb`` (DSB2018: one image, painted and corrected; no image is left unpainted), ``synthetic``
(touching synthetic nuclei: one image painted, three never painted), ``rods`` (touching rod-shaped
bacteria in phase contrast, synthetic: one painted, three never painted), ``isbi`` (ISBI 2012 EM, packed
cells: slices 0-19 painted, 20-29 never painted; a round's budget is shared among the 20).

Reports after every round the object F1@0.5 on the painted images and on the images never painted, the
painted share of pixels, the seconds of a round (the retrain + segmenting one painted image), timed with
the wall clock on this machine, and the training loss of the run's first and last 10 steps.
Writes benchmarks/results/<out>.json, <out>.md and <out>.png (F1 against rounds).
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import datasets
import napari_unet as nu
from anchors import RandomForestAnchor, distance_watershed
from napari_unet.devices import describe, select_device
from napari_unet.images.synthetic_rods import RodsConfig, synthetic_rods
from napari_unet.models.choice import model_for_training
from napari_unet.models.starting import STARTING
from napari_unet.objects.instances import classes_to_objects
from napari_unet.objects.metrics import foreground_iou, object_scores
from napari_unet.train.config import RETRAIN_STEPS
from protocols import isbi_scribbles, object_errors, paint_corrections, scribbles

RESULTS = Path(__file__).resolve().parent / "results"


@dataclass
class Case:
    """Images painted (and corrected) and images never painted, with their true objects."""

    name: str
    painted: list[tuple[np.ndarray, np.ndarray]]
    unpainted: list[tuple[np.ndarray, np.ndarray]]
    annotations: list[np.ndarray]
    shape: str = "round"
    notes: dict = field(default_factory=dict)


def cells_of(interior: np.ndarray) -> np.ndarray:
    """ISBI cells: the 4-connected components of the interior mask."""
    from scipy import ndimage

    return ndimage.label(interior)[0]


def make_case(name: str, seed: int) -> Case:
    """The images, truths and round-0 scribbles of a case for one seed."""
    if name == "dsb":
        image, truth = datasets.dsb2018()
        return Case(name, [(image, truth)], [], [scribbles(truth, seed=seed)])
    if name == "synthetic":
        sets = datasets.synthetic_touching(4, seed=100 * seed)
        return Case(name, sets[:1], sets[1:], [scribbles(sets[0][1], seed=seed)])
    if name == "rods":
        config = RodsConfig(shape=(384, 384))
        sets = [synthetic_rods(config, seed=100 * seed + i) for i in range(4)]
        return Case(name, sets[:1], sets[1:], [scribbles(sets[0][1], seed=seed)])
    if name == "isbi":
        images, interiors = datasets.isbi2012(range(20))
        tests, test_interiors = datasets.isbi2012(range(20, 30))
        painted = [(image, cells_of(interior)) for image, interior in zip(images, interiors, strict=True)]
        unpainted = [(image, cells_of(interior)) for image, interior in zip(tests, test_interiors, strict=True)]
        annotations = [isbi_scribbles(interior, seed=seed + k) for k, interior in enumerate(interiors)]
        return Case(name, painted, unpainted, annotations, shape="packed")
    raise SystemExit(f"unknown case {name!r}")


def mean_f1(pairs: list[tuple[np.ndarray, np.ndarray]], objects: list[np.ndarray]) -> float | None:
    """Mean object F1@0.5 over images, None for none."""
    if not pairs:
        return None
    return round(float(np.mean([object_scores(t, o).f1 for (_, t), o in zip(pairs, objects, strict=True)])), 4)


def mean_iou(pairs: list[tuple[np.ndarray, np.ndarray]], classes: list[np.ndarray]) -> float:
    """Mean foreground IoU over images."""
    return round(float(np.mean([foreground_iou(t, c) for (_, t), c in zip(pairs, classes, strict=True)])), 4)


def painted_wrong(annotations: list[np.ndarray], classes: list[np.ndarray]) -> float | None:
    """Share of the painted pixels whose predicted class is not the painted one, over the painted images.

    How well a model fits an annotation, the same measure whatever the loss weights and the patches
    drawn: the retrain should bring it back to where it was before the round's corrections.
    """
    if not classes:
        return None
    wrong = painted = 0
    for annotation, predicted in zip(annotations, classes, strict=True):
        inside = annotation > 0
        expected = np.where(annotation == 1, 0, annotation)  # painted background (1) is class 0
        wrong += int(np.count_nonzero(predicted[inside] != expected[inside]))
        painted += int(np.count_nonzero(inside))
    return round(wrong / max(painted, 1), 4)


def correct(case: Case, annotations: list[np.ndarray], objects: list[np.ndarray], classes, budget: int):
    """The annotations after a person mends the largest mistakes over the painted images, ``budget`` objects.

    The images share the budget in proportion to their mistakes' sizes (one image: all of it).
    """
    errors = [object_errors(truth, obj) for (_, truth), obj in zip(case.painted, objects, strict=True)]
    sizes = [sorted((e.size for e in found), reverse=True) for found in errors]
    largest = sorted(((size, k) for k, s in enumerate(sizes) for size in s), reverse=True)[:budget]
    shares = [sum(1 for _, k in largest if k == image) for image in range(len(errors))]
    updated, kinds = list(annotations), []
    for k, (found, share) in enumerate(zip(errors, shares, strict=True)):
        if not share:
            continue
        painted = paint_corrections(objects[k], case.painted[k][1], found, share)
        updated[k] = nu.add_corrections(annotations[k], classes[k], objects[k], objects=painted)
        kinds += [e.kind for e in found[:share]]
    return updated, kinds


class UNetLoop:
    """The product's loop: the starting model (Train's default), then Correct and retrain."""

    def __init__(self, case: Case, args, seed: int) -> None:
        self.case, self.args, self.seed = case, args, seed
        top = max(int(a.max()) for a in case.annotations)
        device_type = select_device(args.device).type
        self.model = model_for_training(STARTING, None, ["object"], 1, top, device_type, seed).model
        self.model.object_shape = case.shape
        self.predict = nu.PredictConfig(device=args.device, objects=nu.ObjectConfig.for_shape(case.shape))

    def train(self, annotations: list[np.ndarray], steps: int, retrain: bool) -> float:
        """Train (round 0) or retrain the current model; seconds."""
        config = nu.TrainConfig(steps=steps, device=self.args.device, seed=self.seed)
        if retrain and self.args.retrain_lr:
            config = replace(config, learning_rate=self.args.retrain_lr)
        losses: list[float] = []
        start = time.perf_counter()
        job = nu.fit(self.model, [image for image, _ in self.case.painted], annotations, config)
        nu.drain(job, lambda record: losses.append(record.loss))
        self.losses = (float(np.mean(losses[:10])), float(np.mean(losses[-10:])))
        return time.perf_counter() - start

    def segment(self, pairs) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """Objects and classes of every image."""
        results = [nu.segment(self.model, image, self.predict) for image, _ in pairs]
        return [r.objects for r in results], [r.classes for r in results]

    def notes(self) -> dict:
        """What the last run chose (learning rate, object rules) and its training loss, first and last steps."""
        last = self.model.history[-1]
        return {
            "loss_first": round(self.losses[0], 4),  # mean of the run's first 10 steps, and of its last 10
            "loss_last": round(self.losses[1], 4),
            "learning_rate": last["config"]["learning_rate"],
            "object_rules": last.get("object_rules"),
        }


class ForestLoop:
    """ilastik's loop: a random forest on multiscale features, refitted on the annotations every round."""

    def __init__(self, case: Case, args, seed: int) -> None:
        self.case, self.forest = case, None

    def train(self, annotations: list[np.ndarray], steps: int, retrain: bool) -> float:
        start = time.perf_counter()
        self.forest = RandomForestAnchor([image for image, _ in self.case.painted], annotations)
        return time.perf_counter() - start

    def segment(self, pairs) -> tuple[list[np.ndarray], list[np.ndarray]]:
        objects, classes = [], []
        for image, _ in pairs:
            if self.case.shape == "packed":  # the same post-processing as the U-Net's packed cells
                probabilities = self.forest.probabilities(image)
                predicted = np.where(probabilities[0] < 0.5, 2, 0).astype(np.uint8)
                found = classes_to_objects(predicted, nu.ObjectConfig.for_shape("packed", threshold=0.5), probabilities)
            else:
                predicted = self.forest.classes(image).astype(np.uint8)
                found = distance_watershed(predicted > 0)
            objects.append(found)
            classes.append(predicted)  # the classifier's own classes, as the U-Net's are its network's
        return objects, classes

    def notes(self) -> dict:
        return {}


def run_loop(method: str, case: Case, args, seed: int) -> list[dict]:
    """Every round of one method on one case and seed."""
    loop = (UNetLoop if method == "U-Net" else ForestLoop)(case, args, seed)
    annotations = list(case.annotations)
    rows, kinds, objects, classes = [], [], [], []
    for round_ in range(args.rounds + 1):
        wrong_before = None
        if round_:
            annotations, kinds = correct(case, annotations, objects, classes, args.errors)
            wrong_before = painted_wrong(annotations, classes)  # the model before the round, on the new paint
        # with no mistake left on the painted images there is nothing to paint, and the Correct widget
        # does not retrain ("no corrections found"): the model stays as it is
        retrained = not round_ or bool(kinds)
        train_seconds = (
            loop.train(annotations, args.retrain_steps if round_ else args.steps, round_ > 0) if retrained else 0.0
        )
        start = time.perf_counter()
        objects, classes = loop.segment(case.painted[:1])
        segment_seconds = time.perf_counter() - start
        if len(case.painted) > 1:
            more = loop.segment(case.painted[1:])
            objects, classes = objects + more[0], classes + more[1]
        unpainted = loop.segment(case.unpainted)[0] if case.unpainted else []
        row = {
            "case": case.name,
            "method": method,
            "seed": seed,
            "round": round_,
            "f1_painted": mean_f1(case.painted, objects),
            "f1_unpainted": mean_f1(case.unpainted, unpainted),
            "iou_painted": mean_iou(case.painted, classes),
            "painted_share": round(float(np.mean([(a > 0).mean() for a in annotations])), 5),
            "wrong_before": wrong_before,
            "wrong_after": painted_wrong(annotations, classes),
            "round_seconds": round(train_seconds + segment_seconds, 1),
            "train_seconds": round(train_seconds, 1),
            "segment_seconds": round(segment_seconds, 2),
            "corrected": kinds,
            "retrained": retrained,
            **(loop.notes() if retrained else {}),
        }
        print(json.dumps({k: v for k, v in row.items() if k != "object_rules"}), flush=True)
        rows.append(row)
    return rows


def summary(rows: list[dict]) -> list[dict]:
    """Mean over seeds per case, method and round."""
    groups: dict[tuple, list[dict]] = {}
    for row in rows:
        groups.setdefault((row["case"], row["method"], row["round"]), []).append(row)
    out = []
    for (case, method, round_), group in groups.items():
        mean = {}
        keys = ("f1_painted", "f1_unpainted", "painted_share", "round_seconds", "loss_first", "loss_last")
        for key in (*keys, "wrong_before", "wrong_after"):
            values = [r[key] for r in group if r.get(key) is not None]
            mean[key] = round(float(np.mean(values)), 4) if values else None
        # the seconds of a round that retrained: one with nothing to correct takes only the segmenting
        timed = [r for r in group if r.get("retrained", True)] or group
        seconds = [r["round_seconds"] for r in timed]
        mean["round_seconds"] = round(float(np.mean(seconds)), 4)
        mean["round_seconds_range"] = [min(seconds), max(seconds)]
        mean["retrained"] = sum(1 for r in group if r.get("retrained", True))
        out.append({"case": case, "method": method, "round": round_, "seeds": len(group), **mean})
    return out


def _losses(mean: dict) -> str:
    """The training loss of a round, first steps -> last steps, or '-' for a method without one."""
    if mean.get("loss_first") is None:
        return "-"
    return f"{mean['loss_first']:.3f} -> {mean['loss_last']:.3f}"


def _wrong(mean: dict) -> str:
    """Painted pixels the model gets wrong: before the round (on its new paint) -> after its retrain."""
    if mean.get("wrong_after") is None:
        return "-"
    before = "" if mean.get("wrong_before") is None else f"{100 * mean['wrong_before']:.1f}% -> "
    return f"{before}{100 * mean['wrong_after']:.1f}%"


def _seconds(mean: dict) -> str:
    """A round's seconds: the mean over the seeds that retrained, and the fastest and slowest seed's."""
    low, high = mean["round_seconds_range"]
    text = f"{mean['round_seconds']:.1f} ({low:.1f}-{high:.1f})"
    retrained = mean.get("retrained", mean["seeds"])
    if retrained == 0:
        return f"{text}, nothing to correct"
    return text if retrained == mean["seeds"] else f"{text}, {retrained} of {mean['seeds']} seeds retrained"


def write_markdown(path: Path, means: list[dict], meta: dict) -> None:
    """A table per case: F1 on the painted and on the unpainted images, round by round, both methods."""
    lines = [f"# Correction loop ({meta['device']}, {meta['date']})", "", f"`{meta['command']}`", ""]
    lines += [
        "F1@0.5 means over seeds; 'painted': the images painted and corrected (scored on what was painted); "
        "'never painted': images no stroke touched. Seconds: the round's retrain + segmenting one painted "
        "image, wall clock on this machine, over the seeds that retrained (a seed whose painted image had no "
        "mistake left paints nothing and does not retrain). Loss: the training loss of the round's first 10 "
        "steps -> its last 10 (on that round's annotation; weighted, on patches drawn around mistakes first, so rounds "
        "with gaps painted between objects weigh more). Painted wrong: share of the painted pixels of the "
        "painted images whose predicted class is not the painted one, the model before the round (on the "
        "round's new paint) -> after its retrain; the retrain fits the paint when this falls back to the "
        "previous round's 'after'.",
        "",
    ]
    for case in dict.fromkeys(m["case"] for m in means):
        lines += [
            f"## {case}",
            "",
            "| method | round | F1 painted | F1 never painted | painted share | seconds (range) | loss first -> last "
            "| painted wrong |",
        ]
        lines += ["| --- | --- | --- | --- | --- | --- | --- | --- |"]
        for m in (m for m in means if m["case"] == case):
            lines.append(
                f"| {m['method']} | {m['round']} | {m['f1_painted']} | {m['f1_unpainted'] or '-'} | "
                f"{m['painted_share']:.4f} | {_seconds(m)} | {_losses(m)} | {_wrong(m)} |"
            )
        lines.append("")
    path.write_text("\n".join(lines))


def plot(path: Path, means: list[dict]) -> None:
    """F1 against rounds per case: the U-Net's and the random forest's loops side by side."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cases = list(dict.fromkeys(m["case"] for m in means))
    figure, axes = plt.subplots(1, len(cases), figsize=(3.2 * len(cases), 3.0), squeeze=False)
    for axis, case in zip(axes[0], cases, strict=True):
        for method, colour in (("U-Net", "#3b8bd9"), ("random forest", "#e0457b")):
            rows = [m for m in means if m["case"] == case and m["method"] == method]
            key = "f1_unpainted" if rows and rows[0]["f1_unpainted"] is not None else "f1_painted"
            axis.plot([r["round"] for r in rows], [r[key] for r in rows], "o-", color=colour, label=method)
        axis.set_title(f"{case} ({'never painted' if key == 'f1_unpainted' else 'painted image'})", fontsize=9)
        axis.set_xlabel("round")
        axis.set_ylim(0, 1)
        axis.grid(alpha=0.3)
    axes[0][0].set_ylabel("object F1 @ 0.5")
    axes[0][0].legend(fontsize=8, loc="lower right")
    figure.tight_layout()
    figure.savefig(path, dpi=120)


def reused(paths: list[str]) -> list[dict]:
    """Rows of earlier runs (a results JSON, or the JSON lines this script prints) to keep, not run again."""
    rows: list[dict] = []
    for path in paths:
        text = Path(path).read_text()
        try:
            rows += json.loads(text)["rows"]
        except json.JSONDecodeError:  # one row per line
            rows += [json.loads(line) for line in text.splitlines() if line.startswith("{")]
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", nargs="+", default=["dsb", "synthetic", "rods", "isbi"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--errors", type=int, default=8, help="objects painted (or erased) per round")
    parser.add_argument("--steps", type=int, default=nu.TrainConfig().steps, help="round 0's training steps")
    parser.add_argument("--retrain-steps", type=int, default=RETRAIN_STEPS, help="steps of every retrain")
    parser.add_argument("--retrain-lr", type=float, default=None, help="learning rate of retrains (default: auto)")
    parser.add_argument("--methods", nargs="+", default=["U-Net", "random forest"])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", default="correction_loop")
    parser.add_argument(
        "--reuse",
        nargs="*",
        default=[],
        help="rows of earlier runs of this script (results JSON, or its printed lines) kept instead of run again",
    )
    args = parser.parse_args()
    if not datasets.available() and {"dsb", "isbi"} & set(args.cases):
        raise SystemExit("the benchmark data is missing: see docs/benchmarks.md (NAPARI_UNET_BENCH_DATA)")
    rows = [row for row in reused(args.reuse) if row["case"] in args.cases and row["seed"] in args.seeds]
    done = {(row["case"], row["method"], row["seed"]) for row in rows}
    for name in args.cases:
        for seed in args.seeds:
            methods = [method for method in args.methods if (name, method, seed) not in done]
            case = make_case(name, seed) if methods else None
            for method in methods:
                rows += run_loop(method, case, args, seed)
    means = summary(rows)
    meta = {
        "command": "python benchmarks/correction_loop.py " + " ".join(sys.argv[1:]),
        "reused": {path: Path(path).name for path in args.reuse},
        "device": describe(select_device(args.device)),
        "machine": platform.processor() or platform.machine(),
        "date": time.strftime("%Y-%m-%d"),
        "retrain_steps": args.retrain_steps,
        "steps": args.steps,
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{args.out}.json").write_text(json.dumps({"meta": meta, "means": means, "rows": rows}, indent=1))
    write_markdown(RESULTS / f"{args.out}.md", means, meta)
    plot(RESULTS / f"{args.out}.png", means)
    print((RESULTS / f"{args.out}.md").read_text())


if __name__ == "__main__":
    main()
