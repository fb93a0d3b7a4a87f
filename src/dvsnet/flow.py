"""Flow estimators behind one signature, and the hand-made motion features the DIS decision net reads.

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
from dvsnet.models import load_flownet
from dvsnet.warp import backward_warp

MOTION_FEATURE_SIZE = (16, 16)

DIS_PRESETS = {
    "ultrafast": cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST,
    "fast": cv2.DISOPTICAL_FLOW_PRESET_FAST,
    "medium": cv2.DISOPTICAL_FLOW_PRESET_MEDIUM,
}


class FlowEstimator(Protocol):
    name: str

    def __call__(self, key: torch.Tensor, cur: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]: ...


LUMA = (0.299, 0.587, 0.114)  # ITU-R 601


def grey(images: torch.Tensor) -> torch.Tensor:
    """(B, 3, h, w) float RGB -> (B, 1, h, w) ITU-R 601 luma, same range."""
    # one einsum instead of three scaled planes summed: ~3x faster on CPU, and this runs twice a frame
    return torch.einsum("bchw,c->bhw", images, images.new_tensor(LUMA)).unsqueeze(1)


def grey_to_uint8(grey_images: torch.Tensor) -> np.ndarray:
    """(B, 1, h, w) float grey in [0, 1] -> (B, h, w) uint8."""
    return grey_images[:, 0].mul(255).add_(0.5).clamp_(0, 255).to(torch.uint8).cpu().numpy()


def half_resolution(images: torch.Tensor) -> torch.Tensor:
    """(B, C, h, w) -> (B, C, h//2, w//2), the mean of each 2x2 block: F.avg_pool2d(images, 2), ~3x faster
    on CPU for one or two channels."""
    even = images[..., : images.shape[-2] // 2 * 2, : images.shape[-1] // 2 * 2]
    top, bottom = even[..., 0::2, :], even[..., 1::2, :]
    return (top[..., 0::2] + top[..., 1::2] + bottom[..., 0::2] + bottom[..., 1::2]) * 0.25


def motion_features(
    key: torch.Tensor,
    cur: torch.Tensor,
    flow: torch.Tensor,
    grey_key: torch.Tensor | None = None,
    grey_cur: torch.Tensor | None = None,
) -> torch.Tensor:
    """Hand-made decision-network input for flow estimators without features of their own (DIS).

    key, cur: (B, 3, h, w) in [0, 1]; flow: (B, 2, h, w) current -> key in pixels; grey_key, grey_cur:
    their grey(), when the caller has them already.
    Returns (B, 7, 16, 16), each channel average-pooled over the region:
    dx/8, dy/8, |flow|/8, |grey(cur) - grey(key)|, photometric residual |grey(cur) - W(grey(key))|,
    flow-gradient magnitude (motion boundaries, where occlusions live), and the residual max-pooled.
    Computed at half resolution: the features are 16x16 summaries, and it halves the warp path's cost.
    """
    grey_key = half_resolution(grey(key) if grey_key is None else grey_key)  # (B, 1, h/2, w/2)
    grey_cur = half_resolution(grey(cur) if grey_cur is None else grey_cur)
    flow = half_resolution(flow) / 2  # in pixels of the half-resolution grid
    residual = (grey_cur - backward_warp(grey_key, flow)).abs()
    difference = (grey_cur - grey_key).abs()
    magnitude = (flow * flow).sum(1, keepdim=True).sqrt()  # (B, 1, h, w); Tensor.norm(dim=1) is ~100x slower
    dense = torch.cat([flow / 4, magnitude / 4, difference, residual, flow_gradient(flow)], dim=1)  # (B, 6, h/2, w/2)
    pooled = F.adaptive_avg_pool2d(dense, MOTION_FEATURE_SIZE)
    peak = F.adaptive_max_pool2d(residual, MOTION_FEATURE_SIZE)
    return torch.cat([pooled, peak], dim=1)


def flow_gradient(flow: torch.Tensor) -> torch.Tensor:
    """(B, 2, h, w) flow -> (B, 1, h, w) |d flow / dx| + |d flow / dy| summed over both components (forward
    differences, 0 past the last row and column): high at motion boundaries, where occlusions live."""
    grad_x = (flow[..., :, 1:] - flow[..., :, :-1]).abs().sum(1, keepdim=True)
    grad_y = (flow[..., 1:, :] - flow[..., :-1, :]).abs().sum(1, keepdim=True)
    return F.pad(grad_x, (0, 1, 0, 0)) + F.pad(grad_y, (0, 0, 0, 1))


def key_segmentation_features(key_logits: torch.Tensor) -> torch.Tensor:
    """Decision-network input from the key region's own segmentation (variant "dis-keyseg").

    key_logits: (B, K, h, w) segmenter logits of the key crops. Returns (B, 2, 16, 16), average-pooled:
    uncertainty (1 - margin between the two most probable classes) and class-boundary density.
    Warping and segmenting disagree mostly where the segmenter is unsure (it flips between frames
    whatever the flow) and at class boundaries (where occlusions and flow errors land).
    """
    top2 = key_logits.float().softmax(1).topk(2, dim=1).values
    uncertainty = 1 - (top2[:, 0:1] - top2[:, 1:2])
    labels = key_logits.argmax(1, keepdim=True)
    edge_x = F.pad((labels[..., :, 1:] != labels[..., :, :-1]).float(), (0, 1, 0, 0))
    edge_y = F.pad((labels[..., 1:, :] != labels[..., :-1, :]).float(), (0, 0, 0, 1))
    boundary = torch.maximum(edge_x, edge_y)
    return F.adaptive_avg_pool2d(torch.cat([uncertainty, boundary], dim=1), MOTION_FEATURE_SIZE)


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
        """The `features` input (see the class docstring) from the network's outputs on key crops (B, 3, h, w):
        flow (B, 2, h', w') in pixels of its grid and the encoder `layers` ({"conv4": ..., ...})."""
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
    "mv": lambda device: _motion_vector_flow(device),  # the codec's motion vectors (dvsnet.flow_mv)
}


def _motion_vector_flow(device: torch.device) -> FlowEstimator:
    from dvsnet.flow_mv import MotionVectorFlow  # it builds on this module

    return MotionVectorFlow(device=device)


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
