"""Segmenting many image files into label TIFFs: the work behind ``napari-unet predict`` and batch export."""

from __future__ import annotations

from collections.abc import Generator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from . import device as devices
from .bundle import Model
from .errors import InputError
from .io import IMAGE_SUFFIXES, read_image, write_labels, write_probabilities
from .lazy_io import is_zarr
from .predict import PredictConfig, iter_segment
from .tiling import TileProgress


@dataclass(frozen=True)
class BatchProgress:
    """Progress of a batch: ``done`` of ``total`` images finished; ``tile`` is set while one is running."""

    done: int
    total: int
    name: str
    tile: TileProgress | None = None


SUFFIXES = frozenset(IMAGE_SUFFIXES)


def expand_images(paths: Sequence[str | Path]) -> list[Path]:
    """Files as given, folders replaced by their image files and zarr images (sorted by name).

    Raises
    ------
    InputError
        If a path does not exist or a folder holds no images.
    """
    found: list[Path] = []
    for name in paths:
        path = Path(name)
        if is_zarr(path):
            if not path.exists():
                raise InputError(f"{path} does not exist")
            found.append(path)
        elif path.is_dir():
            files = sorted(p for p in path.iterdir() if is_zarr(p) or (p.is_file() and p.suffix.lower() in SUFFIXES))
            if not files:
                raise InputError(f"the folder {path} holds no images ({', '.join(IMAGE_SUFFIXES)}, .zarr)")
            found.extend(files)
        elif path.is_file():
            if path.suffix.lower() not in IMAGE_SUFFIXES:
                kinds = ", ".join(IMAGE_SUFFIXES)
                raise InputError(f"{path}: unknown image type {path.suffix!r}; use one of {kinds}")
            found.append(path)
        else:
            raise InputError(f"{path} does not exist")
    return found


def image_stem(path: Path) -> str:
    """File name without its image suffixes (``cells.ome.tif`` and ``cells.ome.zarr`` give ``cells``)."""
    name = path.name
    for suffix in (".zarr", *IMAGE_SUFFIXES):
        if name.lower().endswith(suffix):
            name = name[: -len(suffix)]
            break
    return name[:-4] if name.lower().endswith(".ome") else name


def output_paths(
    images: Sequence[Path], folder: Path, kinds: Sequence[str], suffix: str = ".tif"
) -> list[dict[str, Path]]:
    """``folder/<stem>_<kind><suffix>`` for every image; stems must be unique."""
    stems = [image_stem(p) for p in images]
    duplicates = sorted({s for s in stems if stems.count(s) > 1})
    if duplicates:
        raise InputError(f"several inputs are named {duplicates[0]}; their outputs would collide")
    return [{k: folder / f"{stem}_{k}{suffix}" for k in kinds} for stem in stems]


def prepare_outputs(
    images: Sequence[Path], folder: Path, objects: bool, probabilities: bool, overwrite: bool, suffix: str = ".tif"
) -> list[dict[str, Path]]:
    """The output paths of every image, checked before any work starts; creates ``folder``.

    Raises
    ------
    InputError
        If ``folder`` is a file, two inputs would write the same outputs, or an output exists and
        ``overwrite`` is false.
    """
    if folder.exists() and not folder.is_dir():
        raise InputError(f"{folder} is a file; give a folder for the outputs")
    kinds = ["segmentation"] + (["objects"] if objects else []) + (["probabilities"] if probabilities else [])
    outputs = output_paths(images, folder, kinds, suffix)
    if not overwrite:
        existing = [path for out in outputs for path in out.values() if path.exists()]
        if existing:
            raise InputError(f"{existing[0]} exists already; allow overwriting or choose another folder")
    folder.mkdir(parents=True, exist_ok=True)
    return outputs


def segment_files(
    model: Model,
    images: Sequence[Path],
    folder: Path,
    objects: bool = True,
    probabilities: bool = False,
    overwrite: bool = False,
    config: PredictConfig | None = None,
    channel_axis: int | None = None,
) -> Generator[BatchProgress, None, list[dict[str, Path]]]:
    """Segment image files into ``folder``: ``<stem>_segmentation.tif`` and optionally objects, probabilities.

    Every output is checked before any work starts (existing files need ``overwrite``), and each file is
    written atomically, so a failure or a stop leaves only whole files.
    """
    outputs = prepare_outputs(images, folder, objects, probabilities, overwrite)
    total = len(images)
    config = config or PredictConfig()
    each = replace(config, release_memory=False)
    # the GPU memory cached for one image serves the next; given back after the last (if asked)
    with devices.released(devices.select_device(config.device), config.release_memory):
        for done, (path, out) in enumerate(zip(images, outputs, strict=True)):
            image = read_image(path)
            job = iter_segment(model, image, each, objects=objects, channel_axis=channel_axis)
            while True:
                try:
                    tile = next(job)
                except StopIteration as stop:
                    result = stop.value
                    break
                yield BatchProgress(done, total, path.name, tile)
            write_labels(out["segmentation"], result.classes, overwrite=overwrite)
            if objects:
                write_labels(out["objects"], result.objects, overwrite=overwrite)
            if probabilities:
                write_probabilities(out["probabilities"], result.probabilities, overwrite=overwrite)
            yield BatchProgress(done + 1, total, path.name)
    return outputs
