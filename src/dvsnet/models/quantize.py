"""int8 segmenters: ONNX Runtime static quantisation of an exported fp32 segmenter, calibrated on frames.

QDQ format (QuantizeLinear/DequantizeLinear pairs that ORT fuses into integer kernels), weights int8 per
output channel, activations uint8 with ranges from the min and max seen on the calibration frames:
ONNX Runtime's fast integer kernels take uint8 x int8 (int8 activations were far slower in a trial; the
QOperator format ran as fast as QDQ). Speed and mIoU: docs/speed.md.

Calibration frames: H×W×3 uint8 RGB, any size; each is cropped to a multiple of the segmenter's input
multiple. By default `default_calibration_frames`: rendered synthetic street frames from seeds that are
neither the synthetic train nor val set's, so no files are needed and the frames evaluated are not the
ones calibrated on.
"""
from __future__ import annotations

import hashlib
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from dvsnet.atomic import atomic_path
from dvsnet.errors import DvsnetError

CALIBRATION_SEEDS = (1001, 1002)  # rendered sequences of the default calibration set
CALIBRATION_FRAMES_PER_SEED = 4
MAX_CALIBRATION_FRAMES = 16  # frames from a user's source, evenly spaced


def default_calibration_frames(size: tuple[int, int] = (256, 512)) -> list[np.ndarray]:
    """CALIBRATION_SEEDS x CALIBRATION_FRAMES_PER_SEED rendered frames of `size` (H, W), uint8 RGB."""
    from dvsnet.data.synthetic import render_sequence

    return [frame.image for seed in CALIBRATION_SEEDS
            for frame in render_sequence(seed, CALIBRATION_FRAMES_PER_SEED, size)]


def read_calibration_frames(source: str | Path) -> list[np.ndarray]:
    """Up to MAX_CALIBRATION_FRAMES frames, evenly spaced, of a video, folder of frames, glob or image;
    streamed, so only the frames kept are held in memory (the count comes from the source's header)."""
    from dvsnet.data.video import probe, read_frames

    count = probe(source).frames
    step = max(1, (count or MAX_CALIBRATION_FRAMES) // MAX_CALIBRATION_FRAMES)
    return list(read_frames(source, stride=step, max_frames=MAX_CALIBRATION_FRAMES))


def frames_identity(frames: Sequence[np.ndarray]) -> str:
    """A short hash of the calibration frames (the int8 cache key carries it)."""
    digest = hashlib.sha256()
    for frame in frames:
        digest.update(str(frame.shape).encode())
        digest.update(np.ascontiguousarray(frame).tobytes())
    return digest.hexdigest()[:12]


def quantize_segmenter(fp32: str | Path, out: str | Path, frames: Sequence[np.ndarray], *,
                       input_multiple: int = 8) -> Path:
    """Write `out`, the int8 form of the fp32 ONNX segmenter `fp32` (input "images", (B, 3, H, W) RGB in
    [0, 1]), its activation ranges calibrated on `frames`; atomically. DvsnetError for no frames."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    if not frames:
        raise DvsnetError("int8 calibration needs at least one frame")
    batches = []
    for frame in frames:
        height, width = (side - side % input_multiple for side in frame.shape[:2])
        if min(height, width) < input_multiple:
            raise DvsnetError(f"a calibration frame of {frame.shape[0]}x{frame.shape[1]} is smaller than "
                              f"{input_multiple} px")
        image = frame[:height, :width].transpose(2, 0, 1)[None].astype(np.float32) / 255  # (1, 3, H, W)
        batches.append({"images": image})

    class Frames(CalibrationDataReader):
        def __init__(self) -> None:
            self._batches = iter(batches)

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self._batches, None)

    out = Path(out)
    with tempfile.TemporaryDirectory() as folder, atomic_path(out) as tmp:
        prepared = Path(folder) / "prepared.onnx"  # graph optimised and shapes inferred, as ORT advises
        quant_pre_process(str(fp32), str(prepared), skip_symbolic_shape=True)
        quantize_static(str(prepared), str(tmp), Frames(), quant_format=QuantFormat.QDQ, per_channel=True,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)
    return out
