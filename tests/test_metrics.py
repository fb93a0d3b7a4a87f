"""Known-answer tests for the confusion matrix, IoU and mIoU (dvsnet.metrics)."""
import math

import numpy as np
import pytest

from dvsnet.metrics import confusion_matrix, iou_per_class, mean_iou, pixel_accuracy


def test_confusion_matrix_counts_pairs_and_skips_ignore():
    truth = np.array([[0, 0, 1, 255],
                      [2, 1, 1, 255]], dtype=np.uint8)
    pred = np.array([[0, 1, 1, 2],
                     [2, 1, 0, 0]], dtype=np.uint8)
    m = confusion_matrix(truth, pred, num_classes=3)
    expected = np.array([[1, 1, 0],    # truth 0: one right, one called 1
                         [1, 2, 0],    # truth 1: two right, one called 0
                         [0, 0, 1]])   # truth 2: one right
    np.testing.assert_array_equal(m, expected)
    assert m.dtype == np.int64
    assert m.sum() == 6  # the two ignore pixels are not counted, whatever was predicted there


def test_iou_and_miou_of_hand_made_matrix():
    # rows = truth, columns = prediction
    m = np.array([[8, 2, 0, 0, 2],   # truth 0: 2 pixels predicted as class 4
                  [1, 3, 0, 0, 0],
                  [0, 0, 0, 0, 0],   # class 2: never in truth, never predicted -> absent
                  [0, 0, 0, 0, 0],   # class 3: absent too
                  [0, 0, 0, 0, 0]])  # class 4: predicted, never true -> present with IoU 0
    iou = iou_per_class(m)
    # class 0: TP 8, FN 2 + 2, FP 1 -> 8 / 13 ; class 1: TP 3, FN 1, FP 2 -> 3 / 6 ; class 4: 0 / 2
    assert iou[0] == pytest.approx(8 / 13)
    assert iou[1] == pytest.approx(0.5)
    assert math.isnan(iou[2]) and math.isnan(iou[3])
    assert iou[4] == 0.0
    assert mean_iou(m) == pytest.approx((8 / 13 + 0.5 + 0.0) / 3)
    assert pixel_accuracy(m) == pytest.approx(11 / 16)


def test_perfect_prediction_scores_one_and_accumulation_is_additive():
    rng = np.random.default_rng(0)
    a = rng.integers(0, 19, size=(8, 16)).astype(np.uint8)
    b = rng.integers(0, 19, size=(8, 16)).astype(np.uint8)
    assert mean_iou(confusion_matrix(a, a)) == 1.0
    both = confusion_matrix(np.stack([a, a]), np.stack([a, b]))
    np.testing.assert_array_equal(both, confusion_matrix(a, a) + confusion_matrix(a, b))


def test_no_present_class_gives_nan_and_bad_prediction_raises():
    assert math.isnan(mean_iou(np.zeros((19, 19), dtype=np.int64)))
    truth = np.full((2, 2), 255, dtype=np.uint8)
    assert confusion_matrix(truth, truth).sum() == 0  # predictions on ignored pixels are never checked
    with pytest.raises(ValueError, match="outside the train ids"):
        confusion_matrix(np.zeros((2, 2), np.uint8), np.full((2, 2), 19, np.uint8))
    with pytest.raises(ValueError, match="shape"):
        confusion_matrix(np.zeros((2, 2), np.uint8), np.zeros((2, 3), np.uint8))
