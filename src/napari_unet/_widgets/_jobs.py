"""Run the core's progress generators in napari thread workers, with a Stop that closes them cleanly."""

from __future__ import annotations

import contextlib
import functools
import threading
from collections.abc import Callable, Generator
from typing import Any

import torch
from napari.qt.threading import GeneratorWorker, create_worker
from napari.utils.notifications import show_error, show_info, show_warning
from qtpy.QtCore import QObject

from napari_unet.errors import NapariUNetError


class JobError(Exception):
    """An exception raised in a background job, carried to the GUI thread.

    superqt treats a RuntimeError escaping a worker as "the worker was deleted" and drops it without
    emitting ``finished``; wrapping every error in this class keeps failures visible.
    """

    def __init__(self, error: BaseException) -> None:
        super().__init__(str(error))
        self.error = error


class Stopped:
    """Returned by a job that was stopped: ``result`` is what the job had when it stopped (may be None)."""

    def __init__(self, result: Any = None) -> None:
        self.result = result


@functools.cache
def warm_up_torch() -> None:
    """Do torch's lazy imports now, on the GUI thread, rather than in a worker holding the GIL for seconds.

    The first optimiser constructed imports torch._dynamo (about 2 s); in a worker thread that import
    starves napari's event loop.
    """
    torch.optim.AdamW([torch.zeros(1, requires_grad=True)])


def user_message(error: BaseException) -> str:
    """A message for a notification: the error's own text for expected problems, advice for the rest."""
    error = error.error if isinstance(error, JobError) else error
    if isinstance(error, NapariUNetError):
        return str(error)
    if isinstance(error, torch.OutOfMemoryError | MemoryError):
        return "out of memory: lower the tile size or batch size in the advanced settings, or use the CPU"
    return f"unexpected error ({type(error).__name__}: {error}); please report it"


def notify_error(error: BaseException) -> None:
    """Show an error as a napari notification."""
    show_error(user_message(error))


def notify(message: str, warning: bool = False) -> None:
    """Show a message as a napari notification."""
    (show_warning if warning else show_info)(message)


class BackgroundJob:
    """A core generator running in a napari thread worker.

    Parameters
    ----------
    make_job : callable
        Called in the worker thread to create the generator (so that its set-up runs off the GUI thread).
    on_progress : callable
        Called on the GUI thread with every record the job yields.
    on_done : callable
        Called on the GUI thread with the job's result, or a :class:`Stopped` if it was stopped.
    on_error : callable, optional
        Called on the GUI thread with the error if the job failed (default: a notification).
    on_finished : callable, optional
        Called on the GUI thread last, whatever happened.
    owner : QWidget, optional
        The widget the callbacks update. When it is destroyed (napari closing) the job is stopped, its
        callbacks are disconnected, and ``on_abandoned`` runs in the worker thread once the job has ended.
    on_abandoned : callable, optional
        Called in the worker thread after a job whose owner was destroyed has ended (to save its work).
    """

    def __init__(
        self,
        make_job: Callable[[], Generator[Any, Any, Any]],
        on_progress: Callable[[Any], None],
        on_done: Callable[[Any], None],
        on_error: Callable[[BaseException], None] | None = None,
        on_finished: Callable[[], None] | None = None,
        owner: QObject | None = None,
        on_abandoned: Callable[[], None] | None = None,
    ) -> None:
        self._make_job = make_job
        self._job: Generator[Any, Any, Any] | None = None
        self._ended = False
        self._end_lock = threading.Lock()
        self._stop_requested = False
        self.abandoned = False
        self._on_abandoned = on_abandoned
        # errors go to on_error only (napari would otherwise re-raise them in the GUI thread as well)
        self.worker: GeneratorWorker = create_worker(self._run, _start_thread=False, _ignore_errors=True)
        self._connections = [
            (self.worker.yielded, on_progress),
            (self.worker.returned, on_done),
            (self.worker.errored, on_error or notify_error),
        ]
        if on_finished is not None:
            self._connections.append((self.worker.finished, on_finished))
        for signal, slot in self._connections:
            signal.connect(slot)
        self.worker.finished.connect(self._end)
        if owner is not None:
            owner.destroyed.connect(self.abandon)
        self.running = False
        self.worker.started.connect(lambda: setattr(self, "running", True))
        self.worker.finished.connect(lambda: setattr(self, "running", False))

    def start(self) -> BackgroundJob:
        """Start the worker thread."""
        self.running = True
        self.worker.start()
        return self

    def stop(self) -> None:
        """Ask the job to stop after the current step; it is closed in its own thread and keeps its result."""
        self._stop_requested = True

    def abandon(self, *_: Any) -> None:
        """Stop, and call none of the GUI callbacks any more: the widgets they update are gone."""
        self.abandoned = True
        for signal, slot in self._connections:
            with contextlib.suppress(TypeError, RuntimeError):  # already disconnected, or Qt object gone
                signal.disconnect(slot)
        self.stop()

    def _run(self) -> Generator[Any, None, Any]:
        try:
            self._job = self._make_job()
            while True:
                if self._stop_requested:
                    self._job.close()
                    return Stopped()
                try:
                    record = next(self._job)
                except StopIteration as stop:  # a stop asked for during the last step still counts
                    return Stopped(stop.value) if self._stop_requested else stop.value
                yield record
        except Exception as error:  # carried to the GUI thread, see JobError
            raise JobError(error) from error
        finally:
            self._end()

    def _end(self, *_: Any) -> None:
        """Close the core generator (its own clean-up: a training run records itself and frees the GPU).

        Runs when the job returns, and again when the worker finishes: a worker that is quit from
        outside (napari closing) never resumes its generator, so the job would otherwise stay open.
        """
        with self._end_lock:
            if self._ended:
                return
            self._ended = True
        if self._job is not None:
            self._job.close()
        if self.abandoned and self._on_abandoned is not None:
            self._on_abandoned()
