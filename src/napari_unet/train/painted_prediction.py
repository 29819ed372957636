"""The network's prediction around the painted pixels of a training plane, with all the context they need."""

from __future__ import annotations

import numpy as np
import torch

from napari_unet.models.geometry import TileGeometry
from napari_unet.predict.predictors import batch_predictor
from napari_unet.predict.tiling import predict_tiled
from napari_unet.progress import drain


def painted_box(mask: np.ndarray, margin: int) -> tuple[slice, slice]:
    """Bounding box of a 2D mask grown by ``margin`` and clipped to the array."""
    ys, xs = np.nonzero(mask)
    h, w = mask.shape
    return (
        slice(max(int(ys.min()) - margin, 0), min(int(ys.max()) + margin + 1, h)),
        slice(max(int(xs.min()) - margin, 0), min(int(xs.max()) + margin + 1, w)),
    )


class PaintedPredictor:
    """Predicts regions of training planes with a network on its device (in eval mode, during training).

    Used by validation, by the choice of the windows to learn first and by the choice of object rules.
    """

    def __init__(self, net: torch.nn.Module, device: torch.device, amp: bool, n_classes: int, tile: int = 572) -> None:
        self.geom = TileGeometry(net.config.depth, net.config.padding)
        self.predictor = batch_predictor(net, device, amp)
        self.n_classes, self.tile = n_classes, tile

    def around(self, image: np.ndarray, mask: np.ndarray) -> tuple[tuple[slice, slice], np.ndarray]:
        """Class probabilities (K, h, w) of the box around ``mask`` in ``image`` (C, H, W), and the box.

        The box reaches one halo beyond the mask, so that every masked pixel sees its full context.
        """
        box = painted_box(mask, self.geom.halo)
        region = image[(slice(None), *box)][None]
        job = predict_tiled(self.predictor, region, self.n_classes, self.geom, self.tile, batch_size=1)
        return box, drain(job)[0]
