"""Live sources: which SOURCE is live, and opening one with PyAV (FFmpeg's protocols and capture devices).

A SOURCE is live when it is (checked in this order, so nothing that reads today changes meaning):
- a camera device path `/dev/video<N>` (Linux, video4linux2);
- an existing file or folder: NOT live, read as it always was (dvsnet.data.video), whatever its name;
- a URL whose scheme is one of LIVE_SCHEMES (rtsp, rtsps, rtmp, rtmps, udp, rtp, tcp, srt, http, https;
  HLS is an http(s) URL of an .m3u8 playlist);
- a camera index, a whole number ("0", "1"): /dev/video<N> on Linux, AVFoundation's device N on macOS.
Anything else is not live and meets the file reader's usual errors.

Why PyAV and not OpenCV's VideoCapture (both are FFmpeg underneath): PyAV gives the codec's motion
vectors (so `--flow mv` runs live), per-source FFmpeg options (`rtsp_transport`, a camera's
`video_size`; OpenCV takes them only from one process-wide environment variable), timeouts that
interrupt a blocked read (`av.open(timeout=...)`), the codec's name, and FFmpeg's own error for each
failure (connection refused, no such device, protocol missing), which the one-line errors below pass on.

Conventions: times in seconds; frames H×W×3 uint8 RGB, as everywhere at the package's edges.
"""
from __future__ import annotations

import contextlib
import math
import os
import re
import socket
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np

from dvsnet.errors import DvsnetError

LIVE_SCHEMES: tuple[str, ...] = (
    "rtsp",
    "rtsps",
    "rtmp",
    "rtmps",
    "udp",
    "rtp",
    "tcp",
    "srt",
    "http",
    "https",
)
RTSP_TRANSPORTS: tuple[str, ...] = ("tcp", "udp", "udp_multicast", "http")
DEFAULT_TIMEOUT = 10.0  # s to connect, and without data before a stream counts as stalled
DEFAULT_RECONNECT = 30.0  # s a stream that broke is reopened for before the run ends
INSTALL_HINT = "pip install av (PyAV, a dependency of dvsnet)"
_SCHEME = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.-]*)://")
_CAMERA_PATH = re.compile(r"^/dev/video\d+$")
# FFmpeg errors that another try will not fix: fail at once instead of retrying until the timeout
_PERMANENT = ("ProtocolNotFoundError", "FileNotFoundError", "PermissionError", "HTTPNotFoundError",
              "HTTPForbiddenError", "HTTPUnauthorizedError", "HTTPBadRequestError", "DemuxerNotFoundError",
              "ValueError", "InvalidArgumentError")


@dataclass(frozen=True)
class StreamOptions:
    """How live sources are opened and kept open.

    timeout: seconds to connect (retried until then), and without data before an open stream counts as
    stalled. reconnect: seconds a stream that ended, stalled or failed is reopened for (with back-off:
    0.5, 1, 2, 4, 8 s between tries) before the run ends; 0 = end at once. rtsp_transport: RTSP's
    transport (tcp, FFmpeg's udp default loses packets on busy networks). ffmpeg: more FFmpeg options,
    (name, value) pairs given to the demuxer and protocol as they are (`--stream-option NAME=VALUE`:
    `video_size=1280x720` for a camera, `fifo_size=...` for UDP, ...).
    """

    timeout: float = DEFAULT_TIMEOUT
    reconnect: float = DEFAULT_RECONNECT
    rtsp_transport: str = "tcp"
    ffmpeg: tuple[tuple[str, str], ...] = field(default=())

    def __post_init__(self) -> None:
        if not (self.timeout > 0 and math.isfinite(self.timeout)):
            raise DvsnetError(f"stream timeout must be a number of seconds > 0, got {self.timeout!r}")
        if not (self.reconnect >= 0 and math.isfinite(self.reconnect)):
            raise DvsnetError(f"reconnect must be a number of seconds >= 0, got {self.reconnect!r}")
        if self.rtsp_transport not in RTSP_TRANSPORTS:
            raise DvsnetError(
                f"unknown RTSP transport {self.rtsp_transport!r}; valid: {', '.join(RTSP_TRANSPORTS)}"
            )


def url_scheme(source: str) -> str | None:
    """'rtsp://cam/1' -> 'rtsp' (lower case); None for text that is not a URL."""
    match = _SCHEME.match(source)
    return match.group(1).lower() if match else None


def live_kind(source: str | os.PathLike) -> str | None:
    """"camera", "stream" or None (not live: a file, folder, glob or a mistake) for a SOURCE, by the rules
    of the module docstring."""
    text = os.fspath(source)
    if _CAMERA_PATH.match(text):
        return "camera"
    if os.path.exists(text):
        return None
    if url_scheme(text) in LIVE_SCHEMES:
        return "stream"
    if text.isdigit():
        return "camera"
    return None


def is_live(source: str | os.PathLike) -> bool:
    """Whether `source` is a camera or a network stream (see the module docstring)."""
    return live_kind(source) is not None


def redact(source: str) -> str:
    """The source with a URL's password hidden, for messages and result files: rtsp://user:***@host/..."""
    return re.sub(r"^([a-zA-Z][a-zA-Z0-9+.-]*://[^/@:]*):[^/@]*@", r"\1:***@", source)


def check_url(source: str) -> None:
    """DvsnetError (one line) for a stream URL FFmpeg would only time out on: rtsp, rtmp and http(s) URLs
    without a host, udp, rtp, tcp and srt URLs without a port, a port outside 1-65535."""
    scheme = url_scheme(source)
    if scheme is None:
        return
    shown = redact(source)
    parts = urlsplit(source)
    try:
        port = parts.port
    except ValueError:
        raise DvsnetError(f"{shown}: the port is not a number in 1-65535") from None
    if port == 0:
        raise DvsnetError(f"{shown}: the port is not a number in 1-65535")
    if scheme in ("rtsp", "rtsps", "rtmp", "rtmps", "http", "https") and not parts.hostname:
        raise DvsnetError(f"{shown} names no host ({scheme}://HOST[:PORT]/PATH)")
    if scheme in ("udp", "rtp", "tcp", "srt") and port is None:
        raise DvsnetError(f"{shown} names no port ({scheme}://HOST:PORT, e.g. {scheme}://127.0.0.1:5000)")


def camera_device(source: str) -> tuple[str, str]:
    """(what FFmpeg opens, its input format) for a camera SOURCE: '0' -> ('/dev/video0', 'v4l2') on Linux,
    ('0', 'avfoundation') on macOS; a /dev/video path as it is."""
    if _CAMERA_PATH.match(source):
        return source, "v4l2"
    if sys.platform.startswith("linux"):
        return f"/dev/video{int(source)}", "v4l2"
    if sys.platform == "darwin":
        return source, "avfoundation"
    raise DvsnetError(f"camera {source}: a camera index is read on Linux (/dev/video{source}) and macOS; "
                      "on this system pass the camera's stream URL or a capture device FFmpeg names")


def ffmpeg_options(source: str, options: StreamOptions) -> dict[str, str]:
    """The FFmpeg options a source is opened with: RTSP's transport for rtsp(s)://, then the user's own."""
    chosen: dict[str, str] = {}
    if url_scheme(source) in ("rtsp", "rtsps"):
        chosen["rtsp_transport"] = options.rtsp_transport
    chosen.update(dict(options.ffmpeg))
    return chosen


def _import_av():
    try:
        import av
    except ImportError:
        raise DvsnetError(f"reading live video needs PyAV: {INSTALL_HINT}") from None
    return av


def _describe(exc: Exception) -> str:
    """FFmpeg's words for an error, without the URL PyAV appends (ours names it already)."""
    text = getattr(exc, "strerror", None) or str(exc)
    return text[0].lower() + text[1:] if text else type(exc).__name__


@dataclass
class Connection:
    """An open live source: the PyAV container and video stream, and what it says about itself.

    kind: "stream" or "camera". fps: the stream's frame rate (None when it does not say). height, width:
    of the first frame. codec: the decoder's name ("h264", ...). live: whether it is a live feed (no
    duration: a camera, RTSP, UDP, HLS live) rather than a finished file served over a network protocol
    (which is then played at its own pace, as `--realtime` plays a local file).
    """

    source: str
    kind: str
    container: object
    stream: object
    fps: float | None
    height: int
    width: int
    codec: str
    live: bool
    _first: object = None  # the first decoded PyAV frame, read to learn the size; frames() yields it first
    _decoder: Iterator | None = None

    def frames(self, motion: bool) -> Iterator[tuple[np.ndarray, object, float | None]]:
        """(H×W×3 uint8 RGB frame, its MotionField back to the previous frame or None, its presentation time
        in seconds or None) per decoded frame, the first one included. motion: give the fields (the
        container was opened with export_mvs; dvsnet.data.motion). Raises PyAV's errors as they come (the
        caller reconnects)."""
        from dvsnet.data.motion import no_motion, with_motion

        def decoded() -> Iterator[object]:
            yield self._first
            yield from self._decoder

        frames = with_motion(decoded(), self.codec) if motion else ((f, None) for f in decoded())
        for index, (frame, field_) in enumerate(frames):
            if motion and index == 0:
                field_ = no_motion(frame.height, frame.width)  # nothing before it: every cell intra
            yield frame.to_ndarray(format="rgb24"), field_, None if frame.time is None else float(frame.time)

    def close(self) -> None:
        with contextlib.suppress(Exception):  # a broken connection may fail to close; it is gone either way
            self.container.close()


def connect(source: str, options: StreamOptions | None = None, *, motion: bool = False,
            timeout: float | None = None) -> Connection:
    """Open a live `source` and decode its first frame, retrying (0.5 s apart) until `timeout` seconds
    (default options.timeout) have passed; DvsnetError in one line when it cannot. motion: ask the decoder
    for motion vectors (set before the first frame is decoded)."""
    av = _import_av()
    options = options or StreamOptions()
    kind = live_kind(source)
    if kind is None:
        raise DvsnetError(
            f"{redact(source)} is not a live source (a camera index, /dev/videoN or a stream URL)"
        )
    target, input_format = camera_device(source) if kind == "camera" else (source, None)
    if kind == "camera" and input_format == "v4l2" and not os.path.exists(target):
        raise DvsnetError(f"no camera at {target} (camera {source} is not connected, or has another number: "
                          "ls /dev/video*)")
    check_url(source)
    timeout = options.timeout if timeout is None else timeout
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        try:
            return _open(av, source, kind, target, input_format, options, motion, max(left, 0.05))
        except av.FFmpegError as exc:
            problem = exc
        except DvsnetError:
            raise
        if type(problem).__name__ in _PERMANENT or time.monotonic() + 0.5 >= deadline:
            raise DvsnetError(_open_error(source, kind, problem, timeout)) from None
        time.sleep(0.5)


def _open(av, source: str, kind: str, target: str, input_format: str | None, options: StreamOptions,
          motion: bool, timeout: float) -> Connection:
    container = av.open(target, format=input_format, options=ffmpeg_options(source, options),
                        timeout=(timeout, options.timeout))
    try:
        if not container.streams.video:
            raise DvsnetError(f"{redact(source)} carries no video stream")
        stream = container.streams.video[0]
        if motion:
            stream.codec_context.options = {"flags2": "+export_mvs"}
        decoder = container.decode(stream)
        first = next(decoder, None)
        if first is None:
            raise DvsnetError(f"{redact(source)} ended before its first frame")
    except BaseException:
        container.close()
        raise
    rate = stream.average_rate or stream.guessed_rate
    fps = float(rate) if rate and 0 < float(rate) < 1000 else None
    live = kind == "camera" or container.duration is None
    return Connection(source, kind, container, stream, fps, first.height, first.width,
                      stream.codec_context.name, live, first, decoder)


def _open_error(source: str, kind: str, exc: Exception, timeout: float) -> str:
    """The one line for a source that did not open."""
    name = type(exc).__name__
    shown = redact(source)
    if name == "ProtocolNotFoundError":
        return f"cannot read {shown}: this PyAV's FFmpeg has no {url_scheme(source)}:// support"
    if kind == "camera":
        return f"cannot open camera {shown}: {_describe(exc)}"
    if name == "ExitError":  # PyAV's open timeout interrupted FFmpeg
        return f"no stream arrived from {shown} within {timeout:g} s (--timeout)"
    unknown = _unknown_host(source)
    if unknown:
        return f"cannot open {shown}: unknown host {unknown}"
    return f"cannot open {shown}: {_describe(exc)} (tried for {timeout:g} s, --timeout)"


def _unknown_host(source: str) -> str | None:
    """The URL's host when it does not resolve (FFmpeg then says only 'input/output error'), else None."""
    host = urlsplit(source).hostname
    if not host:
        return None
    try:
        socket.getaddrinfo(host, None)
    except (socket.gaierror, UnicodeError):
        return host
    return None


def source_stem(source: str) -> str:
    """The stem of a live source's frame names: 'camera0', or 'stream' (URLs make poor file names)."""
    kind = live_kind(source)
    if kind == "camera":
        return "camera" + (Path(source).name.removeprefix("video") if source.startswith("/dev/") else source)
    return "stream"
