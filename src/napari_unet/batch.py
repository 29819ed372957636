"""Segmenting many image files into label TIFFs: the work behind ``napari-unet predict`` and batch export."""

from __future__ import annotations

from collections.abc import Generator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from napari_unet import devices
from napari_unet.blockwise.config import BlockConfig
from napari_unet.blockwise.route import IN_MEMORY, Route, route_for_file
from napari_unet.blockwise.zarr_output import iter_segment_zarr
from napari_unet.errors import InputError
from napari_unet.images.files import IMAGE_SUFFIXES, read_image, write_labels, write_probabilities
from napari_unet.images.lazy import is_zarr, open_lazy
from napari_unet.models.model import Model
from napari_unet.predict.config import PredictConfig
from napari_unet.predict.segment import iter_segment
from napari_unet.progress import TileProgress


@dataclass(frozen=True)
class BatchProgress:
    """Progress of a batch: ``done`` of ``total`` images finished; ``tile`` is set while one is running.

    ``note`` says, once for an image, something its user should know (that it goes block by block
    into zarr, and why).
    """

    done: int
    total: int
    name: str
    tile: TileProgress | None = None
    note: str = ""


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
    images: Sequence[Path], folder: Path, kinds: Sequence[str], suffix: str | Sequence[str] = ".tif"
) -> list[dict[str, Path]]:
    """``folder/<stem>_<kind><suffix>`` for every image (one ``suffix``, or one each); stems must be unique."""
    stems = [image_stem(p) for p in images]
    duplicates = sorted({s for s in stems if stems.count(s) > 1})
    if duplicates:
        raise InputError(f"several inputs are named {duplicates[0]}; their outputs would collide")
    suffixes = [suffix] * len(stems) if isinstance(suffix, str) else list(suffix)
    return [{k: folder / f"{stem}_{k}{end}" for k in kinds} for stem, end in zip(stems, suffixes, strict=True)]


def prepare_outputs(
    images: Sequence[Path],
    folder: Path,
    objects: bool,
    probabilities: bool,
    overwrite: bool,
    suffix: str | Sequence[str] = ".tif",
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


def _read_whole(path: Path):
    """An image file read whole into memory (a zarr image too)."""
    if is_zarr(path):
        return np.asarray(open_lazy(path)[0])
    return read_image(path)


def segment_files(
    model: Model,
    images: Sequence[Path],
    folder: Path,
    objects: bool = True,
    probabilities: bool = False,
    overwrite: bool = False,
    config: PredictConfig | None = None,
    channel_axis: int | None = None,
    blocks: BlockConfig | None = None,
    every_image_blockwise: bool = False,
    client: object | None = None,
) -> Generator[BatchProgress, None, list[dict[str, Path]]]:
    """Segment image files into ``folder``: ``<stem>_segmentation.tif`` and optionally objects, probabilities.

    Every output is checked before any work starts (existing files need ``overwrite``), and each file is
    written atomically, so a failure or a stop leaves only whole files. With ``blocks``, zarr images and
    TIFFs too large for memory here (:func:`napari_unet.blockwise.route.route_for_file`) are segmented block
    by block into ``<stem>_<kind>.zarr`` instead (:func:`napari_unet.blockwise.zarr_output.iter_segment_zarr`),
    the reason given as the ``note`` of their first record; without, every image is read whole (and one too large
    is refused by the memory check before it is segmented). With ``every_image_blockwise`` (``blocks``
    then defaults to :class:`BlockConfig`), every image goes block by block into zarr, its blocks on the
    workers of a ``dask.distributed`` ``client`` if one is given, else on threads here.
    """
    if every_image_blockwise:
        blocks = blocks or BlockConfig()
        routes = [Route(True)] * len(images)
    else:
        routes = [route_for_file(path, model, objects, channel_axis) if blocks else IN_MEMORY for path in images]
    suffixes = [".zarr" if route.blockwise else ".tif" for route in routes]
    outputs = prepare_outputs(images, folder, objects, probabilities, overwrite, suffixes)
    total = len(images)
    config = config or PredictConfig()
    each = replace(config, release_memory=False)
    # the GPU memory cached for one image serves the next; given back after the last (if asked)
    with devices.released(devices.select_device(config.device), config.release_memory):
        for done, (path, out, route) in enumerate(zip(images, outputs, routes, strict=True)):
            if route.blockwise:
                yield BatchProgress(done, total, path.name, note=route.reason)
                image, found_axis = open_lazy(path)
                axis = channel_axis if channel_axis is not None else found_axis
                for tile in iter_segment_zarr(model, image, out, each, axis, blocks, overwrite, client):
                    yield BatchProgress(done, total, path.name, tile)
                yield BatchProgress(done + 1, total, path.name)
                continue
            image = _read_whole(path)
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


def segment_to_zarr(
    model: Model,
    images: Sequence[Path],
    folder: Path,
    objects: bool = True,
    probabilities: bool = False,
    overwrite: bool = False,
    config: PredictConfig | None = None,
    channel_axis: int | None = None,
    blocks: BlockConfig = BlockConfig(),
    client: object | None = None,
) -> Generator[BatchProgress, None, list[dict[str, Path]]]:
    """Segment images (zarr, OME-Zarr, TIFF; read lazily) block by block into zarr arrays in ``folder``.

    Writes ``<stem>_segmentation.zarr`` (classes), and optionally ``<stem>_objects.zarr`` and
    ``<stem>_probabilities.zarr``, each chunked like the blocks
    (:func:`napari_unet.blockwise.zarr_output.iter_segment_zarr`). Memory stays bounded by a few blocks per
    thread; with a ``dask.distributed`` ``client`` the blocks run on its workers, else on threads here.
    Every output is checked before any work starts, and each is moved into place only once complete;
    closing the generator stops after the blocks being computed. This is
    :func:`napari_unet.batch.segment_files` with every image block by block.
    """
    job = segment_files(
        model, images, folder, objects, probabilities, overwrite, config, channel_axis, blocks, True, client
    )
    return (yield from job)
