"""Corrections painted on the plugin's results, added to the image's annotation (by Correct and by Segment)."""

from __future__ import annotations

from typing import Any

import numpy as np
from napari.layers import Image, Labels

from napari_unet.train.annotations import add_corrections

from ._layers import (
    CLASSES_KEY,
    class_colormap,
    classes_of,
    default_classes,
    find_layer,
    output_name,
    write_with_history,
)
from ._session import Session

ANNOTATION, SEGMENTATION, OBJECTS = "annotation", "segmentation", "objects"


def keep_corrections(viewer: Any, session: Session, image: Image) -> int | None:
    """Merge what was painted on the image's segmentation and objects into "<image> annotation".

    A correction is a pixel that differs from what the plugin last wrote there (``session.written``),
    turned into annotation by the core's :func:`napari_unet.train.annotations.add_corrections`; once added,
    the painted layers count as written. The merge goes through the labels history (Ctrl-Z on the
    annotation takes it back), and the annotation layer is created only when there is something to add.

    Returns
    -------
    int or None
        The number of annotation pixels changed; None when the plugin wrote neither layer in memory
        (nothing to compare with).
    """
    layers = {
        kind: layer
        for kind in (SEGMENTATION, OBJECTS)
        for layer in [find_layer(viewer, output_name(image.name, kind), Labels)]
        if layer is not None and layer.name in session.written and session.written[layer.name].shape == layer.data.shape
    }
    if not layers:
        return None
    painted = {kind: np.array(layer.data, copy=True) for kind, layer in layers.items()}
    before = {kind: session.written[layer.name] for kind, layer in layers.items()}
    for kind, layer in layers.items():
        session.written[layer.name] = painted[kind]
    if all(np.array_equal(painted[kind], before[kind]) for kind in layers):
        return 0
    shape = next(iter(painted.values())).shape
    annotation = annotation_layer(viewer, session, image, shape)
    merged = add_corrections(
        np.asarray(annotation.data),
        predicted_classes=before.get(SEGMENTATION),
        predicted_objects=before.get(OBJECTS),
        classes=painted.get(SEGMENTATION),
        objects=painted.get(OBJECTS),
    )
    return write_with_history(annotation, merged)


def annotation_layer(viewer: Any, session: Session, image: Image, shape: tuple[int, ...]) -> Labels:
    """The image's annotation layer, created with the current model's classes if missing."""
    name = output_name(image.name, ANNOTATION)
    layer = find_layer(viewer, name, Labels)
    if layer is not None and layer.data.shape == shape:
        return layer
    classes = default_classes()
    if session.model is not None:
        for value, class_name in session.model.object_classes.items():
            classes[value] = {"name": class_name, "color": classes.get(value, {}).get("color", "#f2c12e")}
    layer = viewer.add_labels(
        np.zeros(shape, np.uint8),
        name=name,
        scale=image.scale[-len(shape) :],
        translate=image.translate[-len(shape) :],
        metadata={CLASSES_KEY: classes},
    )
    layer.colormap = class_colormap(classes_of(layer))
    return layer
