"""Optical flow files: Middlebury .flo and KITTI 16-bit PNG; atomic writes.

Flow arrays are (H, W, 2) float32 (dx, dy) in pixels. Formats:
- Middlebury `.flo`: b"PIEH" (float 202021.25), int32 width, int32 height, then H*W*2 float32
  little-endian, row-major, dx and dy interleaved. No validity mask.
- KITTI flow PNG: 16-bit, 3 channels R, G, B = dx * 64 + 2**15, dy * 64 + 2**15, valid (0/1).
  Range +-512 px at 1/64 px steps; compact (the synthetic dataset's default), and its valid
  channel carries the occlusion mask (valid = not occluded). The synthetic writer stores the exact
  vector at occluded pixels too (where the surface point went, though hidden there).
Writers go to a temporary file in the target folder and rename it (os.replace): a file is either
complete or absent.
"""
from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np

from dvsnet.atomic import write_bytes_atomic
from dvsnet.errors import DvsnetError

FLO_MAGIC = 202021.25
KITTI_SCALE = 64.0
KITTI_ZERO = 2**15


def write_png_atomic(path: str | os.PathLike, image: np.ndarray, compression: int = 3) -> None:
    """Write an (H, W) or (H, W, 3) uint8/uint16 array as PNG; 3-channel arrays are taken as RGB."""
    if image.ndim == 3:
        image = image[..., ::-1]  # OpenCV writes BGR
    ok, buf = cv2.imencode(".png", np.ascontiguousarray(image), [cv2.IMWRITE_PNG_COMPRESSION, compression])
    if not ok:
        raise DvsnetError(f"{path}: could not encode PNG")
    write_bytes_atomic(path, buf.tobytes())


def write_flo(path: str | os.PathLike, flow: np.ndarray) -> None:
    """Write (H, W, 2) float flow as a Middlebury .flo file."""
    flow = np.asarray(flow, np.float32)
    if flow.ndim != 3 or flow.shape[2] != 2:
        raise ValueError(f"flow must be (H, W, 2), got {flow.shape}")
    h, w = flow.shape[:2]
    header = np.array([FLO_MAGIC], "<f4").tobytes() + np.array([w, h], "<i4").tobytes()
    write_bytes_atomic(path, header + flow.astype("<f4").tobytes())


def read_flo(path: str | os.PathLike) -> np.ndarray:
    """Read a Middlebury .flo file -> (H, W, 2) float32; DvsnetError if it is not one."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise DvsnetError(f"{path}: cannot read flow file ({exc.strerror})") from None
    if len(data) < 12 or np.frombuffer(data[:4], "<f4")[0] != np.float32(FLO_MAGIC):
        raise DvsnetError(f"{path}: not a Middlebury .flo file (expected the 'PIEH' header)")
    w, h = (int(v) for v in np.frombuffer(data[4:12], "<i4"))
    if w <= 0 or h <= 0 or len(data) != 12 + 8 * w * h:
        raise DvsnetError(f"{path}: .flo size {w}x{h} does not match the file length {len(data)} bytes")
    return np.frombuffer(data[12:], "<f4").reshape(h, w, 2).astype(np.float32)


def encode_kitti_flow(flow: np.ndarray, valid: np.ndarray | None = None) -> np.ndarray:
    """(H, W, 2) float flow and optional (H, W) bool valid -> (H, W, 3) uint16 KITTI channels R, G, B."""
    h, w = flow.shape[:2]
    out = np.empty((h, w, 3), np.uint16)
    out[..., :2] = np.clip(np.rint(flow * KITTI_SCALE) + KITTI_ZERO, 0, 2**16 - 1)
    out[..., 2] = 1 if valid is None else valid
    return out


def write_kitti_flow(path: str | os.PathLike, flow: np.ndarray, valid: np.ndarray | None = None,
                     compression: int = 3) -> None:
    """Write flow (and valid mask; default all valid) as a KITTI 16-bit PNG."""
    write_png_atomic(path, encode_kitti_flow(flow, valid), compression)


def read_kitti_flow(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """Read a KITTI flow PNG -> ((H, W, 2) float32 flow, (H, W) bool valid)."""
    raw = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if raw is None:
        raise DvsnetError(f"{path}: cannot read flow PNG (missing or not an image)")
    if raw.dtype != np.uint16 or raw.ndim != 3 or raw.shape[2] != 3:
        raise DvsnetError(f"{path}: expected a 16-bit 3-channel KITTI flow PNG, got {raw.dtype} {raw.shape}")
    rgb = raw[..., ::-1]
    flow = (rgb[..., :2].astype(np.float32) - KITTI_ZERO) / KITTI_SCALE
    return flow, rgb[..., 2] > 0


def read_flow(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """Read .flo or KITTI .png by extension -> (flow (H, W, 2) float32, valid (H, W) bool)."""
    if str(path).endswith(".flo"):
        flow = read_flo(path)
        return flow, np.ones(flow.shape[:2], bool)
    return read_kitti_flow(path)
