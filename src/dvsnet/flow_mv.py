"""The `mv` flow estimator: the video codec's motion vectors, chained from each region's key frame.

Decoding already gives every P/B-frame's block vectors (dvsnet.data.motion reads them, one MotionField
per frame: current -> previous frame on a 4-px grid). The pipeline hands each frame's field to the
estimator (`DVSNet.step(frame, motion=field)`), which keeps one chain per live key-frame index k:

    chain_{t->k}(p) = m_t(p) + chain_{t-1->k}(p + m_t(p))        (backward composition; chain_{k->k} = 0)

and an intra share carried the same way (1 where some step of the chain had no vector). A region's flow
is its crop of the chain of its own key frame, so regions whose keys differ get different chains.

Trust: a region whose chain is intra over more than UNTRUSTED_INTRA_SHARE of its area (it crossed an
I-frame, or a scene change the encoder coded intra) is segmented whatever the policy says: it becomes a
key frame and its chain starts again. Smaller intra patches (uncovered background, a new object) keep
the flow of 0 the codec gives them; the decision network sees the damage in its residual feature.

Decision-network features: the DIS ones (dvsnet.flow.motion_features, computed from the chained flow), so
the shipped `dis` DN serves `--flow mv` as it is (`dn_variant`).

Where the vectors come from is the caller's business; `plan_motion` says, for a source, whether `mv`
can run on it or what to fall back to.
"""
from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from dvsnet.data.motion import BLOCK, MotionField, why_no_vectors
from dvsnet.errors import DvsnetError
from dvsnet.flow import motion_features
from dvsnet.regions import Region
from dvsnet.warp import backward_warp, resize_flow

UNTRUSTED_INTRA_SHARE = 0.5  # a region whose chain is intra over more than this share is segmented
FALLBACK_FLOW = "dis"
FLOW_FALLBACKS = ("dis", "none")


class MotionVectorFlow:
    """Chains of codec motion per key frame; see the module docstring. Stateful: the pipeline calls
    `reset()` between videos and `advance(...)` once per frame, then `region_flow(...)` for the regions it
    warps; it does not follow the plain `estimator(key, cur)` contract (it cannot see motion in pixels)."""

    name = "mv"
    dn_variant = "dis"  # the decision network reads dvsnet.flow.motion_features, as for DIS

    def __init__(self, with_features: bool = True):
        self.with_features = with_features
        self.reset()

    def reset(self) -> None:
        self._chains: dict[int, torch.Tensor] = {}  # key index -> (1, 3, h, w): flow dx, dy and intra share
        self._flow = torch.zeros(0)  # (R, 2, hc, wc) this frame's flow per region, crop-grid pixels
        self._intra = torch.zeros(0)  # (R,) share of each region's crop the chain has no vector for
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
        height, width = max(r.bottom for r in regions), max(r.right for r in regions)
        grid = (math.ceil(height / BLOCK), math.ceil(width / BLOCK))
        step = resize_flow(torch.from_numpy(motion.flow)[None], grid)  # (1, 2, h, w) in this frame's grid
        intra = torch.from_numpy(motion.intra)[None, None]
        intra = (intra if intra.shape[-2:] == grid else F.interpolate(intra.float(), size=grid, mode="nearest")).float()
        keys = [int(k) for k in np.unique(key_index)]
        started = torch.cat([step, intra], 1)  # chain_{t->t-1}: (1, 3, h, w)
        old = [k for k in keys if k in self._chains]
        if old:  # every key's chain in one warp: (K, 3, h, w) sampled at p + m_t(p)
            carried = backward_warp(torch.cat([self._chains[k] for k in old]), step.expand(len(old), -1, -1, -1))
            carried = torch.cat([step + carried[:, :2], torch.maximum(intra, carried[:, 2:])], 1)
        self._chains = {k: carried[old.index(k)][None] if k in old else started for k in keys}
        if self._grid_key != (tuple(regions), tuple(crop_size), grid):
            self._grid_key = (tuple(regions), tuple(crop_size), grid)
            self._grid, self._inside = _crop_grids(regions, crop_size, grid)
        chains = torch.cat([self._chains[int(k)] for k in key_index])  # (R, 3, h, w)
        crops = F.grid_sample(chains, self._grid, mode="bilinear", padding_mode="border", align_corners=True)
        self._flow = crops[:, :2]  # (R, 2, Hc/4, Wc/4)
        self._intra = (crops[:, 2] * self._inside).sum((1, 2)) / self._inside.sum((1, 2))

    def untrusted(self) -> torch.Tensor:
        """(R,) bool: the regions whose chain is mostly intra (see the module docstring)."""
        return self._intra > UNTRUSTED_INTRA_SHARE

    def region_flow(self, index: torch.Tensor, key: torch.Tensor, cur: torch.Tensor,
                    features: bool = True) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The flow of the regions `index` (n, 2, Hc/4, Wc/4), current -> key in pixels of the 4-px crop grid,
        and, when `features`, their decision-network features from key, cur (n, 3, h, w) crops."""
        flow = self._flow[index].to(key.device)
        if not (features and self.with_features):
            return flow, None
        return flow, motion_features(key, cur, resize_flow(flow, tuple(key.shape[-2:])))


def _crop_grids(regions: Sequence[Region], crop_size: tuple[int, int],
                grid: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
    """grid_sample's grid (R, Hc/4, Wc/4, 2) that takes each region's crop, on the crop's own 4-px grid, from
    a frame-grid field of `grid` cells (cell i of the crop is cell i + top/4 of the frame; rows and columns
    past the region's edge repeat its last one, as dvsnet.regions.crop_regions pads the crops), and the
    mask (R, Hc/4, Wc/4) of the cells inside each region."""
    h, w = grid
    cells = (math.ceil(crop_size[0] / BLOCK), math.ceil(crop_size[1] / BLOCK))
    grids, inside = [], []
    for r in regions:
        rows, cols = math.ceil(r.height / BLOCK), math.ceil(r.width / BLOCK)
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
