"""Accuracy and speed of a DVSNet configuration with the paper's protocol (docs/design.md §5, paper §4.1).

For each snippet of a Cityscapes-layout split (real Cityscapes or the synthetic set): a fresh pipeline
state (`reset()`), frame 0 is the initial key frame (every region segmented), frames 0..19 run in order,
and the confusion matrix accumulates on frame 19 (the annotated offset) against its labels; with
`all_frames=True` it accumulates on every frame 0..19 instead, which needs labels on all of them (the
synthetic set has them, real Cityscapes does not).

Timing: a snippet's frames are decoded into memory before the clock starts, so fps = frames processed /
summed pipeline time (each frame's `timings["total"]`), image decoding and file I/O excluded. Warm-up
frames (the first frames of the first snippet, run once and then discarded with a reset) are excluded as
well: the runner's one rule (dvsnet.runner).
Other figures: the share of region-frames on each path ("seg" / "warp"), and the workload saved =
1 - segmentation region calls / (regions × frames), i.e. the share of segmentation calls avoided
relative to per-frame segmentation of every region (frame 0's key regions count as calls).

Units in the result dict: mIoU and IoU as fractions in [0, 1] (None for absent classes), fps in
frames/s, times in ms per frame.

Without labels (`evaluate_video`, for a video file, a folder of frames or a glob): the reference is the
configuration's `per_frame()` (the same segmenter on every whole frame). The source is decoded into memory
first; the reference and each configuration then step through the frames interleaved frame by frame after
the warm-up (dvsnet.runner.run_interleaved), so load from other processes falls on all alike, and speedup =
fps / fps_per_frame compares two timings of the same run. The measures (pixel agreement, mIoU against the
reference, temporal consistency, flicker ceiling) are dvsnet.agreement's, computed after the timed run.
"""
from __future__ import annotations

import datetime
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from dvsnet.agreement import CONSISTENCY_FLOW, measure_against_reference
from dvsnet.auto_precision import CHECK_FRAMES, first_frames
from dvsnet.config import PipelineConfig
from dvsnet.data.labels import CLASS_NAMES, NUM_CLASSES
from dvsnet.data.video import read_named_frames
from dvsnet.errors import DvsnetError
from dvsnet.metrics import iou_per_class, mean_iou, pixel_accuracy
from dvsnet.pipeline import DVSNet
from dvsnet.provenance import describe_machine, versions
from dvsnet.runner import WARMUP_FRAMES, Clip, InterleavedRun, PipelineRun, run_interleaved

ANNOTATED_OFFSET = 19  # paper §4.1: the 20th frame of each 30-frame snippet is annotated
DEFAULT_CONFIG = PipelineConfig()
MAX_DECODED_BYTES = 8 * 2**30  # evaluate_video holds every decoded frame; beyond this, ask for --max-frames


@dataclass(frozen=True)
class Snippet:
    """One snippet in memory: frames[0..last] H×W×3 uint8 RGB, labels offset -> H×W uint8 train ids."""

    name: str
    frames: tuple[np.ndarray, ...]
    labels: dict[int, np.ndarray]


def _loader_functions(dataset: Any) -> tuple[Callable, Callable]:
    """load_image / load_labels: methods of the dataset where it has them, else the loader module's."""
    from dvsnet.data import cityscapes

    load_image = getattr(dataset, "load_image", None) or cityscapes.load_image
    load_labels = getattr(dataset, "load_labels", None) or cityscapes.load_labels
    return load_image, load_labels


def load_snippets(
    root: str | Path,
    split: str = "val",
    *,
    all_frames: bool = False,
    max_snippets: int | None = None,
) -> list[Snippet]:
    """Decode the frames 0..annotated offset of the first `max_snippets` snippets (all when None).

    Labels are loaded for the scored offsets only: the annotated one, or every one with `all_frames`
    (DvsnetError when a snippet lacks labels for some of them).
    """
    from dvsnet.data.cityscapes import CityscapesSequences

    if max_snippets is not None and max_snippets < 1:
        raise DvsnetError(f"max_snippets must be >= 1, got {max_snippets}")
    dataset = CityscapesSequences(root, split)
    if len(dataset) == 0:
        raise DvsnetError(f"no snippets found in {root} split {split!r}")
    load_image, load_labels = _loader_functions(dataset)
    count = len(dataset) if max_snippets is None else min(max_snippets, len(dataset))
    snippets = []
    for i in range(count):
        item = dataset.snippet(i)
        last = int(item.annotated_offset)
        if len(item.frame_paths) <= last:
            raise DvsnetError(f"snippet {i} of {root} has {len(item.frame_paths)} frames, "
                              f"needs at least {last + 1}")
        wanted = range(last + 1) if all_frames else [last]
        missing = [offset for offset in wanted if offset not in item.label_paths]
        if missing:
            what = f"every frame 0..{last} (all_frames)" if all_frames else f"frame {last}"
            raise DvsnetError(f"snippet {i} of {root} ({Path(item.frame_paths[0]).name}) has no labels "
                              f"for offsets {missing[:5]}; scoring needs labels on {what}")
        frames = tuple(load_image(item.frame_paths[offset]) for offset in range(last + 1))
        labels = {offset: load_labels(item.label_paths[offset]) for offset in wanted}
        snippets.append(Snippet(Path(item.frame_paths[last]).name, frames, labels))
    return snippets


def run_pipeline(
    snippets: Iterable[Snippet],
    pipe: DVSNet,
    *,
    all_frames: bool = False,
    warmup_frames: int = WARMUP_FRAMES,
    num_classes: int = NUM_CLASSES,
    progress: bool = False,
    reference: DVSNet | None = None,
) -> dict[str, Any]:
    """Run `pipe` over in-memory snippets with the §5 protocol (dvsnet.runner); accuracy and speed figures.

    Returns the measured part of the result dict: miou, iou_per_class, pixel_accuracy, the run's
    RunStats figures (fps, ms_per_frame, stage_ms, seg_share, warp_share, ...: see dvsnet.stats and
    PipelineRun.figures), snippets, scored_frames, and the accumulated confusion matrix (as nested lists).
    With a `reference` (the per-frame pipeline, run interleaved with `pipe`): also ref_fps and speedup.
    """
    return run_pipelines(snippets, [pipe], all_frames=all_frames, warmup_frames=warmup_frames,
                         num_classes=num_classes, progress=progress, reference=reference)[1][0]


def run_pipelines(
    snippets: Iterable[Snippet],
    pipes: Sequence[DVSNet],
    *,
    all_frames: bool = False,
    warmup_frames: int = WARMUP_FRAMES,
    num_classes: int = NUM_CLASSES,
    progress: bool = False,
    reference: DVSNet | None = None,
) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
    """(the reference's result or None, run_pipeline's result for each of `pipes`): all of them interleaved
    frame by frame in one run over the snippets."""
    snippets = list(snippets)
    if not snippets:
        raise DvsnetError("nothing to evaluate: no snippets")
    clips = [Clip(s.frames, labels={offset: labels for offset, labels in s.labels.items()
                                    if all_frames or offset == len(s.frames) - 1}, name=s.name)
             for s in snippets]
    run = run_interleaved(clips, pipes, reference=reference, warmup_frames=warmup_frames,
                          num_classes=num_classes, progress=progress)
    scored_frames = sum(len(s.labels) if all_frames else 1 for s in snippets)
    results = []
    for measured in ([] if reference is None else [run.reference]) + run.runs:
        speed = {} if reference is None else {"ref_fps": run.reference.figures()["fps"],
                                              "speedup": run.speedup(measured)}
        figures = labelled_figures(measured, num_classes)
        matrix = figures.pop("confusion_matrix")
        results.append({**figures, **speed, "snippets": len(snippets), "scored_frames": scored_frames,
                        "regions_per_frame": figures["region_frames"] / figures["frames"],
                        "confusion_matrix": matrix})
    return (results.pop(0) if reference is not None else None), results


def labelled_figures(run: PipelineRun, num_classes: int) -> dict[str, Any]:
    """A run's accuracy against the labels (miou, iou_per_class, classes_present, pixel_accuracy,
    confusion_matrix) and its RunStats figures, restarts left out (every snippet starts over)."""
    matrix = run.confusion if run.confusion is not None else np.zeros((num_classes,) * 2, np.int64)
    iou = iou_per_class(matrix)
    names = CLASS_NAMES if num_classes == len(CLASS_NAMES) else tuple(str(c) for c in range(num_classes))
    miou = mean_iou(matrix)
    figures = run.figures()
    del figures["restarts"]
    return {
        "miou": None if np.isnan(miou) else miou,
        "iou_per_class": {name: (None if np.isnan(v) else float(v)) for name, v in zip(names, iou)},
        "classes_present": int((~np.isnan(iou)).sum()),
        "pixel_accuracy": pixel_accuracy(matrix),
        **figures,
        "confusion_matrix": matrix.tolist(),
    }


def evaluate(
    root: str | Path,
    config: PipelineConfig = DEFAULT_CONFIG,
    *,
    split: str = "val",
    all_frames: bool = False,
    max_snippets: int | None = None,
    warmup_frames: int = WARMUP_FRAMES,
    snippets: list[Snippet] | None = None,
    progress: bool = False,
) -> dict[str, Any]:
    """Evaluate the pipeline `config` describes on `root`/`split` with the §5 protocol -> result dict
    (JSON-ready). `snippets`, when given, are used instead of loading `root` again."""
    pipe = DVSNet.from_config(config)
    if snippets is None:
        snippets = load_snippets(root, split, all_frames=all_frames, max_snippets=max_snippets)
    started = datetime.datetime.now(datetime.timezone.utc)
    machine = describe_machine(pipe.device)
    measured = run_pipeline(snippets, pipe, all_frames=all_frames, warmup_frames=warmup_frames,
                            num_classes=pipe.num_classes, progress=progress)
    height, width = snippets[0].frames[0].shape[:2]
    record = {
        **config.to_record(width, height), "backend": pipe.backend, "precision": pipe.precision,  # what ran
        "key_age_cap": pipe.max_key_age, "data": str(root), "split": split, "all_frames": all_frames,
        "max_snippets": max_snippets, "warmup_frames": warmup_frames, "frame_size": f"{height}x{width}",
    }
    return {
        "config": record,
        **measured,
        "protocol": ("frame 0 key, frames 0..19 in order, scored on "
                     + ("every labelled frame 0..19" if all_frames else "frame 19")
                     + "; fps = frames / pipeline time (decoding excluded), warm-up excluded"),
        "versions": versions(),
        "machine": machine,
        "started_utc": started.isoformat(timespec="seconds"),
        "elapsed_s": (datetime.datetime.now(datetime.timezone.utc) - started).total_seconds(),
    }


def is_cityscapes_tree(path: str | os.PathLike) -> bool:
    """Whether `path` is the root of a Cityscapes-layout tree (it holds leftImg8bit_sequence/)."""
    return (Path(path) / "leftImg8bit_sequence").is_dir()


def load_frames(
    source: str | os.PathLike,
    *,
    resize: tuple[int, int] | int | None = None,
    stride: int = 1,
    max_frames: int | None = None,
    progress: bool = False,
    motions: list | None = None,
) -> tuple[np.ndarray, ...]:
    """Decode a video, folder of frames or glob into memory (H×W×3 uint8 RGB frames, dvsnet.data.video's
    options); DvsnetError beyond MAX_DECODED_BYTES, or for fewer than 2 frames (nothing to measure over time).
    motions: a list that receives each frame's codec motion (dvsnet.data.motion), read with the frames."""
    frames, held = [], 0
    for frame in tqdm(read_named_frames(source, resize=resize, stride=stride, max_frames=max_frames,
                                        motion=motions is not None),
                      desc="decode", unit="frame", disable=not progress, leave=False):
        if motions is not None:
            motions.append(frame.motion)
        held += frame.image.nbytes
        if held > MAX_DECODED_BYTES:
            raise DvsnetError(f"{source}: the decoded frames would take more than "
                              f"{MAX_DECODED_BYTES / 2**30:.0f} GiB of memory after {len(frames)} frames; "
                              "evaluate fewer (--max-frames) or smaller ones (--resize)")
        frames.append(frame.image)
    if len(frames) < 2:
        raise DvsnetError(f"{source} has {len(frames)} frame{'s' * (len(frames) != 1)} after --stride and "
                          "--max-frames; evaluating without labels needs at least 2")
    return tuple(frames)


def _format_resize(resize: tuple[int, int] | int | None) -> str | int | None:
    return f"{resize[0]}x{resize[1]}" if isinstance(resize, tuple) else resize


def evaluate_video_configs(
    source: str | os.PathLike,
    configs: Sequence[PipelineConfig],
    *,
    resize: tuple[int, int] | int | None = None,
    stride: int = 1,
    max_frames: int | None = None,
    warmup_frames: int = WARMUP_FRAMES,
    frames: Sequence[np.ndarray] | None = None,
    progress: bool = False,
    motion: bool = False,
) -> list[dict[str, Any]]:
    """Evaluate several configurations of ONE segmenter on a label-free source in one run: one per-frame
    reference, every pipeline interleaved with it, one flow per frame pair for the measures. One result
    dict (JSON-ready, as evaluate_video's) per config. `frames`, when given, are used instead of decoding
    `source` (which is then only recorded). motion: decode the codec's motion vectors with the frames,
    for configurations with flow "mv" (dvsnet.flow_mv.plan_motion says whether the source has them)."""
    # auto checks its backend and precision on the first frames of this footage (dvsnet.auto_precision)
    footage = (list(frames[:CHECK_FRAMES]) if frames is not None else
               first_frames(source, resize=resize, stride=stride))
    pipes, reference = _pipelines_sharing_a_reference(configs, footage)
    motions = [] if motion else None
    if frames is None:
        frames = load_frames(source, resize=resize, stride=stride, max_frames=max_frames, progress=progress,
                             motions=motions)
    started = datetime.datetime.now(datetime.timezone.utc)
    machine = describe_machine(reference.device)
    run = run_interleaved([Clip(frames, motions)], pipes, reference=reference, warmup_frames=warmup_frames,
                          keep_labels=True, progress=progress)
    measures, ref_measures = measure_against_reference(frames, [r.labels for r in run.runs],
                                                       run.reference.labels,
                                                       num_classes=reference.num_classes, progress=progress)
    height, width = frames[0].shape[:2]
    shared = {"data": os.fspath(source), "resize": _format_resize(resize), "stride": stride,
              "max_frames": max_frames, "warmup_frames": warmup_frames, "frame_size": f"{height}x{width}"}
    run_record = {
        "protocol": ("label-free: reference = the same segmenter on every frame (policy always, grid 1x1), "
                     f"interleaved frame by frame with {len(configs)} configuration(s) on the same decoded "
                     "frames; fps = frames / pipeline time (decoding excluded), warm-up excluded; temporal "
                     f"consistency = mIoU of frame t's labels and frame t+1's warped back by "
                     f"{CONSISTENCY_FLOW} flow (nearest neighbour, out-of-frame pixels unscored), "
                     "Liu et al. 2020"),
        "versions": versions(), "machine": machine, "started_utc": started.isoformat(timespec="seconds"),
        "elapsed_s": (datetime.datetime.now(datetime.timezone.utc) - started).total_seconds(),
    }
    results = []
    for config, pipe, measured_run, measured in zip(configs, pipes, run.runs, measures):
        record = {**config.to_record(width, height),
                  "backend": pipe.backend, "precision": pipe.precision,  # ran
                  **shared, "key_age_cap": pipe.max_key_age,
                  "reference": configs[0].per_frame().to_record(width, height),
                  "consistency_flow": CONSISTENCY_FLOW}
        results.append({"config": record, **_video_figures(run, measured_run, measured, ref_measures),
                        **run_record})
    return results


def _pipelines_sharing_a_reference(
    configs: Sequence[PipelineConfig], footage: Sequence[np.ndarray] | None = None
) -> tuple[list[DVSNet], DVSNet]:
    """A pipeline per config and their one per-frame reference (PipelineConfig.per_frame()); DvsnetError
    unless they share the segmenter, device, backend and precision."""
    if not configs:
        raise DvsnetError("nothing to evaluate: no configuration")
    first = configs[0]
    if any((c.segmenter, c.device, c.backend, c.precision) != (first.segmenter, first.device, first.backend,
                                                                   first.precision) for c in configs):
        raise DvsnetError("the configurations evaluated together must share the segmenter, device, backend "
                          "and precision (one per-frame reference serves them all)")
    pipes = [DVSNet.from_config(c, footage) for c in configs]
    # the same segmenter object: no second copy of the weights, and outputs equal where the crops are
    return pipes, DVSNet.from_config(first.per_frame().replace(segmenter=pipes[0].segmenter))


def _video_figures(run: InterleavedRun, measured_run: PipelineRun, measured: dict[str, Any],
                   ref_measures: dict[str, Any]) -> dict[str, Any]:
    """One configuration's figures in evaluate_video's result (its keys between config and protocol)."""
    ref_figures = run.reference.figures()
    figures = measured_run.figures()
    del figures["restarts"]  # one clip, one start
    return {
        "pixel_agreement": measured["pixel_agreement"],
        "pixel_agreement_min": measured["pixel_agreement_min"],
        "miou_vs_per_frame": measured["miou_vs_per_frame"],
        "temporal_consistency": {"dvsnet": measured["temporal_consistency"],
                                 "per_frame": ref_measures["temporal_consistency"]},
        "flicker_ceiling": ref_measures["flicker_ceiling"],
        "fps": figures["fps"],
        "fps_per_frame": ref_figures["fps"],
        "speedup": run.speedup(measured_run),
        **figures,
        "regions_per_frame": figures["region_frames"] / figures["frames"],
        "per_frame": {k: ref_figures[k] for k in ("fps", "ms_per_frame", "stage_ms")},
    }


def evaluate_video(
    source: str | os.PathLike,
    config: PipelineConfig = DEFAULT_CONFIG,
    *,
    resize: tuple[int, int] | int | None = None,
    stride: int = 1,
    max_frames: int | None = None,
    warmup_frames: int = WARMUP_FRAMES,
    frames: Sequence[np.ndarray] | None = None,
    progress: bool = False,
    motion: bool = False,
) -> dict[str, Any]:
    """Evaluate the pipeline `config` describes on a video file, folder of frames or glob, without labels:
    against the same segmenter run on every frame, in the same run -> result dict (JSON-ready).

    Keys: config (config.to_record plus data, resize, stride, max_frames, warmup_frames, frame_size, the
    reference's record and consistency_flow); pixel_agreement (mean over frames of the share of pixels
    equal to the per-frame labels) and pixel_agreement_min (the worst frame); miou_vs_per_frame;
    temporal_consistency {dvsnet, per_frame}; flicker_ceiling (dvsnet.agreement); fps, fps_per_frame,
    speedup (= fps / fps_per_frame, timed in the same run); the RunStats figures (seg_share: the share of
    regions segmented); per_frame (the reference's fps, ms_per_frame, stage_ms); protocol, versions, machine,
    started_utc, elapsed_s. Fractions in [0, 1]; None where nothing was scored.
    """
    return evaluate_video_configs(source, [config], resize=resize, stride=stride, max_frames=max_frames,
                                  warmup_frames=warmup_frames, frames=frames, progress=progress,
                                  motion=motion)[0]
