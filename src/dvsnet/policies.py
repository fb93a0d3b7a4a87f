"""Key-frame scheduling policies: which regions go through the segmenter ("seg") and which are warped.

A policy sees a `RegionBatch` (every region that has a key frame) and returns, per region, whether to
warp and the score it decided on. Policy strings (docs/design.md §3; parsed by dvsnet.policy_strings):
    dn:T      decision network's expected confidence score >= T warps (T in [0, 1]; paper §3.2)
    dn:fps=F  the same, T set frame by frame to hold the pipeline at F frames/s (dvsnet.control)
    dn:agree=A  the same, T set frame by frame to hold the predicted agreement with per-frame output at A
    fixed:L   key frame every L frames (DFF's fixed schedule)
    diff:D    mean absolute grey-level difference to the key <= D warps (grey in 0..255; paper Eq. 2)
    flow:F    mean flow magnitude <= F px warps (paper Eq. 3)
    oracle:T  true confidence score (paper Eq. 1) >= T warps; runs the segmenter on every region
    always    segment every region of every frame (the per-frame baseline)
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import torch
import torch.nn.functional as F
from torch import nn

from dvsnet.errors import DvsnetError
from dvsnet.features import key_segmentation_features

if TYPE_CHECKING:
    from dvsnet.online import OnlineCalibration


class RegionBatch:
    """What a policy may look at, for the B regions that have a key frame (row-major order).

    ages: (B,) int64 frames since each region's key frame; key_images, images: (B, 3, h, w) in [0, 1];
    key_logits: (B, K, h', w') the segmenter's logits of each region's key crop, or None.
    The expensive views are methods, computed on first use and kept, so the pipeline reuses what a policy
    asked for (the oracle's segmentation of every region, any policy's flow):
        flow()           -> (flow (B, 2, h', w') current -> key, decision-network features or None)
        segmentation()   -> (B, K, h', w') segmenter logits of the current crops
        seg_labels(), warped_labels() -> (B, h, w) int64 labels of the segmenter's and the warped output
    The pipeline gives the functions behind them (`warp`: key logits and flow -> warped labels at the
    crops' size; `to_labels`: logits -> labels at the crops' size); a test may give plain tensors instead
    (`flow=`, `features=`, `seg_labels=`, `warped_labels=`). An estimator that knows where each region
    is (the codec's motion vectors, dvsnet.flow_mv) comes as `region_flow` instead of `estimate_flow`:
    (region indices, with features?) -> FlowOutput.
    """

    def __init__(self, ages: torch.Tensor, key_images: torch.Tensor, images: torch.Tensor,
                 key_logits: torch.Tensor | None = None, *,
                 estimate_flow: Callable[[torch.Tensor, torch.Tensor], FlowOutput] | None = None,
                 segment: Callable[[torch.Tensor], torch.Tensor] | None = None,
                 to_labels: Callable[[torch.Tensor], torch.Tensor] | None = None,
                 warp: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
                 region_flow: Callable[[torch.Tensor, bool], FlowOutput] | None = None,
                 flow: torch.Tensor | None = None, features: torch.Tensor | None = None,
                 seg_labels: torch.Tensor | None = None, warped_labels: torch.Tensor | None = None):
        self.ages, self.key_images, self.images, self.key_logits = ages, key_images, images, key_logits
        (self._estimate_flow, self._segment, self._to_labels,
         self._warp) = estimate_flow, segment, to_labels, warp
        self._region_flow = region_flow
        self._flow: FlowOutput | None = None if flow is None else (flow, features)
        self._seg_logits: torch.Tensor | None = None
        self._seg_some: dict[int, torch.Tensor] = {}  # region -> its (1, K, h', w') logits, once computed
        self._seg_labels, self._warped_labels = seg_labels, warped_labels

    def __len__(self) -> int:
        return len(self.ages)

    def flow(self) -> FlowOutput:
        if self._flow is None and self._region_flow is not None:
            self._flow = self._region_flow(torch.arange(len(self)), True)
        if self._flow is None:
            if self._estimate_flow is None:
                raise DvsnetError("this policy needs flow, but no flow estimator was given")
            self._flow = self._estimate_flow(self.key_images, self.images)
        return self._flow

    def flow_of(self, index: torch.Tensor) -> torch.Tensor:
        """The flow of the regions `index`: from the flow of every region when a policy computed it, else
        estimated for those regions only (the common case: a policy that needs no flow)."""
        if self._flow is not None:
            return self._flow[0][index]
        if self._region_flow is not None:
            return self._region_flow(index, False)[0]
        return self._estimate_flow(self.key_images[index], self.images[index])[0]

    def segmentation(self) -> torch.Tensor:
        if self._seg_logits is None:
            self._seg_logits = self._segment(self.images)
        return self._seg_logits

    def segmentation_of(self, index: torch.Tensor) -> torch.Tensor:
        """The segmenter's logits of the regions `index`, reusing those already computed (of every region,
        or of some: a region a policy checked), the others in one call."""
        if self._seg_logits is not None:
            return self._seg_logits[index]
        wanted = index.tolist()
        missing = [i for i in wanted if i not in self._seg_some]
        if missing:
            logits = self._segment(self.images[missing])
            for i, region in enumerate(missing):
                self._seg_some[region] = logits[i:i + 1]
            if len(missing) == len(wanted):
                return logits
        return torch.cat([self._seg_some[i] for i in wanted])

    def seg_labels(self) -> torch.Tensor:
        if self._seg_labels is None:
            self._seg_labels = self._to_labels(self.segmentation())
        return self._seg_labels

    def warped_labels(self) -> torch.Tensor:
        if self._warped_labels is None:
            self._warped_labels = self._warp(self.key_logits, self.flow()[0])
        return self._warped_labels

    def true_scores_of(self, index: torch.Tensor) -> torch.Tensor:
        """Paper Eq. (1) of the regions `index` only: (len(index),) float, on the CPU. Costs a segmentation
        and a warp of those regions unless every region's labels are at hand (the oracle, a test)."""
        if self._seg_labels is not None and self._warped_labels is not None:
            return confidence_score(self._warped_labels[index], self._seg_labels[index]).cpu()
        seg_labels = self._to_labels(self.segmentation_of(index))
        warped_labels = self._warp(self.key_logits[index], self.flow_of(index))
        return confidence_score(warped_labels, seg_labels).cpu()


FlowOutput = tuple[torch.Tensor, "torch.Tensor | None"]
Decision = tuple[torch.Tensor, torch.Tensor]  # (warp (B,) bool, score (B,) float32, NaN where none)


class Policy(Protocol):
    def decide(self, batch: RegionBatch) -> Decision:
        """-> (warp (B,) bool, score (B,) float32 with NaN where the policy computes no score)."""
        ...


def no_scores(batch: RegionBatch) -> torch.Tensor:
    return torch.full((len(batch),), float("nan"))


def confidence_score(warped_labels: torch.Tensor, seg_labels: torch.Tensor) -> torch.Tensor:
    """Paper Eq. (1): share of pixels where O^r (warped) == S^r (segmented). (B, h, w) x2 -> (B,) float."""
    return (warped_labels == seg_labels).flatten(1).float().mean(1)


class AlwaysSegment:
    """Per-frame segmentation: every region is a key frame on every frame."""


    def decide(self, batch: RegionBatch) -> Decision:
        return torch.zeros(len(batch), dtype=torch.bool), no_scores(batch)

    def __repr__(self) -> str:
        return "always"


@dataclass
class FixedInterval:
    """DFF: a region is re-segmented every `interval` frames after its key frame."""

    interval: int

    def decide(self, batch: RegionBatch) -> Decision:
        return batch.ages < self.interval, no_scores(batch)

    def __repr__(self) -> str:
        return f"fixed:{self.interval}"


@dataclass
class FrameDifference:
    """Paper Eq. (2): d = mean |G(I_k) - G(I_c)| over the region, grey in 0..255; d <= max_difference
    warps."""

    max_difference: float

    def decide(self, batch: RegionBatch) -> Decision:
        weights = batch.images.new_tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)
        grey_key = (batch.key_images * weights).sum(1)
        grey_cur = (batch.images * weights).sum(1)
        d = (grey_key - grey_cur).abs().flatten(1).mean(1) * 255  # (B,)
        return d <= self.max_difference, d.float().cpu()

    def __repr__(self) -> str:
        return f"diff:{self.max_difference:g}"


@dataclass
class FlowMagnitude:
    """Paper Eq. (3): f = mean sqrt(u² + v²) over the region in px; f <= max_magnitude warps."""

    max_magnitude: float

    def decide(self, batch: RegionBatch) -> Decision:
        flow = batch.flow()[0]
        f = (flow * flow).sum(1).sqrt().flatten(1).mean(1)  # (B,) in pixels of the flow grid
        scale = batch.images.shape[-1] / flow.shape[-1]  # back to image pixels
        f = f * scale
        return f <= self.max_magnitude, f.float().cpu()

    def __repr__(self) -> str:
        return f"flow:{self.max_magnitude:g}"


class DecisionNetwork:
    """DVSNet's adaptive policy (paper §3.2, §3.4): warp where the DN's expected confidence score >= T.

    `net` maps (B, C, h, w) features to (B,) scores in [0, 1]; features are average-pooled to its
    `in_size` first. A policy parsed from "dn:T" has no net yet: the pipeline builds its own
    DecisionNetwork(T, net) with the DN it loads (the shipped one for its flow estimator, or `dn`).

    `online` (dvsnet.online.OnlineCalibration, the pipeline's default: PipelineConfig.online): the scores
    become the agreement predicted by a model the video's own re-segmentations calibrate while it runs
    (`observe` hands them over), and dn:T keeps a key while warping from it loses less than a new key is
    worth at T (dvsnet.online.keep_keys) instead of comparing the score with T.
    """

    def __init__(self, threshold: float, net: nn.Module | None = None,
                 online: OnlineCalibration | None = None):
        self.threshold = threshold
        self.net = net
        self.online = online

    def decide(self, batch: RegionBatch) -> Decision:
        scores = self.scores(batch)
        if self.online is not None:
            return self.online.keep_keys(scores, batch.ages, self.threshold), scores
        return scores >= self.threshold, scores

    def with_net(self, net: nn.Module, dn_file: str | None = None) -> DecisionNetwork:
        """This policy with the network `net` (the pipeline's DN, loaded from `dn_file` when it names a
        file); a new object, this one is left as it was."""
        return DecisionNetwork(self.threshold, net, self.online)

    def observe(self, result: Any) -> None:
        """Learn from the frame the pipeline just made (a FrameResult): its measured confidence scores
        (`true_scores`, of the regions it re-segmented) calibrate the online model."""
        if self.online is not None:
            self.online.learn(getattr(result, "true_scores", None) or [])

    def reset(self) -> None:
        """Forget what the video taught (a new video): the online model back to its prior."""
        if self.online is not None:
            self.online.reset()

    @torch.no_grad()
    def scores(self, batch: RegionBatch) -> torch.Tensor:
        """The DN's expected confidence score of every region: (B,) float32 in [0, 1], on the CPU; with
        `online`, the agreement its model predicts from that score."""
        features = batch.flow()[1]
        if features is None:
            raise DvsnetError("the dn policy needs a flow estimator that returns features")
        if getattr(self.net, "reads_key_segmentation", False):
            key_features = key_segmentation_features(batch.key_logits)
            key_features = F.adaptive_avg_pool2d(key_features, tuple(features.shape[-2:]))
            features = torch.cat([features, key_features.to(features.dtype)], dim=1)
        in_channels = getattr(self.net, "in_channels", None)
        if in_channels is not None and features.shape[1] != in_channels:  # e.g. a DN file without its variant
            raise DvsnetError(f"the decision network reads {in_channels} feature channels but the flow "
                              f"estimator gives {features.shape[1]}; use a DN trained on this estimator's "
                              "features")
        in_size = getattr(self.net, "in_size", None)
        if in_size is not None and tuple(features.shape[-2:]) != tuple(in_size):
            features = F.adaptive_avg_pool2d(features, in_size)
        scores = self.net(features).float().cpu()  # (B,): one host sync per frame, not per region
        if self.online is not None:
            return self.online.predict(scores, features, batch.ages)
        return scores

    def __repr__(self) -> str:
        return f"dn:{self.threshold:g}"


@dataclass
class Oracle:
    """The true confidence score (Eq. 1) as the decision: an upper bound for any DN, for analysis only."""

    threshold: float

    def decide(self, batch: RegionBatch) -> Decision:
        scores = confidence_score(batch.warped_labels(), batch.seg_labels()).cpu()
        return scores >= self.threshold, scores

    def __repr__(self) -> str:
        return f"oracle:{self.threshold:g}"
