"""DVSNet: the per-frame loop (DESIGN.md §2) with per-region key frames.

Each region keeps its own key crop, key logits (at the segmenter's stride) and key frame index. On every
frame, regions without a key frame, or those the policy rejects, go through the segmenter in ONE batch
and become key frames; the others are warped from their key logits by the flow from their key crop, the
flow estimator called once per frame on the batch of regions that need flow.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from dvsnet.devices import clock, pick_device, same_device
from dvsnet.errors import DvsnetError
from dvsnet.flow import FlowEstimator, build_flow
from dvsnet.models import load_decision_net, load_segmenter
from dvsnet.models.decision import KEYSEG_SUFFIX
from dvsnet.policies import DecisionNetwork, Policy, RegionBatch, parse_policy
from dvsnet.regions import (
    Region,
    crop_multiple,
    crop_regions,
    default_overlap,
    padded_size,
    region_grid,
    stitch,
)
from dvsnet.warp import upsample_logits, warp_logits, warp_upscale

STAGES = ("flow", "decision", "segmentation", "warp", "stitch")
Segmenter = Callable[[torch.Tensor], torch.Tensor]


@dataclass
class FrameResult:
    """One frame's output. labels: (H, W) uint8 train ids; per-region lists are row-major."""

    labels: np.ndarray
    paths: list[str]
    scores: list[float | None]
    timings: dict[str, float]  # seconds per stage (STAGES) and "total"
    regions: list[Region]
    index: int  # frame index since the last reset
    restarted: bool  # key frames were (re)started on this frame: first frame or a new frame size
    key_ages: list[int] = field(default_factory=list)  # per region: frames since its key frame


class DVSNet:
    """Dynamic video segmentation: segment some regions, warp the rest from their key frames.

    segmenter: "fast" | "accurate" | weights path | callable (B,3,h,w) [0,1] -> (B,K,h',w') logits.
    flow: "dis" | "dis-fast" | "dis-medium" | "flownet" | estimator callable (see flow.py).
    policy: a policy string (see policies.py) or object. grid: (rows, cols). overlap: px grown on inner
    region edges; None = 64 px at 2048 px width, scaled with the frame width. stitch: "max-logit" | "core".
    dn: the decision network of a dn:T policy: a shipped variant ("dis", "flownet-conv6") or a .safetensors
    file from `dvsnet train dn`; None = the shipped one trained for the flow estimator.
    flow_width: frames wider than this many pixels are scaled down to it for the flow estimator (and so
    for the decision network's features); None (default) = flow at full resolution. Warping uses that flow
    on the full-resolution key logits. A speed knob: cheaper flow, coarser warps (README: frame size).
    device: where the networks run, "auto" | "cpu" | "cuda" | a torch.device; None = the device of the
    segmenter's weights (the CPU for a segmenter loaded by name). DIS flow runs on the CPU regardless.
    """

    def __init__(
        self,
        segmenter: str | Segmenter = "fast",
        flow: str | FlowEstimator = "dis",
        policy: str | Policy = "dn:0.92",
        grid: tuple[int, int] = (2, 2),
        overlap: int | None = None,
        stitch: str = "max-logit",
        dn: str | Path | None = None,
        device: str | torch.device | None = None,
        flow_width: int | None = None,
    ):
        if flow_width is not None and (not isinstance(flow_width, int) or flow_width < 16):
            raise DvsnetError(f"flow_width must be a whole number of pixels >= 16 or None, got {flow_width!r}")
        self.flow_width = flow_width
        wanted = None if device is None else pick_device(device)
        if isinstance(segmenter, str) or not callable(segmenter):
            segmenter = load_segmenter(segmenter, wanted or "cpu")
        held = _weights_device(segmenter)
        if wanted is not None and held is not None and not same_device(held, wanted):
            raise DvsnetError(f"the segmenter's weights are on {held}, not on the requested device {wanted}; "
                              "move it there first (segmenter.to(device)) or pass its name")
        self.device = held or wanted or torch.device("cpu")  # held: "cuda" may mean cuda:1
        self._clock = clock(self.device)
        self.segmenter = segmenter
        self.num_classes = int(segmenter.num_classes)
        self.stride = int(getattr(segmenter, "output_stride", 8))
        self._warp_upscale = warp_upscale(self.stride)
        self.flow = build_flow(flow, self.device)
        self.policy = parse_policy(policy)
        if dn is not None and not isinstance(self.policy, DecisionNetwork):
            raise DvsnetError(f"a decision network (dn={str(dn)!r}) only applies to dn:T policies, not {self.policy!r}")
        if isinstance(self.policy, DecisionNetwork) and self.policy.net is None:
            self.policy.net = _decision_net(dn, getattr(self.flow, "name", "custom"), self.device)
        elif isinstance(self.policy, DecisionNetwork):
            dn_device = _weights_device(self.policy.net)
            if dn_device is not None and not same_device(dn_device, self.device):
                raise DvsnetError(f"the policy's decision network is on {dn_device}, the segmenter on "
                                  f"{self.device}; move it there first (policy.net.to(device))")
        self.grid = (int(grid[0]), int(grid[1]))
        if overlap is not None and overlap < 0:
            raise DvsnetError(f"overlap must be >= 0 px, got {overlap}")
        self.overlap = overlap
        self.stitch_mode = stitch
        self.reset()

    def reset(self) -> None:
        """Forget every key frame (call between videos)."""
        self._frame_size: tuple[int, int] | None = None
        self.regions: list[Region] = []
        self._key_images: torch.Tensor | None = None  # (R, 3, Hc, Wc)
        self._key_logits: torch.Tensor | None = None  # (R, K, Hc/s, Wc/s)
        self._key_index = np.zeros(0, dtype=np.int64)  # (R,) frame index of each region's key
        self.index = -1
        self.stats = {"frames": 0, "regions_seg": 0, "regions_warp": 0, "restarts": 0}

    def _start(self, height: int, width: int) -> None:
        overlap = default_overlap(width) if self.overlap is None else self.overlap
        self.regions = region_grid(height, width, *self.grid, overlap)
        self._crop_size = padded_size(self.regions, crop_multiple(self.segmenter))
        scale = 1.0 if self.flow_width is None or width <= self.flow_width else self.flow_width / width
        self._flow_size = None if scale == 1.0 else tuple(max(8, round(side * scale)) for side in self._crop_size)
        self._frame_size = (height, width)
        self._key_images = self._key_logits = None
        self._key_index = np.zeros(len(self.regions), dtype=np.int64)
        self.stats["restarts"] += 1

    def _estimate_flow(self, key: torch.Tensor, cur: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The flow estimator on the crops, scaled to `flow_width` first when the frame is wider (the flow
        comes back in pixels of its own grid, which warping and the policies already expect)."""
        if self._flow_size is not None:
            key, cur = (F.interpolate(x, size=self._flow_size, mode="area") for x in (key, cur))
        return self.flow(key, cur)

    @torch.no_grad()
    def _segment(self, images: torch.Tensor) -> torch.Tensor:
        return self.segmenter(images)

    @torch.no_grad()
    def step(self, frame: np.ndarray) -> FrameResult:
        """Segment one H×W×3 uint8 RGB frame."""
        if not isinstance(frame, np.ndarray) or frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
            shape = getattr(frame, "shape", None)
            raise DvsnetError(f"a frame must be an H×W×3 uint8 RGB array, got {type(frame).__name__} {shape}")
        timings = dict.fromkeys(STAGES, 0.0)
        start = self._clock()
        self.index += 1
        height, width = frame.shape[:2]
        restarted = self._frame_size != (height, width)
        if restarted:
            self._start(height, width)
        n = len(self.regions)
        image = torch.from_numpy(frame).to(self.device).permute(2, 0, 1).float().div_(255)  # (3, H, W)
        images = crop_regions(image, self.regions, self._crop_size)  # (R, 3, Hc, Wc)

        warp = torch.zeros(n, dtype=torch.bool)
        scores: list[float | None] = [None] * n
        flow = features = seg_logits = None
        if self._key_logits is not None:
            ages = torch.from_numpy(self.index - self._key_index)
            batch = RegionBatch(ages=ages, key_images=self._key_images, images=images, key_logits=self._key_logits)
            if self.policy.needs_flow:
                t = self._clock()
                flow, features = self._estimate_flow(self._key_images, images)
                timings["flow"] += self._clock() - t
                batch.flow, batch.features = flow, features
            if self.policy.needs_segmentation:  # oracle: the true score needs both paths on every region
                t = self._clock()
                seg_logits = self._segment(images)
                timings["segmentation"] += self._clock() - t
                t = self._clock()
                warped = warp_logits(self._key_logits, flow, self._warp_upscale)
                batch.warped_labels = upsample_logits(warped, self._crop_size)[1]
                batch.seg_labels = upsample_logits(seg_logits, self._crop_size)[1]
                timings["warp"] += self._clock() - t
            t = self._clock()
            warp, scores = self.policy.decide(batch)
            warp = warp.to(torch.bool).cpu()
            timings["decision"] += self._clock() - t

        seg_idx = torch.nonzero(~warp).flatten()
        warp_idx = torch.nonzero(warp).flatten()
        upsampled = []  # (region indices, max-logit (r, Hc, Wc), labels (r, Hc, Wc)) per path
        if len(seg_idx):
            t = self._clock()
            new_logits = seg_logits[seg_idx] if seg_logits is not None else self._segment(images[seg_idx])
            timings["segmentation"] += self._clock() - t
            if self._key_logits is None:  # first frame: every region is segmented
                self._key_images, self._key_logits = images.clone(), new_logits
            else:
                self._key_images[seg_idx] = images[seg_idx]
                self._key_logits[seg_idx] = new_logits
            self._key_index[seg_idx.numpy()] = self.index
            t = self._clock()
            upsampled.append((seg_idx, *upsample_logits(new_logits, self._crop_size)))
            timings["stitch"] += self._clock() - t
        if len(warp_idx):
            if flow is None:
                t = self._clock()
                flow_w, _ = self._estimate_flow(self._key_images[warp_idx], images[warp_idx])
                timings["flow"] += self._clock() - t
            else:
                flow_w = flow[warp_idx]
            t = self._clock()
            warped = warp_logits(self._key_logits[warp_idx], flow_w, self._warp_upscale)  # at WARP_STRIDE
            timings["warp"] += self._clock() - t
            t = self._clock()
            upsampled.append((warp_idx, *upsample_logits(warped, self._crop_size)))
            timings["stitch"] += self._clock() - t

        t = self._clock()
        region_scores, region_labels = _in_region_order(upsampled)
        labels = stitch(region_labels[:, None].to(torch.uint8), region_scores, self.regions, height, width,
                        self.stitch_mode)[0]
        timings["stitch"] += self._clock() - t
        timings["total"] = self._clock() - start

        paths = ["warp" if w else "seg" for w in warp.tolist()]
        self.stats["frames"] += 1
        self.stats["regions_seg"] += len(seg_idx)
        self.stats["regions_warp"] += len(warp_idx)
        return FrameResult(
            labels=labels, paths=paths, scores=[None if s is None else float(s) for s in scores],
            timings=timings, regions=list(self.regions), index=self.index, restarted=restarted,
            key_ages=(self.index - self._key_index).tolist(),
        )


def _weights_device(network: object) -> torch.device | None:
    """The device of a module's first parameter; None for callables without parameters."""
    params = next(iter(getattr(network, "parameters", lambda: iter(()))()), None)
    return None if params is None else params.device


def _decision_net(spec: str | Path | None, flow_name: str, device: torch.device) -> torch.nn.Module:
    """The DN named by `spec` (see DVSNet), on `device`, checked against the features the flow estimator
    gives."""
    if spec is None:
        return load_decision_net(flow_name, device)
    text = str(spec)
    net = (load_decision_net(None, device, path=text) if text.endswith(".safetensors")
           else load_decision_net(text, device))
    if net.variant is not None and net.variant.removesuffix(KEYSEG_SUFFIX) != flow_name:
        raise DvsnetError(f"decision network {text} reads {net.variant!r} features, but flow estimator "
                          f"{flow_name!r} gives {flow_name!r} features; pick a matching --flow or --dn")
    return net


def _in_region_order(parts: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]) -> tuple[torch.Tensor, torch.Tensor]:
    """Merge the seg and warp paths' (indices, scores, labels) into (R, Hc, Wc) tensors in region order."""
    if len(parts) == 1:  # every region took the same path, in order: no copy
        return parts[0][1], parts[0][2]
    n = sum(len(idx) for idx, _, _ in parts)
    scores = parts[0][1].new_empty((n, *parts[0][1].shape[1:]))
    labels = parts[0][2].new_empty((n, *parts[0][2].shape[1:]))
    for idx, part_scores, part_labels in parts:
        scores[idx], labels[idx] = part_scores, part_labels
    return scores, labels
