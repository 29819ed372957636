import numpy as np

from napari_unet.objects import ObjectConfig, classes_to_objects, probabilities_to_classes, remove_small


def _touching_discs():
    yy, xx = np.mgrid[0:60, 0:100]
    a = (yy - 30) ** 2 + (xx - 35) ** 2 < 15**2
    b = (yy - 30) ** 2 + (xx - 62) ** 2 < 15**2
    return (a | b).astype(np.uint8) * 2


def test_probabilities_to_classes_uses_annotation_values():
    probs = np.zeros((3, 2, 2))
    probs[0, 0, 0] = probs[1, 0, 1] = probs[2, 1, 0] = probs[2, 1, 1] = 1
    assert probabilities_to_classes(probs).tolist() == [[0, 2], [3, 3]]


def test_touching_objects_are_split_at_the_neck():
    objects = classes_to_objects(_touching_discs())
    assert objects.max() == 2
    left, right = objects[30, 35], objects[30, 62]
    assert left != right and left > 0 and right > 0


def test_without_split_touching_objects_merge():
    assert classes_to_objects(_touching_discs(), ObjectConfig(split=False)).max() == 1


def test_an_elongated_object_is_not_split():
    classes = np.zeros((40, 120), np.uint8)
    classes[14:26, 10:110] = 2
    assert classes_to_objects(classes).max() == 1


def test_small_objects_are_removed_and_ids_unique_across_classes_and_planes():
    classes = np.zeros((2, 30, 30), np.uint8)
    classes[:, 2:10, 2:10] = 2
    classes[:, 15:25, 15:25] = 3
    classes[:, 28, 28] = 2  # one pixel: dropped
    objects = classes_to_objects(classes, ObjectConfig(min_size=4))
    assert sorted(np.unique(objects).tolist()) == [0, 1, 2, 3, 4]
    assert objects[0, 28, 28] == 0


def test_remove_small_renumbers():
    labels = np.array([[1, 1, 0, 5, 5, 5, 7]])
    assert remove_small(labels, 2).tolist() == [[1, 1, 0, 2, 2, 2, 0]]


def test_objects_keep_only_confident_pixels():
    classes = np.zeros((20, 20), np.uint8)
    classes[5:15, 5:15] = 2
    probs = np.zeros((2, 20, 20))
    probs[1][classes == 2] = 0.6
    probs[1][7:13, 7:13] = 0.99
    probs[0] = 1 - probs[1]
    objects = classes_to_objects(classes, ObjectConfig(threshold=0.9), probs)
    assert (objects > 0).sum() == 36
    assert (classes_to_objects(classes, ObjectConfig(threshold=0.5), probs) > 0).sum() == 100
    assert (classes_to_objects(classes, ObjectConfig(threshold=0.9)) > 0).sum() == 100  # no probabilities


def test_per_component_splitting_matches_the_whole_image_watershed():
    from scipy import ndimage
    from skimage.metrics import adapted_rand_error
    from skimage.morphology import h_maxima
    from skimage.segmentation import find_boundaries, watershed

    from napari_unet.objects import ObjectConfig, split_mask
    from napari_unet.synthetic import SyntheticConfig, synthetic_nuclei

    config = ObjectConfig()
    for seed in (0, 1):
        _, truth = synthetic_nuclei(SyntheticConfig(shape=(384, 384)), seed=seed)
        mask = (truth > 0) & ~find_boundaries(truth, mode="inner") if seed else truth > 0
        distance = ndimage.gaussian_filter(ndimage.distance_transform_edt(mask), config.smoothing)
        markers, n = ndimage.label(h_maxima(distance, config.split_depth) & mask)
        whole = watershed(-distance, markers, mask=mask)
        labels, count = split_mask(mask, config)
        assert count == n and labels.max() == count
        assert ((labels > 0) == mask).all()
        assert adapted_rand_error(whole, labels)[0] < 0.01
