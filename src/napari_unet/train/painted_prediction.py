"""The network's prediction around the painted pixels of a training plane, with all the context they need."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch
from scipy import ndimage

from napari_unet.models.geometry import TileGeometry
from napari_unet.predict.predictors import batch_predictor
from napari_unet.predict.tiling import predict_tiled
from napari_unet.progress import drain


def painted_box(mask: np.ndarray, margin: int, alignment: int = 1) -> tuple[slice, slice]:
    """Bounding box of a 2D mask grown by ``margin`` and clipped to the array.

    With ``alignment`` (the pooling grid) the box starts on a multiple of it and reaches ``alignment - 1``
    further: where a pixel falls in its pooling cells, its context reaches that much beyond the halo.
    """
    ys, xs = np.nonzero(mask)
    h, w = mask.shape
    top, left = (max(int(v.min()) - margin, 0) // alignment * alignment for v in (ys, xs))
    reach = margin + alignment
    return (
        slice(top, min(int(ys.max()) + reach, h)),
        slice(left, min(int(xs.max()) + reach, w)),
    )


#: Groups of painted pixels are predicted apart only if their boxes cover at most this share of the one box
#: around them all: small tiles run slower per pixel. On ISBI 2012 the validation blocks of a slice gave 5-6
#: groups covering 0.72-0.97 of the slice, and predicting them apart made validation slower (14.0 s against
#: 10.7 s in a 300-step run); on DSB2018 3 groups cover 0.2 of the image.
GROUPS_SHARE = 0.5


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

        The box reaches one halo beyond the mask, so that every masked pixel sees its full context, and
        starts on the pooling grid of the whole plane: the masked pixels get what segmenting the plane gives.
        """
        box = painted_box(mask, self.geom.halo, self.geom.alignment)
        region = image[(slice(None), *box)][None]
        job = predict_tiled(self.predictor, region, self.n_classes, self.geom, self.tile, batch_size=1)
        return box, drain(job)[0]

    def around_groups(
        self, image: np.ndarray, mask: np.ndarray
    ) -> Iterator[tuple[tuple[slice, slice], np.ndarray, np.ndarray]]:
        """(box, probabilities, the part of ``mask`` in the box) for each group of masked pixels.

        Pixels closer than two halos to one another form a group, so that the contexts of neighbouring
        groups are not predicted twice; groups far apart (blocks held out for validation on many planes,
        strokes in opposite corners) are predicted apart, not with the whole plane between them, when
        their boxes together are at most :data:`GROUPS_SHARE` of the one box around all of them. Every
        masked pixel is in exactly one group.
        """
        if not mask.any():
            return
        near = ndimage.distance_transform_edt(~mask) <= self.geom.halo
        groups, _ = ndimage.label(near)
        parts = []
        for index, region in enumerate(ndimage.find_objects(groups), start=1):
            part = np.zeros_like(mask)
            part[region] = mask[region] & (groups[region] == index)
            if part.any():
                parts.append((part, painted_box(part, self.geom.halo, self.geom.alignment)))
        whole = painted_box(mask, self.geom.halo, self.geom.alignment)
        if sum(_area(box) for _, box in parts) > GROUPS_SHARE * _area(whole):
            parts = [(mask, whole)]
        for part, _ in parts:
            box, probabilities = self.around(image, part)
            yield box, probabilities, part[box]


def _area(box: tuple[slice, slice]) -> int:
    """Pixels in a 2D box."""
    return (box[0].stop - box[0].start) * (box[1].stop - box[1].start)
