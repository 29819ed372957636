"""Corrections painted on the plugin's results, added to the image's annotation (by Correct and by Segment)."""

from __future__ import annotations

from typing import Any

import numpy as np
from napari.layers import Image, Labels

from napari_unet.train.annotations import corrections_from_classes, corrections_from_objects, merge

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


def add_corrections(viewer: Any, session: Session, image: Image) -> int | None:
    """Merge what was painted on the image's segmentation and objects into "<image> annotation".

    A correction is a pixel that differs from what the plugin last wrote there (``session.written``); once
    added, the painted layers count as written. The merge goes through the labels history (Ctrl-Z on the
    annotation takes it back), and the annotation layer is created only when there is something to add.

    Parameters
    ----------
    viewer : napari.Viewer
        The viewer holding the layers.
    session : Session
        The viewer's session, with the results the plugin last wrote.
    image : Image
        The image whose results were corrected.

    Returns
    -------
    int or None
        The number of annotation pixels changed; None when the plugin wrote neither layer in memory
        (nothing to compare with).
    """
    seg = find_layer(viewer, output_name(image.name, SEGMENTATION), Labels)
    obj = find_layer(viewer, output_name(image.name, OBJECTS), Labels)
    updates = []
    for layer in (seg, obj):
        if layer is None or layer.name not in session.written or session.written[layer.name].shape != layer.data.shape:
            continue
        painted, before = np.asarray(layer.data), session.written[layer.name]
        if layer is seg:
            updates.append(corrections_from_classes(painted, before))
        else:
            classes = np.asarray(seg.data) if seg is not None and seg.data.shape == painted.shape else None
            updates.append(corrections_from_objects(painted, before, classes))
        session.written[layer.name] = np.array(painted, copy=True)
    if not updates:
        return None
    if not any(update.any() for update in updates):
        return 0
    annotation = annotation_layer(viewer, session, image, updates[0].shape)
    merged = np.asarray(annotation.data)
    for update in updates:
        merged = merge(merged, update)
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
