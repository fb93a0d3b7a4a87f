"""The one way dvsnet measures pipelines against per-frame output (docs/design.md §5): one runner.

`run_interleaved` steps a per-frame reference (`PipelineConfig.per_frame()`: the same segmenter on every
whole frame) and any number of configurations through one or more clips held in memory:

- warm-up: the first `warmup_frames` frames of the first clip (WARMUP_FRAMES = 5 by default) run through
  every pipeline once, untimed (allocations, first kernel calls), then every pipeline is reset;
- each clip starts from a reset (no key frame carries over a clip boundary); frame by frame, the reference
  steps first, then each configuration in turn, on the same decoded frame, so load from other processes
  falls on all alike;
- time is each frame's `timings["total"]` (the pipeline's own, decoding and file I/O outside it), so
  speed-up = reference pipeline time / the configuration's (`speedup`), two timings of the same run.

Per configuration and frame it records the paths, scores, timings and regions, and the pixel agreement
with the reference's labels on that frame (dvsnet.agreement.pixel_agreement); the label maps themselves
with `keep_labels`, and a confusion matrix against a clip's own labels where it has them (the §5 protocol).
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from tqdm import tqdm

from dvsnet.agreement import pixel_agreement
from dvsnet.metrics import confusion_matrix
from dvsnet.pipeline import DVSNet, FrameResult
from dvsnet.regions import Region
from dvsnet.stats import RunStats

WARMUP_FRAMES = 5  # untimed frames run through every pipeline before the measured run
# RunStats names of figures that result files record under one other name: workload_saved is warp_share
FIGURE_ALIASES = ("workload_saved",)


@dataclass(frozen=True)
class Clip:
    """One clip in memory. frames: H×W×3 uint8 RGB; motions: each frame's codec motion (for flow "mv"; the
    other flows ignore it) or None; labels: frame offset -> (H, W) uint8 train ids of the frames scored."""

    frames: Sequence[np.ndarray]
    motions: Sequence[Any] | None = None
    labels: Mapping[int, np.ndarray] = field(default_factory=dict)
    name: str = ""


@dataclass(frozen=True)
class FrameRecord:
    """One pipeline's output on one frame, as the runner keeps it."""

    clip: int  # index of the clip in the run
    offset: int  # frame index in its clip
    paths: list[str]  # per region, row-major: "seg" | "warp"
    scores: list[float | None]
    timings: dict[str, float]  # seconds per stage and "total"
    regions: list[Region]
    agreement: float | None  # share of pixels equal to the reference's labels; None without a reference
    labels: np.ndarray | None = None  # (H, W) uint8, with keep_labels


@dataclass
class PipelineRun:
    """Everything the runner measured of one pipeline: its RunStats, its frames, and the confusion matrix
    accumulated on the clips' labelled frames (None when no clip has labels)."""

    stats: RunStats = field(default_factory=RunStats)
    frames: list[FrameRecord] = field(default_factory=list)
    confusion: np.ndarray | None = None

    def figures(self) -> dict[str, Any]:
        """The run's RunStats figures (dvsnet.stats), one name each: warp_share, not its alias
        workload_saved."""
        figures = self.stats.figures()
        for alias in FIGURE_ALIASES:
            figures.pop(alias, None)
        return figures

    @property
    def labels(self) -> list[np.ndarray]:
        """The label maps of every frame (kept with keep_labels)."""
        return [record.labels for record in self.frames]

    @property
    def agreement(self) -> float | None:
        """Mean pixel agreement with the reference over the frames; None without a reference."""
        values = [record.agreement for record in self.frames if record.agreement is not None]
        return float(np.mean(values)) if values else None

    def _add(self, clip: int, offset: int, out: FrameResult, reference: np.ndarray | None, keep_labels: bool,
             truth: np.ndarray | None, num_classes: int) -> None:
        self.stats.add(out)
        labels = np.asarray(out.labels)
        agreement = None if reference is None else pixel_agreement(labels, reference)
        self.frames.append(FrameRecord(clip, offset, list(out.paths), list(out.scores), dict(out.timings),
                                       out.regions, agreement, labels if keep_labels else None))
        if truth is not None:
            matrix = confusion_matrix(truth, labels, num_classes)
            self.confusion = matrix if self.confusion is None else self.confusion + matrix


@dataclass
class InterleavedRun:
    """The reference's run (None when none was given) and one run per configuration, in order."""

    reference: PipelineRun | None
    runs: list[PipelineRun]

    def speedup(self, run: PipelineRun) -> float:
        """Reference pipeline time / `run`'s, over the same frames of the same run."""
        if self.reference is None:
            raise ValueError("no reference ran: there is no speed-up to give")
        return self.reference.stats.pipeline_seconds / run.stats.pipeline_seconds


def warm_up(pipes: Sequence[DVSNet], clip: Clip, frames: int) -> None:
    """The one warm-up rule: the first `frames` frames of `clip` through every pipeline in turn, untimed,
    then every pipeline reset."""
    for pipe in pipes:
        pipe.reset()
    for offset in range(min(frames, len(clip.frames))):
        for pipe in pipes:
            pipe.step(clip.frames[offset], motion=_motion(clip, offset))
    for pipe in pipes:
        pipe.reset()


def run_interleaved(
    clips: Sequence[Clip],
    pipes: Sequence[DVSNet],
    *,
    reference: DVSNet | None = None,
    warmup_frames: int = WARMUP_FRAMES,
    keep_labels: bool = False,
    num_classes: int | None = None,
    progress: bool = False,
) -> InterleavedRun:
    """Step `reference` (when given) and every pipeline of `pipes` through `clips`, interleaved frame by
    frame after the warm-up (see the module docstring). num_classes: of the confusion matrices on the
    clips' labels (default: each pipeline's own)."""
    everyone = ([reference] if reference is not None else []) + list(pipes)
    if clips and warmup_frames > 0:
        warm_up(everyone, clips[0], warmup_frames)
    ref_run = PipelineRun() if reference is not None else None
    runs = [PipelineRun() for _ in pipes]
    total = sum(len(clip.frames) for clip in clips)
    bar = tqdm(total=total, desc="evaluate", unit="frame", disable=not progress, leave=False)
    for number, clip in enumerate(clips):
        for pipe in everyone:
            pipe.reset()
        for offset, frame in enumerate(clip.frames):
            motion, truth = _motion(clip, offset), clip.labels.get(offset)
            ref_labels = None
            if reference is not None:
                out = reference.step(frame, motion=motion)
                ref_run._add(number, offset, out, None, keep_labels, truth,
                             num_classes or reference.num_classes)
                ref_labels = np.asarray(out.labels)
            for pipe, run in zip(pipes, runs):
                out = pipe.step(frame, motion=motion)
                run._add(number, offset, out, ref_labels, keep_labels, truth, num_classes or pipe.num_classes)
            bar.update(1)
    bar.close()
    return InterleavedRun(ref_run, runs)


def _motion(clip: Clip, offset: int) -> Any:
    return None if clip.motions is None else clip.motions[offset]
