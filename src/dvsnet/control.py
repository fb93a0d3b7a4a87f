"""Targets instead of thresholds: decision-network policies whose threshold is set frame by frame.

    dn:fps=F    hold the pipeline's rate (FrameResult.timings["total"], the summary's `fps`) at F frames/s,
                never slower: each frame segments as many regions as the time left allows, lowest DN
                score first. The time of a frame is learnt online as
                    t(k) = overhead + seg(k) + (R - k) · warp_cost        (k of R regions segmented)
                from the stage timings of the frames seen (seg(k): one batch of k regions), and a bank
                of the time over or under 1/F (the feedback) spends saved time as soon as it pays for a
                segmentation and pays overspent time back within a quarter of a second.
    dn:agree=A  hold the DN's predicted agreement with per-frame output at A, segmenting as few regions as
                that allows, lowest DN score first. A frame's predicted agreement (the definition
                of calibration tables, dvsnet.calibration_table.predicted_agreement) is
                    P = Σ_r w_r · (1 if r is segmented else s_r + bias)    (w_r: share of the frame's cells)
                At most every CHECK_EVERY frames, on a frame that segments some regions anyway (or
                after 4·CHECK_EVERY frames without one), one region about to warp joins their batch
                (its output is used), and its true confidence
                score (paper Eq. 1) against the DN's score corrects `bias` online.

Either way the frame's threshold T is the DN score of the first region left to warp (regions scoring
>= T warp, as for dn:T), so frames.csv and summary.json record it. Both start from the DN's calibration
table (dvsnet.calibration_table: calibration.json beside a DN from `dvsnet calibrate`) when it has one: the
starting threshold, and
for agree the DN's bias on the held-out clips. A target the run cannot reach is said once (a `note:` line
on stderr), and the run goes on at the nearest point it can reach (warp everything; segment everything).
"""
from __future__ import annotations

import math
import sys
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import nn

from dvsnet.calibration_table import CalibrationTable, predicted_agreement
from dvsnet.policies import Decision, DecisionNetwork, RegionBatch
from dvsnet.regions import core_shares

CHECK_EVERY = 8  # dn:agree=A: at most one region checked (segmented instead of warped) per 8 frames
START_THRESHOLD = 0.92  # without a calibration table: the default dn:T
SMOOTHING = 0.2  # weight of the newest frame in the running estimates of the costs
BIAS_SMOOTHING = 0.2  # weight of the newest check in the running bias
UNREACHABLE_FRAMES = 10  # frames in a row at the end of the reachable range before it is said (fps: >= 1 s)
WARM_UP_FRAMES = 2  # frames a controller does not learn from: the first calls of every network are slow


def print_note(message: str) -> None:
    print(f"note: {message}", file=sys.stderr)


def threshold_segmenting(scores: torch.Tensor, count: int) -> float:
    """The threshold that segments the `count` lowest-scoring regions (scores >= T warp; on ties a region
    scoring T may be segmented too)."""
    ordered = sorted(scores.tolist())
    if count >= len(ordered):
        return math.nextafter(ordered[-1], math.inf)
    return ordered[max(count, 0)]


class ThresholdController(DecisionNetwork):
    """A DN policy whose threshold `segment_count` and `observe` set frame by frame (see the module)."""

    target_name = ""

    def __init__(self, target: float, net: nn.Module | None = None, *, table: CalibrationTable | None = None,
                 note: Callable[[str], None] = print_note):
        super().__init__(self.start_threshold(target, table or CalibrationTable(())), net)
        self.target, self.table, self.note = target, table, note
        self._said: set[str] = set()
        self._streak = {"low": 0, "high": 0}

    def start_threshold(self, target: float, table: CalibrationTable) -> float:
        return START_THRESHOLD

    def reset(self) -> None:
        """Back to the state before the first frame (DVSNet.reset: a new video): what was learnt is
        forgotten, the starting threshold restored, the online model (kept) back to its prior."""
        online = self.online
        self.__init__(self.target, self.net, table=self.table, note=self.note)
        self.online = online
        super().reset()

    def with_net(self, net: nn.Module, dn_file: str | None = None) -> ThresholdController:
        table = self.table if self.table is not None else CalibrationTable.read(dn_file)
        return type(self)(self.target, net, table=table, note=self.note)

    def decide(self, batch: RegionBatch) -> Decision:
        scores = self.scores(batch)  # (B,) float32
        count = self.segment_count(batch, scores)
        if count is None:
            warp = scores >= self.threshold
        else:  # the `count` lowest scores segmented (on ties, the lower region index first)
            self.threshold = threshold_segmenting(scores, count)
            warp = torch.ones(len(scores), dtype=torch.bool)
            warp[torch.from_numpy(np.argsort(scores.numpy(), kind="stable")[:count])] = False
        warp[self.also_segment(batch, scores, warp)] = False
        return warp, scores

    def also_segment(self, batch: RegionBatch, scores: torch.Tensor, warp: torch.Tensor) -> list[int]:
        """Regions segmented although they score >= the threshold (the agreement's checks)."""
        return []

    def segment_count(self, batch: RegionBatch, scores: torch.Tensor) -> int | None:
        """How many regions this frame segments, lowest score first; None: keep the threshold."""
        raise NotImplementedError

    def observe(self, result: Any) -> None:
        """Learn from the frame the pipeline just made (a FrameResult): the online model's samples here (its
        scores are then that model's predicted agreement), the target's own figures in the subclasses."""
        super().observe(result)

    def _at_limit(self, side: str, at_limit: bool, message: Callable[[], str],
                  frames: int = UNREACHABLE_FRAMES) -> None:
        """Say `message` once when the controller sat at one end of its range `frames` frames in a row."""
        self._streak[side] = self._streak[side] + 1 if at_limit else 0
        if self._streak[side] >= frames and side not in self._said:
            self._said.add(side)
            self.note(message())

    def __repr__(self) -> str:
        return f"dn:{self.target_name}={self.target:g}"


def _ema(old: float | None, new: float, weight: float) -> float:
    return new if old is None else old + weight * (new - old)


class FpsTarget(ThresholdController):
    """dn:fps=F: hold the pipeline at F frames/s (module docstring). Times come from FrameResult.timings."""

    target_name = "fps"

    def __init__(self, fps: float, net: nn.Module | None = None, **kwargs: Any):
        super().__init__(fps, net, **kwargs)
        self.seg_seconds: dict[int, float] = {}  # k -> seconds of the segmentation stage for k regions
        self.warp_cost: float | None = None  # seconds per warped region (warp stage)
        self.overhead: float | None = None  # seconds per frame besides those (flow, decision, stitch)
        self.bank = 0.0  # seconds saved (+) or overspent (-) against 1/F so far, bounded
        self._second = max(UNREACHABLE_FRAMES, math.ceil(fps))  # a limit is said after a second there
        self._seen = 0

    def start_threshold(self, target: float, table: CalibrationTable) -> float:
        """The most accurate threshold of the table whose fps reaches F; else the fastest one."""
        found = table.threshold_where("fps", target, reaching=max, otherwise=min)
        return START_THRESHOLD if found is None else found

    def frame_seconds(self, count: int, regions: int) -> float:
        """The model's time of a frame that segments `count` of `regions` regions and warps the others."""
        warp = (regions - count) * (self.warp_cost or 0.0)
        if count == 0:
            return self.overhead + warp
        known = min(self.seg_seconds, key=lambda k: abs(k - count))  # one batch: cost grows less than k
        return self.overhead + warp + self.seg_seconds[known] * count / known

    def segment_count(self, batch: RegionBatch, scores: torch.Tensor) -> int | None:
        if self.overhead is None:
            return None  # no time model yet: the starting threshold
        if not self.seg_seconds:
            return 1  # learn what a segmented region costs
        regions = len(scores)
        # saved time is spent as soon as it pays for a segmentation; overspent time paid back within 1/4 s
        budget = 1.0 / self.target + (self.bank if self.bank > 0 else self.bank / max(1.0, self.target / 4))
        count = max((k for k in range(regions + 1) if self.frame_seconds(k, regions) <= budget), default=0)
        # a limit is said when the run sits there and the bank shows it: half a second behind, or ahead
        self._at_limit("low", count == 0 and self.bank <= -0.5, lambda: (
            f"dn:fps={self.target:g} is above what warping every region reaches here (about "
            f"{1 / self.frame_seconds(0, regions):.1f} fps); warping every region"), self._second)
        self._at_limit("high", count == regions and self.bank >= 0.5, lambda: (
            f"dn:fps={self.target:g} is below what segmenting every region reaches here (about "
            f"{1 / self.frame_seconds(regions, regions):.1f} fps); segmenting every region"), self._second)
        return count

    def observe(self, result: Any) -> None:
        super().observe(result)
        self._seen += 1
        if self._seen <= WARM_UP_FRAMES:
            return
        t = result.timings
        seg = result.paths.count("seg")
        warp = len(result.paths) - seg
        if seg:
            self.seg_seconds[seg] = _ema(self.seg_seconds.get(seg), t["segmentation"], SMOOTHING)
        if warp:
            self.warp_cost = _ema(self.warp_cost, t["warp"] / warp, SMOOTHING)
        if result.restarted:
            return  # no decision, no flow: not a frame of the overhead the others have
        self.overhead = _ema(self.overhead, max(t["total"] - t["segmentation"] - t["warp"], 0.0), SMOOTHING)
        self.bank = min(max(self.bank + 1.0 / self.target - t["total"], -1.0), 1.0)


class AgreementTarget(ThresholdController):
    """dn:agree=A: hold the predicted agreement with per-frame output at A (module docstring)."""

    target_name = "agree"

    def __init__(self, agreement: float, net: nn.Module | None = None, **kwargs: Any):
        super().__init__(agreement, net, **kwargs)
        self.bias = self._table_bias()  # true minus DN score, on the warped regions
        self.bank = 0.0  # predicted agreement above (+) or below (-) A so far, in frames, bounded
        self.checks: list[tuple[float, float]] = []  # (DN score, true score) of every region checked
        self.weights: np.ndarray | None = None  # (R,) share of the frame of each region's cell
        self._frames = 0

    def start_threshold(self, target: float, table: CalibrationTable) -> float:
        """The fastest threshold of the table whose measured agreement reaches A; else the most accurate."""
        found = table.threshold_where("measured_agreement", target, reaching=min, otherwise=max)
        return START_THRESHOLD if found is None else found

    def _table_bias(self) -> float:
        """The DN's bias per warped region on the calibration clips, at the starting threshold: the gap
        between measured and predicted agreement over the share of regions warped there."""
        row = self.table.row_at(self.threshold) if self.table else None
        warped = 1.0 - row.seg_share if row else 0.0
        if warped < 0.2:  # too few warped regions for the gap to say much
            return 0.0
        return (row.measured_agreement - row.predicted_agreement) / warped

    def segment_count(self, batch: RegionBatch, scores: torch.Tensor) -> int | None:
        if self.weights is None or len(self.weights) != len(scores):
            return None
        order = np.argsort(scores.numpy(), kind="stable")  # lowest score first
        expected = np.clip(scores.numpy()[order] + self.bias, 0.0, 1.0)
        weights = self.weights[order]
        # predicted agreement with the k lowest segmented, k = 0..R
        predicted = (weights * expected).sum() + np.concatenate([[0.0], np.cumsum(weights * (1 - expected))])
        goal = self.target - self.bank / 10  # pay the bank back within 10 frames
        reaching = np.nonzero(predicted >= goal - 1e-9)[0]
        count = int(reaching[0]) if len(reaching) else len(scores)
        self._at_limit("high", count == len(scores), lambda: (
            f"dn:agree={self.target:g}: warping any region here predicts less than {self.target:g} "
            "agreement; "
            "segmenting every region (per-frame output) while it does"))
        return count

    def also_segment(self, batch: RegionBatch, scores: torch.Tensor, warp: torch.Tensor) -> list[int]:
        """At most every CHECK_EVERY frames, on a frame that segments some regions anyway, one region about
        to warp (in turn) joins their batch: its true confidence score corrects the bias, and its output is
        used (not thrown away). One segmenter call, so a check costs little more than the region; after
        4·CHECK_EVERY frames without a call to join, a call of its own."""
        self._frames += 1
        warped = torch.nonzero(warp).flatten().tolist()
        alone = self._frames >= 4 * CHECK_EVERY  # no call to join for that long: a call of its own
        if (self.weights is None or self._frames < CHECK_EVERY or not warped
                or (bool(warp.all()) and not alone)):
            return []  # not yet, none to warp, or no segmenter call to join: a later frame
        self._frames = 0
        region = warped[len(self.checks) % len(warped)]
        segmented = torch.nonzero(~warp).flatten().tolist()
        if segmented:
            # one call, kept for the pipeline
            batch.segmentation_of(torch.tensor(sorted([*segmented, region])))
        true = float(batch.true_scores_of(torch.tensor([region]))[0])
        self.checks.append((float(scores[region]), true))
        self.bias = _ema(self.bias, true - float(scores[region]), BIAS_SMOOTHING)
        return [region]

    def observe(self, result: Any) -> None:
        super().observe(result)
        if result.restarted or self.weights is None:
            self.weights = core_shares(result.regions)
        if result.restarted:
            return
        predicted = predicted_agreement(result.paths, result.scores, self.weights, self.bias)
        self.bank = min(max(self.bank + predicted - self.target, -0.5), 0.5)
