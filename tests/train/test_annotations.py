import numpy as np

from napari_unet.train.annotations import (
    classes_of_objects,
    corrections_from_classes,
    corrections_from_objects,
    instances_to_annotation,
    merge,
    touching_pixels,
)


def _two_touching():
    instances = np.zeros((20, 30), np.int32)
    instances[5:15, 3:15] = 1
    instances[5:15, 15:27] = 2
    return instances


def test_touching_pixels_are_only_between_objects():
    touching = touching_pixels(_two_touching())
    assert touching[:, 14].sum() == 10 and touching[:, 15].sum() == 10
    assert touching.sum() == 20


def test_instances_become_classes_with_gaps_and_rings():
    annotation = instances_to_annotation(_two_touching(), object_class=3, ring=2)
    assert (annotation[5:15, 14:16] == 1).all()  # gap between the two objects
    assert annotation[10, 8] == 3 and annotation[10, 20] == 3
    assert (annotation[3:5, 3:27] == 1).all()  # ring above
    assert annotation[0, 0] == 0  # far away stays unlabelled
    assert annotation[2, 10] == 0


def test_class_mapping_per_object():
    annotation = instances_to_annotation(_two_touching(), {1: 2, 2: 4}, gap=False, ring=0)
    assert annotation[10, 8] == 2 and annotation[10, 20] == 4


def test_stacks_are_handled_plane_by_plane():
    stack = np.stack([_two_touching(), np.zeros((20, 30), np.int32)])
    annotation = instances_to_annotation(stack, ring=1)
    assert (annotation[1] == 0).all()


def test_merge_lets_painted_pixels_win():
    base = np.array([[1, 2, 0]], np.uint8)
    assert merge(base, np.array([[0, 1, 2]], np.uint8)).tolist() == [[1, 1, 2]]


def test_corrections_from_classes():
    predicted = np.array([[0, 2, 2, 0]], np.uint8)
    painted = np.array([[0, 0, 2, 3]], np.uint8)
    assert corrections_from_classes(painted, predicted).tolist() == [[0, 1, 0, 3]]


def test_corrections_from_objects_take_the_edited_object_whole():
    predicted = np.zeros((20, 30), np.int32)
    predicted[5:15, 3:27] = 1  # one merged object
    painted = _two_touching()  # the user split it into two
    classes = (predicted > 0).astype(np.uint8) * 2
    update = corrections_from_objects(painted, predicted, classes)
    assert (update[5:15, 14:16] == 1).all()  # the new border is background
    assert update[10, 20] == 2 and update[10, 8] == 2  # both objects, whole
    assert (update[3, 3:27] == 1).all()  # ring


def test_corrections_erasing_an_object_give_background():
    predicted = np.zeros((10, 10), np.int32)
    predicted[2:5, 2:5] = 7
    update = corrections_from_objects(np.zeros_like(predicted), predicted)
    assert (update[2:5, 2:5] == 1).all() and update.sum() == 9


def test_uncorrected_neighbours_are_left_alone():
    predicted = _two_touching()
    painted = predicted.copy()
    painted[5:15, 3:6] = 0  # shrink object 1 from the left
    update = corrections_from_objects(painted, predicted, (predicted > 0).astype(np.uint8) * 2)
    assert (update[5:15, 16:27] == 0).all()  # object 2 untouched -> unlabelled


def test_classes_of_objects_by_majority():
    objects = np.array([[1, 1, 2, 2]])
    classes = np.array([[3, 3, 2, 0]])
    assert classes_of_objects(objects, classes) == {1: 3, 2: 2}


def test_add_corrections_is_the_correct_widgets_step_headless():
    import pytest

    import napari_unet as nu
    from napari_unet.errors import InputError

    predicted_objects = np.zeros((30, 40), np.uint32)
    predicted_objects[5:15, 5:25] = 1  # two nuclei merged
    predicted_classes = (predicted_objects > 0).astype(np.uint8) * 2
    objects = predicted_objects.copy()
    objects[5:15, 5:15], objects[5:15, 15:25] = 2, 3  # split by hand
    annotation = np.zeros((30, 40), np.uint8)
    annotation[25:28, 30:38] = 1
    merged = nu.add_corrections(annotation, predicted_classes, predicted_objects, objects=objects)
    assert merged is not annotation and annotation[5:15, 5:25].max() == 0  # the one given is left alone
    assert (merged[25:28, 30:38] == 1).all()  # earlier paint kept
    assert (merged[5:15, 5:14] == 2).all() and (merged[5:15, 16:25] == 2).all()  # both objects, whole
    assert (merged[5:15, 14:16] == 1).all()  # with a background gap where they touch
    classes = predicted_classes.copy()
    classes[20:23, 0:5] = 2  # a missed bit painted on the classes
    both = nu.add_corrections(None, predicted_classes, predicted_objects, classes=classes, objects=objects)
    assert (both[20:23, 0:5] == 2).all() and both.dtype == np.uint8
    with pytest.raises(InputError, match="painted copy"):
        nu.add_corrections(annotation, predicted_classes)


def test_the_rest_of_a_split_pair_counts_whole_but_not_the_rest_of_a_blob_of_many():
    from napari_unet.train.annotations import corrections_from_objects

    predicted = np.zeros((40, 90), np.uint32)
    predicted[5:15, 5:25] = 1  # a merged pair
    predicted[20:35, 5:85] = 2  # a blob of eight cells
    painted = predicted.copy()
    painted[5:15, 5:15] = 3  # one of the pair painted with a new label: the rest is the other
    painted[20:35, 5:15] = 4  # two cells of the blob painted over it, the rest left
    painted[20:35, 15:25] = 5
    update = corrections_from_objects(painted, predicted)
    assert (update[5:15, 16:25] == 2).all()  # the rest of the pair: an object, whole
    assert (update[21:34, 6:14] == 2).all() and (update[21:34, 16:24] == 2).all()
    assert (update[20:35, 25:85] == 0).all()  # the rest of the blob: not confirmed, unlabelled
    assert (update[20:35, 24] == 1).all()  # a gap on the painted cell where it meets the blob


def test_an_instance_mask_is_told_from_a_class_annotation(scribbled):
    from napari_unet.train.annotations import annotation_from_labels, looks_like_instances

    _, scribbles, objects = scribbled
    assert looks_like_instances(objects)  # synthetic nuclei numbered 1..n
    assert not looks_like_instances(scribbles)  # 1 background strokes, 2 object strokes
    classes = scribbles.copy()
    classes[objects == 3], classes[objects == 4] = 3, 4  # more classes, still strokes of few values
    assert not looks_like_instances(classes)
    assert not looks_like_instances(objects.astype(np.float32))  # not labels at all
    annotation, note = annotation_from_labels(objects)
    assert f"{len(np.unique(objects)) - 1} objects" in note
    assert set(np.unique(annotation).tolist()) <= {0, 1, 2} and (annotation[objects > 0] > 0).all()
    kept, note = annotation_from_labels(objects, "classes")
    assert note == "" and np.array_equal(kept, objects)
    same, note = annotation_from_labels(scribbles)
    assert note == "" and np.array_equal(same, scribbles)
    forced, note = annotation_from_labels(scribbles, "objects")
    assert note and forced.max() == 2


def test_fit_says_what_an_instance_mask_is(tiny_model, scribbled):
    import pytest

    from napari_unet import TrainConfig, drain, fit
    from napari_unet.errors import InputError

    image, _, objects = scribbled
    with pytest.raises(InputError, match=r"instance mask.*annotation_from_labels"):
        drain(fit(tiny_model, [image], [objects], TrainConfig(steps=1, device="cpu")))
