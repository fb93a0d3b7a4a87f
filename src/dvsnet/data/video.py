"""Reading video: frames from video files, folders of images, or globs, one at a time.

Conventions (owned here for frames at the package edge): a frame is an H×W×3 uint8 numpy array in
RGB order. Whatever the source holds is converted to that: grayscale and single-channel images are
replicated to 3 channels, alpha is dropped (RGBA -> RGB), 16-bit images are scaled by 255/65535 and
float images are taken as [0, 1] and scaled to 0..255. Frames stream: nothing holds more than the
current frame, so memory stays flat however long the video is.

Sources:
- a video file (.mp4 .avi .mkv .webm .mov .m4v, or anything OpenCV's FFmpeg backend decodes),
- a folder of images (.png .jpg .jpeg .bmp .tif .tiff .webp .ppm .pgm), sorted naturally
  (frame2 before frame10), not recursive,
- a glob pattern of images (`'clips/*/frame_*.png'`, `**` allowed), sorted naturally,
- a single image file (a one-frame source).

Every problem the user can fix raises `DvsnetError` with one line: a missing source, a folder or glob
without images, a file OpenCV cannot decode, a source with zero frames, and a video that ends before
the frame count in its header because its data is damaged (truncated or corrupt: FFmpeg, through PyAV,
finds a partial or undecodable packet). That last one is raised only after every frame that did decode has
been yielded, so a caller keeps the work done up to the damaged part. A video that ends cleanly before its
header's count (a header that lies: exact for MP4/MOV/AVI, within 5 % for containers that only store a
duration, such as MKV/WebM) is no error: it is used as far as it goes, and the reader's `on_short` callback
is told (`ShortVideo`), so a run can say so once and record it.
"""
from __future__ import annotations

import contextlib
import glob
import math
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

# OpenCV's FFmpeg backend prints decoder complaints ("moov atom not found") straight to stderr; the
# errors raised here say the same thing in one line, so keep FFmpeg quiet unless the user asked for it.
# Read once, when the backend first opens a file, so it must be set before any VideoCapture is made.
os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")

import cv2
import numpy as np

from dvsnet.data.sources import IMAGE_EXTENSIONS, VIDEO_EXTENSIONS, is_glob, natural_key
from dvsnet.errors import DvsnetError

_INDEXED_CONTAINERS = (".mp4", ".mov", ".m4v", ".avi")

class Frame(NamedTuple):
    """One decoded frame: `name` identifies it in output file names, `image` is H×W×3 uint8 RGB.

    `name` is the image file's stem for image sources (so `aachen_000000_000019_leftImg8bit.png`
    keeps its Cityscapes name), and `<video stem>_<index:06d>` for videos, where index counts the
    frames of the file from 0 (before any stride).
    """

    name: str
    image: np.ndarray
    motion: object | None = None  # the codec's MotionField (dvsnet.data.motion), when read with motion=True


class ShortVideo(NamedTuple):
    """A video that ended cleanly before the frame count its header announces (no decode error)."""

    path: str
    announced: int  # frames in the header
    decoded: int  # frames it holds

    def note(self) -> str:
        return (f"note: {self.path} holds {self.decoded} frames, not the {self.announced} its header "
                "announces; it ends cleanly there (no decode error), so all of them are used")

    def record(self) -> dict[str, object]:
        return {"announced_frames": self.announced, "decoded_frames": self.decoded}


OnShort = Callable[[ShortVideo], None]


@dataclass(frozen=True)
class SourceInfo:
    """What a source holds, read without decoding it all.

    kind: "video" or "images". frames: frames in the source (header count for videos; may be an
    estimate for some containers; None when the header has none), before stride/max_frames. fps: the
    video's frame rate, None for images. height, width: size of the first frame in pixels, before any
    resize.
    """

    kind: str
    path: str
    frames: int | None
    fps: float | None
    height: int
    width: int


def to_rgb_uint8(image: np.ndarray, *, bgr: bool = True) -> np.ndarray:
    """Any decoded image -> H×W×3 uint8 RGB.

    image: (H, W), (H, W, 1), (H, W, 3) or (H, W, 4); uint8, uint16, or float in [0, 1]. `bgr` says
    the channels come in OpenCV's BGR(A) order (as cv2.imread and VideoCapture give them).
    """
    if image.dtype == np.uint16:
        image = (image.astype(np.float32) * (255.0 / 65535.0) + 0.5).astype(np.uint8)
    elif np.issubdtype(image.dtype, np.floating):
        image = (np.clip(np.nan_to_num(image), 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    elif image.dtype != np.uint8:
        raise DvsnetError(f"unsupported image type {image.dtype} (expected 8-bit, 16-bit or float)")
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    if image.ndim == 2:
        return np.ascontiguousarray(np.repeat(image[:, :, None], 3, axis=2))
    if image.ndim != 3 or image.shape[2] not in (3, 4):
        raise DvsnetError(f"unsupported image shape {image.shape} (expected gray, RGB or RGBA)")
    image = image[:, :, :3]  # drop alpha
    if bgr:
        image = image[:, :, ::-1]
    return np.ascontiguousarray(image)


def _check_options(resize: tuple[int, int] | int | None, stride: int, max_frames: int | None) -> None:
    if isinstance(stride, bool) or not isinstance(stride, int) or stride < 1:
        raise DvsnetError(f"stride must be a whole number >= 1, got {stride!r}")
    if max_frames is not None and (isinstance(max_frames, bool) or not isinstance(max_frames, int)
                                   or max_frames < 1):
        raise DvsnetError(f"max_frames must be a whole number >= 1 or None, got {max_frames!r}")
    if resize is None:
        return
    if isinstance(resize, int) and not isinstance(resize, bool):
        if resize < 16:
            raise DvsnetError(f"resize width must be >= 16 px, got {resize}")
        return
    if (isinstance(resize, tuple) and len(resize) == 2 and all(isinstance(v, int) for v in resize)
            and min(resize) >= 16):
        return
    raise DvsnetError(f"resize must be a width in pixels or (height, width), each >= 16, got {resize!r}")


def resized_size(height: int, width: int, resize: tuple[int, int] | int | None) -> tuple[int, int]:
    """(height, width) of a height×width frame after `resize` (see resize_frame)."""
    if resize is None:
        return height, width
    if isinstance(resize, int):
        return max(1, round(height * resize / width)), resize
    return resize


def resize_frame(image: np.ndarray, resize: tuple[int, int] | int | None) -> np.ndarray:
    """Resize an H×W×3 frame to (height, width), or to a width keeping the aspect ratio; None: as is."""
    height, width = image.shape[:2]
    out_h, out_w = resized_size(height, width, resize)
    if (out_h, out_w) == (height, width):
        return image
    # INTER_AREA averages when shrinking (no aliasing); it falls back to bilinear when enlarging.
    return cv2.resize(image, (out_w, out_h), interpolation=cv2.INTER_AREA)


def _image_files(source: str) -> list[Path]:
    """Image files of a folder or a glob, naturally sorted; DvsnetError when there are none."""
    if is_glob(source):
        files = [Path(p) for p in glob.glob(source, recursive=True)
                 if Path(p).suffix.lower() in IMAGE_EXTENSIONS and os.path.isfile(p)]
        where = f"glob {source!r} matches no image files ({' '.join(IMAGE_EXTENSIONS)})"
    else:
        try:
            entries = list(os.scandir(source))
        except PermissionError:
            raise DvsnetError(f"cannot read folder {source}: permission denied") from None
        files = [Path(e.path) for e in entries
                 if e.is_file() and Path(e.name).suffix.lower() in IMAGE_EXTENSIONS]
        where = f"folder {source} holds no image files ({' '.join(IMAGE_EXTENSIONS)})"
        videos = [e.name for e in entries if Path(e.name).suffix.lower() in VIDEO_EXTENSIONS]
        if not files and videos:
            where += f"; to read a video, pass the file itself (e.g. {os.path.join(source, min(videos))})"
    if not files:
        raise DvsnetError(where)
    return sorted(files, key=lambda p: natural_key(str(p)))


def _read_image(path: Path) -> np.ndarray:
    try:
        data = np.fromfile(path, dtype=np.uint8)
    except PermissionError:
        raise DvsnetError(f"cannot read image {path}: permission denied") from None
    except OSError as exc:
        raise DvsnetError(f"cannot read image {path}: {exc.strerror or exc}") from None
    # imdecode, not imread: it reads the bytes we opened (no silent None for odd paths), keeps 16 bits
    # and alpha (IMREAD_UNCHANGED), and we convert below.
    image = cv2.imdecode(data, cv2.IMREAD_UNCHANGED) if data.size else None
    if image is None:
        raise DvsnetError(f"cannot decode image {path} (corrupt, empty, or not an image)")
    return to_rgb_uint8(image)


@contextlib.contextmanager
def quiet_opencv() -> Iterator[None]:
    """Silence OpenCV's own log (e.g. "[ WARN] ... can't be used to capture by name") inside the block.

    Failures are reported by our one-line DvsnetError instead; the previous level is restored after.
    """
    logging = cv2.utils.logging
    previous = logging.getLogLevel()
    logging.setLogLevel(logging.LOG_LEVEL_SILENT)
    try:
        yield
    finally:
        logging.setLogLevel(previous)


def _open_video(path: str) -> cv2.VideoCapture:
    if not os.access(path, os.R_OK):
        raise DvsnetError(f"cannot read video {path}: permission denied")
    if os.path.getsize(path) == 0:
        raise DvsnetError(f"video {path} is empty (0 bytes)")
    with quiet_opencv():
        capture = cv2.VideoCapture(path, cv2.CAP_FFMPEG)
    if not capture.isOpened():
        capture.release()
        raise DvsnetError(f"cannot decode video {path} (corrupt, truncated, or not a video OpenCV can read)")
    return capture


def _kind(source: str) -> str:
    """'video', 'images' (folder/glob) or 'image' (single file); DvsnetError if it does not exist."""
    if is_glob(source):
        return "images"
    if not os.path.exists(source):
        raise DvsnetError(f"no such file or folder: {source}")
    if os.path.isdir(source):
        return "images"
    if Path(source).suffix.lower() in IMAGE_EXTENSIONS:
        return "image"
    return "video"


def probe(source: str | os.PathLike) -> SourceInfo:
    """Frame count, frame rate and first-frame size of a source, decoding at most one frame."""
    source = os.fspath(source)
    kind = _kind(source)
    if kind == "video":
        capture = _open_video(source)
        try:
            ok, first = capture.read()
            if not ok:
                raise DvsnetError(f"video {source} has no frames that can be decoded")
            count = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
            fps = float(capture.get(cv2.CAP_PROP_FPS))
        finally:
            capture.release()
        return SourceInfo("video", source, count if count > 0 else None, fps if fps > 0 else None,
                          first.shape[0], first.shape[1])
    files = [Path(source)] if kind == "image" else _image_files(source)
    first = _read_image(files[0])
    return SourceInfo("images", source, len(files), None, first.shape[0], first.shape[1])


def expected_frames(info: SourceInfo, *, stride: int = 1, max_frames: int | None = None) -> int | None:
    """How many frames read_frames yields for this source (from the header count for videos; None if
    unknown)."""
    if info.frames is None:
        return max_frames
    count = math.ceil(info.frames / stride)
    return count if max_frames is None else min(count, max_frames)


def _video_frames(path: str, stride: int, on_short: OnShort | None = None) -> Iterator[Frame]:
    capture = _open_video(path)
    stem = Path(path).stem
    try:
        expected = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
        index = 0
        decoded = 0
        while True:
            # grab() demuxes without converting to BGR: skipped frames (stride) cost less.
            if index % stride:
                ok = capture.grab()
                image = None
            else:
                ok, image = capture.read()
            if not ok:
                break
            decoded += 1
            if image is not None:
                yield Frame(f"{stem}_{index:06d}", to_rgb_uint8(image))
            index += 1
    finally:
        capture.release()
    if decoded == 0:
        raise DvsnetError(f"video {path} has no frames that can be decoded")
    if expected > 0 and decoded < expected - _count_slack(path, expected):
        damage = stream_damage(path)
        if damage is not None:
            raise DvsnetError(f"video {path} ended after {decoded} of the {expected} frames its header "
                              f"announces (truncated or corrupt: {damage})")
        if on_short is not None:
            on_short(ShortVideo(path, expected, decoded))


@contextlib.contextmanager
def _quiet_ffmpeg() -> Iterator[None]:
    """Keep PyAV's FFmpeg from printing decoder complaints: what they say is returned in one line instead."""
    import av.logging

    previous = av.logging.get_level()
    av.logging.set_level(av.logging.PANIC)
    try:
        yield
    finally:
        av.logging.set_level(previous)


def stream_damage(path: str | os.PathLike) -> str | None:
    """What FFmpeg (through PyAV) finds wrong in the video stream of `path`: the first partial or
    undecodable packet, in a few words; None when every packet demuxes and decodes cleanly."""
    import av

    try:
        with _quiet_ffmpeg(), av.open(os.fspath(path)) as container:
            stream = container.streams.video[0]
            for packet in container.demux(stream):
                if packet.is_corrupt:
                    return f"a partial or corrupt packet at {packet.pos} bytes"
                packet.decode()
    except (av.error.FFmpegError, IndexError) as exc:
        return " ".join(str(getattr(exc, "strerror", None) or exc).split()).lower()
    return None


def count_video_frames(path: str | os.PathLike) -> int:
    """The frames a video file really holds (its video packets, demuxed without decoding): what a header
    that lies does not say. DvsnetError when the file cannot be read."""
    import av

    try:
        with _quiet_ffmpeg(), av.open(os.fspath(path)) as container:
            return sum(1 for packet in container.demux(container.streams.video[0]) if packet.size)
    except (av.error.FFmpegError, IndexError) as exc:
        raise DvsnetError(f"cannot read video {path}: {' '.join(str(exc).split())}") from None


def _count_slack(path: str, expected: int) -> int:
    """Frames a complete video may fall short of its header count without being called truncated.

    MP4/MOV/AVI store a frame index, so their count is exact; Matroska/WebM and others only store a
    duration, which OpenCV turns into an estimate (duration × fps) that variable frame rates miss.
    """
    return 0 if Path(path).suffix.lower() in _INDEXED_CONTAINERS else max(2, expected // 20)


def _image_frames(files: list[Path], stride: int) -> Iterator[Frame]:
    for path in files[::stride]:
        yield Frame(path.stem, _read_image(path))


def read_named_frames(source: str | os.PathLike, *, resize: tuple[int, int] | int | None = None,
                      stride: int = 1, max_frames: int | None = None, motion: bool = False,
                      on_short: OnShort | None = None) -> Iterator[Frame]:
    """Like `read_frames`, but yields `Frame(name, image)` so outputs can be named after their input.

    The source is checked now (missing path, folder without images, undecodable video raise
    DvsnetError here); decoding happens one frame per `next()`. motion: decode with PyAV and give each
    frame its codec motion vectors (`Frame.motion`, a dvsnet.data.motion.MotionField on the source's own
    size, chained over the frames `stride` skips); DvsnetError when the source has none
    (dvsnet.data.motion.why_no_vectors says why). on_short: called once with a ShortVideo when a video
    ends cleanly before its header's frame count (see the module docstring).
    """
    source = os.fspath(source)
    _check_options(resize, stride, max_frames)
    kind = _kind(source)
    if motion:
        from dvsnet.data.motion import read_motion_frames, why_no_vectors

        reason = why_no_vectors(source)
        if reason is not None:
            raise DvsnetError(reason)
        frames = (Frame(*parts) for parts in read_motion_frames(source, stride))
    elif kind == "video":
        _open_video(source).release()  # fail now, not at the first next(), for a file that cannot open
        frames = _video_frames(source, stride, on_short)
    else:
        files = [Path(source)] if kind == "image" else _image_files(source)
        frames = _image_frames(files, stride)
    return _limit(frames, resize, max_frames)


def _limit(frames: Iterator[Frame], resize: tuple[int, int] | int | None,
           max_frames: int | None) -> Iterator[Frame]:
    for count, frame in enumerate(frames, start=1):
        yield frame._replace(image=resize_frame(frame.image, resize))
        if max_frames is not None and count >= max_frames:
            frames.close()  # release the capture now, not when the generator is collected
            return


def read_frames(source: str | os.PathLike, *, resize: tuple[int, int] | int | None = None,
                stride: int = 1, max_frames: int | None = None) -> Iterator[np.ndarray]:
    """Stream the frames of a video file, a folder of images, or a glob, as H×W×3 uint8 RGB.

    resize: None (keep), a width in pixels (height follows the aspect ratio), or (height, width).
    stride: keep every `stride`-th frame (1 = all). max_frames: stop after this many kept frames.
    Raises DvsnetError for a missing/unreadable/corrupt source or one with zero frames; for a
    truncated video, after yielding every frame that decoded.
    """
    frames = read_named_frames(source, resize=resize, stride=stride, max_frames=max_frames)
    return (frame.image for frame in frames)
