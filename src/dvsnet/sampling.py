"""Samples for a decision network, drawn by the pipeline itself (one code path with inference): the
training data of `dvsnet calibrate` (dvsnet.calibrate) and of the `mv` DN (dvsnet.train.mv).

A DVSNet with the `oracle:0` policy warps every region from the first frame of a chunk of `max_offset + 1`
frames and reports, on each later frame, the true confidence score (paper Eq. 1) of every region; the flow
estimator's features for that frame (the DN's input) are recorded beside it (RecordingFlow). Chunks follow
each other without overlap, so every frame is segmented once. Samples are cached per chunk, named by the
source (path, size, time), the chunk and everything that decides its samples, so an interrupted run resumes.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from dvsnet.atomic import atomic_path
from dvsnet.config import PipelineConfig, format_grid
from dvsnet.data.video import Frame, SourceInfo, read_named_frames
from dvsnet.errors import DvsnetError
from dvsnet.flow import build_flow
from dvsnet.models.weights import segmenter_identity
from dvsnet.pipeline import DVSNet

MAX_OFFSET = 10  # the paper's training pairs have key offsets up to 10 frames
CACHE_FORMAT = 1


def default_cache() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "dvsnet" / "calibrate"


@dataclasses.dataclass(frozen=True)
class SamplingConfig:
    """How samples are drawn. pipeline: segmenter, flow, grid, overlap, flow_width, device, backend, precision
    (its policy and dn are ignored); max_offset: key ages sampled, 1..max_offset frames (chunks of
    max_offset + 1 frames); resize, stride, max_frames: how sources are read (dvsnet.data.video); cache:
    the folder of the samples of each chunk (None: default_cache())."""

    pipeline: PipelineConfig = dataclasses.field(default_factory=PipelineConfig)
    max_offset: int = MAX_OFFSET
    resize: tuple[int, int] | int | None = None
    stride: int = 1
    max_frames: int | None = None
    cache: str | None = None


@dataclasses.dataclass
class Clip:
    """Frames [start, stop) of one source (after --stride and --max-frames)."""

    source: str
    info: SourceInfo
    start: int
    stop: int


class RecordingFlow:
    """A flow estimator that keeps the features of its last call: the DN's input for that frame. It wraps
    the codec's motion vectors (dvsnet.flow_mv) as well: the same calls, region_flow's features recorded."""

    def __init__(self, estimator: Callable):
        self.estimator = estimator
        self.name = getattr(estimator, "name", "custom")
        self.dn_variant = getattr(estimator, "dn_variant", None)
        self.features: torch.Tensor | None = None

    # the rest is the estimator's (the mv one's advance, reset, untrusted...)
    def __getattr__(self, name: str):
        if name == "estimator":  # not set yet (a copy being built): no recursion
            raise AttributeError(name)
        return getattr(self.estimator, name)

    def __call__(self, key: torch.Tensor, cur: torch.Tensor):
        flow, features = self.estimator(key, cur)
        self.features = features
        return flow, features

    def region_flow(self, index: torch.Tensor, key: torch.Tensor | None, cur: torch.Tensor | None,
                    features: bool = True):
        flow, found = self.estimator.region_flow(index, key, cur, features)
        if features:
            self.features = found
        return flow, found


def read_source(source: str, config: SamplingConfig) -> Iterator[Frame]:
    """The frames of `source` as `config` reads them, each with its codec motion when the flow is "mv"."""
    return read_named_frames(source, resize=config.resize, stride=config.stride, max_frames=config.max_frames,
                             motion=config.pipeline.flow == "mv")


def clip_frames(clip: Clip, config: SamplingConfig) -> Iterator[Frame]:
    """The frames of `clip`, each with its codec motion when the flow is "mv" (Frame.motion)."""
    for index, frame in enumerate(read_source(clip.source, config)):
        if index >= clip.stop:
            return
        if index >= clip.start:
            yield frame


def _step(pipe: DVSNet, frame: Frame):
    return pipe.step(frame.image, motion=frame.motion)


def chunks(frames: Iterator[Frame], length: int) -> Iterator[list[Frame]]:
    """Consecutive chunks of `length` frames; a shorter last chunk if it has a key and one frame after."""
    chunk: list[Frame] = []
    for frame in frames:
        chunk.append(frame)
        if len(chunk) == length:
            yield chunk
            chunk = []
    if len(chunk) >= 2:
        yield chunk


def _cache_key(clip: Clip, index: int, config: SamplingConfig) -> str:
    path = Path(clip.source)
    stat = path.stat() if path.exists() else None
    p = config.pipeline
    key = {"source": str(path.resolve()) if stat else clip.source,
           "mtime": stat.st_mtime_ns if stat else None,
           "size": stat.st_size if stat else None, "start": clip.start, "chunk": index,
           "segmenter": segmenter_identity(p.segmenter), "flow": str(p.flow), "grid": format_grid(p.grid),
           "overlap": p.overlap, "flow_width": p.flow_width, "max_offset": config.max_offset,
           "resize": config.resize, "stride": config.stride, "format": CACHE_FORMAT,
           # the targets are the segmenter's own output: its arithmetic is part of what was sampled
           "backend": p.backend, "precision": p.precision}
    return hashlib.sha1(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:16]


def sampling_pipeline(pipeline: PipelineConfig) -> tuple[DVSNet, RecordingFlow]:
    """The pipeline that samples (oracle:0 warps every region from its chunk's first frame; no key-age cap
    may cut the key offsets short) and its flow estimator, which records the DN's features."""
    flow = RecordingFlow(build_flow(pipeline.flow))
    if flow.name not in ("dis", "mv") and not flow.name.startswith("flownet"):
        raise DvsnetError(f"flow estimator {flow.name!r} has no decision-network features to calibrate")
    return DVSNet.from_config(pipeline.replace(flow=flow, policy="oracle:0", dn=None, max_key_age=0)), flow


def sample_chunk(pipe: DVSNet, flow: RecordingFlow, frames: list[Frame]) -> dict[str, np.ndarray]:
    """Features (N, C, h, w) float16, true confidence scores (N,) and key offsets (N,) of every region of
    every frame after the chunk's first, each warped from the first (the pipeline's `oracle:0`)."""
    pipe.reset()
    features, targets, offsets = [], [], []
    for frame in frames:
        out = _step(pipe, frame)
        if out.index == 0:
            continue
        if flow.features is None:
            raise DvsnetError(f"flow estimator {flow.name!r} gives no features for a decision network")
        features.append(flow.features.float().cpu().half().numpy())
        targets.append(np.asarray(out.scores, dtype=np.float32))
        offsets.append(np.full(len(out.scores), out.index, dtype=np.int16))
    return {"features": np.concatenate(features), "targets": np.concatenate(targets),
            "offsets": np.concatenate(offsets)}


def collect_samples(clips: list[Clip], config: SamplingConfig, pipe: DVSNet, flow: RecordingFlow, *,
                    what: str, progress: bool) -> dict[str, np.ndarray]:
    """Samples of every chunk of `clips`, from the cache where a chunk was done before."""
    cache = Path(config.cache) if config.cache else default_cache()
    cache.mkdir(parents=True, exist_ok=True)
    parts = []
    total = sum(-(-(c.stop - c.start) // (config.max_offset + 1)) for c in clips)
    bar = tqdm(total=total, desc=f"calibrate: {what} samples", unit="chunk", disable=not progress)
    for clip in clips:
        for index, chunk in enumerate(chunks(clip_frames(clip, config), config.max_offset + 1)):
            path = cache / f"chunk-{_cache_key(clip, index, config)}.npz"
            if path.is_file():
                with np.load(path) as data:
                    parts.append({k: data[k] for k in data.files})
            else:
                part = sample_chunk(pipe, flow, chunk)
                with atomic_path(path) as tmp, open(tmp, "wb") as f:
                    np.savez(f, **part)
                parts.append(part)
            bar.update(1)
    bar.close()
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
