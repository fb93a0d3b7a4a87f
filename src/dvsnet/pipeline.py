"""DVSNet: the per-frame loop (docs/design.md §2) with per-region key frames.

Each region keeps its own key crop, key logits (at the segmenter's stride) and key frame index. On every
frame, regions without a key frame, or those the policy rejects, go through the segmenter in ONE batch
and become key frames; the others are warped from their key logits by the flow from their key crop, the
flow estimator called once per frame on the batch of regions that need flow.

With the codec's motion vectors (flow "mv", dvsnet.flow_mv) each frame comes with its MotionField
(`step(frame, motion=field)`): the estimator chains it from every region's key frame before the policy
decides, and regions the frame codes mostly intra (an I-frame) are segmented whatever the policy says.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from dvsnet.auto_precision import load_pipeline_segmenter
from dvsnet.backends import OnnxDecisionNet, OnnxFlowNet
from dvsnet.config import AUTO_GRID, PipelineConfig
from dvsnet.data.motion import MotionField
from dvsnet.devices import clock, describe_device, pick_device, same_device
from dvsnet.errors import DvsnetError
from dvsnet.flow import FlowEstimator, FlowNetFlow, build_flow
from dvsnet.models import load_decision_net
from dvsnet.models.decision import KEYSEG_SUFFIX
from dvsnet.models.weights import read_metadata, same_segmenter
from dvsnet.online import OnlineCalibration
from dvsnet.policies import DecisionNetwork, Policy, RegionBatch
from dvsnet.policy_strings import parse_policy
from dvsnet.regions import Region, check_grid, crop_multiple, crop_regions, padded_size, region_grid, stitch
from dvsnet.warp import estimate_flow, upsample_logits, warp_labels, warp_upscale

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
    threshold: float | None = None  # the dn policy's threshold on this frame (dn:fps=F, dn:agree=A set it)
    # per region: paper Eq. (1) of warping its old key, measured where the region was re-segmented while the
    # policy learns online (PipelineConfig.online), else None; and the online model's state after this frame
    true_scores: list[float | None] = field(default_factory=list)
    online: dict | None = None


class StageClock:
    """Seconds per stage of one frame, exclusive: a stage entered inside another (the flow a policy asks
    for while deciding) pauses the outer one, so the stages add up to the frame's time."""

    def __init__(self, clock: Callable[[], float]):
        self._clock = clock
        self.seconds = dict.fromkeys(STAGES, 0.0)
        self._stack: list[str] = []
        self._start = self._mark = clock()

    @contextmanager
    def __call__(self, stage: str) -> Iterator[None]:
        self._switch()
        self._stack.append(stage)
        try:
            yield
        finally:
            self._switch()
            self._stack.pop()

    def _switch(self) -> None:
        now = self._clock()
        if self._stack:
            self.seconds[self._stack[-1]] += now - self._mark
        self._mark = now

    def timed(self, stage: str, function: Callable) -> Callable:
        def run(*args):
            with self(stage):
                return function(*args)
        return run

    def timings(self) -> dict[str, float]:
        return {**self.seconds, "total": self._clock() - self._start}


class DVSNet:
    """Dynamic video segmentation: segment some regions, warp the rest from their key frames.

    Built from a PipelineConfig (`DVSNet.from_config(config)`), or from its fields as keywords:
    segmenter: "fast" | "accurate" | weights path | callable (B,3,h,w) [0,1] -> (B,K,h',w') logits.
    flow: a name in dvsnet.flow.FLOWS ("dis", "dis-fast", "dis-medium", "flownet", "flownet-conv4",
    "flownet-conv5", "flownet-image-flow", "mv") or an estimator callable (see flow.py). "mv" reads the
    codec's motion vectors, which each step must then be given (see `step`).
    policy: a policy string (see policies.py) or object. grid: (rows, cols), or "auto" (default): regions
    of about 512x1024 px, so 1x1 up to 767x1535 px frames and 2x2 at 1024x2048 (config.auto_grid).
    overlap: px grown on inner region edges; None = 64 px at 2048 px width, scaled with the frame width.
    stitch: "max-logit" | "core".
    dn: the decision network of a dn:T policy: a shipped variant ("dis", "flownet-conv6", "mv") or a
    .safetensors file from `dvsnet train dn`; None = the shipped one trained for the flow estimator. Flow
    "mv" gives the features of the DN it runs: the codec's own ("mv") or DIS's ("dis").
    flow_width: frames wider than this many pixels are scaled down to it for the flow estimator (and so
    for the decision network's features); None (default) = flow at full resolution. Warping uses that flow
    on the full-resolution key logits. A speed knob: cheaper flow, coarser warps (docs: frame size).
    max_key_age: a region whose key frame is this many frames old is re-segmented whatever the policy says;
    None = the policy's own (for dn:T 60 frames with online calibration, 10 without; no cap for the
    others), 0 = no cap.
    online: a dn policy the pipeline builds calibrates its DN on the video while it runs (dvsnet.online;
    docs/adaptive.md); False: the DN's scores as they are.
    device: where the networks run, "auto" | "cpu" | "cuda" | a torch.device; None = the device of the
    segmenter's weights (the CPU for a segmenter loaded by name). DIS flow runs on the CPU regardless.
    backend ("auto" | "torch" | "onnxruntime") and precision ("auto" | "fp32" | "bf16" | "int8"): what
    runs our segmenter (dvsnet.backends); `self.backend` and `self.precision` say what they resolved to.
    """

    def __init__(
        self,
        segmenter: str | Segmenter = "fast",
        flow: str | FlowEstimator = "dis",
        policy: str | Policy = "dn:0.92",
        grid: tuple[int, int] | str = "auto",
        overlap: int | None = None,
        stitch: str = "max-logit",
        dn: str | Path | None = None,
        device: str | torch.device | None = None,
        flow_width: int | None = None,
        max_key_age: int | None = None,
        backend: str = "auto",
        precision: str = "auto",
        online: bool = True,
    ):
        self._build(PipelineConfig(segmenter=segmenter, flow=flow, policy=policy, grid=grid, overlap=overlap,
                                   stitch=stitch, dn=dn, device=device, flow_width=flow_width,
                                   max_key_age=max_key_age, backend=backend, precision=precision,
                                   online=online))

    @classmethod
    def from_config(cls, config: PipelineConfig, footage: Sequence[np.ndarray] | None = None) -> DVSNet:
        """The pipeline `config` describes (every user mistake a DvsnetError before any frame). footage: the
        first frames it will segment (H×W×3 uint8 RGB), on which `--precision auto` checks that its choice
        keeps fp32's labels (dvsnet.auto_precision); None = its own check frames."""
        pipe = cls.__new__(cls)
        pipe._build(config, footage)
        return pipe

    def _build(self, config: PipelineConfig, footage: Sequence[np.ndarray] | None = None) -> None:
        self.config = config
        wanted = None if config.device is None else pick_device(config.device)
        # names and files load onto the device; callables get the adapter's dry run (class count, stride)
        segmenter, self.backend, self.precision = load_pipeline_segmenter(
            config.segmenter, config.backend, config.precision, wanted or torch.device("cpu"), footage)
        held = _weights_device(segmenter)
        if wanted is not None and held is not None and not same_device(held, wanted):
            raise DvsnetError(f"the segmenter's weights are on {held}, not on the requested device {wanted}; "
                              "move it there first (segmenter.to(device)) or pass its name")
        self.device = held or wanted or torch.device("cpu")  # held: "cuda" may mean cuda:1
        self._clock = clock(self.device)
        self.segmenter = segmenter
        # why auto chose this backend and precision (dvsnet.auto_precision); None when they were given
        self.backend_choice: str | None = getattr(segmenter, "backend_choice", None)
        self.num_classes = int(segmenter.num_classes)
        self._warp_upscale = warp_upscale(int(getattr(segmenter, "output_stride", 8)))
        self.flow = build_flow(config.flow, self.device)
        self._reads_motion = hasattr(self.flow, "advance")  # dvsnet.flow_mv.MotionVectorFlow
        policy = parse_policy(config.policy)
        # mv: the DN's choice of features
        if isinstance(config.flow, str) and hasattr(self.flow, "use_features"):
            variant = _dn_variant(policy, config)
            self.flow.use_features(None if variant is None else variant.removesuffix(KEYSEG_SUFFIX))
        # the DN variant whose features the estimator gives: its name, unless it says otherwise (mv: mv or
        # dis)
        features = getattr(self.flow, "dn_variant", None) or getattr(self.flow, "name", "custom")
        self.policy = _with_decision_net(policy, config, features, self.device, self.backend)
        if config.online and self.policy is not policy and isinstance(self.policy, DecisionNetwork):
            # a DN policy of our own making (a policy object with its own DN keeps its own `online`)
            self.policy.online = OnlineCalibration(getattr(self.policy.net, "variant", None) or features)
        self._learns = isinstance(self.policy, DecisionNetwork) and self.policy.online is not None
        if isinstance(config.flow, str):  # our own estimator, built here: fit it to this pipeline
            self._fit_flow()
        self.flow_width = config.flow_width
        self.max_key_age = config.key_age_cap(self.policy)
        # a model that outputs labels has one-hot scores: no max-logit to compare, so regions keep their cores
        self.stitch_mode = "core" if getattr(segmenter, "labels_out", False) else config.stitch
        self.reset()

    def record(self, width: int, height: int) -> dict[str, object]:
        """The pipeline as summary.json's "config" records it for frames of `width` x `height`: the
        configuration (PipelineConfig.to_record) and what it resolved to (device, policy, key-age cap,
        backend, precision and why auto chose them)."""
        return {
            **self.config.to_record(width, height),
            "device": describe_device(self.device),
            "policy": repr(self.policy),
            "key_age_cap": self.max_key_age,
            "backend": self.backend,
            "precision": self.precision,
            "backend_choice": self.backend_choice,
        }

    def _fit_flow(self) -> None:
        """FlowNetS runs on ONNX Runtime where the segmenter does; the hand-made motion features (DIS, mv) are
        computed only for a decision network, the one policy that reads them."""
        if self.backend == "onnxruntime" and self.device.type == "cpu" and isinstance(self.flow, FlowNetFlow):
            self.flow.net = OnnxFlowNet(self.flow.net)
        if hasattr(self.flow, "with_features"):
            self.flow.with_features = isinstance(self.policy, DecisionNetwork)

    def reset(self) -> None:
        """Start a new video: forget every key frame, and return a policy that learns from the frames
        (dvsnet.control's targets) to its initial state, so each video runs as if it were the only one."""
        reset_policy = getattr(self.policy, "reset", None)
        if callable(reset_policy):
            reset_policy()
        self._frame_size: tuple[int, int] | None = None
        # "auto" is resolved for the frame size by _start
        self.grid: tuple[int, int] | None = None if self.config.grid == AUTO_GRID else self.config.grid
        self.regions: list[Region] = []
        self._key_images: torch.Tensor | None = None  # (R, 3, Hc, Wc)
        self._key_logits: torch.Tensor | None = None  # (R, K, Hc/s, Wc/s)
        self._key_index = np.zeros(0, dtype=np.int64)  # (R,) frame index of each region's key
        self.index = -1

    def _start(self, height: int, width: int) -> None:
        self.grid = self.config.grid_at(height, width)
        overlap = self.config.overlap_px(width, height)
        check_grid(height, width, *self.grid, overlap)
        self.regions = region_grid(height, width, *self.grid, overlap)
        # max-logits are only needed to resolve overlap bands between regions
        self._stitch_by_score = self.stitch_mode == "max-logit" and len(self.regions) > 1
        self._crop_size = padded_size(self.regions, crop_multiple(self.segmenter))
        scale = 1.0 if self.flow_width is None or width <= self.flow_width else self.flow_width / width
        self._flow_size = (None if scale == 1.0 else
                           tuple(max(8, round(side * scale)) for side in self._crop_size))
        self._frame_size = (height, width)
        self._key_images = self._key_logits = None
        self._key_index = np.zeros(len(self.regions), dtype=np.int64)
        if self._reads_motion:  # new key frames: the motion chains start again
            self.flow.reset()

    @torch.no_grad()
    def step(self, frame: np.ndarray, motion: MotionField | None = None) -> FrameResult:
        """Segment one H×W×3 uint8 RGB frame. motion: its codec motion (dvsnet.data.motion: the field back
        to the previous frame stepped), needed by the "mv" flow and ignored by the others."""
        _check_frame(frame)
        if self._reads_motion and motion is None:
            raise DvsnetError("flow 'mv' needs each frame's motion vectors: step(frame, motion=field) with "
                              "frames from dvsnet.data.motion.read_motion_frames, or another flow")
        clock = StageClock(self._clock)
        self.index += 1
        restarted = self._frame_size != frame.shape[:2]
        if restarted:
            self._start(*frame.shape[:2])
        elif self._reads_motion:
            with clock("flow"):
                self.flow.advance(motion, self.index, self._key_index, self.regions, self._crop_size)
        image = torch.from_numpy(frame).to(self.device).permute(2, 0, 1).float().div_(255)  # (3, H, W)
        batch = self._region_batch(crop_regions(image, self.regions, self._crop_size),
                                   clock)  # (R, 3, Hc, Wc)
        self._true_scores: list[float | None] = [None] * len(self.regions)
        warp, scores = self._decide(batch, clock)  # (R,) bool, (R,) float (NaN: no score)
        seg_idx, warp_idx = torch.nonzero(~warp).flatten(), torch.nonzero(warp).flatten()
        parts = []  # (region indices, max-logit (r, Hc, Wc), labels (r, Hc, Wc)) per path
        if len(seg_idx):
            parts.append(self._segment_regions(batch, seg_idx, clock))
        if len(warp_idx):
            parts.append(self._warp_regions(batch, warp_idx, clock))
        with clock("stitch"):
            region_scores, region_labels = _in_region_order(parts)
            labels = stitch(region_labels[:, None].to(torch.uint8), region_scores, self.regions,
                            *frame.shape[:2], "max-logit" if self._stitch_by_score else "core")[0]
        result = FrameResult(
            labels=labels, paths=["warp" if w else "seg" for w in warp.tolist()],
            scores=[None if np.isnan(s) else s for s in scores.tolist()], timings=clock.timings(),
            regions=list(self.regions), index=self.index, restarted=restarted,
            key_ages=(self.index - self._key_index).tolist(), threshold=self._threshold(restarted),
            true_scores=self._true_scores,
        )
        # a policy that learns from each frame (dvsnet.control, dvsnet.online)
        if hasattr(self.policy, "observe"):
            self.policy.observe(result)
        if self._learns:
            result.online = self.policy.online.state()
        return result

    def _region_batch(self, images: torch.Tensor, clock: StageClock) -> RegionBatch:
        """The regions of this frame with their keys, the flow, segmentation and warp at hand (timed)."""
        def labels(logits: torch.Tensor) -> torch.Tensor:
            return upsample_logits(logits, self._crop_size)[1]

        def region_flow(index: torch.Tensor, features: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
            """The mv estimator's flow of the regions `index` (it knows where they are, not their pixels; its
            dis features read the crops, its own do not)."""
            key = cur = None
            if features and getattr(self.flow, "reads_pixels", True):
                key, cur = self._key_images[index], images[index]
                if self._flow_size is not None:
                    key, cur = (F.interpolate(x, size=self._flow_size, mode="area") for x in (key, cur))
            return self.flow.region_flow(index, key, cur, features)

        flow = ({"region_flow": clock.timed("flow", region_flow)} if self._reads_motion else
                {"estimate_flow": clock.timed(
                    "flow", lambda key, cur: estimate_flow(self.flow, key, cur, self._flow_size))})
        return RegionBatch(
            ages=torch.from_numpy(self.index - self._key_index), key_images=self._key_images, images=images,
            key_logits=self._key_logits, **flow,
            segment=clock.timed("segmentation", self.segmenter),
            to_labels=clock.timed("warp", labels),
            warp=clock.timed("warp", lambda key_logits, flow: self._warp(key_logits, flow)[1]),
        )

    def _decide(self, batch: RegionBatch, clock: StageClock) -> tuple[torch.Tensor, torch.Tensor]:
        """The policy's decision per region; every region is segmented when there are no key frames yet."""
        if batch.key_logits is None:
            return torch.zeros(len(batch), dtype=torch.bool), torch.full((len(batch),), float("nan"))
        with clock("decision"):
            warp, scores = self.policy.decide(batch)
        warp = warp.to(torch.bool).cpu()
        if self.max_key_age is not None:  # no key is kept longer than this, whatever the policy says
            warp &= batch.ages < self.max_key_age
        # a region this frame codes mostly intra (an I-frame) has no motion: segment it
        if self._reads_motion:
            warp &= ~self.flow.untrusted()
        return warp, scores.float().cpu()

    def _threshold(self, restarted: bool) -> float | None:
        """The dn policy's threshold for this frame; None for other policies and frames it did not decide."""
        return (None if restarted or not isinstance(self.policy, DecisionNetwork)
                else float(self.policy.threshold))

    def _segment_regions(self, batch: RegionBatch, index: torch.Tensor, clock: StageClock) -> tuple:
        """Segment the regions `index`; they become key frames."""
        logits = batch.segmentation_of(index)
        with clock("stitch"):
            scores, labels = upsample_logits(logits, self._crop_size, self._stitch_by_score)
        if self._learns and self._key_logits is not None:
            with clock("decision"):  # the online model's free samples: part of what deciding costs
                self._measure_old_keys(batch, index, labels)
        if self._key_logits is None:  # first frame: every region is segmented
            self._key_images, self._key_logits = batch.images.clone(), logits
        else:
            self._key_images[index] = batch.images[index]
            self._key_logits[index] = logits
        self._key_index[index.numpy()] = self.index
        return index, scores, labels

    def _measure_old_keys(self, batch: RegionBatch, index: torch.Tensor, labels: torch.Tensor) -> None:
        """Paper Eq. (1) of warping the old keys of the re-segmented regions `index` to this frame, against
        their fresh labels (r, Hc, Wc), over each region's own pixels (not the crop's padding): the DN's
        target, measured for free (docs/adaptive.md)."""
        warped = self._warp(batch.key_logits[index], batch.flow_of(index))[1]  # (r, Hc, Wc)
        for i, region in enumerate(index.tolist()):
            box = self.regions[region]
            same = warped[i, :box.height, :box.width] == labels[i, :box.height, :box.width]
            self._true_scores[region] = float(same.float().mean())

    def _warp_regions(self, batch: RegionBatch, index: torch.Tensor, clock: StageClock) -> tuple:
        """Warp the key logits of the regions `index` to this frame."""
        flow = batch.flow_of(index)
        with clock("warp"):
            return (index, *self._warp(batch.key_logits[index], flow))

    def _warp(self, key_logits: torch.Tensor, flow: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return warp_labels(key_logits, flow, self._crop_size, self._warp_upscale, self._stitch_by_score)


def _check_frame(frame: object) -> None:
    if not isinstance(frame, np.ndarray) or frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
        shape = getattr(frame, "shape", None)
        raise DvsnetError(f"a frame must be an H×W×3 uint8 RGB array, got {type(frame).__name__} {shape}")


def _with_decision_net(policy: Policy, config: PipelineConfig, flow_name: str, device: torch.device,
                       backend: str = "torch") -> Policy:
    """The pipeline's own policy: a dn policy without a network gets the DN named by `config.dn` (a new
    policy object; the caller's is left as it was), run by ONNX Runtime where the segmenter's `backend` is
    onnxruntime on the CPU; one with a network is checked for its device."""
    dn = config.dn
    if dn is not None and not isinstance(policy, DecisionNetwork):
        raise DvsnetError(f"a decision network (dn={str(dn)!r}) only applies to dn:T policies, "
                          f"not {policy!r}")
    if not isinstance(policy, DecisionNetwork):
        return policy
    if policy.net is None:
        net = _decision_net(config, flow_name, device)
        if backend == "onnxruntime" and device.type == "cpu":
            net = OnnxDecisionNet(net)
        return policy.with_net(net, None if config.dn is None else str(config.dn))
    dn_device = _weights_device(policy.net)
    if dn_device is not None and not same_device(dn_device, device):
        raise DvsnetError(f"the policy's decision network is on {dn_device}, the segmenter on "
                          f"{device}; move it there first (policy.net.to(device))")
    return policy


def _dn_variant(policy: Policy, config: PipelineConfig) -> str | None:
    """The features the policy's decision network reads (None: no DN named, the flow's own default)."""
    if not isinstance(policy, DecisionNetwork):
        return None
    if policy.net is not None:
        return getattr(policy.net, "variant", None)
    if config.dn is None:
        return None
    text = str(config.dn)
    return read_metadata(text).get("variant") if text.endswith(".safetensors") else text


def _weights_device(network: object) -> torch.device | None:
    """The device of a module's first parameter; None for callables without parameters."""
    params = next(iter(getattr(network, "parameters", lambda: iter(()))()), None)
    return None if params is None else params.device


def _decision_net(config: PipelineConfig, flow_name: str, device: torch.device) -> torch.nn.Module:
    """The DN named by `config.dn` (see DVSNet), on `device`, checked against the features the flow
    estimator gives and, for a DN from `dvsnet calibrate`, against the segmenter and flow it was made for."""
    if config.dn is None:
        return load_decision_net(flow_name, device)
    text = str(config.dn)
    is_file = text.endswith(".safetensors")
    net = load_decision_net(None, device, path=text) if is_file else load_decision_net(text, device)
    if net.variant is not None and net.variant.removesuffix(KEYSEG_SUFFIX) != flow_name:
        raise DvsnetError(f"decision network {text} reads {net.variant!r} features, but flow estimator "
                          f"{flow_name!r} gives {flow_name!r} features; pick a matching --flow or --dn")
    meta = read_metadata(text) if is_file else {}
    if meta.get("calibrated"):
        if isinstance(config.flow, str) and meta.get("flow") not in (None, config.flow):
            raise DvsnetError(f"decision network {text} was calibrated for flow {meta['flow']!r}, not "
                              f"{config.flow!r}; pass --flow {meta['flow']} or calibrate one for this flow")
        if meta.get("segmenter") and not same_segmenter(meta["segmenter"], config.segmenter):
            raise DvsnetError(f"decision network {text} was calibrated for segmenter {meta['segmenter']}, "
                              f"not {config.segmenter}; calibrate one for this segmenter (dvsnet calibrate)")
    return net


def _in_region_order(parts: list[tuple]) -> tuple[torch.Tensor | None, torch.Tensor]:
    """Merge the seg and warp paths' (indices, scores or None, labels) into (R, Hc, Wc) tensors in region
    order (scores None when the paths computed none)."""
    if len(parts) == 1:  # every region took the same path, in order: no copy
        return parts[0][1], parts[0][2]
    n = sum(len(idx) for idx, _, _ in parts)
    with_scores = parts[0][1] is not None
    scores = parts[0][1].new_empty((n, *parts[0][1].shape[1:])) if with_scores else None
    labels = parts[0][2].new_empty((n, *parts[0][2].shape[1:]))
    for idx, part_scores, part_labels in parts:
        labels[idx] = part_labels
        if with_scores:
            scores[idx] = part_scores
    return scores, labels
