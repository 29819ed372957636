"""Classes from probabilities (objects/classes.py)."""

import numpy as np
import pytest

from napari_unet.objects.classes import channel_argmax, probabilities_to_classes


def test_probabilities_to_classes_uses_annotation_values():
    probs = np.zeros((3, 2, 2))
    probs[0, 0, 0] = probs[1, 0, 1] = probs[2, 1, 0] = probs[2, 1, 1] = 1
    assert probabilities_to_classes(probs).tolist() == [[0, 2], [3, 3]]


@pytest.mark.parametrize("axis", [0, 1, 2])
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int16])
def test_channel_argmax_equals_numpy_with_ties_and_nans(axis, dtype):
    rng = np.random.default_rng(axis)
    probs = rng.integers(0, 4, (3, 4, 5, 6)).astype(dtype)  # few values: many ties
    if probs.dtype.kind == "f":
        probs[1, 0, 0, 0] = probs[2, 0, 0, 0] = probs[0, 1, 1, 1] = np.nan
        probs[:, 2, 2, 2] = np.nan
        probs[2, 3, 3, 3] = np.inf
    probs = np.moveaxis(probs, 0, axis)
    assert (channel_argmax(probs, axis) == np.argmax(probs, axis=axis)).all()
