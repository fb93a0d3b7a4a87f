"""Key-frame scheduling policies: which regions go through the segmenter ("seg") and which are warped.

A policy sees a `RegionBatch` (every region that has a key frame) and returns, per region, whether to
warp and the score it decided on. Policy strings (DESIGN.md §3):
    dn:T      decision network's expected confidence score >= T warps (T in [0, 1]; paper §3.2)
    fixed:L   key frame every L frames (DFF's fixed schedule)
    diff:D    mean absolute grey-level difference to the key <= D warps (grey in 0..255; paper Eq. 2)
    flow:F    mean flow magnitude <= F px warps (paper Eq. 3)
    oracle:T  true confidence score (paper Eq. 1) >= T warps; runs the segmenter on every region
    always    segment every region of every frame (the per-frame baseline)
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import torch
import torch.nn.functional as F
from torch import nn

from dvsnet.errors import DvsnetError
from dvsnet.flow import key_segmentation_features

POLICY_FORMS = "dn:T, fixed:L, diff:D, flow:F, oracle:T, always"


@dataclass
class RegionBatch:
    """What a policy may look at, for the B regions that have a key frame (row-major order).

    ages: (B,) int64 frames since each region's key frame; key_images, images: (B, 3, h, w) in [0, 1];
    flow: (B, 2, h', w') current -> key, features: decision-network input, both None unless the policy
    `needs_flow`; seg_labels, warped_labels: (B, h, w) int64, only for policies that `need_segmentation`;
    key_logits: (B, K, h', w') the segmenter's logits of each region's key crop.
    """

    ages: torch.Tensor
    key_images: torch.Tensor
    images: torch.Tensor
    flow: torch.Tensor | None = None
    features: torch.Tensor | None = None
    seg_labels: torch.Tensor | None = None
    warped_labels: torch.Tensor | None = None
    key_logits: torch.Tensor | None = None


class Policy(Protocol):
    needs_flow: bool
    needs_segmentation: bool

    def decide(self, batch: RegionBatch) -> tuple[torch.Tensor, list[float | None]]:
        """-> (warp (B,) bool, score per region or None)."""
        ...


def confidence_score(warped_labels: torch.Tensor, seg_labels: torch.Tensor) -> torch.Tensor:
    """Paper Eq. (1): share of pixels where O^r (warped) == S^r (segmented). (B, h, w) x2 -> (B,) float."""
    return (warped_labels == seg_labels).flatten(1).float().mean(1)


class AlwaysSegment:
    """Per-frame segmentation: every region is a key frame on every frame."""

    needs_flow = False
    needs_segmentation = False

    def decide(self, batch: RegionBatch) -> tuple[torch.Tensor, list[float | None]]:
        return torch.zeros(len(batch.ages), dtype=torch.bool), [None] * len(batch.ages)

    def __repr__(self) -> str:
        return "always"


@dataclass
class FixedInterval:
    """DFF: a region is re-segmented every `interval` frames after its key frame."""

    interval: int
    needs_flow = False
    needs_segmentation = False

    def decide(self, batch: RegionBatch) -> tuple[torch.Tensor, list[float | None]]:
        return batch.ages < self.interval, [None] * len(batch.ages)

    def __repr__(self) -> str:
        return f"fixed:{self.interval}"


@dataclass
class FrameDifference:
    """Paper Eq. (2): d = mean |G(I_k) - G(I_c)| over the region, grey in 0..255; d <= max_difference warps."""

    max_difference: float
    needs_flow = False
    needs_segmentation = False

    def decide(self, batch: RegionBatch) -> tuple[torch.Tensor, list[float | None]]:
        weights = batch.images.new_tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)
        grey_key = (batch.key_images * weights).sum(1)
        grey_cur = (batch.images * weights).sum(1)
        d = (grey_key - grey_cur).abs().flatten(1).mean(1) * 255  # (B,)
        return d <= self.max_difference, d.tolist()

    def __repr__(self) -> str:
        return f"diff:{self.max_difference:g}"


@dataclass
class FlowMagnitude:
    """Paper Eq. (3): f = mean sqrt(u² + v²) over the region in px; f <= max_magnitude warps."""

    max_magnitude: float
    needs_flow = True
    needs_segmentation = False

    def decide(self, batch: RegionBatch) -> tuple[torch.Tensor, list[float | None]]:
        f = (batch.flow * batch.flow).sum(1).sqrt().flatten(1).mean(1)  # (B,) in pixels of the flow grid
        scale = batch.images.shape[-1] / batch.flow.shape[-1]  # back to image pixels
        f = f * scale
        return f <= self.max_magnitude, f.tolist()

    def __repr__(self) -> str:
        return f"flow:{self.max_magnitude:g}"


class DecisionNetwork:
    """DVSNet's adaptive policy (paper §3.2, §3.4): warp where the DN's expected confidence score >= T.

    `net` maps (B, C, h, w) features to (B,) scores in [0, 1]; features are average-pooled to its
    `in_size` first. When `net` is None the pipeline loads the shipped DN trained for its flow estimator.
    """

    needs_flow = True
    needs_segmentation = False

    def __init__(self, threshold: float, net: nn.Module | None = None):
        self.threshold = threshold
        self.net = net

    @torch.no_grad()
    def decide(self, batch: RegionBatch) -> tuple[torch.Tensor, list[float | None]]:
        if batch.features is None:
            raise DvsnetError("the dn policy needs a flow estimator that returns features")
        features = batch.features
        if getattr(self.net, "reads_key_segmentation", False):
            key_features = key_segmentation_features(batch.key_logits)
            key_features = F.adaptive_avg_pool2d(key_features, tuple(features.shape[-2:]))
            features = torch.cat([features, key_features.to(features.dtype)], dim=1)
        in_channels = getattr(self.net, "in_channels", None)
        if in_channels is not None and features.shape[1] != in_channels:  # e.g. a DN file without its variant
            raise DvsnetError(f"the decision network reads {in_channels} feature channels but the flow estimator "
                              f"gives {features.shape[1]}; use a DN trained on this estimator's features")
        in_size = getattr(self.net, "in_size", None)
        if in_size is not None and tuple(features.shape[-2:]) != tuple(in_size):
            features = F.adaptive_avg_pool2d(features, in_size)
        scores = self.net(features).float().cpu()  # (B,): one host sync per frame, not per region
        return scores >= self.threshold, scores.tolist()

    def __repr__(self) -> str:
        return f"dn:{self.threshold:g}"


@dataclass
class Oracle:
    """The true confidence score (Eq. 1) as the decision: an upper bound for any DN, for analysis only."""

    threshold: float
    needs_flow = True
    needs_segmentation = True

    def decide(self, batch: RegionBatch) -> tuple[torch.Tensor, list[float | None]]:
        scores = confidence_score(batch.warped_labels, batch.seg_labels).cpu()
        return scores >= self.threshold, scores.tolist()

    def __repr__(self) -> str:
        return f"oracle:{self.threshold:g}"


def _number(text: str, kind: type, policy: str):
    try:
        return kind(text)
    except ValueError:
        raise DvsnetError(f"policy {policy!r}: {text!r} is not a {'whole ' if kind is int else ''}number") \
            from None


def parse_policy(spec: str | Policy) -> Policy:
    """'dn:0.92' -> DecisionNetwork(0.92), etc. Policy objects pass through. Bad strings -> DvsnetError."""
    if not isinstance(spec, str):
        return spec
    text = spec.strip().lower()
    name, _, arg = text.partition(":")
    if name == "always" and not arg:
        return AlwaysSegment()
    if name in ("dn", "oracle", "fixed", "diff", "flow") and not arg:
        example = "5" if name == "fixed" else "0.9"
        raise DvsnetError(f"policy {spec!r} needs a value, e.g. {name}:{example}")
    if name in ("dn", "oracle"):
        threshold = _number(arg, float, spec)
        if not 0.0 <= threshold <= 1.0:
            raise DvsnetError(f"policy {spec!r}: threshold must be in [0, 1], got {threshold:g}")
        return DecisionNetwork(threshold) if name == "dn" else Oracle(threshold)
    if name == "fixed":
        interval = _number(arg, int, spec)
        if interval < 1:
            raise DvsnetError(f"policy {spec!r}: key-frame interval must be >= 1 frame, got {interval}")
        return FixedInterval(interval)
    if name in ("diff", "flow"):
        limit = _number(arg, float, spec)
        if limit < 0:
            raise DvsnetError(f"policy {spec!r}: limit must be >= 0, got {limit:g}")
        return FrameDifference(limit) if name == "diff" else FlowMagnitude(limit)
    raise DvsnetError(f"unknown policy {spec!r}; valid forms: {POLICY_FORMS}")
