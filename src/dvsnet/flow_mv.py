"""The `mv` flow estimator: the video codec's motion vectors, chained from each region's key frame.

Decoding already gives every P/B-frame's block vectors (dvsnet.data.motion reads them, one MotionField
per frame: current -> previous frame on an 8-px grid). The pipeline hands each frame's field to the
estimator (`DVSNet.step(frame, motion=field)`), which keeps one chain per live key-frame index k:

    chain_{t->k}(p) = m_t(p) + chain_{t-1->k}(p + m_t(p))        (backward composition; chain_{k->k} = 0)

where m_t's intra cells (no vector) first take their inter neighbours' motion (data.motion.fill_intra).
A region's flow is its crop of the chain of its own key frame, so regions whose keys differ get
different chains.

Trust: a region that this frame codes intra over more than UNTRUSTED_INTRA_SHARE of its area (an
I-frame, or a scene cut the encoder coded intra) is segmented whatever the policy says: it becomes a key
frame there, so no chain ever crosses an I-frame. Smaller intra patches (texture the encoder found cheaper
to code than to predict, uncovered background, a new object; benchmarks/bench_mv.py reports their share)
take their neighbours' motion; the decision network sees what that gets wrong in its residual feature.

Decision-network features, two kinds (`dn_variant`, chosen by the DN the pipeline runs):
  mv   the codec's own (MV_FEATURES, no pixel read), from per-frame quantities chained along each key's chain
       exactly as the flow is (q_t(p) + acc_{t-1}(p + m_t(p))): the chained flow, its magnitude and its
       spatial gradient (motion boundaries), the path length sum |m_t| travelled since the key, the number
       of frames along the path coded intra and the summed spread of the block vectors around it (3x3 cells),
       this frame's intra and zero-vector cells (skipped blocks mostly: FFmpeg does not mark them, and a
       skipped block of a still scene exports the zero vector), and the key's age.
  dis  the DIS ones (dvsnet.features.motion_features) computed from the chained flow and the region's pixels,
       so the `dis` DN serves `--flow mv` too.

Where the vectors come from is the caller's business; `plan_motion` says, for a source, whether `mv`
can run on it or what to fall back to.
"""
from __future__ import annotations

import os
from collections.abc import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from dvsnet.data.motion import BLOCK, MotionField, box3, fill_intra, grid_size, why_no_vectors
from dvsnet.errors import DvsnetError
from dvsnet.features import flow_gradient, motion_features
from dvsnet.regions import Region
from dvsnet.warp import backward_warp, resize_flow

UNTRUSTED_INTRA_SHARE = 0.5  # a region this frame codes intra over more than this share is segmented
# the `mv` decision network's input channels (see the module docstring), each average-pooled to 16x16
MV_FEATURES = ("dx", "dy", "magnitude", "boundary", "path", "intra_frames", "spread", "intra", "zero", "age")
MV_FEATURE_SIZE = (16, 16)
DN_FEATURES = ("mv", "dis")  # the decision-network inputs this estimator gives
FALLBACK_FLOW = "dis"
FLOW_FALLBACKS = ("dis", "none")


class MotionVectorFlow:
    """Chains of codec motion per key frame; see the module docstring. Stateful: the pipeline calls
    `reset()` between videos and `advance(...)` once per frame, then `region_flow(...)` for the regions it
    warps; it does not follow the plain `estimator(key, cur)` contract (it cannot see motion in pixels).
    with_features: give decision-network features; dn_variant: which (DN_FEATURES); both take effect at
    the next reset (the pipeline sets them before its first frame)."""

    name = "mv"

    def __init__(self, with_features: bool = True, dn_variant: str = "mv",
                 device: str | torch.device = "cpu"):
        self.with_features = with_features
        # where region_flow hands its flow and features (the chains stay on the CPU)
        self.device = torch.device(device)
        self.dn_variant = "mv"
        self.use_features(dn_variant)

    def use_features(self, variant: str | None) -> None:
        """Give the features of decision-network variant `variant` (DN_FEATURES; None: "mv"; another name is
        left for the pipeline to refuse). Starts the chains again: the mv features ride on them."""
        variant = "mv" if variant is None else variant
        if variant in DN_FEATURES:
            self.dn_variant = variant
        self.reset()

    def reset(self) -> None:
        # key index -> (1, C, h, w) chain_{t->k} (+ mv features' sums)
        self._chains: dict[int, torch.Tensor] = {}
        self._flow = torch.zeros(0)  # (R, 2, hc, wc) this frame's flow per region, crop-grid pixels
        self._intra = torch.zeros(0)  # (R,) share of each region's crop this frame has no vector for
        self._features = torch.zeros(0)  # (R, len(MV_FEATURES), 16, 16) the mv DN's input, when it is used
        # the mv features ride on the chains: whether to carry them is settled here, for the chains to come
        self._codec_features = self.dn_variant == "mv" and self.with_features
        self._grid_key: tuple | None = None  # (regions, crop size, grid) the crop grids below were made for
        self._grid = self._inside = torch.zeros(0)

    def __call__(self, key: torch.Tensor, cur: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        raise DvsnetError("flow 'mv' reads the codec's motion vectors: run it through DVSNet.step(frame, "
                          "motion=field) on frames from dvsnet.data.motion.read_motion_frames")

    def advance(self, motion: MotionField, index: int, key_index: np.ndarray, regions: Sequence[Region],
                crop_size: tuple[int, int]) -> None:
        """Chain frame `index`'s field onto the chain of every key frame in `key_index` (R,) (those of
        frame index - 1 start here), drop the others, and crop each region's flow from its key's chain.
        regions: the frame's regions; crop_size (Hc, Wc): their padded crops' size."""
        grid = grid_size(max(r.bottom for r in regions), max(r.right for r in regions))
        intra = torch.from_numpy(motion.intra)[None, None].float()
        raw = torch.from_numpy(motion.flow)[None]
        step = fill_intra(raw, intra)  # (1, 2, h', w') intra cells filled
        step = resize_flow(step, grid)  # (1, 2, h, w) in pixels of this frame's grid
        # this frame's maps cropped beside the chains: intra, and for the mv features the zero vectors
        maps = [intra]
        if self._codec_features:
            maps.append(((raw == 0).all(1, keepdim=True) & (intra == 0)).float())
        if intra.shape[-2:] != grid:
            maps = [F.interpolate(x, size=grid, mode="nearest") for x in maps]
            intra = maps[0]
        chained = torch.cat([step, _per_frame_quantities(step, intra)], 1) if self._codec_features else step
        keys = [int(k) for k in np.unique(key_index)]
        old = [k for k in keys if k in self._chains]
        if old:  # every key's chain in one warp: (K, C, h, w) sampled at p + m_t(p)
            carried = chained + backward_warp(torch.cat([self._chains[k] for k in old]),
                                              step.expand(len(old), -1, -1, -1))
        self._chains = {k: carried[old.index(k)][None] if k in old else chained  # new keys: q_t
                        for k in keys}
        if self._grid_key != (tuple(regions), tuple(crop_size), grid):
            self._grid_key = (tuple(regions), tuple(crop_size), grid)
            self._grid, self._inside = _crop_grids(regions, crop_size, grid)
        fields = torch.cat([torch.cat([self._chains[int(k)] for k in key_index]),
                            *(m.expand(len(regions), -1, -1, -1) for m in maps)], 1)
        crops = F.grid_sample(fields, self._grid, mode="bilinear", padding_mode="border", align_corners=True)
        self._flow = crops[:, :2]  # (R, 2, Hc/8, Wc/8)
        self._intra = (crops[:, chained.shape[1]] * self._inside).sum((1, 2)) / self._inside.sum((1, 2))
        if self._codec_features:
            ages = torch.from_numpy(index - np.asarray(key_index)).float()
            self._features = codec_features(crops, ages)

    def untrusted(self) -> torch.Tensor:
        """(R,) bool: the regions this frame codes mostly intra (see the module docstring)."""
        return self._intra > UNTRUSTED_INTRA_SHARE

    @property
    def reads_pixels(self) -> bool:
        """Whether region_flow's features need the regions' crops (the dis features do, the mv ones do
        not)."""
        return self.dn_variant != "mv"

    def region_flow(self, index: torch.Tensor, key: torch.Tensor | None = None,
                    cur: torch.Tensor | None = None,
                    features: bool = True) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The flow of the regions `index` (n, 2, Hc/8, Wc/8), current -> key in pixels of the 8-px crop grid,
        and, when `features`, their decision-network features: the codec's, or the dis ones from the key and
        current (n, 3, h, w) crops (needed only then: `reads_pixels`)."""
        # the crops, when given, say where the caller works
        device = self.device if key is None else key.device
        flow = self._flow[index].to(device)
        if not (features and self.with_features):
            return flow, None
        if self._codec_features:
            return flow, self._features[index].to(device)
        return flow, motion_features(key, cur, resize_flow(flow, tuple(key.shape[-2:])))

def _per_frame_quantities(step: torch.Tensor, intra: torch.Tensor) -> torch.Tensor:
    """(1, 3, h, w) what each frame adds along a chain: |m_t|, intra (1 or 0) and the spread of the block
    vectors over each 3x3 neighbourhood of cells (the root of the summed variance of dx and dy)."""
    magnitude = (step * step).sum(1, keepdim=True).sqrt()
    count = box3(torch.ones_like(step[:, :1]))  # cells in each 3x3 neighbourhood inside the frame
    pooled, pooled_square = box3(step) / count, box3(step * step) / count
    spread = (pooled_square - pooled * pooled).clamp_min(0).sum(1, keepdim=True).sqrt()
    return torch.cat([magnitude, intra, spread], 1)


def codec_features(crops: torch.Tensor, ages: torch.Tensor) -> torch.Tensor:
    """The `mv` DN's input (R, len(MV_FEATURES), 16, 16) from the regions' crops of (chain dx, dy, path
    length, intra frames, spread, this frame's intra, zero) (R, 7, h, w) and their keys' ages (R,)."""
    flow = crops[:, :2]
    magnitude = (flow * flow).sum(1, keepdim=True).sqrt()
    boundary = flow_gradient(flow)
    age = ages.to(crops.dtype).view(-1, 1, 1, 1).expand(-1, 1, *crops.shape[-2:])
    dense = torch.cat([flow, magnitude, boundary, crops[:, 2:7], age], 1)  # in MV_FEATURES' order
    return F.adaptive_avg_pool2d(dense, MV_FEATURE_SIZE)


def _crop_grids(regions: Sequence[Region], crop_size: tuple[int, int],
                grid: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
    """grid_sample's grid (R, Hc/8, Wc/8, 2) that takes each region's crop, on the crop's own 8-px grid, from
    a frame-grid field of `grid` cells (cell i of the crop is cell i + top/8 of the frame; rows and columns
    past the region's edge repeat its last one, as dvsnet.regions.crop_regions pads the crops), and the
    mask (R, Hc/8, Wc/8) of the cells inside each region."""
    h, w = grid
    cells = grid_size(*crop_size)
    grids, inside = [], []
    for r in regions:
        rows, cols = grid_size(r.height, r.width)
        ys = torch.arange(cells[0], dtype=torch.float32).clamp(max=rows - 1) + r.top / BLOCK
        xs = torch.arange(cells[1], dtype=torch.float32).clamp(max=cols - 1) + r.left / BLOCK
        grids.append(torch.stack(torch.meshgrid(2 * xs / max(w - 1, 1) - 1, 2 * ys / max(h - 1, 1) - 1,
                                                indexing="xy"), -1))
        mask = torch.zeros(cells)
        mask[:rows, :cols] = 1
        inside.append(mask)
    return torch.stack(grids), torch.stack(inside)


def plan_motion(flow: object, source: str | os.PathLike, fallback: str = FALLBACK_FLOW,
                note: Callable[[str], None] | None = None) -> tuple[object, bool]:
    """(the flow to run, whether to read motion vectors) for `source`: `flow` as it is unless it is "mv";
    "mv" with vectors when the source has them; else `fallback` ("dis": the DIS flow, with one note) or
    a DvsnetError ("none")."""
    if fallback not in FLOW_FALLBACKS:
        raise DvsnetError(f"unknown flow fallback {fallback!r}; valid: {', '.join(FLOW_FALLBACKS)}")
    if flow != "mv":
        return flow, False
    reason = why_no_vectors(source)
    if reason is None:
        return flow, True
    if fallback == "none":
        raise DvsnetError(f"--flow mv: {reason} (and --flow-fallback none)")
    if note is not None:
        note(f"note: {reason}; flow falls back to {FALLBACK_FLOW}")
    return FALLBACK_FLOW, False
