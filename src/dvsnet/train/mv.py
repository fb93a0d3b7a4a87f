"""Samples for the `mv` decision network (`dvsnet train dn --variant mv`): the synthetic split encoded to
H.264 as a dash cam records it, then sampled by the pipeline exactly as `dvsnet calibrate` samples a user's
video (dvsnet.sampling.collect_samples): per snippet and grid, `keys_per_snippet` key frames spread over
the snippet, every region warped from its key by the chained motion vectors up to `max_offset` frames,
the target its true confidence score (paper Eq. 1), the input the codec features of dvsnet.flow_mv.

Encoding (ENCODING): libx264 at crf 23 (x264's default quality, what dash cams record at), no B-frames and
one reference frame (what live and dash cameras mostly send), keyframes only at the start. The videos and
the samples are cached under the training cache folder, named by the settings, so a second run reuses them.
The targets come from the fp32 torch segmenter whatever the machine, so the shipped DN does not depend on
the CPU that trained it.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np
from tqdm import tqdm

from dvsnet.config import PipelineConfig
from dvsnet.data.cityscapes import CityscapesSequences, load_image
from dvsnet.data.motion import encode_video
from dvsnet.data.video import probe
from dvsnet.digest import file_digest
from dvsnet.errors import DvsnetError
from dvsnet.sampling import Clip, SamplingConfig, collect_samples, sampling_pipeline

ENCODING = {"crf": 23, "bframes": 0, "refs": 1}


def encoded_split(data: str, split: str, cache: str | Path, max_snippets: int | None,
                  progress: bool = True) -> list[tuple[Path, int]]:
    """(H.264 file (ENCODING), its frame count) for the first `max_snippets` snippets of `split`, encoded
    once into the cache."""
    snippets = CityscapesSequences(data, split).snippets[:max_snippets]
    manifest = Path(data) / f"manifest_{split}.json"
    key = json.dumps({"data": str(Path(data).resolve()), "manifest": file_digest(manifest, 12, "sha1")
                      if manifest.is_file() else None, **ENCODING}, sort_keys=True)
    folder = Path(cache) / f"h264-{split}-{hashlib.sha1(key.encode()).hexdigest()[:12]}"
    folder.mkdir(parents=True, exist_ok=True)
    videos = []
    for i, snippet in enumerate(tqdm(snippets, desc=f"encode {split} to H.264", disable=not progress)):
        path = folder / f"snippet-{i:05d}.mp4"
        if not path.is_file():  # written under a hidden name first (the encoder picks the format by suffix)
            partial = folder / f".partial-{os.getpid()}-{path.name}"
            try:
                encode_video((load_image(p) for p in snippet.frame_paths), partial, **ENCODING)
                os.replace(partial, path)
            finally:
                partial.unlink(missing_ok=True)
        videos.append((path, len(snippet.frame_paths)))
    return videos


def key_starts(frames: int, max_offset: int, keys: int) -> list[int]:
    """Where the `keys` key frames of a snippet of `frames` frames start: spread evenly over the frames
    that still have max_offset frames after them (the first at 0)."""
    last = frames - 1 - max_offset
    if last < 0:
        raise DvsnetError(f"snippets have {frames} frames; --max-offset {max_offset} needs at least "
                          f"{max_offset + 1}")
    if keys <= 1 or last == 0:
        return [0]
    return sorted({round(j * last / (keys - 1)) for j in range(keys)})


def mv_samples(config, split: str, progress: bool = True) -> dict[str, np.ndarray]:
    """Features (N, 10, 16, 16) float16, targets (N,), key offsets (N,) and grid names (N,) of the `mv`
    variant on `split`, for a dvsnet.train.dn.DNTrainConfig `config`."""
    videos = encoded_split(config.data, split, config.cache, config.max_snippets, progress)
    parts = []
    for rows, cols in config.grids:
        pipeline = PipelineConfig(segmenter=config.segmenter, flow="mv", grid=(rows, cols), backend="torch",
                                  precision="fp32")
        sampling = SamplingConfig(pipeline=pipeline, max_offset=config.max_offset,
                                  cache=str(Path(config.cache) / "mv-chunks"))
        pipe, flow = sampling_pipeline(pipeline)
        clips = [Clip(str(video), probe(video), start, frames) for video, frames in videos
                 for start in key_starts(frames, config.max_offset, config.keys_per_snippet)]
        part = collect_samples(clips, sampling, pipe, flow, what=f"{split} {rows}x{cols}", progress=progress)
        part["grids"] = np.full(len(part["targets"]), f"{rows}x{cols}")
        parts.append(part)
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}

