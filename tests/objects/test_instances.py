import numpy as np
import pytest

from napari_unet.errors import InputError
from napari_unet.objects.classes import probabilities_to_classes
from napari_unet.objects.config import ObjectConfig
from napari_unet.objects.instances import classes_to_objects, reach_classes, remove_small
from tests.conftest import tissue_probabilities


def _touching_discs():
    yy, xx = np.mgrid[0:60, 0:100]
    a = (yy - 30) ** 2 + (xx - 35) ** 2 < 15**2
    b = (yy - 30) ** 2 + (xx - 62) ** 2 < 15**2
    return (a | b).astype(np.uint8) * 2


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
    objects = classes_to_objects(classes, ObjectConfig(threshold=0.9), probs)  # a threshold set: no growing
    assert (objects > 0).sum() == 36
    assert (classes_to_objects(classes, ObjectConfig(threshold=0.9, grow=True), probs) > 0).sum() == 100
    assert ObjectConfig().grows and not ObjectConfig(threshold=0.9).grows
    assert (classes_to_objects(classes, ObjectConfig(threshold=0.5), probs) > 0).sum() == 100
    assert (classes_to_objects(classes, ObjectConfig(threshold=0.9)) > 0).sum() == 100  # no probabilities


def _touching_rods_with_unsure_rims():
    """Two rods end to end and a lone blob, the network sure of their cores and unsure of their last pixels.

    The background probability peaks on the line where the rods meet (the separation the network learned).
    """
    classes = np.zeros((40, 100), np.uint8)
    classes[12:24, 10:90] = 2  # the rods touch at column 50
    classes[30:34, 92:96] = 2  # unsure everywhere: no confident core
    core = np.zeros(classes.shape, bool)
    core[14:22, 12:47] = core[14:22, 53:88] = True
    probs = np.zeros((2, *classes.shape), np.float32)
    probs[1] = np.where(core, 0.99, np.where(classes > 0, 0.7, 0.1))
    probs[1][12:24, 49:51] = 0.55  # the line between them, still most probably an object
    probs[0] = 1 - probs[1]
    return classes, probs


def test_grown_objects_take_back_their_unsure_rims_and_meet_where_the_network_separates_them():
    classes, probs = _touching_rods_with_unsure_rims()
    confident = classes_to_objects(classes, ObjectConfig(threshold=0.95, split=False, grow=False), probs)
    grown = classes_to_objects(classes, ObjectConfig(threshold=0.95, split=False, grow=True), probs)
    assert confident.max() == grown.max() == 2
    assert (confident > 0).sum() == 2 * 8 * 35
    assert (grown > 0).sum() == 12 * 80  # every pixel of the rods, none of the blob without a core
    assert grown[30:34, 92:96].max() == 0
    left, right = grown[18, 20], grown[18, 80]
    assert left != right
    assert (grown[12:24, 10:49] == left).all() and (grown[12:24, 51:90] == right).all()
    # the argmax would merge them: growing keeps the separation the confident cores made
    assert classes_to_objects(classes, ObjectConfig(threshold=0.5, split=False), probs).max() == 2  # blob too
    assert len(np.unique(classes_to_objects(classes, ObjectConfig(threshold=0.5, split=False), probs)[12:24])) == 2


def test_objects_grow_below_the_argmax_only_as_far_as_asked():
    classes, probs = _touching_rods_with_unsure_rims()
    probs[1][11, 10:90] = probs[1][24, 10:90] = 0.3  # a row above and below: background, but not surely
    probs[0] = 1 - probs[1]
    at_argmax = classes_to_objects(classes, ObjectConfig(threshold=0.95, split=False, grow=True), probs)
    deeper = classes_to_objects(classes, ObjectConfig(threshold=0.95, split=False, grow=True, grow_to=0.25), probs)
    assert (at_argmax > 0).sum() == 12 * 80
    assert (deeper > 0).sum() == 14 * 80  # the two rows joined, each to the rod beside it
    assert deeper.max() == 2 and deeper[11, 20] == deeper[18, 20] != deeper[24, 80]
    assert (classes_to_objects(classes, ObjectConfig(threshold=0.95, grow=True, grow_to=0.35), probs) > 0).sum() == 960


def test_reach_classes_give_uncertain_background_to_the_most_probable_object_class():
    probabilities = np.array([[0.9, 0.6, 0.5, 0.2], [0.05, 0.3, 0.1, 0.7], [0.05, 0.1, 0.4, 0.1]], np.float32)
    probabilities = probabilities[:, None]  # (3 classes, 1, 4)
    classes = probabilities_to_classes(probabilities)
    assert classes.tolist() == [[0, 0, 0, 2]]
    assert reach_classes(probabilities, classes, 0.5).tolist() == [[0, 0, 0, 2]]
    assert reach_classes(probabilities, classes, 0.25).tolist() == [[0, 2, 3, 2]]


@pytest.mark.parametrize("grow_to", [0.0, 0.6])
def test_objects_grow_to_a_probability_up_to_a_half(grow_to):
    with pytest.raises(InputError, match="grow"):
        ObjectConfig(grow_to=grow_to)


def test_per_component_splitting_matches_the_whole_image_watershed():
    from scipy import ndimage
    from skimage.metrics import adapted_rand_error
    from skimage.morphology import h_maxima
    from skimage.segmentation import find_boundaries, watershed

    from napari_unet.images.synthetic import SyntheticConfig, synthetic_nuclei
    from napari_unet.objects.config import ObjectConfig
    from napari_unet.objects.instances import split_mask

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


def _cells_with_a_gap():
    """Two cells side by side; the membrane between them has a gap where the network is unsure."""
    background = np.full((40, 80), 0.02, np.float32)
    background[:, 38:42] = 0.99
    background[18:22, 38:42] = 0.45  # the gap: the argmax joins the two cells through it
    background[:, :2] = background[:, -2:] = background[:2] = background[-2:] = 0.99  # the outer border
    return np.stack([background, 1 - background])


def test_packed_cells_fill_the_plane_and_a_gap_in_a_membrane_does_not_merge_them():
    probabilities = _cells_with_a_gap()
    classes = probabilities_to_classes(probabilities)
    connected = classes_to_objects(classes, ObjectConfig.for_shape("connected", threshold=0.5), probabilities)
    assert connected.max() == 1  # the argmax merges the cells through the gap
    packed = classes_to_objects(classes, ObjectConfig.for_shape("packed", threshold=0.9), probabilities)
    assert packed.max() == 2 and (packed > 0).all()  # every pixel in a cell, the two cells apart
    left, right = packed[:, :38], packed[:, 42:]  # either side of the membrane (on it: either cell)
    assert (left == left[20, 20]).all() and (right == right[20, 20]).all() and left[20, 20] != right[20, 20]


def test_packed_cells_follow_the_predicted_membranes():
    cells, probabilities = tissue_probabilities((200, 240), 40, seed=0)
    classes = probabilities_to_classes(probabilities)
    packed = classes_to_objects(classes, ObjectConfig.for_shape("packed", threshold=0.9), probabilities)
    connected = classes_to_objects(classes, ObjectConfig.for_shape("connected", threshold=0.5), probabilities)
    assert (packed > 0).all()

    def matched(objects):  # cells whose majority object covers most of them and no other cell
        owner = {}
        for cell in np.unique(cells):
            ids, counts = np.unique(objects[cells == cell], return_counts=True)
            owner[cell] = ids[np.argmax(counts)] if counts.max() > 0.8 * counts.sum() else 0
        taken = [o for o in owner.values() if o]
        return sum(1 for o in owner.values() if o and taken.count(o) == 1)

    assert matched(packed) >= 38  # of 40
    assert matched(connected) < matched(packed)  # the gaps merge cells without filling


def test_fill_without_probabilities_grows_into_the_background_class():
    classes = np.zeros((30, 60), np.uint8)
    classes[10:20, 5:15] = classes[10:20, 40:50] = 2
    objects = classes_to_objects(classes, ObjectConfig.for_shape("packed"))
    assert objects.max() == 2 and (objects > 0).all()


@pytest.mark.parametrize("split", [True, False])
@pytest.mark.parametrize("min_size", [1, 16, 60])
def test_split_mask_drops_small_objects_as_remove_small_does(split, min_size):
    from scipy import ndimage

    from napari_unet.objects.instances import split_mask

    rng = np.random.default_rng(min_size)
    field = ndimage.gaussian_filter(rng.standard_normal((200, 230)), 2.5)
    mask = field > np.quantile(field, 0.7)  # crowded blobs of many sizes, some split, some tiny
    config = ObjectConfig(split=split)
    whole, count = split_mask(mask, config)
    expected = remove_small(whole, min_size)
    labels, n = split_mask(mask, config, min_size)
    assert np.array_equal(labels, expected) and n == expected.max()
    assert n < count if min_size > 1 else n == count
