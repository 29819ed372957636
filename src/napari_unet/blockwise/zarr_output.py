"""One image segmented block by block into zarr folders: progress, a stop, objects made whole across blocks."""

from __future__ import annotations

import itertools
import re
from collections.abc import Generator, Mapping, Sequence
from pathlib import Path

import numpy as np

from napari_unet.blockwise.block_objects import merge_map, relabel
from napari_unet.blockwise.blocks import segment_lazy
from napari_unet.blockwise.config import BlockConfig
from napari_unet.errors import InputError
from napari_unet.images.lazy import iter_store_zarr
from napari_unet.models.model import Model
from napari_unet.predict.config import PredictConfig
from napari_unet.progress import TileProgress


def merge_cut_objects(objects, border_pairs: Sequence[np.ndarray]) -> int:
    """Give every piece of an object cut by block borders the same id, in a written zarr array.

    ``border_pairs`` are the elements of the computed :attr:`LazySegmentation.border_pairs`. Chunks are read one at a
    time and rewritten only where an id changes. Returns the number of ids replaced.
    """
    keys, roots = merge_map(list(border_pairs))
    if len(keys) == 0:
        return 0
    grid = [range(0, size, chunk) for size, chunk in zip(objects.shape, objects.chunks, strict=True)]
    for starts in itertools.product(*grid):
        box = tuple(slice(s, min(s + c, n)) for s, c, n in zip(starts, objects.chunks, objects.shape, strict=True))
        ids = objects[box]
        merged = relabel(ids, keys, roots)
        if merged is not ids:
            objects[box] = merged
    return len(keys)


def fresh_outputs(folder: Path, name: str, kinds: Sequence[str], suffix: str = ".zarr") -> dict[str, Path]:
    """``folder/<name>_<kind><suffix>`` for each kind, none of which exists yet; creates ``folder``.

    ``name`` is made safe for file names; where an output of that name exists, a number is added to
    the name (``cells-2_segmentation.zarr``) so that no earlier result is ever replaced.

    Raises
    ------
    InputError
        If ``folder`` is a file or cannot be created.
    """
    if folder.exists() and not folder.is_dir():
        raise InputError(f"{folder} is a file; choose a folder for the results")
    stem = re.sub(r"[^\w.-]+", "_", name).strip("._") or "image"
    for number in itertools.count(1):
        base = stem if number == 1 else f"{stem}-{number}"
        outputs = {kind: folder / f"{base}_{kind}{suffix}" for kind in kinds}
        if not any(path.exists() for path in outputs.values()):
            break
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise InputError(f"the results folder {folder} could not be created ({error.strerror})") from None
    return outputs


#: Progress message while the objects cut by block borders are merged, after all blocks are written.
MERGING_OBJECTS = "merging objects cut by block borders"


def iter_segment_zarr(
    model: Model,
    image,
    outputs: Mapping[str, Path],
    config: PredictConfig | None = None,
    channel_axis: int | None = None,
    blocks: BlockConfig = BlockConfig(),
    overwrite: bool = False,
    client: object | None = None,
) -> Generator[TileProgress, None, dict[str, Path]]:
    """Segment one image (numpy, zarr or dask array) block by block into zarr arrays, with progress and a stop.

    Parameters
    ----------
    model : Model
        The trained model (each thread or worker uses its own evaluation copy of it as it is now).
    image : numpy.ndarray, zarr.Array or dask.array.Array
        Any layout :func:`napari_unet.predict.segment.segment` accepts.
    outputs : mapping
        Where to write each result: "segmentation" (classes, required), "objects" and
        "probabilities" (written when given).
    config : PredictConfig, optional
        Device, tiles and object settings (per block).
    channel_axis : int, optional
        Channel axis of a multichannel image.
    blocks : BlockConfig
        Block size and the overlap that keeps objects whole across block borders.
    overwrite : bool
        Replace existing outputs (only once the new ones are complete); else they are an error.
    client : distributed.Client, optional
        Run the blocks on its workers (else on threads here).

    Yields :class:`TileProgress` records, block by block. Closing the generator stops it: the blocks
    being computed finish, no output is left (see :func:`napari_unet.images.lazy.iter_store_zarr`).
    Objects larger than ``blocks.overlap`` that cross a block border are merged into one id after all
    blocks are written (:func:`merge_cut_objects`), before the outputs are moved into place.
    """
    objects = "objects" in outputs
    result = segment_lazy(model, image, config or PredictConfig(), blocks, objects, channel_axis)
    arrays = {outputs["segmentation"]: result.classes}
    if objects:
        arrays[outputs["objects"]] = result.objects
    if "probabilities" in outputs:
        arrays[outputs["probabilities"]] = result.probabilities
    also, merge = [], None
    if result.border_pairs is not None:  # objects larger than the overlap, cut by block borders, made whole
        also = [result.border_pairs]

        def merge(targets, values, path=outputs["objects"]):
            merge_cut_objects(targets[path], list(values[0].ravel()))

    yield from iter_store_zarr(
        arrays, overwrite, scheduler=client, also=also, finish=merge, finish_message=MERGING_OBJECTS
    )
    return dict(outputs)
