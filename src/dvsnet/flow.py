"""Flow estimators behind one signature (the decision networks' features they give: dvsnet.features).

Estimator contract: `estimator(key, cur) -> (flow, features)` with key, cur (B, 3, h, w) float32 RGB in
[0, 1]; flow (B, 2, h', w') in pixels of its own h'×w' grid, mapping each CURRENT pixel to its position
in the KEY frame (see warp.py); features a tensor for the decision network, or None. Each estimator has
a `name` that selects the decision-network weights trained on its features.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from dvsnet.errors import DvsnetError
from dvsnet.features import (
    MOTION_FEATURE_SIZE,
    grey,
    motion_features,
)
from dvsnet.flow_mv import MotionVectorFlow
from dvsnet.models import load_flownet

DIS_PRESETS = {
    "ultrafast": cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST,
    "fast": cv2.DISOPTICAL_FLOW_PRESET_FAST,
    "medium": cv2.DISOPTICAL_FLOW_PRESET_MEDIUM,
}


class FlowEstimator(Protocol):
    name: str

    def __call__(self, key: torch.Tensor, cur: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]: ...


def grey_to_uint8(grey_images: torch.Tensor) -> np.ndarray:
    """(B, 1, h, w) float grey in [0, 1] -> (B, h, w) uint8."""
    return grey_images[:, 0].mul(255).add_(0.5).clamp_(0, 255).to(torch.uint8).cpu().numpy()


class DISFlow:
    """OpenCV DIS optical flow (CPU; the flow returns to the regions' device). One call per region pair:
    DIS has no batch interface."""

    def __init__(self, preset: str = "ultrafast", with_features: bool = True):
        if preset not in DIS_PRESETS:
            raise DvsnetError(f"unknown DIS preset {preset!r}; valid: {', '.join(DIS_PRESETS)}")
        self.name = "dis"
        self.preset = preset
        self.with_features = with_features
        self._dis = cv2.DISOpticalFlow_create(DIS_PRESETS[preset])

    def __call__(self, key: torch.Tensor, cur: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        grey_key, grey_cur = grey(key), grey(cur)
        # calc(I0, I1) returns f with I0(p) ≈ I1(p + f(p)); I0 = current, I1 = key gives current -> key.
        flows = [self._dis.calc(c, k, None) for k, c in zip(grey_to_uint8(grey_key), grey_to_uint8(grey_cur))]
        flow = torch.from_numpy(np.stack(flows)).permute(0, 3, 1, 2).to(key.device)  # (B, 2, h, w)
        features = motion_features(key, cur, flow, grey_key, grey_cur) if self.with_features else None
        return flow, features


class FlowNetFlow:
    """Our learned FlowNet2-s style network (dvsnet.models) and the decision-network input `features` names
    (paper Table 2): "conv4" | "conv5" | "conv6", its encoder's features after that layer ((B, 96 | 128 | 192,
    ·, ·), strides in dvsnet.models.flownet); "image-flow", the key crop and the flow / 8 average-pooled to
    16x16 ((B, 5, 16, 16)). Its name "flownet-<features>" is the decision-network variant it feeds."""

    FEATURES = ("conv4", "conv5", "conv6", "image-flow")

    def __init__(self, features: str = "conv6", device: str | torch.device = "cpu"):
        if features not in self.FEATURES:
            raise DvsnetError(f"unknown flownet features {features!r}; valid: {', '.join(self.FEATURES)}")
        self.net = load_flownet(device=device)
        self.features = features
        self.name = f"flownet-{features}"

    @torch.no_grad()
    def __call__(self, key: torch.Tensor, cur: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        flow, layers = self.net(key, cur)
        return flow, self.decision_features(self.features, key, flow, layers)

    @staticmethod
    def decision_features(features: str, key: torch.Tensor, flow: torch.Tensor,
                          layers: dict[str, torch.Tensor]) -> torch.Tensor:
        """The `features` input (see the class docstring) from the network's outputs on key crops
        (B, 3, h, w): flow (B, 2, h', w') in pixels of its grid and the encoder `layers`
        ({"conv4": ..., ...})."""
        if features == "image-flow":
            return torch.cat([F.adaptive_avg_pool2d(key, MOTION_FEATURE_SIZE),
                              F.adaptive_avg_pool2d(flow / 8, MOTION_FEATURE_SIZE)], 1)  # (B, 5, 16, 16)
        return layers[features]


FLOWS: dict[str, Callable[[torch.device], FlowEstimator]] = {  # DIS runs on the CPU whatever the device
    "dis": lambda device: DISFlow("ultrafast"),
    "dis-fast": lambda device: DISFlow("fast"),
    "dis-medium": lambda device: DISFlow("medium"),
    "flownet": lambda device: FlowNetFlow("conv6", device),
    "flownet-conv4": lambda device: FlowNetFlow("conv4", device),
    "flownet-conv5": lambda device: FlowNetFlow("conv5", device),
    "flownet-image-flow": lambda device: FlowNetFlow("image-flow", device),
    "mv": lambda device: MotionVectorFlow(device=device),  # the codec's motion vectors (dvsnet.flow_mv)
}


def dn_variant(flow: str) -> str:
    """The decision-network variant (dvsnet.models.DN_VARIANTS) whose features the estimator named `flow`
    gives by default, without building it: "dis" for every DIS preset, "flownet-conv6" for "flownet", the
    name itself for the other FlowNet features and for "mv" (its codec features)."""
    if flow not in FLOWS:
        raise DvsnetError(f"unknown flow estimator {flow!r}; valid: {', '.join(FLOWS)}")
    if flow.startswith("dis"):
        return "dis"
    return "flownet-conv6" if flow == "flownet" else flow


def build_flow(spec: str | FlowEstimator, device: str | torch.device = "cpu") -> FlowEstimator:
    """A flow estimator from its name (see FLOWS), its network on `device`, or an estimator callable
    (returned as is)."""
    if callable(spec):
        return spec
    if spec not in FLOWS:
        raise DvsnetError(f"unknown flow estimator {spec!r}; valid: {', '.join(FLOWS)}")
    return FLOWS[spec](torch.device(device))
