"""Percentile normalisation of input images, stored with the model so prediction matches training."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from napari_unet.errors import InputError

#: Percentiles are estimated on at most this many pixels per channel (a regular subsample).
MAX_SAMPLES = 1 << 22


def sample_stride(shape: tuple[int, ...]) -> int:
    """Step of the regular grid on which percentiles of planes of ``shape`` (P, C, H, W) are estimated."""
    n_planes, _, height, width = shape
    return max(1, math.ceil(math.sqrt(n_planes * height * width / MAX_SAMPLES)))


@dataclass(frozen=True)
class Normalization:
    """Map the ``low`` and ``high`` percentiles of each channel of an image to 0 and 1.

    Percentiles are computed per image (over all its planes) and per channel, which makes a model robust
    to different exposure times and bit depths. NaN and infinite values are ignored when estimating the
    percentiles and become 0 in the output.

    Parameters
    ----------
    low, high : float
        Percentiles mapped to 0 and 1 (values outside are not clipped).
    """

    low: float = 1.0
    high: float = 99.8

    def __post_init__(self) -> None:
        if not 0.0 <= self.low < self.high <= 100.0:
            raise InputError(f"need 0 <= low < high <= 100, got low={self.low}, high={self.high}")

    def to_dict(self) -> dict[str, Any]:
        """Plain-dict form, for model files."""
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> Normalization:
        """Inverse of :meth:`to_dict`."""
        return cls(**values)

    def percentiles(self, channel: np.ndarray) -> tuple[float, float]:
        """The low and high percentile values of one channel (every pixel given), ignoring non-finite ones."""
        flat = np.asarray(channel).reshape(-1)
        # a copy of our own, which the percentiles may reorder; integers are always finite
        values = (
            flat.astype(np.float64)
            if flat.dtype.kind in "biu"
            else flat[np.isfinite(flat)].astype(np.float64, copy=False)
        )
        if values.size == 0:
            return 0.0, 1.0
        lo, hi = np.percentile(values, [self.low, self.high], overwrite_input=True)
        return float(lo), float(hi)

    def ranges(self, planes) -> list[tuple[float, float]]:
        """The (low, high) percentile values of each channel of an array of shape (P, C, H, W).

        Large images are sampled on a regular grid of about MAX_SAMPLES pixels (:func:`sample_stride`);
        ``planes`` may be a dask array, of which only the sample is read.
        """
        stride = sample_stride(planes.shape)
        sample = planes[:, :, ::stride, ::stride]
        sample = np.asarray(sample.compute() if hasattr(sample, "compute") else sample)
        return [self.percentiles(sample[:, c]) for c in range(sample.shape[1])]

    def apply(self, planes: np.ndarray, ranges: list[tuple[float, float]] | None = None) -> np.ndarray:
        """Normalise an array of shape (P, C, H, W), channel by channel over all planes.

        Parameters
        ----------
        planes : numpy.ndarray
            The image as planes.
        ranges : list of (float, float), optional
            Percentile values to use instead of those of ``planes`` (for example those of the whole image
            when ``planes`` is a crop of it).

        Returns
        -------
        numpy.ndarray
            float32 array of the same shape.
        """
        ranges = ranges or self.ranges(planes)
        out = np.empty(planes.shape, dtype=np.float32)
        for c in range(planes.shape[1]):
            lo, hi = ranges[c]
            scale = 1.0 / (hi - lo) if hi > lo else 1.0
            np.subtract(planes[:, c], lo, out=out[:, c], casting="unsafe")
            out[:, c] *= scale
        small_integers = planes.dtype.kind in "iub" and planes.dtype.itemsize <= 2
        if not (small_integers and np.isfinite(ranges).all()):  # else every value is finite already
            np.nan_to_num(out, copy=False, nan=0.0, posinf=0.0, neginf=0.0)
        return out
