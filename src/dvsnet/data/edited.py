"""Footage with variation, edited from real clips: what adaptive key scheduling must handle and a fixed
schedule cannot (the headroom benchmark, benchmarks/bench_headroom.py).

    stop_and_go(frames, seed)   one clip played in runs: normal playback, stills (one frame held, with fresh
                                sensor noise on every copy) and fast-forward (every 2nd-4th frame)
    montage(clips, seed)        runs of irregular length (3 to 40 frames) cut from several clips, each from
                                a random start: hard cuts at unpredictable times
    fit_frame(frame, size)      resize keeping the aspect ratio, then centre-crop (or pad) to one size, so
                                clips of different sizes can be cut together

Frames are H×W×3 uint8 RGB (dvsnet.data.video). Each function also returns its edit list, one
`Run(kind, clip, start, length, step)` per run, so a result can say where the cuts and stills are. Every
edit is drawn from `numpy.random.default_rng(seed)`: the same seed gives the same footage.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

# grey levels (std) of the noise on each copy of a held frame: a camera's still is never still
SENSOR_NOISE = 2.0
RUN_KINDS = ("play", "still", "fast")


@dataclass(frozen=True)
class Run:
    """One run of an edit: `length` output frames of clip `clip` from its frame `start`, every `step`-th
    frame ("play": 1, "fast": 2-4; "still": 0, the start frame held)."""

    kind: str
    clip: int
    start: int
    length: int
    step: int


def fit_frame(frame: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """H×W×3 uint8 -> height×width×3 (size = (height, width)): scaled to the width, aspect ratio kept, then
    centre-cropped to the height (or padded with black when shorter)."""
    height, width = size
    scaled_h = max(1, round(frame.shape[0] * width / frame.shape[1]))
    scaled = cv2.resize(frame, (width, scaled_h), interpolation=cv2.INTER_AREA if width < frame.shape[1]
                        else cv2.INTER_LINEAR)
    if scaled_h >= height:
        top = (scaled_h - height) // 2
        return np.ascontiguousarray(scaled[top:top + height])
    out = np.zeros((height, width, 3), np.uint8)
    top = (height - scaled_h) // 2
    out[top:top + scaled_h] = scaled
    return out


def with_sensor_noise(frame: np.ndarray, rng: np.random.Generator, sigma: float = SENSOR_NOISE) -> np.ndarray:
    """The frame plus Gaussian noise of `sigma` grey levels, rounded and clipped to uint8."""
    noisy = frame.astype(np.float32) + rng.normal(0.0, sigma, frame.shape).astype(np.float32)
    return np.clip(np.rint(noisy), 0, 255).astype(np.uint8)


def stop_and_go(frames: Sequence[np.ndarray], seed: int, *, length: int | None = None,
                noise: float = SENSOR_NOISE) -> tuple[list[np.ndarray], list[Run]]:
    """One clip edited into runs of normal playback (8-30 frames), stills (8-30 frames: the frame reached,
    held, with fresh sensor noise of `noise` grey levels on every copy) and fast-forward (6-20 frames, every
    2nd to 4th source frame), in random order, never the same kind twice in a row. `length` output frames
    (default: as many as the clip has); playback wraps to the clip's start at its end."""
    rng = np.random.default_rng(seed)
    length = len(frames) if length is None else length
    out: list[np.ndarray] = []
    runs: list[Run] = []
    position, previous = 0, None
    while len(out) < length:
        kind = str(rng.choice([k for k in RUN_KINDS if k != previous]))
        previous = kind
        count = min(int(rng.integers(6, 21) if kind == "fast" else rng.integers(8, 31)), length - len(out))
        step = {"play": 1, "still": 0, "fast": int(rng.integers(2, 5))}[kind]
        runs.append(Run(kind, 0, position % len(frames), count, step))
        for _ in range(count):
            source = frames[position % len(frames)]
            out.append(with_sensor_noise(source, rng, noise) if kind == "still" else source.copy())
            position += step
    return out, runs


def montage(clips: Sequence[Sequence[np.ndarray]], seed: int, *, length: int,
            run_lengths: tuple[int, int] = (3, 40)) -> tuple[list[np.ndarray], list[Run]]:
    """`length` frames cut together from runs of `clips` (all of one frame size: see fit_frame): each run a
    random clip (another than the last when there are several), from a random start, played normally for a
    random number of frames in `run_lengths` (inclusive)."""
    rng = np.random.default_rng(seed)
    sizes = {clip[0].shape for clip in clips}
    if len(sizes) != 1:
        raise ValueError(f"the clips of a montage must share one frame size, got {sorted(sizes)}")
    out: list[np.ndarray] = []
    runs: list[Run] = []
    previous = None
    while len(out) < length:
        choices = [i for i in range(len(clips)) if i != previous] or [0]
        clip = int(rng.choice(choices))
        previous = clip
        count = min(int(rng.integers(run_lengths[0], run_lengths[1] + 1)), length - len(out))
        count = min(count, len(clips[clip]))
        start = int(rng.integers(0, len(clips[clip]) - count + 1))
        runs.append(Run("play", clip, start, count, 1))
        out.extend(frame.copy() for frame in clips[clip][start:start + count])
    return out, runs
