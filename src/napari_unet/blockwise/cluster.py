"""A dask.distributed cluster to segment on: a local one of worker processes, or a running scheduler."""

from __future__ import annotations

import contextlib
import os
import socket
from collections.abc import Iterator
from urllib.parse import urlsplit

from napari_unet.errors import InputError


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
