"""Accuracy and speed of a DVSNet configuration with the paper's protocol (docs/design.md §5, paper §4.1).

For each snippet of a Cityscapes-layout split (real Cityscapes or the synthetic set): a fresh pipeline
state (`reset()`), frame 0 is the initial key frame (every region segmented), frames 0..19 run in order,
and the confusion matrix accumulates on frame 19 (the annotated offset) against its labels; with
`all_frames=True` it accumulates on every frame 0..19 instead, which needs labels on all of them (the
synthetic set has them, real Cityscapes does not).

Timing: a snippet's frames are decoded into memory before the clock starts, so fps = frames processed /
summed pipeline time (each frame's `timings["total"]`), image decoding and file I/O excluded. Warm-up frames (the
first frames of the first snippet, run once and then discarded with a reset) are excluded as well.
Other figures: the share of region-frames on each path ("seg" / "warp"), and the workload saved =
1 - segmentation region calls / (regions × frames), i.e. the share of segmentation calls avoided
relative to per-frame segmentation of every region (frame 0's key regions count as calls).

Units in the result dict: mIoU and IoU as fractions in [0, 1] (None for absent classes), fps in
frames/s, times in ms per frame.
"""
from __future__ import annotations

import datetime
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from dvsnet.config import PipelineConfig
from dvsnet.data.labels import CLASS_NAMES, NUM_CLASSES
from dvsnet.errors import DvsnetError
from dvsnet.metrics import confusion_matrix, iou_per_class, mean_iou, pixel_accuracy
from dvsnet.pipeline import DVSNet
from dvsnet.provenance import describe_machine, versions
from dvsnet.stats import RunStats

ANNOTATED_OFFSET = 19  # paper §4.1: the 20th frame of each 30-frame snippet is annotated


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
    warmup_frames: int = 5,
    num_classes: int = NUM_CLASSES,
    progress: bool = False,
) -> dict[str, Any]:
    """Run `pipe` over in-memory snippets with the §5 protocol; accuracy and speed figures.

    Returns the measured part of the result dict: miou, iou_per_class, pixel_accuracy, the run's
    RunStats figures (fps, ms_per_frame, stage_ms, seg_share, warp_share, workload_saved, ...: see
    dvsnet.stats), snippets, scored_frames, and the accumulated confusion matrix (as nested lists).
    """
    snippets = list(snippets)
    if not snippets:
        raise DvsnetError("nothing to evaluate: no snippets")
    if warmup_frames > 0:
        pipe.reset()
        for frame in snippets[0].frames[:warmup_frames]:
            pipe.step(frame)
    matrix = np.zeros((num_classes, num_classes), dtype=np.int64)
    stats = RunStats()
    for snippet in tqdm(snippets, desc="evaluate", unit="snippet", disable=not progress, leave=False):
        pipe.reset()
        for offset, frame in enumerate(snippet.frames):
            out = pipe.step(frame)
            stats.add(out)
            scored = all_frames or offset == len(snippet.frames) - 1
            if scored and offset in snippet.labels:
                matrix += confusion_matrix(snippet.labels[offset], np.asarray(out.labels), num_classes)
    iou = iou_per_class(matrix)
    names = CLASS_NAMES if num_classes == len(CLASS_NAMES) else tuple(str(c) for c in range(num_classes))
    miou = mean_iou(matrix)
    figures = stats.figures()
    del figures["restarts"]  # every snippet starts over: nothing to learn from the list
    return {
        "miou": None if np.isnan(miou) else miou,
        "iou_per_class": {name: (None if np.isnan(v) else float(v)) for name, v in zip(names, iou)},
        "classes_present": int((~np.isnan(iou)).sum()),
        "pixel_accuracy": pixel_accuracy(matrix),
        **figures,
        "snippets": len(snippets),
        "scored_frames": sum(len(s.labels) if all_frames else 1 for s in snippets),
        "regions_per_frame": figures["region_frames"] / figures["frames"],
        "confusion_matrix": matrix.tolist(),
    }


def evaluate(
    root: str | Path,
    config: PipelineConfig = PipelineConfig(),
    *,
    split: str = "val",
    all_frames: bool = False,
    max_snippets: int | None = None,
    warmup_frames: int = 5,
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
        **config.to_record(width), "data": str(root), "split": split, "all_frames": all_frames,
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
