import numpy as np
import pytest

from napari_unet.errors import InputError, TrainingError
from napari_unet.images.normalization import Normalization
from napari_unet.train.data import check_annotation, prepare_training_data, split_validation


def _prepare(images, annotations, **kwargs):
    return prepare_training_data(images, annotations, 1, 2, Normalization(), **kwargs)


def test_sparse_annotation_trains(scribbled):
    image, annotation, _ = scribbled
    data = _prepare([image], [annotation])
    assert data.labelled_pixels + data.validation_pixels == (annotation > 0).sum()
    assert data.validation_pixels > 0


def test_half_percent_painted_is_enough_and_patches_find_it():
    rng = np.random.default_rng(0)
    image = rng.random((512, 512)).astype(np.float32)
    annotation = np.zeros((512, 512), dtype=np.uint8)
    annotation[100:110, 100:170] = 2  # 700 px
    annotation[400:410, 300:360] = 1  # 600 px -> ~0.5% painted
    data = _prepare([image], [annotation], val_fraction=0.1)
    _, labels, _ = data.sample_batch(32, 80, 40, rng)
    centre = labels[:, 20:60, 20:60]
    assert ((centre > 0).reshape(32, -1).any(axis=1)).mean() > 0.8
    assert set(np.unique(labels)) <= {0, 1, 2}


def test_validation_split_keeps_every_class_in_training():
    labels = np.zeros((128, 128), dtype=np.uint8)
    labels[5:10, 5:10] = 2  # one tiny object stroke
    labels[60:120, 60:120] = 1
    train, val = split_validation(labels, 0.5, np.random.default_rng(0))
    assert (train == 2).any()
    assert not ((train > 0) & (val > 0)).any()
    assert ((train > 0) | (val > 0)).sum() == (labels > 0).sum()
    assert (val > 0).sum() >= 0.3 * (labels > 0).sum()


def test_several_images_and_stacks(scribbled):
    image, annotation, _ = scribbled
    stack = np.stack([image, image[::-1]])
    ann_stack = np.stack([annotation, np.zeros_like(annotation)])
    data = _prepare([image, stack], [annotation, ann_stack])
    assert len(data.planes) == 2  # the unpainted plane of the stack is skipped


def test_nothing_painted_is_an_error():
    with pytest.raises(TrainingError, match="nothing is painted"):
        _prepare([np.zeros((32, 32))], [np.zeros((32, 32), np.uint8)])


def test_one_class_only_is_an_error():
    ann = np.zeros((32, 32), np.uint8)
    ann[3:6, 3:6] = 2
    with pytest.raises(TrainingError, match="only class 2"):
        _prepare([np.zeros((32, 32))], [ann])


def test_shape_mismatch_is_an_error():
    with pytest.raises(InputError, match="shape"):
        _prepare([np.zeros((32, 32))], [np.zeros((32, 31), np.uint8)])


@pytest.mark.parametrize(
    ("annotation", "message"),
    [
        (np.full((4, 4), -1), "negative"),
        (np.full((4, 4), 0.5), "non-integer"),
        (np.full((4, 4), 7), "class 7"),
    ],
)
def test_bad_annotations(annotation, message):
    with pytest.raises(InputError, match=message):
        check_annotation(annotation, (4, 4), 2)


def test_float_and_bool_annotations_are_accepted():
    assert check_annotation(np.full((4, 4), 2.0), (4, 4), 2).dtype == np.uint8
    assert check_annotation(np.ones((4, 4), bool), (4, 4), 2).max() == 1


def test_outlined_fraction_tells_scribbles_from_whole_objects(scribbled, tiny_model):
    from napari_unet.train.annotations import instances_to_annotation
    from napari_unet.train.config import TrainConfig
    from napari_unet.train.fit import prepare

    image, annotation, objects = scribbled
    config = TrainConfig(steps=1)
    assert prepare(tiny_model, [image], [annotation], config).outlined_fraction < 0.05  # centres, far background
    outlined = instances_to_annotation(objects, 2, gap=True, ring=2)
    assert prepare(tiny_model, [image], [outlined], config).outlined_fraction > 0.1


@pytest.mark.parametrize("shape", [(1, 50, 70), (2, 9, 1), (1, 1, 1), (1, 300, 40)])
def test_windows_mirror_images_and_zero_pad_labels_like_numpy(shape):
    from napari_unet.train.data import _mirrored_window, _zero_padded_window

    rng = np.random.default_rng(0)
    array = rng.random(shape).astype(np.float32)
    labels = rng.integers(0, 3, shape[1:]).astype(np.uint8)
    for size in (1, 7, 64, 150):
        for top, left in rng.integers(-2 * size - 80, 2 * size + 80, (25, 2)):
            out = np.full((shape[0], size, size), np.nan, dtype=np.float32)
            _mirrored_window(out, array, int(top), int(left))
            pad = 4 * size + 400
            big = array  # reflected along each axis, or repeated where the axis is one pixel long
            for axis in (1, 2):
                widths = [(pad, pad) if a == axis else (0, 0) for a in range(3)]
                big = np.pad(big, widths, mode="reflect" if shape[axis] > 1 else "edge")
            expected = big[:, pad + top : pad + top + size, pad + left : pad + left + size]
            np.testing.assert_array_equal(out, expected)
            window = np.full((size, size), 99, dtype=np.uint8)
            _zero_padded_window(window, labels, int(top), int(left))
            zeros = np.pad(labels, pad)[pad + top : pad + top + size, pad + left : pad + left + size]
            np.testing.assert_array_equal(window, zeros)


def test_windows_centre_on_the_focus_first():
    from napari_unet.train.data import TrainingData, TrainingPlane

    h, w = 200, 200
    yy, xx = np.mgrid[:h, :w].astype(np.float32)
    labels = np.zeros((h, w), np.uint8)
    labels[::7, ::7], labels[3::7, 3::7] = 1, 2
    plane = TrainingPlane(np.stack([yy, xx]), labels, np.zeros_like(labels), np.ones((h, w), np.float32))
    data = TrainingData([plane], n_classes=2, class_weights=np.ones(3, np.float32))
    focus = np.zeros((h, w), bool)
    focus[150:, 150:] = True
    data.focus_on([focus])
    assert data.focus_pixels == int((focus & (labels > 0)).sum())
    images, _, _ = data.sample_batch(64, 41, 21, np.random.default_rng(0), focus_fraction=1.0)
    assert (images[:, :, 20, 20] >= 150 - 9).all()  # every centre within the jitter of the focus
    images, _, _ = data.sample_batch(400, 41, 21, np.random.default_rng(1), focus_fraction=0.5)
    share = np.mean((images[:, 0, 20, 20] >= 141) & (images[:, 1, 20, 20] >= 141))
    assert 0.45 < share < 0.65  # half on the focus, and the few others that land there anyway
    unfocused, _, _ = data.sample_batch(8, 41, 21, np.random.default_rng(2))
    data.focus_on([np.zeros((h, w), bool)])
    again, _, _ = data.sample_batch(8, 41, 21, np.random.default_rng(2), focus_fraction=0.5)
    np.testing.assert_array_equal(again, unfocused)  # no focus: the windows are drawn as before
