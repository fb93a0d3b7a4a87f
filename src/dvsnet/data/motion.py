"""Motion vectors from the video codec: decoding with PyAV (`pip install 'dvsnet[mv]'`) and FFmpeg's
`+export_mvs`, each frame's block vectors turned into a dense motion field.

Conventions (owned here): a `MotionField` lives on a grid of BLOCK×BLOCK-pixel cells of the decoded frame
(⌈H/8⌉ × ⌈W/8⌉); `flow` (2, h, w) float32 is (dx, dy) in pixels of that grid, mapping each pixel of the
current frame to its position in the PREVIOUS frame the reader yielded (one frame back, or `stride` frames
back: the per-frame fields are chained across skipped frames); `intra` (h, w) bool is True where the codec
gave no vector for that cell (intra blocks, I-frames, and everything the chain over skipped frames
carried from one), where `flow` is 0 and means nothing.

How FFmpeg's vectors are read (libavutil/motion_vector.h): a vector moves the block of size w×h centred on
(dst_x, dst_y) in the current frame from (src_x, src_y) = dst + (motion_x, motion_y) / motion_scale in its
reference frame, so motion / motion_scale is already current -> reference in pixels. `source` < 0 is a
past reference, > 0 a future one; FFmpeg does not say WHICH frame (H.264 may pick one of several past
frames), so the reader assumes the nearest anchor (I or P frame) in that direction and divides by the
distance to it in frames (constant motion between the frames):
- P-frames: past vectors / (frames since the previous anchor), which is 1 without B-frames: exact for a
  stream with one reference frame (x264 `ref=1`), an approximation for blocks that picked an older one.
- B-frames: past vectors / (frames since the previous anchor); cells with a future vector only take
  -future / (frames to the next anchor). Exact without a B-pyramid; with one (x264's default when it
  uses B-frames) a B-frame may predict from the B-frame before it, and its vectors read as too short.
  B-frames are held back until that next anchor is decoded (at most the stream's B-frame run, a few
  frames) so frames still come out in display order.
- MPEG-4 Part 2 B-frames: FFmpeg exports their direct-mode blocks with zero vectors, so they are read as
  frames without vectors (every cell intra). Streams without B-frames (x264 `bf=0`, baseline profile, what
  live and dash cameras mostly send) avoid both approximations.
- skipped blocks are inter blocks with their predicted vector: FFmpeg exports them; cells no vector
  covers are intra.
"""
from __future__ import annotations

import math
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from dvsnet.data.sources import holds_images
from dvsnet.errors import DvsnetError

# px per cell of the field: H.264's 8x8 partitions (4x4 ones, rare, share a cell, the last one written wins);
# 4-px cells cost 3-4x more to chain and crop for no measurable gain on H.264's mostly 16x16 and 8x8 blocks
BLOCK = 8
VECTOR_CODECS: tuple[str, ...] = ("h264", "mpeg4")  # FFmpeg decoders that export vectors, tested here
INSTALL_HINT = "pip install 'dvsnet[mv]' (PyAV)"
# AVPictureType AV_PICTURE_TYPE_B (PyAV's frame.pict_type: an int in some versions, an enum in others)
B_FRAME = 3


@dataclass(frozen=True)
class MotionField:
    """One frame's codec motion (see the module docstring): flow (2, h, w) float32 current -> previous
    frame in pixels of the BLOCK grid; intra (h, w) bool; frame_size (H, W) of the decoded frame."""

    flow: np.ndarray
    intra: np.ndarray
    frame_size: tuple[int, int]

    @property
    def intra_share(self) -> float:
        return float(self.intra.mean())


def grid_size(height: int, width: int) -> tuple[int, int]:
    """(h, w) of the BLOCK grid of an H×W frame."""
    return math.ceil(height / BLOCK), math.ceil(width / BLOCK)


def no_motion(height: int, width: int) -> MotionField:
    """The field of a frame without vectors (an I-frame, the first frame): every cell intra."""
    h, w = grid_size(height, width)
    return MotionField(np.zeros((2, h, w), np.float32), np.ones((h, w), bool), (height, width))


def _rasterize(
    vectors: np.ndarray, shift: np.ndarray, grid: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray]:
    """Paint each vector's `shift` (n, 2) over the cells of its block: (flow (2, h, w), painted (h, w) bool).
    A codec's blocks of one direction do not overlap, so each cell is written once."""
    h, w = grid
    flow, painted = np.zeros((2, h * w), np.float32), np.zeros(h * w, bool)
    sizes = vectors["w"].astype(np.int64) * 256 + vectors["h"]
    for size in np.unique(sizes):
        bw, bh = int(size) // 256, int(size) % 256
        pick = sizes == size
        left = (vectors["dst_x"][pick].astype(np.int64) - bw // 2) // BLOCK  # (n,) first cell of each block
        top = (vectors["dst_y"][pick].astype(np.int64) - bh // 2) // BLOCK
        cols = left[:, None, None] + np.arange(max(1, bw // BLOCK))[None, None, :]  # (n, 1, bw/BLOCK)
        rows = top[:, None, None] + np.arange(max(1, bh // BLOCK))[None, :, None]  # (n, bh/BLOCK, 1)
        rows, cols = np.broadcast_arrays(rows, cols)  # (n, bh/BLOCK, bw/BLOCK)
        inside = (rows >= 0) & (rows < h) & (cols >= 0) & (cols < w)
        cell = (rows * w + cols)[inside]
        values = np.broadcast_to(shift[pick][:, None, None, :], (*rows.shape, 2))[inside]  # (m, 2)
        flow[0, cell], flow[1, cell], painted[cell] = values[:, 0], values[:, 1], True
    return flow.reshape(2, h, w), painted.reshape(h, w)


def dense_field(vectors: np.ndarray | None, frame_size: tuple[int, int], *, frames_back: int = 1,
                frames_ahead: int | None = None) -> MotionField:
    """One frame's MotionField from FFmpeg's vectors (PyAV's `MOTION_VECTORS.to_ndarray()`, None: none).

    frames_back: frames from this one back to the anchor its past vectors point to; frames_ahead: to the
    anchor its future vectors point to (None: future vectors unused). Each is divided by its distance
    (motion per frame, see the module docstring); where a cell has both, the past one is kept.
    """
    grid = grid_size(*frame_size)
    if vectors is None or len(vectors) == 0:
        return no_motion(*frame_size)
    motion = np.stack([vectors["motion_x"], vectors["motion_y"]], 1).astype(np.float32)
    motion /= np.maximum(vectors["motion_scale"], 1).astype(np.float32)[:, None] * BLOCK  # (n, 2) in cells
    past = vectors["source"] < 0
    flow, have = _rasterize(vectors[past], motion[past] / max(frames_back, 1), grid)
    if frames_ahead is not None and not past.all():
        ahead, painted = _rasterize(vectors[~past], -motion[~past] / max(frames_ahead, 1), grid)
        only_ahead = painted & ~have
        flow[:, only_ahead] = ahead[:, only_ahead]
        have |= only_ahead
    return MotionField(flow, ~have, tuple(frame_size))


FILL_STEPS = 4  # intra areas up to 2 * FILL_STEPS macroblocks (128 px) wide take their neighbours' motion
MACROBLOCK = 16 // BLOCK  # cells per side of a 16x16 macroblock, the unit H.264 and MPEG-4 code intra in


def box3(x: torch.Tensor) -> torch.Tensor:
    """(B, C, h, w) -> the sum over each 3x3 neighbourhood, zero outside (shifted adds: ~10x faster than
    F.avg_pool2d on the CPU at these sizes)."""
    padded = F.pad(x, (1, 1, 1, 1))
    rows = padded[..., :-2, :] + padded[..., 1:-1, :] + padded[..., 2:, :]
    return rows[..., :-2] + rows[..., 1:-1] + rows[..., 2:]


def fill_intra(flow: torch.Tensor, intra: torch.Tensor) -> torch.Tensor:
    """(B, 2, h, w) flow that is 0 at intra cells, (B, 1, h, w) float intra mask -> the flow with each intra
    cell given the motion around it: per 16x16 macroblock the mean of its inter cells, then FILL_STEPS
    rounds of 3x3 normalised convolution over macroblocks, each reaching one macroblock further; what is
    still out of reach (an I-frame) keeps 0. An intra block in a P-frame is mostly texture the encoder found
    cheaper to code than to predict, or newly uncovered content; its neighbours' motion is the best guess
    the stream holds."""
    have = 1 - intra
    if bool(have.all()) or not bool(have.any()):
        return flow
    h, w = flow.shape[-2:]
    pad = (0, -w % MACROBLOCK, 0, -h % MACROBLOCK)
    # (B, 1, h/MB, w/MB): share of inter cells per macroblock
    weight = F.avg_pool2d(F.pad(have, pad), MACROBLOCK)
    known = (weight > 0).float()
    mean = F.avg_pool2d(F.pad(flow * have, pad), MACROBLOCK) / weight.clamp_min(1e-6)  # 0 where unknown
    for _ in range(FILL_STEPS):
        if bool(known.all()):
            break
        total, count = box3(mean * known), box3(known)
        grow = (1 - known) * (count > 0)
        mean = mean + grow * total / count.clamp_min(1e-6)
        known = known + grow
    guess = F.interpolate(mean, scale_factor=MACROBLOCK, mode="nearest")[..., :h, :w]  # 0 where still unknown
    return flow * have + guess * intra  # flow is 0 at intra cells


def chain_fields(later: MotionField, earlier: MotionField) -> MotionField:
    """The field from `later`'s frame to `earlier`'s reference: c(p) = m_later(p) + m_earlier(p + m_later(p))
    (backward composition, intra cells of each filled first: fill_intra); a cell is intra when either
    step was at the place it reads."""
    from dvsnet.warp import backward_warp

    step = fill_intra(torch.from_numpy(later.flow)[None], torch.from_numpy(later.intra).float()[None, None])
    earlier_intra = torch.from_numpy(earlier.intra).float()[None]
    earlier_flow = fill_intra(torch.from_numpy(earlier.flow)[None], earlier_intra[None])[0]
    before = torch.cat([earlier_flow, earlier_intra])[None]
    carried = backward_warp(before, step)[0]  # (3, h, w): earlier's flow and intra at p + m_later(p)
    return MotionField(
        (step[0] + carried[:2]).numpy(), later.intra | (carried[2].numpy() > 0), later.frame_size
    )


def why_no_vectors(source: str | os.PathLike) -> str | None:
    """Why `source` cannot give motion vectors (a phrase for a note or an error), or None when it can."""
    text = os.fspath(source)
    if holds_images(text):
        return f"{text} holds images, which carry no motion vectors"
    try:
        import av
    except ImportError:
        return f"reading motion vectors needs PyAV: {INSTALL_HINT}"
    try:
        with av.open(text) as container:
            if not container.streams.video:
                return f"{text} has no video stream"
            codec = container.streams.video[0].codec_context.name
    except av.FFmpegError as exc:
        return f"PyAV cannot open {text} ({exc})"
    if codec not in VECTOR_CODECS:
        return f"{text} is {codec}, whose decoder exports no motion vectors (H.264 and MPEG-4 Part 2 do)"
    return None


def _vectors(frame) -> np.ndarray | None:
    data = frame.side_data.get("MOTION_VECTORS")
    return None if data is None else data.to_ndarray()


def _decoded(path: str) -> Iterator[tuple[object, MotionField]]:
    """(PyAV frame, MotionField one frame back) per frame of the file, in display order; the caller converts
    the frames it keeps to RGB (a frame --stride skips gives only its vectors)."""
    import av

    try:
        container = av.open(path)
    except av.FFmpegError as exc:
        raise DvsnetError(f"cannot decode video {path} with PyAV ({exc})") from None
    with container:
        stream = container.streams.video[0]
        stream.codec_context.options = {"flags2": "+export_mvs"}
        try:
            yield from with_motion(container.decode(stream), stream.codec_context.name)
        except av.FFmpegError as exc:
            raise DvsnetError(f"video {path} stopped decoding ({exc})") from None


def with_motion(frames: Iterator[object], codec: str) -> Iterator[tuple[object, MotionField]]:
    """(PyAV frame, MotionField one frame back) for the PyAV frames a decoder opened with
    `flags2=+export_mvs` gives (files and live streams alike), in display order: B-frames are held until
    their next anchor is decoded (see the module docstring). codec: the decoder's name ("h264", "mpeg4")."""
    trusts_b = codec != "mpeg4"  # see the module docstring
    held: list[tuple[int, object, np.ndarray | None]] = []  # B-frames waiting for their next anchor
    anchor = None  # display index of the last I/P frame
    for index, frame in enumerate(frames):
        vectors, size = _vectors(frame), (frame.height, frame.width)
        if int(frame.pict_type) == B_FRAME:
            held.append((index, frame, vectors if trusts_b else None))
            continue
        for b_index, b_frame, b_vectors in held:
            back = b_index - anchor if anchor is not None else 1
            yield b_frame, dense_field(b_vectors, size, frames_back=back, frames_ahead=index - b_index)
        held.clear()
        back = index - anchor if anchor is not None else 1
        yield frame, dense_field(vectors, size, frames_back=back)
        anchor = index
    for b_index, b_frame, b_vectors in held:  # the stream ended on B-frames: no next anchor
        yield b_frame, dense_field(b_vectors, (b_frame.height, b_frame.width),
                                   frames_back=b_index - anchor if anchor is not None else 1)


def read_motion_frames(
    path: str | os.PathLike, stride: int = 1
) -> Iterator[tuple[str, np.ndarray, MotionField]]:
    """(name, H×W×3 uint8 RGB frame, MotionField back to the previous frame yielded) for every `stride`-th
    frame of a video whose codec exports vectors (why_no_vectors(path) is None); names as
    dvsnet.data.video.Frame's. With stride > 1 the fields of the skipped frames are chained in. The first
    frame's field is all intra."""
    path = os.fspath(path)
    stem = Path(path).stem
    chained: MotionField | None = None
    for index, (frame, field) in enumerate(_decoded(path)):
        if index == 0:
            field = no_motion(frame.height, frame.width)
        # this frame's field first: it says where each pixel was in the frame before, whose own field (what
        # was chained so far) is read there
        chained = field if chained is None else chain_fields(field, chained)
        if index % stride == 0:
            yield f"{stem}_{index:06d}", frame.to_ndarray(format="rgb24"), chained
            chained = None


def encode_video(frames: list[np.ndarray] | Iterator[np.ndarray], path: str | os.PathLike, *,
                 codec: str = "libx264", fps: int = 17, crf: int = 23, bframes: int = 0, refs: int = 1,
                 keyint: int = 250, preset: str = "veryfast") -> Path:
    """Write H×W×3 uint8 RGB frames (even H and W) to a video with PyAV: libx264 at constant quality `crf`,
    `bframes` B-frames (no B-pyramid), `refs` reference frames, an I-frame every `keyint` (or "mpeg4",
    MPEG-4 Part 2, at a quality from `crf`; or any other encoder PyAV has, with its defaults). For tests and
    benchmarks; 17 fps is Cityscapes' frame rate."""
    import av

    path = Path(path)
    with av.open(str(path), mode="w") as container:
        stream = None
        for image in frames:
            if stream is None:
                stream = container.add_stream(codec, rate=fps)
                stream.height, stream.width = image.shape[:2]
                stream.pix_fmt = "yuv420p"
                if codec in ("libx264", "h264"):
                    stream.options = {"crf": str(crf), "preset": preset, "bf": str(bframes),
                                      "x264-params": f"ref={refs}:keyint={keyint}:scenecut=0:b-pyramid=none"}
                elif codec == "mpeg4":
                    stream.options = {"qscale": str(max(1, crf // 8)), "bf": str(bframes), "g": str(keyint)}
            for packet in stream.encode(
                av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")
            ):
                container.mux(packet)
        if stream is not None:
            for packet in stream.encode():
                container.mux(packet)
    return path
