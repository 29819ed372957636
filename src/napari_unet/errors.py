"""Exceptions whose message is meant for the user: what is wrong and what to do about it."""

from __future__ import annotations


class NapariUNetError(Exception):
    """Base class of errors caused by input or circumstances, not by a bug; the message is for the user."""


class InputError(NapariUNetError, ValueError):
    """An image, annotation or option cannot be used as given."""


class ModelFileError(NapariUNetError):
    """A model file is missing, corrupted, not a model, or made for something else."""


class TrainingError(NapariUNetError):
    """Training cannot start or cannot go on (no annotations, diverging loss ...)."""


class ResourceError(NapariUNetError):
    """Not enough memory (or another resource) to do the job, even after trying smaller pieces."""
