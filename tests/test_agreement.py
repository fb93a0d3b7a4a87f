"""Known-answer tests for the label-free measures (dvsnet.agreement): hand-made label maps and flows."""
import numpy as np
import pytest
import torch

from dvsnet.agreement import (
    measure_against_reference,
    pair_flow,
    pixel_agreement,
    temporal_confusion,
    warp_labels_nearest,
)
from dvsnet.flow import DISFlow
from dvsnet.metrics import mean_iou

H, W = 24, 40


def _labels(seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 19, size=(H, W), dtype=np.uint8)


def _flow(dx: float, dy: float, size=(H, W)) -> np.ndarray:
    flow = np.zeros((2, *size), np.float32)
    flow[0], flow[1] = dx, dy
    return flow


def _halves(split: int) -> np.ndarray:
    labels = np.zeros((H, W), np.uint8)
    labels[:, split:] = 1
    return labels


def test_zero_flow_is_the_identity():
    labels = _labels()
    assert np.array_equal(warp_labels_nearest(labels, _flow(0, 0)), labels)


@pytest.mark.parametrize("dx, dy", [(3, 0), (-2, 0), (0, 4), (2, -3)])
def test_an_integer_flow_is_a_roll_in_the_interior_and_ignore_outside(dx, dy):
    labels = _labels(1)
    out = warp_labels_nearest(labels, _flow(dx, dy))
    rolled = np.roll(labels, (-dy, -dx), axis=(0, 1))  # out(p) = labels(p + flow)
    rows = slice(max(0, -dy), H - max(0, dy))
    cols = slice(max(0, -dx), W - max(0, dx))
    assert np.array_equal(out[rows, cols], rolled[rows, cols])
    inside = np.zeros((H, W), bool)
    inside[rows, cols] = True
    assert (out[~inside] == 255).all() and (~inside).sum() > 0


def test_sub_pixel_flow_rounds_to_the_nearest_pixel():
    labels = _labels(2)
    assert np.array_equal(warp_labels_nearest(labels, _flow(0.4, -0.4)), labels)
    assert np.array_equal(warp_labels_nearest(labels, _flow(0.6, 0))[:, :-1], labels[:, 1:])


def test_pixel_agreement_counts_equal_pixels_and_skips_ignored_reference_pixels():
    reference = _halves(10)  # 10 columns of 0, 30 of 1
    assert pixel_agreement(np.zeros((H, W), np.uint8), reference) == pytest.approx(10 / 40)
    reference[:, 20:] = 255  # only columns 0..19 scored: 10 of them are 0
    assert pixel_agreement(np.zeros((H, W), np.uint8), reference) == pytest.approx(10 / 20)
    assert np.isnan(pixel_agreement(reference, np.full((H, W), 255, np.uint8)))


def test_temporal_consistency_of_a_moving_edge():
    labels, moved = _halves(15), _halves(17)  # the edge moves 2 px right from frame t to t+1
    # with the right flow (each pixel of t is 2 px further right in t+1) the warp explains everything
    assert mean_iou(temporal_confusion(labels, moved, _flow(2, 0), 19)) == 1.0
    # with zero flow, 2 columns disagree: class 0 IoU 15/17, class 1 IoU (40-17)/(40-15)
    matrix = temporal_confusion(labels, moved, _flow(0, 0), 19)
    assert matrix.sum() == H * W
    assert mean_iou(matrix) == pytest.approx((15 / 17 + 23 / 25) / 2)


class HalfResolutionShift:
    """A flow estimator that returns a constant (dx, dy) on a grid half the frame's size (so in half-size
    pixels), as a learned estimator may: pair_flow must bring it to the frame's grid."""

    name = "shift"

    def __init__(self, dx: float, dy: float):
        self.dx, self.dy = dx, dy
        self.calls = 0

    def __call__(self, key: torch.Tensor, cur: torch.Tensor):
        self.calls += 1
        b, _, h, w = cur.shape
        flow = torch.zeros(b, 2, h // 2, w // 2)
        flow[:, 0], flow[:, 1] = self.dx / 2, self.dy / 2
        return flow, None


def _panning(n: int, speed: int) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """n frames of a label pattern moving `speed` px left per frame (so pixel p of frame t is at p - speed
    in t+1), and H×W×3 frames (unused by the fake estimator)."""
    wide = np.random.default_rng(3).integers(0, 4, size=(H, W + n * speed), dtype=np.uint8)
    wide = np.repeat(wide[:, ::4], 4, axis=1)[:, : W + n * speed]
    labels = [wide[:, t * speed: t * speed + W].copy() for t in range(n)]
    return [np.zeros((H, W, 3), np.uint8)] * n, labels


def test_measures_against_the_reference_with_a_known_flow():
    frames, reference = _panning(5, speed=2)
    estimator = HalfResolutionShift(-2, 0)
    constant = [np.zeros((H, W), np.uint8)] * 5
    (same, flat), ref = measure_against_reference(frames, [reference, constant], reference, flow=estimator,
                                                  num_classes=19)
    assert estimator.calls == 4  # once per frame pair, shared by every output
    assert same == {"pixel_agreement": 1.0, "pixel_agreement_min": 1.0, "miou_vs_per_frame": 1.0,
                    "temporal_consistency": 1.0}
    assert ref == {"temporal_consistency": 1.0, "flicker_ceiling": 1.0}
    shares = [(labels == 0).mean() for labels in reference]
    assert flat["pixel_agreement"] == pytest.approx(np.mean(shares))
    assert flat["pixel_agreement_min"] == pytest.approx(min(shares))
    assert flat["temporal_consistency"] == 1.0  # a constant output never flickers


def test_a_one_frame_clip_has_no_temporal_measures():
    frames, reference = _panning(1, speed=2)
    (out,), ref = measure_against_reference(frames, [reference], reference, flow=HalfResolutionShift(0, 0))
    assert out["pixel_agreement"] == 1.0 and out["temporal_consistency"] is None
    assert ref == {"temporal_consistency": None, "flicker_ceiling": None}


def test_pair_flow_of_dis_maps_each_pixel_to_its_place_in_the_next_frame():
    rng = np.random.default_rng(0)
    wide = rng.integers(0, 256, size=(16, 40, 3), dtype=np.uint8)
    wide = np.repeat(np.repeat(wide, 4, 0), 4, 1)  # 64x160 texture of 4x4 blocks
    frame, next_frame = wide[:, 8:136], wide[:, 5:133]  # the camera pans left: content moves 3 px right
    flow = pair_flow(DISFlow("medium", with_features=False), frame, next_frame)
    assert flow.shape == (2, 64, 128)
    interior = flow[:, 8:-8, 8:-8]
    assert np.median(interior[0]) == pytest.approx(3.0, abs=0.25)
    assert np.median(interior[1]) == pytest.approx(0.0, abs=0.25)
