"""Label-free measures: how a segmentation of a video compares with a reference output, and with itself
over time.

Without labels, DVSNet's output is compared with the same segmenter run on every frame (the per-frame
reference; dvsnet.evaluate.evaluate_video runs both):

- pixel agreement: the share of a frame's pixels whose label equals the reference's (paper Eq. (1), on
  the whole frame instead of one region), averaged over frames.
- mIoU against the reference: the reference taken as ground truth, one confusion matrix accumulated over
  all frames (dvsnet.metrics).
- temporal consistency (Liu et al. 2020, "Efficient Semantic Video Segmentation with Per-frame
  Inference", §4, their tool/eval_tc.py): for each pair of consecutive frames (t, t+1), the labels of
  t+1 are warped back to frame t by the optical flow from t to t+1 and compared with the labels of t;
  mIoU of the confusion matrix accumulated over all pairs. 1 = nothing flickers that the flow does not
  explain. Labels are warped nearest-neighbour (a label has no in-between value).
- flicker ceiling: the pixel agreement of the reference's labels of frame t with its own labels of
  frame t+1 warped back by the same flow, averaged over pairs. A warped region of DVSNet is the key's
  labels carried by flow, so on content like this no warping of a key one frame away agrees with the
  per-frame output more than this; where the per-frame output itself flickers, the ceiling is low.

Conventions (owned here): labels (H, W) uint8 train ids, 255 = ignore. A pair's flow is (2, H, W) float,
(dx, dy) in pixels, mapping each pixel p of frame t to its position p + flow(p) in frame t+1: the
package's flow convention (dvsnet.warp) with frame t as the "current" frame and t+1 as the "key". It is
computed once per pair and shared by every output measured. Pixels whose flow leaves the frame have
nothing to be compared with: they get 255 in the warped map and are not scored.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from tqdm import tqdm

from dvsnet.data.labels import IGNORE, NUM_CLASSES
from dvsnet.flow import DISFlow, FlowEstimator
from dvsnet.metrics import confusion_matrix, mean_iou
from dvsnet.warp import resize_flow

CONSISTENCY_FLOW = "dis-medium"  # the flow the measures use, as results record it


def warp_labels_nearest(labels: np.ndarray, flow: np.ndarray, fill: int = IGNORE) -> np.ndarray:
    """out(p) = labels(round(p + flow(p))): backward warp of an (H, W) label map by a (2, H, W) flow in
    pixels (nearest neighbour). Pixels whose rounded source lies outside the frame get `fill`."""
    height, width = labels.shape
    xs = np.floor(np.arange(width)[None, :] + flow[0] + 0.5).astype(np.int64)  # (H, W) source columns
    ys = np.floor(np.arange(height)[:, None] + flow[1] + 0.5).astype(np.int64)  # (H, W) source rows
    inside = (xs >= 0) & (xs < width) & (ys >= 0) & (ys < height)
    out = labels[ys.clip(0, height - 1), xs.clip(0, width - 1)]
    out[~inside] = fill
    return out


def pixel_agreement(labels: np.ndarray, reference: np.ndarray) -> float:
    """Share of the pixels where `labels` equals `reference`, over the pixels where the reference is not
    255 (NaN when there are none). labels, reference: (H, W) integer maps."""
    scored = reference != IGNORE
    count = int(scored.sum())
    return float((labels[scored] == reference[scored]).sum() / count) if count else float("nan")


def temporal_confusion(labels: np.ndarray, next_labels: np.ndarray, flow: np.ndarray,
                       num_classes: int = NUM_CLASSES) -> np.ndarray:
    """(K, K) confusion matrix of frame t's `labels` (columns) against frame t+1's `next_labels` warped
    back to frame t by `flow` (rows; out-of-frame pixels not counted). Summed over pairs, its mIoU is the
    temporal consistency; IoU is symmetric, so which side is "truth" does not matter."""
    return confusion_matrix(warp_labels_nearest(next_labels, flow), labels, num_classes)


def to_tensor(frame: np.ndarray) -> torch.Tensor:
    """H×W×3 uint8 RGB -> (1, 3, H, W) float32 in [0, 1]."""
    return torch.from_numpy(frame).permute(2, 0, 1)[None].float().div_(255)


def pair_flow(estimator: FlowEstimator, frame: np.ndarray, next_frame: np.ndarray) -> np.ndarray:
    """(2, H, W) float32 flow from H×W×3 uint8 `frame` to `next_frame` (each pixel of `frame` -> its
    position in `next_frame`), on the frame's own grid whatever grid the estimator returns."""
    flow, _ = estimator(to_tensor(next_frame), to_tensor(frame))  # key = next frame, current = this frame
    return resize_flow(flow.float().cpu(), frame.shape[:2])[0].numpy()  # (2, H, W)


def consistency_flow() -> FlowEstimator:
    """The estimator of CONSISTENCY_FLOW: DIS, medium preset, on full frames."""
    return DISFlow("medium", with_features=False)


def _or_none(value: float) -> float | None:
    return None if np.isnan(value) else float(value)


def measure_against_reference(
    frames: Sequence[np.ndarray],
    outputs: Sequence[Sequence[np.ndarray]],
    reference: Sequence[np.ndarray],
    *,
    flow: FlowEstimator | None = None,
    num_classes: int = NUM_CLASSES,
    progress: bool = False,
) -> tuple[list[dict[str, float | None]], dict[str, float | None]]:
    """The label-free measures of each output against the per-frame `reference`, and of the reference.

    frames: the N H×W×3 uint8 frames all outputs were computed on; outputs: per output, its N (H, W)
    label maps; reference: the reference's N label maps. flow: the estimator for the pairs' flow (default
    consistency_flow()), called once per pair of consecutive frames.
    Returns (one dict per output: pixel_agreement, pixel_agreement_min, miou_vs_per_frame,
    temporal_consistency; the reference's: temporal_consistency, flicker_ceiling), fractions in [0, 1],
    None where nothing was scored (a one-frame clip has no pairs).
    """
    if not frames or any(len(labels) != len(frames) for labels in (*outputs, reference)):
        raise ValueError("every output and the reference need one label map per frame, "
                         "and there must be frames")
    flow = consistency_flow() if flow is None else flow
    agreement = np.array([[pixel_agreement(out[i], reference[i]) for i in range(len(frames))]
                          for out in outputs])
    versus = [sum(confusion_matrix(reference[i], out[i], num_classes) for i in range(len(frames)))
              for out in outputs]
    over_time = [np.zeros((num_classes, num_classes), np.int64) for _ in range(len(outputs) + 1)]
    ceiling = []
    pairs = range(len(frames) - 1)
    for t in tqdm(pairs, desc="consistency flow", unit="pair", disable=not progress, leave=False):
        pair = pair_flow(flow, frames[t], frames[t + 1])
        for matrix, labels in zip(over_time, (*outputs, reference)):
            matrix += temporal_confusion(labels[t], labels[t + 1], pair, num_classes)
        ceiling.append(pixel_agreement(reference[t], warp_labels_nearest(reference[t + 1], pair)))
    per_output = [
        {"pixel_agreement": float(row.mean()), "pixel_agreement_min": float(row.min()),
         "miou_vs_per_frame": _or_none(mean_iou(matrix)), "temporal_consistency": _or_none(mean_iou(tc))}
        for row, matrix, tc in zip(agreement, versus, over_time)
    ]
    scored = [c for c in ceiling if not np.isnan(c)]
    return per_output, {"temporal_consistency": _or_none(mean_iou(over_time[-1])),
                        "flicker_ceiling": float(np.mean(scored)) if scored else None}
