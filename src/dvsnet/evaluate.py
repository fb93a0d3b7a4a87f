"""Accuracy and speed of a DVSNet configuration with the paper's protocol (DESIGN.md §5, paper §4.1).

For each snippet of a Cityscapes-layout split (real Cityscapes or the synthetic set): a fresh pipeline
state (`reset()`), frame 0 is the initial key frame (every region segmented), frames 0..19 run in order,
and the confusion matrix accumulates on frame 19 (the annotated offset) against its labels; with
`all_frames=True` it accumulates on every frame 0..19 instead, which needs labels on all of them (the
synthetic set has them, real Cityscapes does not).

Timing: a snippet's frames are decoded into memory before the clock starts, so fps = frames processed /
summed wall time of `pipe.step(frame)` calls, image decoding and file I/O excluded. Warm-up frames (the
first frames of the first snippet, run once and then discarded with a reset) are excluded as well.
Other figures: the share of region-frames on each path ("seg" / "warp"), and the workload saved =
1 - segmentation region calls / (regions × frames), i.e. the share of segmentation calls avoided
relative to per-frame segmentation of every region (frame 0's key regions count as calls).

Units in the result dict: mIoU and IoU as fractions in [0, 1] (None for absent classes), fps in
frames/s, times in ms per frame.
"""
from __future__ import annotations

import datetime
import os
import platform
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from dvsnet.data.labels import CLASS_NAMES, NUM_CLASSES
from dvsnet.devices import describe_device
from dvsnet.errors import DvsnetError
from dvsnet.metrics import confusion_matrix, iou_per_class, mean_iou, pixel_accuracy

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


def _versions() -> dict[str, str]:
    import cv2

    try:
        dvsnet_version = metadata.version("dvsnet")
    except metadata.PackageNotFoundError:
        dvsnet_version = "uninstalled"
    return {"dvsnet": dvsnet_version, "python": sys.version.split()[0], "torch": torch.__version__,
            "numpy": np.__version__, "opencv": cv2.__version__}


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def set_threads(threads: int) -> None:
    """Use `threads` CPU threads in torch and in OpenCV (DIS flow), for this whole process."""
    import cv2

    torch.set_num_threads(threads)
    cv2.setNumThreads(threads)


def describe_machine(device: torch.device | None = None) -> dict[str, Any]:
    """CPU model, cores usable by this process, torch/OpenCV threads, load average and the device the
    networks ran on (with the GPU's name): a timing's conditions."""
    import cv2

    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count()
    return {
        "cpu": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "usable_cores": usable,
        "torch_threads": torch.get_num_threads(),
        "opencv_threads": cv2.getNumThreads(),
        "load_average_1m": round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None,
        "platform": platform.platform(),
        "device": describe_device(device or torch.device("cpu")),
    }


def _describe(part: Any) -> str:
    """A config entry for a name, a path, or an object (policy objects print as their policy string)."""
    if part is None or isinstance(part, (str, int, float, Path)):
        return str(part)
    name = getattr(part, "name", None)
    if isinstance(name, str):
        return name
    if type(part).__repr__ is not object.__repr__:
        return repr(part)
    return type(part).__name__


def run_pipeline(
    snippets: Iterable[Snippet],
    pipe: Any,
    *,
    all_frames: bool = False,
    warmup_frames: int = 5,
    num_classes: int = NUM_CLASSES,
    progress: bool = False,
) -> dict[str, Any]:
    """Run `pipe` (a DVSNet) over in-memory snippets with the §5 protocol; accuracy and speed figures.

    Returns the measured part of the result dict: miou, iou_per_class, pixel_accuracy, fps,
    ms_per_frame, stage_ms (mean ms per frame of each key of `out.timings`), path shares,
    workload_saved, counts, and the accumulated confusion matrix (as nested lists).
    """
    snippets = list(snippets)
    if not snippets:
        raise DvsnetError("nothing to evaluate: no snippets")
    if warmup_frames > 0:
        pipe.reset()
        for frame in snippets[0].frames[:warmup_frames]:
            pipe.step(frame)
    matrix = np.zeros((num_classes, num_classes), dtype=np.int64)
    step_seconds = 0.0
    frames = seg_calls = region_frames = 0
    stage_seconds: dict[str, float] = {}
    for snippet in tqdm(snippets, desc="evaluate", unit="snippet", disable=not progress, leave=False):
        pipe.reset()
        for offset, frame in enumerate(snippet.frames):
            start = time.perf_counter()
            out = pipe.step(frame)
            step_seconds += time.perf_counter() - start
            frames += 1
            region_frames += len(out.paths)
            seg_calls += sum(path == "seg" for path in out.paths)
            for stage, seconds in out.timings.items():
                stage_seconds[stage] = stage_seconds.get(stage, 0.0) + float(seconds)
            scored = all_frames or offset == len(snippet.frames) - 1
            if scored and offset in snippet.labels:
                matrix += confusion_matrix(snippet.labels[offset], np.asarray(out.labels), num_classes)
    iou = iou_per_class(matrix)
    names = CLASS_NAMES if num_classes == len(CLASS_NAMES) else tuple(str(c) for c in range(num_classes))
    miou = mean_iou(matrix)
    return {
        "miou": None if np.isnan(miou) else miou,
        "iou_per_class": {name: (None if np.isnan(v) else float(v)) for name, v in zip(names, iou)},
        "classes_present": int((~np.isnan(iou)).sum()),
        "pixel_accuracy": pixel_accuracy(matrix),
        "fps": frames / step_seconds,
        "ms_per_frame": 1000.0 * step_seconds / frames,
        "stage_ms": {stage: 1000.0 * s / frames for stage, s in stage_seconds.items()},
        "paths": {"seg": seg_calls / region_frames, "warp": 1.0 - seg_calls / region_frames},
        "workload_saved": 1.0 - seg_calls / region_frames,
        "warp_seg_ratio": (region_frames - seg_calls) / seg_calls if seg_calls else None,
        "snippets": len(snippets),
        "frames": frames,
        "scored_frames": sum(len(s.labels) if all_frames else 1 for s in snippets),
        "region_frames": region_frames,
        "seg_calls": seg_calls,
        "regions_per_frame": region_frames / frames,
        "confusion_matrix": matrix.tolist(),
    }


def build_pipeline(
    segmenter: Any = "fast",
    flow: Any = "dis",
    policy: Any = "dn:0.92",
    grid: tuple[int, int] = (2, 2),
    overlap: int | None = None,
    stitch: str = "max-logit",
    dn: str | Path | None = None,
    device: str | torch.device | None = None,
    flow_width: int | None = None,
) -> Any:
    """A DVSNet from the evaluate() options (a segmenter name or path is loaded onto `device`)."""
    import dvsnet

    return dvsnet.DVSNet(segmenter=segmenter, flow=flow, policy=policy, grid=tuple(grid), overlap=overlap,
                         stitch=stitch, dn=dn, device=device, flow_width=flow_width)


def evaluate(
    root: str | Path,
    split: str = "val",
    segmenter: Any = "fast",
    flow: Any = "dis",
    policy: Any = "dn:0.92",
    grid: tuple[int, int] = (2, 2),
    overlap: int | None = None,
    all_frames: bool = False,
    max_snippets: int | None = None,
    warmup_frames: int = 5,
    stitch: str = "max-logit",
    snippets: list[Snippet] | None = None,
    progress: bool = False,
    dn: str | Path | None = None,
    device: str | torch.device | None = None,
    flow_width: int | None = None,
) -> dict[str, Any]:
    """Evaluate one configuration on `root`/`split` with the §5 protocol -> result dict (JSON-ready).

    segmenter: name ("fast", "accurate"), .safetensors path, or a callable (B,3,h,w) -> (B,K,h',w')
    with `num_classes`; flow / policy / grid / overlap / stitch / dn / device / flow_width as for
    dvsnet.DVSNet. `snippets`, when given, are used instead of loading `root` again (the sweep loads them
    once for every row).
    """
    from dvsnet.regions import default_overlap

    segmenter_name = _describe(segmenter)
    pipe = build_pipeline(segmenter, flow, policy, grid, overlap, stitch, dn, device, flow_width)
    segmenter = pipe.segmenter
    if snippets is None:
        snippets = load_snippets(root, split, all_frames=all_frames, max_snippets=max_snippets)
    started = datetime.datetime.now(datetime.timezone.utc)
    machine = describe_machine(pipe.device)
    measured = run_pipeline(snippets, pipe, all_frames=all_frames, warmup_frames=warmup_frames,
                            num_classes=int(getattr(segmenter, "num_classes", NUM_CLASSES)), progress=progress)
    height, width = snippets[0].frames[0].shape[:2]
    config = {
        "data": str(root), "split": split, "segmenter": segmenter_name, "flow": _describe(flow),
        "policy": _describe(policy), "grid": f"{grid[0]}x{grid[1]}",
        "overlap": overlap if overlap is not None else default_overlap(width),
        "overlap_default": overlap is None, "stitch": stitch, "all_frames": all_frames,
        "max_snippets": max_snippets, "warmup_frames": warmup_frames, "frame_size": f"{height}x{width}",
        "dn": None if dn is None else str(dn), "flow_width": flow_width,
    }
    return {
        "config": config,
        **measured,
        "protocol": ("frame 0 key, frames 0..19 in order, scored on "
                     + ("every labelled frame 0..19" if all_frames else "frame 19")
                     + "; fps = frames / time in pipe.step (decoding excluded), warm-up excluded"),
        "versions": _versions(),
        "machine": machine,
        "started_utc": started.isoformat(timespec="seconds"),
        "elapsed_s": (datetime.datetime.now(datetime.timezone.utc) - started).total_seconds(),
    }
