"""Segmentation accuracy: a confusion matrix over train ids, IoU per class, and mIoU.

Conventions owned here:
- The confusion matrix is (K, K) int64 with rows = ground truth, columns = prediction, K = number of
  train ids (19 for Cityscapes). Ground-truth pixels equal to 255 (IGNORE) are skipped, and so is any
  ground-truth value >= K (void). A prediction outside [0, K) on a scored pixel is a caller bug and
  raises ValueError: the pipeline always predicts a train id.
- IoU of class c = TP / (TP + FP + FN) = M[c, c] / (row_c + col_c - M[c, c]), computed on the matrix
  accumulated over the whole evaluation (not averaged per image).
- A class is PRESENT when its union row_c + col_c - M[c, c] is non-zero in the accumulated matrix, i.e.
  it occurs in the ground truth or in the prediction (on scored pixels) at least once. Absent classes
  have IoU NaN and do not count; mIoU is the mean IoU over present classes (NaN when none is present).
"""
from __future__ import annotations

import numpy as np

from dvsnet.data.labels import IGNORE, NUM_CLASSES


def confusion_matrix(truth: np.ndarray, prediction: np.ndarray, num_classes: int = NUM_CLASSES) -> np.ndarray:
    """Count (truth, prediction) pairs over the scored pixels of one or more label maps.

    truth, prediction: integer arrays of the same shape, e.g. (H, W) uint8 train ids; truth 255 is ignored.
    Returns (num_classes, num_classes) int64, rows = truth, columns = prediction.
    """
    truth = np.asarray(truth)
    prediction = np.asarray(prediction)
    if truth.shape != prediction.shape:
        raise ValueError(f"truth {truth.shape} and prediction {prediction.shape} differ in shape")
    t = truth.reshape(-1).astype(np.int64)
    p = prediction.reshape(-1).astype(np.int64)
    scored = (t != IGNORE) & (t >= 0) & (t < num_classes)
    t, p = t[scored], p[scored]
    if p.size and (p.min() < 0 or p.max() >= num_classes):
        bad = int(p[(p < 0) | (p >= num_classes)][0])
        raise ValueError(f"prediction holds {bad}, outside the train ids 0..{num_classes - 1}")
    counts = np.bincount(t * num_classes + p, minlength=num_classes * num_classes)
    return counts.reshape(num_classes, num_classes)


def iou_per_class(matrix: np.ndarray) -> np.ndarray:
    """IoU of every class from an accumulated (K, K) confusion matrix -> (K,) float64, NaN where absent."""
    matrix = np.asarray(matrix, dtype=np.float64)
    tp = np.diag(matrix)
    union = matrix.sum(axis=0) + matrix.sum(axis=1) - tp
    iou = np.full(matrix.shape[0], np.nan)
    present = union > 0
    iou[present] = tp[present] / union[present]
    return iou


def mean_iou(matrix: np.ndarray) -> float:
    """Mean IoU over the classes present in `matrix` (non-zero union); NaN when no class is present."""
    iou = iou_per_class(matrix)
    present = ~np.isnan(iou)
    return float(iou[present].mean()) if present.any() else float("nan")


def pixel_accuracy(matrix: np.ndarray) -> float:
    """Share of scored pixels predicted correctly; NaN when nothing was scored."""
    matrix = np.asarray(matrix)
    total = matrix.sum()
    return float(np.trace(matrix) / total) if total else float("nan")
