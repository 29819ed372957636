"""Segmenting images larger than memory into zarr, on this machine or on a dask.distributed cluster."""

from __future__ import annotations

import contextlib
import itertools
import os
import re
import socket
from collections.abc import Generator, Iterator, Mapping, Sequence
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np

from .batch import BatchProgress, prepare_outputs
from .block_objects import merge_map, relabel
from .blockwise import BlockConfig, segment_lazy
from .bundle import Model
from .errors import InputError
from .lazy_io import iter_store_zarr, open_lazy
from .predict import PredictConfig
from .tiling import TileProgress


def check_reachable(address: str, seconds: float = 5.0) -> None:
    """Fail fast, with the reason, when nothing listens at a scheduler's TCP address.

    Raises
    ------
    InputError
        If the address cannot be parsed or the connection is refused or times out.
    """
    parsed = urlsplit(address if "://" in address else f"tcp://{address}")
    if parsed.scheme not in ("tcp", "tls"):
        return  # other transports (inproc, ucx) are left to dask
    try:
        port = parsed.port or 8786
        with socket.create_connection((parsed.hostname or "localhost", port), timeout=seconds):
            pass
    except (OSError, ValueError) as error:
        raise InputError(f"could not reach the dask scheduler at {address} ({error})") from None


@contextlib.contextmanager
def dask_client(scheduler: str | None = None, workers: int = 0) -> Iterator[object | None]:
    """A ``dask.distributed`` client for the scheduler at ``scheduler``, or on a new local cluster.

    Parameters
    ----------
    scheduler : str, optional
        Address of a running scheduler ("tcp://host:8786"); its workers need napari-unet installed.
    workers : int
        Without ``scheduler``: start a ``LocalCluster`` of this many worker processes (one thread each,
        the CPU cores shared between them); 0 uses no cluster (None is yielded).

    Raises
    ------
    InputError
        If dask.distributed is not installed or the scheduler cannot be reached.
    """
    if not scheduler and workers <= 0:
        yield None
        return
    try:
        import distributed
    except ImportError:
        raise InputError("a dask cluster needs dask.distributed: pip install distributed") from None
    with contextlib.ExitStack() as stack:
        if scheduler:
            check_reachable(scheduler)
            try:
                client = stack.enter_context(distributed.Client(scheduler, timeout="20s"))
            except (OSError, TimeoutError) as error:
                raise InputError(f"could not reach the dask scheduler at {scheduler} ({error})") from None
        else:
            threads = max(1, (os.cpu_count() or 1) // workers)
            cluster = stack.enter_context(
                distributed.LocalCluster(
                    n_workers=workers,
                    threads_per_worker=1,
                    processes=True,
                    dashboard_address=None,
                    env={"OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)},
                )
            )
            client = stack.enter_context(distributed.Client(cluster))
        yield client


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
        Any layout :func:`napari_unet.predict.segment` accepts.
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
    being computed finish, no output is left (see :func:`napari_unet.lazy_io.iter_store_zarr`).
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
    ``<stem>_probabilities.zarr``, each chunked like the blocks (:func:`iter_segment_zarr`). Memory
    stays bounded by a few blocks per thread; with a ``dask.distributed`` ``client`` the blocks run on
    its workers, else on threads here. Every output is checked before any work starts, and each is
    moved into place only once complete; closing the generator stops after the blocks being computed.
    """
    outputs = prepare_outputs(images, folder, objects, probabilities, overwrite, suffix=".zarr")
    for done, (path, out) in enumerate(zip(images, outputs, strict=True)):
        yield BatchProgress(done, len(images), path.name)
        image, found_axis = open_lazy(path)
        axis = channel_axis if channel_axis is not None else found_axis
        job = iter_segment_zarr(model, image, out, config, axis, blocks, overwrite, client)
        for record in job:
            yield BatchProgress(done, len(images), path.name, record)
    yield BatchProgress(len(images), len(images), "")
    return outputs
