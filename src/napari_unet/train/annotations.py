"""Turning painted objects and corrections into training annotations (0 unlabelled, 1 background, 2.. classes).

Painting whole objects tells the network where their boundaries are, and painting a background gap
between touching objects is what lets the border weights teach it to separate them. These functions
derive both from instance images, so that a person can paint objects one id each and not worry about
gaps; and they turn corrections painted on a segmentation back into annotations, painted pixels winning.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from scipy import ndimage

from napari_unet.errors import InputError
from napari_unet.objects.peaks import CROSS

#: Annotation values: pixels nobody painted carry no loss; 1 is the background; 2, 3 ... the object classes.
UNLABELLED = 0
BACKGROUND = 1


def touching_pixels(instances: np.ndarray) -> np.ndarray:
    """Pixels of an object that have a 4-neighbour belonging to another object (not the background)."""
    if instances.ndim != 2:
        return np.stack([touching_pixels(plane) for plane in instances])
    inside = instances > 0
    top = int(instances.max()) + 1
    larger = ndimage.grey_dilation(instances.astype(np.int64), footprint=CROSS)
    smaller = ndimage.grey_erosion(np.where(inside, instances, top).astype(np.int64), footprint=CROSS)
    return inside & ((larger != instances) | (smaller != instances))


def instances_to_annotation(
    instances: np.ndarray,
    object_class: int | Mapping[int, int] = 2,
    gap: bool = True,
    ring: int = 2,
) -> np.ndarray:
    """Annotation from whole painted objects.

    Parameters
    ----------
    instances : numpy.ndarray
        One id per painted object (0 where nothing is painted); 2D or a stack of planes.
    object_class : int or mapping
        Class value of every object, or a mapping id -> class value (default 2).
    gap : bool
        Mark the pixels where two objects touch as background, so that they come out separated.
    ring : int
        Width in pixels of a background ring painted around each object where nothing else is painted:
        a whole object ends at its boundary.

    Returns
    -------
    numpy.ndarray of uint8
        0 unlabelled, 1 background, object classes elsewhere.
    """
    instances = np.asarray(instances)
    annotation = np.zeros(instances.shape, dtype=np.uint8)
    inside = instances > 0
    if ring > 0:
        structure = ndimage.generate_binary_structure(instances.ndim, 1)
        if instances.ndim > 2:
            structure[(0, *[slice(None)] * (instances.ndim - 1))] = False
            structure[(-1, *[slice(None)] * (instances.ndim - 1))] = False
        annotation[ndimage.binary_dilation(inside, structure, iterations=ring) & ~inside] = BACKGROUND
    if isinstance(object_class, Mapping):
        lookup = np.zeros(int(instances.max()) + 1, dtype=np.uint8)
        for instance, value in object_class.items():
            if 0 < instance < len(lookup):
                lookup[instance] = value
        lookup[1:][lookup[1:] == 0] = 2
        annotation[inside] = lookup[instances[inside]]
    else:
        annotation[inside] = object_class
    if gap:
        annotation[touching_pixels(instances)] = BACKGROUND
    return annotation


def classes_of_objects(objects: np.ndarray, classes: np.ndarray) -> dict[int, int]:
    """Object id -> class value, by majority of the segmentation's classes under each object."""
    result: dict[int, int] = {}
    ids = np.unique(objects[objects > 0])
    if not len(ids):
        return result
    for index, value in zip(
        ids,
        ndimage.labeled_comprehension(
            classes, objects, ids, lambda v: np.bincount(v.astype(np.int64)).argmax(), np.int64, 0
        ),
        strict=True,
    ):
        result[int(index)] = int(value) if value > 0 else 2
    return result


def merge(annotation: np.ndarray, update: np.ndarray) -> np.ndarray:
    """Annotation with ``update`` painted over it: every labelled pixel of ``update`` wins."""
    merged = np.array(annotation, copy=True)
    painted = update > UNLABELLED
    merged[painted] = update[painted]
    return merged


def corrections_from_classes(painted: np.ndarray, predicted: np.ndarray) -> np.ndarray:
    """Annotation from corrections painted on a class segmentation (0 background, k class k).

    Pixels that differ from the prediction become annotations: 0 becomes background (1), k stays k.
    """
    changed = painted != predicted
    update = np.zeros(painted.shape, dtype=np.uint8)
    update[changed] = np.where(painted[changed] > 0, painted[changed], BACKGROUND)
    return update


#: An object that lost pixels to an object painted over it stays an object (the rest of a merged pair
#: split by hand) only if the painted object was carved out of it (this share of it, or more, lay inside
#: it) and what is left is at most :data:`REMAINDER_RATIO` times the painted object; otherwise the rest (a
#: blob of many cells with a few painted over it, pieces of a wrong prediction) is left out.
CARVED_SHARE = 0.8
REMAINDER_RATIO = 2.0


def corrected_ids(painted: np.ndarray, predicted: np.ndarray, changed: np.ndarray) -> np.ndarray:
    """Ids of the objects a correction confirms whole: those painted, and the rests of objects split by hand.

    An object painted (new, grown, or the label a person painted with) counts whole, and so does one that
    was trimmed (pixels erased only) or split (another object carved out of it, see :data:`CARVED_SHARE`).
    """
    painted_ids = np.unique(painted[changed])
    painted_ids = painted_ids[painted_ids > 0]
    shrunk = np.setdiff1d(np.unique(predicted[changed]), painted_ids)
    shrunk = shrunk[shrunk > 0]
    if not len(shrunk):
        return painted_ids
    kept = [s for s in shrunk.tolist() if _split_by_hand(painted, predicted, changed, s)]
    return np.union1d(painted_ids, np.asarray(kept, dtype=painted_ids.dtype))


def _split_by_hand(painted: np.ndarray, predicted: np.ndarray, changed: np.ndarray, shrunk: int) -> bool:
    """Whether what is left of object ``shrunk`` is an object a person meant: trimmed, or split in two."""
    rest = int(np.count_nonzero(painted == shrunk))
    if not rest:
        return False
    takers = np.unique(painted[changed & (predicted == shrunk)])
    takers = takers[takers > 0]
    for taker in takers.tolist():
        own = painted == taker
        size, inside = int(own.sum()), int(np.count_nonzero(own & (predicted == shrunk)))
        if inside < CARVED_SHARE * size or rest > REMAINDER_RATIO * size:
            return False
    return True


def corrections_from_objects(
    painted: np.ndarray, predicted: np.ndarray, classes: np.ndarray | None = None, ring: int = 2
) -> np.ndarray:
    """Annotation from corrections painted on an objects layer.

    Every object a correction confirms (:func:`corrected_ids`: painted, or the rest of an object trimmed
    or split by hand) is taken whole, with background gaps where it touches other objects and a background
    ring where nothing else is; erased pixels become background. ``classes`` (the segmentation's classes)
    gives each object's class (majority under it; 2 for new objects), and keeps the ring off the pixels it
    says are objects: in a packed colony the ring would fall on the neighbours.
    """
    changed = painted != predicted
    if not changed.any():
        return np.zeros(painted.shape, dtype=np.uint8)
    edited = np.where(np.isin(painted, corrected_ids(painted, predicted, changed)), painted, 0)
    class_map = classes_of_objects(edited, classes) if classes is not None else {}
    update = instances_to_annotation(edited, class_map, gap=False, ring=ring)
    update[(painted > 0) & (edited == 0)] = UNLABELLED  # the ring stops at objects nobody corrected
    if classes is not None:  # and where the segmentation says object: a neighbour in a packed colony
        update[(update == BACKGROUND) & (edited == 0) & (np.asarray(classes) > 0)] = UNLABELLED
    touching = touching_pixels(painted) & (edited > 0)
    update[touching] = BACKGROUND
    erased = changed & (painted == 0)
    update[erased] = BACKGROUND
    return update


def add_corrections(
    annotation: np.ndarray | None,
    predicted_classes: np.ndarray | None = None,
    predicted_objects: np.ndarray | None = None,
    classes: np.ndarray | None = None,
    objects: np.ndarray | None = None,
) -> np.ndarray:
    """The annotation with the corrections painted on a segmentation added: the Correct widget's step.

    Paint on copies of a segmentation's classes or objects (a :class:`napari_unet.Segmentation`'s
    ``classes`` and ``objects``), then give both versions: what differs becomes annotation, painted pixels
    winning over earlier annotation (:func:`corrections_from_classes`, :func:`corrections_from_objects`:
    corrected objects are taken whole, with background gaps and rings).

    Parameters
    ----------
    annotation : numpy.ndarray or None
        The annotation so far (0 unlabelled, 1 background, 2.. classes); None for none yet.
    predicted_classes, predicted_objects : numpy.ndarray, optional
        The segmentation as it was predicted.
    classes, objects : numpy.ndarray, optional
        The same after painting corrections on them.

    Returns
    -------
    numpy.ndarray
        A new annotation (uint8 if none was given); the one given is left as it was.

    Examples
    --------
    >>> result = nu.segment(model, image)
    >>> painted = result.objects.copy()
    >>> painted[painted == 7] = 0                          # erase a false object
    >>> annotation = nu.add_corrections(annotation, result.classes, result.objects, objects=painted)
    """
    updates = []
    if classes is not None and predicted_classes is not None:
        updates.append(corrections_from_classes(np.asarray(classes), np.asarray(predicted_classes)))
    if objects is not None and predicted_objects is not None:
        context = None if classes is None else np.asarray(classes)
        context = np.asarray(predicted_classes) if context is None and predicted_classes is not None else context
        updates.append(corrections_from_objects(np.asarray(objects), np.asarray(predicted_objects), context))
    if not updates:
        raise InputError("give a painted copy of the classes or of the objects, with the prediction it was made on")
    merged = np.zeros(updates[0].shape, np.uint8) if annotation is None else np.asarray(annotation)
    if merged.shape != updates[0].shape:
        raise InputError(f"the annotation has shape {merged.shape} but the segmentation {updates[0].shape}")
    for update in updates:
        merged = merge(merged, update)
    return merged


#: Distinct values from which an annotation may be an instance mask (one id per object) rather than classes.
INSTANCE_VALUES = 8

#: Share of the values that must each be one connected blob for the labels to be read as an instance mask.
INSTANCE_BLOBS = 0.9

#: How labels given for training are read: "auto" tells an instance mask from classes, or say which.
LABELS_ARE = ("auto", "classes", "objects")


def looks_like_instances(labels: np.ndarray) -> bool:
    """Whether labels look like an instance mask: many values, nearly each one connected blob (in a plane).

    A class annotation has a few values (1 background, 2.. classes), each painted in many strokes; an
    instance mask (objects numbered 1..n, as from another tool or a hand-made ground truth) has many, each
    one object in every plane it is in.
    """
    labels = np.asarray(labels)
    if labels.dtype.kind not in "iu" or labels.max(initial=0) < INSTANCE_VALUES:  # a quick answer for classes
        return False
    if len(np.unique(labels[labels > 0])) < INSTANCE_VALUES:
        return False
    blobs = pieces = 0
    for plane in labels.reshape(-1, *labels.shape[-2:]):
        values, compact = np.unique(plane, return_inverse=True)
        compact = compact.reshape(plane.shape)
        for index, box in enumerate(ndimage.find_objects(compact), start=1):
            if box is None or values[index] == 0:
                continue
            pieces += 1
            blobs += ndimage.label(compact[box] == index, CROSS)[1] == 1
    return blobs >= INSTANCE_BLOBS * pieces


def annotation_from_labels(labels: np.ndarray, labels_are: str = "auto") -> tuple[np.ndarray, str]:
    """Labels given for training as an annotation, with a note when they were read as an instance mask.

    Parameters
    ----------
    labels : numpy.ndarray
        An annotation (0 unlabelled, 1 background, 2.. classes) or an instance mask (one id per object).
    labels_are : {"auto", "classes", "objects"}
        "auto" reads labels that :func:`looks_like_instances` as objects; "classes" and "objects" say.

    Returns
    -------
    annotation : numpy.ndarray
        The labels as given, or the objects painted whole: one object class (2), background gaps where
        objects touch and rings around them (as *Paint whole objects* does); everything else unlabelled.
    note : str
        What was done, for the user ("" when the labels were taken as classes).
    """
    if labels_are not in LABELS_ARE:
        raise InputError(f"labels are one of {', '.join(LABELS_ARE)}, not {labels_are!r}")
    objects = labels_are == "objects" or (labels_are == "auto" and looks_like_instances(labels))
    if not objects:
        return np.asarray(labels), ""
    instances = np.asarray(labels)
    count = len(np.unique(instances[instances > 0]))
    note = (
        f"the labels hold {count} objects numbered one by one (an instance mask): training on them as whole "
        "objects of one class, with background gaps and rings around them"
    )
    return instances_to_annotation(instances), note
