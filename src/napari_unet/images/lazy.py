"""Images as lazy dask arrays (zarr, OME-Zarr, large TIFFs) and results written to zarr, block by block."""

from __future__ import annotations

import contextlib
import os
import queue
import shutil
import threading
import time
import uuid
from collections.abc import Callable, Generator, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import dask
import dask.array as da

from napari_unet.errors import InputError
from napari_unet.progress import TileProgress, drain

ZARR_MARKERS = ("zarr.json", ".zarray", ".zgroup")


def is_zarr(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a zarr array or group (a folder with zarr metadata, or named ``*.zarr``)."""
    path = Path(path)
    return path.suffix.lower() == ".zarr" or (path.is_dir() and any((path / m).exists() for m in ZARR_MARKERS))


def _ome_multiscales(attrs: Mapping) -> list | None:
    """The OME-NGFF multiscales metadata of a group (version 0.4 at the top, 0.5 under "ome")."""
    return attrs.get("multiscales") or dict(attrs.get("ome", {})).get("multiscales")


def _channel_axis(axes: list) -> int | None:
    """Index of the channel axis in OME-NGFF axes metadata (names or dicts with a type)."""
    for index, axis in enumerate(axes):
        kind = axis.get("type") if isinstance(axis, dict) else None
        name = axis.get("name") if isinstance(axis, dict) else axis
        if kind == "channel" or name == "c":
            return index
    return None


def open_zarr(path: str | os.PathLike) -> tuple[da.Array, int | None]:
    """A zarr array, or the full-resolution image of an OME-Zarr, as a dask array and its channel axis.

    Raises
    ------
    InputError
        If the path holds no zarr data, or a group that is neither OME-Zarr nor holds a single array.
    """
    import zarr

    try:
        node = zarr.open(str(path), mode="r")
    except Exception as error:  # zarr raises several kinds for "not zarr"
        raise InputError(f"{path} is not a readable zarr array or group ({error})") from None
    if isinstance(node, zarr.Array):
        return da.from_zarr(node), None
    multiscales = _ome_multiscales(node.attrs)
    if multiscales:
        first = multiscales[0]
        array = node[first["datasets"][0]["path"]]
        return da.from_zarr(array), _channel_axis(first.get("axes", []))
    arrays = list(node.array_keys())
    if len(arrays) != 1:
        raise InputError(
            f"{path} is a zarr group with {len(arrays)} arrays and no OME-Zarr metadata; give the path of one array"
        )
    return da.from_zarr(node[arrays[0]]), None


class LazyTiff:
    """A TIFF image read region by region through tifffile's zarr view; it pickles as its path.

    tifffile's view holds the open file (and a lock), which cannot go to the workers of a dask cluster:
    each process opens the file itself on its first read. Pyramidal TIFFs give their full resolution.
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = str(path)
        self._node = None
        node = self._array()
        self.shape, self.dtype, self.chunks = tuple(node.shape), node.dtype, tuple(node.chunks)
        self.ndim = len(self.shape)

    def _array(self):
        if self._node is None:
            import tifffile
            import zarr

            node = zarr.open(tifffile.imread(self.path, aszarr=True), mode="r")
            if not isinstance(node, zarr.Array):  # pyramidal TIFFs: the full resolution
                node = node[next(iter(sorted(node.array_keys())))]
            self._node = node
        return self._node

    def __getitem__(self, key):
        return self._array()[key]

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_node": None}


def open_lazy(path: str | os.PathLike) -> tuple[da.Array, int | None]:
    """Open an image file lazily: zarr / OME-Zarr, or a TIFF read chunk by chunk (:class:`LazyTiff`)."""
    if is_zarr(path):
        return open_zarr(path)
    try:
        tiff = LazyTiff(path)
    except Exception as error:
        raise InputError(f"{path} could not be read as a TIFF ({error})") from None
    stat = Path(path).stat()
    name = f"tiff-{dask.base.tokenize(str(Path(path).resolve()), stat.st_size, stat.st_mtime_ns)}"
    return da.from_array(tiff, chunks=tiff.chunks, name=name), None


def _partial_path(path: Path) -> Path:
    return path.with_name(f".{path.name}.partial-{uuid.uuid4().hex[:8]}")


@contextlib.contextmanager
def replacing(path: Path, overwrite: bool) -> Iterator[Path]:
    """Write a folder under a temporary name and move it to ``path`` only once complete.

    An existing ``path`` needs ``overwrite``; it is replaced only after the new folder is whole, so a
    failure or an interruption leaves the old result (and no partial one).
    """
    if path.exists() and not overwrite:
        raise InputError(f"{path} exists already; allow overwriting or choose another folder")
    partial = _partial_path(path)
    try:
        yield partial
        old = None
        if path.exists():
            old = _partial_path(path)
            path.rename(old)
        partial.rename(path)
        if old is not None:
            shutil.rmtree(old) if old.is_dir() else old.unlink()
    finally:
        remove_soon(partial)


def remove_soon(path: Path, seconds: float = 5.0) -> None:
    """Delete a folder that threads still writing into may recreate for a moment after a failure."""
    deadline = time.monotonic() + seconds
    while path.exists() and time.monotonic() < deadline:
        shutil.rmtree(path, ignore_errors=True)
        if path.exists():
            time.sleep(0.05)


def _zarr_chunks(array: da.Array) -> tuple[int, ...]:
    """Regular zarr chunks that no two dask blocks share: the first block size along each axis."""
    return tuple(max(c[0], 1) for c in array.chunks)


class _BlockCounter:
    """dask callbacks (for this compute only) that count the chunks written and stop the compute on request.

    ``_pretask`` and ``_posttask`` run in the scheduler's own thread: raising there ends the compute
    once the tasks already running have finished; no further task starts.
    """

    def __init__(self, stop: threading.Event, written: queue.SimpleQueue) -> None:
        self.stop, self.written = stop, written

    def callbacks(self) -> list[tuple]:
        """The callbacks as dask's ``callbacks=`` takes them: (start, start_state, pretask, posttask, finish)."""
        return [(None, None, self._pretask, self._posttask, None)]

    def _pretask(self, key, dsk, state) -> None:
        if self.stop.is_set():
            raise StoreStopped()

    def _posttask(self, key, result, dsk, state, worker_id) -> None:
        if str(key[0] if isinstance(key, tuple) else key).startswith(STORE_KEY):
            self.written.put(1)


class StoreStopped(Exception):
    """Raised in dask's scheduler thread to end a compute that was asked to stop."""


#: How the names of dask's tasks that write a chunk into its target begin (``dask.array.store``); tasks
#: fused with the store are renamed but keep a task of that name, which gives the stored value.
STORE_KEY = "store-map-"


def iter_store_zarr(
    arrays: Mapping[Path, da.Array],
    overwrite: bool = False,
    scheduler=None,
    also: Sequence = (),
    finish: Callable[[dict[Path, Any], list], None] | None = None,
    threads: int | None = None,
    heartbeat: float = 0.25,
    finish_message: str = "finishing",
) -> Generator[TileProgress, None, list[Path]]:
    """:func:`store_zarr` as a progress generator that can be stopped.

    On threads of this machine (``scheduler`` None) it yields a :class:`TileProgress` as blocks are
    written (``done`` of ``total`` blocks, every output written for each), and at least every
    ``heartbeat`` seconds, so that a caller can stop it promptly: closing the generator lets the blocks
    being computed finish, starts no other, and removes every partial output (existing results stay as
    they were). On a ``dask.distributed`` client (``scheduler``) only the heartbeat comes until the
    end, and a stop cancels the compute: no block starts any more, the partial outputs are removed
    (for :func:`remove_soon`'s 5 s, while blocks still running on the workers may write into them).
    ``threads`` defaults to the CPU count. While ``finish`` runs, the record says ``finish_message``.
    Returns the paths written once all are in place.
    """
    import zarr

    with contextlib.ExitStack() as stack:
        targets = {}
        for path, array in arrays.items():
            partial = stack.enter_context(replacing(Path(path), overwrite))
            targets[Path(path)] = zarr.open_array(
                str(partial), mode="w", shape=array.shape, chunks=_zarr_chunks(array), dtype=array.dtype
            )
        stored = da.store(list(arrays.values()), list(targets.values()), lock=False, compute=False)
        total = max((array.npartitions for array in arrays.values()), default=0)
        chunks_total = sum(array.npartitions for array in arrays.values())
        stop, written = threading.Event(), queue.SimpleQueue()
        counter = _BlockCounter(stop, written)
        outcome: dict[str, Any] = {}

        def compute() -> None:
            try:
                if hasattr(scheduler, "gather"):  # a dask.distributed client: futures, which a stop cancels
                    outcome["futures"] = futures = scheduler.compute([stored, *also])
                    if stop.is_set():
                        scheduler.cancel(futures)
                    _, *values = scheduler.gather(futures)
                elif scheduler is not None:
                    _, *values = dask.compute(stored, *also, scheduler=scheduler)
                else:
                    # a pool of our own, so that once stopped or failed no thread still writes when the
                    # partial output is removed
                    with ThreadPoolExecutor(threads or os.cpu_count() or 1) as pool:
                        try:
                            _, *values = dask.compute(
                                stored, *also, scheduler="threads", pool=pool, callbacks=counter.callbacks()
                            )
                        except BaseException:
                            pool.shutdown(wait=True, cancel_futures=True)
                            raise
                outcome["values"] = values
            except BaseException as error:  # carried to the generator's thread
                outcome["error"] = error
            finally:
                written.put(None)

        def record(chunks: int) -> TileProgress:
            done = chunks * total // max(chunks_total, 1)
            return TileProgress(done, total, f"block {done} of {total}")

        runner = threading.Thread(target=compute, name="napari-unet store", daemon=True)
        runner.start()
        chunks = 0
        try:
            yield record(0)
            while True:
                try:
                    item = written.get(timeout=heartbeat)
                except queue.Empty:
                    yield record(chunks)  # nothing new, but the caller may want to stop
                    continue
                if item is None:
                    break
                chunks += 1
                yield record(chunks)
        finally:
            stop.set()  # if closed early: no block starts any more; wait for those running, then clean up
            if runner.is_alive() and "futures" in outcome:
                scheduler.cancel(outcome["futures"])
            runner.join()
        if "error" in outcome:
            raise outcome["error"]
        if finish is not None:
            yield TileProgress(total, total, finish_message)
            finish(targets, outcome["values"])
    return [Path(p) for p in arrays]


def store_zarr(
    arrays: Mapping[Path, da.Array],
    overwrite: bool = False,
    scheduler=None,
    also: Sequence = (),
    finish: Callable[[dict[Path, Any], list], None] | None = None,
) -> list[Path]:
    """Compute dask arrays into zarr arrays at the given paths, in one pass (shared work is done once).

    Each block is computed, written and released, so memory stays bounded by a few blocks whatever
    the size of the image. ``scheduler`` is a ``dask.distributed`` client to run on, or None for
    threads of this machine. The dask collections in ``also`` are computed in the same pass (sharing
    its tasks); ``finish(targets, their values)`` may then edit the written arrays (by path) before
    they are moved into place. :func:`iter_store_zarr` does the same with progress and a stop.
    """
    return drain(iter_store_zarr(arrays, overwrite, scheduler, also, finish))
