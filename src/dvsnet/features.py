"""The decision network's hand-made inputs, apart from the flow estimators that feed them (dvsnet.flow).

motion_features: the `dis` variant's (7, 16, 16) summary of a region's flow and pixels, computed from any
flow (DIS's, or the codec's chained vectors in dvsnet.flow_mv); key_segmentation_features: the
`-keyseg` variants' summary of the key's own segmentation; flow_gradient: motion boundaries. Images are
(B, 3, h, w) float RGB in [0, 1]; flow (B, 2, h, w) current -> key in pixels (dvsnet.warp).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from dvsnet.warp import backward_warp

MOTION_FEATURE_SIZE = (16, 16)

LUMA = (0.299, 0.587, 0.114)  # ITU-R 601


def grey(images: torch.Tensor) -> torch.Tensor:
    """(B, 3, h, w) float RGB -> (B, 1, h, w) ITU-R 601 luma, same range."""
    # one einsum instead of three scaled planes summed: ~3x faster on CPU, and this runs twice a frame
    return torch.einsum("bchw,c->bhw", images, images.new_tensor(LUMA)).unsqueeze(1)


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
    # (B, 6, h/2, w/2)
    dense = torch.cat([flow / 4, magnitude / 4, difference, residual, flow_gradient(flow)], dim=1)
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
