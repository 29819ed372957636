"""Helpers for long-running work written as generators that yield progress records and return a result."""

from __future__ import annotations

from collections.abc import Callable, Generator
from typing import Any, TypeVar

R = TypeVar("R")


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
