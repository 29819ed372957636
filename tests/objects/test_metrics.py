import numpy as np

from napari_unet.objects.metrics import foreground_iou, object_scores


def test_perfect_and_shifted_objects():
    truth = np.zeros((20, 40), int)
    truth[2:10, 2:10] = 1
    truth[2:10, 20:30] = 7
    assert object_scores(truth, truth).f1 == 1.0
    shifted = np.roll(truth, 6, axis=1)  # first object IoU 2/14, second 4/16: no matches
    scores = object_scores(truth, shifted)
    assert scores.true_positives == 0 and scores.f1 == 0


def test_split_and_merge_count_against_f1():
    truth = np.zeros((10, 20), int)
    truth[:, :10], truth[:, 10:] = 1, 2
    merged = (truth > 0).astype(int)
    assert object_scores(truth, merged).f1 == 0
    assert foreground_iou(truth, merged) == 1.0


def test_empty_prediction():
    truth = np.zeros((5, 5), int)
    truth[1:3, 1:3] = 1
    scores = object_scores(truth, np.zeros_like(truth))
    assert scores.f1 == 0 and scores.n_predicted == 0
