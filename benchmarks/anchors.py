"""The anchors every quality figure is compared with, run on the same annotations in the same run.

- A random-forest pixel classifier on scikit-image's multiscale filter features: the approach of ilastik
  and napari-APOC (scikit-learn, 100 trees, depth 12), with objects from connected components or from a
  distance-transform watershed.
- Otsu's threshold followed by a distance-transform watershed.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np
from scipy import ndimage
from skimage.feature import multiscale_basic_features
from skimage.filters import threshold_otsu
from skimage.morphology import h_maxima
from skimage.segmentation import watershed


def features(image: np.ndarray) -> np.ndarray:
    """Per-pixel intensity, edge and texture features at scales 1-16 px (H, W, F)."""
    image = image.astype(np.float32)
    lo, hi = np.percentile(image, [1, 99.8])
    return multiscale_basic_features((image - lo) / max(hi - lo, 1e-6), sigma_min=1, sigma_max=16)


class RandomForestAnchor:
    """Pixel classifier trained on the painted pixels (0 unlabelled, 1 background, 2.. classes)."""

    def __init__(self, images: Sequence[np.ndarray], annotations: Sequence[np.ndarray], seed: int = 0) -> None:
        from sklearn.ensemble import RandomForestClassifier

        start = time.perf_counter()
        rows, targets = [], []
        for image, annotation in zip(images, annotations, strict=True):
            painted = annotation > 0
            rows.append(features(image)[painted])
            targets.append(annotation[painted])
        self.forest = RandomForestClassifier(n_estimators=100, max_depth=12, n_jobs=-1, random_state=seed)
        self.forest.fit(np.concatenate(rows), np.concatenate(targets))
        self.fit_seconds = time.perf_counter() - start

    def classes(self, image: np.ndarray) -> np.ndarray:
        """Predicted class per pixel, 0 for the background (1)."""
        feats = features(image)
        predicted = self.forest.predict(feats.reshape(-1, feats.shape[-1])).reshape(image.shape)
        return np.where(predicted == 1, 0, predicted)

    def probabilities(self, image: np.ndarray) -> np.ndarray:
        """(K, H, W) class probabilities (the fraction of trees voting), channel k for annotation value k + 1."""
        feats = features(image)
        votes = self.forest.predict_proba(feats.reshape(-1, feats.shape[-1]))
        out = np.zeros((int(self.forest.classes_.max()), *image.shape), dtype=np.float32)
        for column, value in enumerate(self.forest.classes_):
            out[value - 1] = votes[:, column].reshape(image.shape)
        return out


def distance_watershed(mask: np.ndarray, depth: float = 2.0) -> np.ndarray:
    """Split a binary mask into objects at the necks of its distance transform."""
    distance = ndimage.gaussian_filter(ndimage.distance_transform_edt(mask), 1)
    markers, _ = ndimage.label(h_maxima(distance, depth) & mask)
    return watershed(-distance, markers, mask=mask)


def otsu_watershed(image: np.ndarray) -> np.ndarray:
    """Otsu's threshold of the smoothed image, then a distance-transform watershed."""
    smooth = ndimage.gaussian_filter(image.astype(np.float32), 1)
    return distance_watershed(smooth > threshold_otsu(smooth))
