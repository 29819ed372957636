"""Long-running work as generators that yield progress records and return a result: the shared record and driver."""

from __future__ import annotations

from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import Any, TypeVar

R = TypeVar("R")


@dataclass(frozen=True)
class TileProgress:
    """Progress record of a tiled prediction (``message`` says when something had to change)."""

    done: int
    total: int
    message: str = ""


def drain(job: Generator[Any, Any, R], on_progress: Callable[[Any], None] | None = None) -> R:
    """Run a progress generator to the end and return its result.

    Parameters
    ----------
    job : generator
        Yields progress records and returns a result.
    on_progress : callable, optional
        Called with every record (to drive a progress bar, for example).
    """
    while True:
        try:
            record = next(job)
        except StopIteration as stop:
            return stop.value
        if on_progress is not None:
            on_progress(record)
