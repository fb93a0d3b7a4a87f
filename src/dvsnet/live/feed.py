"""A live feed: a reader thread that keeps only the NEWEST frame of a source, so latency cannot grow.

    with dvsnet.live_frames("rtsp://camera/stream") as feed:      # or 0, /dev/video0, udp://..., a file
        for frame in feed:                                          # the newest frame, when it is newer
            out = pipe.step(frame.image)                            # frames arriving meanwhile are dropped
            latency = time.time() - frame.captured                  # seconds since it was received
        print(feed.received, feed.dropped, feed.reconnects)

The reader decodes every frame the source sends (a decoder cannot skip any) into one slot: a frame that
arrives while the slot still holds one replaces it, and the replaced frame is counted as dropped. The
consumer takes what is in the slot; nothing queues, so a frame is never older than one frame interval
plus the consumer's time on the frame before. A feed ends when the caller closes it, or when the source
ends and is not reopened:
- a live source (camera, network stream) that ends, stalls (no data for StreamOptions.timeout) or fails
  is reopened with back-off for StreamOptions.reconnect seconds; each success counts one reconnect and
  its first frame says `restarted` (a consumer with key frames starts them again);
- a file (with `realtime`, or a finished file served over http) is played at its own pace: frame i is
  handed over at start + its presentation time, the camera simulator of the tests and demos; it ends
  at the file's end.

Motion vectors (`motion=True`): each frame's MotionField points back to the previous frame the consumer
TOOK: the fields of the frames dropped in between are chained in (dvsnet.data.motion.chain_fields). The
intra cells of a dropped frame take their neighbours' motion (data.motion.fill_intra, as within any frame)
and are not carried into the chain as intra, unless that frame was mostly intra (an I-frame or a scene
cut: flow_mv.UNTRUSTED_INTRA_SHARE). Carried, the intra blocks an encoder codes in every P-frame (a fifth
of bikes.mp4's cells) would mark most of a chain over the ~9 frames a CPU segmentation drops as intra, and
the `mv` flow segments a frame that looks like an I-frame: each segmentation would drop frames that force
the next one (measured: 30 % of the frames processed instead of 87 %).

Counting starts at `begin()` (or the first frame taken): frames of a live source that arrive while a
caller loads its networks are drained, not counted; a file starts playing then. After `close()`,
received == taken + dropped.
"""
from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from dvsnet.data.motion import MotionField
from dvsnet.data.video import resize_frame
from dvsnet.errors import DvsnetError
from dvsnet.live.sources import (
    DEFAULT_RECONNECT,
    DEFAULT_TIMEOUT,
    Connection,
    StreamOptions,
    connect,
    live_kind,
    redact,
    source_stem,
)

BACKOFF_SECONDS = (0.5, 1.0, 2.0, 4.0, 8.0)  # waits between reconnection tries, the last one repeated
ASSUMED_FPS = 25.0  # a source that states no frame rate (rare: raw streams) is taken to run at this


@dataclass(frozen=True)
class LiveFrame:
    """One frame as a feed hands it over.

    image: H×W×3 uint8 RGB (resized when the feed was asked to). name: `<stem>_<index:06d>` (stem:
    "stream", "camera<N>", or a file's stem). index: the frame's number in the source since the feed
    connected, dropped frames included (a file: its frame index). captured: when the frame was received
    (decoded; for a paced file, when it came due), time.time() seconds since the epoch; clock: the same
    moment on time.perf_counter(), for latencies. motion: its dvsnet.data.motion.MotionField back to the
    previous frame taken (None unless the feed reads motion). restarted: the source was (re)opened since
    the previous frame taken. stream_time: its presentation time in the stream, seconds (the stream's own
    clock: it identifies the frame; None when the stream gives none).
    """

    image: np.ndarray
    name: str
    index: int
    captured: float
    clock: float
    motion: object | None = None
    restarted: bool = False
    stream_time: float | None = None


@dataclass(frozen=True)
class FeedInfo:
    """What a feed's source says about itself. kind: "stream", "camera" or "file"; fps: its frame rate
    (None: it does not say); height, width: of its first frame before any resize; codec: the decoder's
    name (None for files read by OpenCV); live: True for cameras and live streams, False for files played
    at their own pace."""

    source: str
    kind: str
    fps: float | None
    height: int
    width: int
    codec: str | None
    live: bool


class _FileConnection:
    """A local video file played as a live source (`realtime`): the frames of dvsnet.data.video, with
    their motion when asked (PyAV), each with its presentation time index / fps."""

    def __init__(self, path: str, motion: bool):
        from dvsnet.data.video import probe, read_named_frames

        info = probe(path)
        if info.kind != "video" or not info.fps:
            raise DvsnetError(f"--realtime plays a video at its frame rate, and {path} is frames without one")
        self.fps, self.height, self.width = info.fps, info.height, info.width
        self._frames = read_named_frames(path, motion=motion)
        self.codec, self.live, self.kind = None, False, "file"

    def frames(self, motion: bool) -> Iterator[tuple[np.ndarray, object, float]]:
        for index, frame in enumerate(self._frames):
            yield frame.image, frame.motion, index / self.fps

    def close(self) -> None:
        self._frames.close()


class LiveFeed:
    """The newest frame of a live source (or of a file played in real time), read by a thread; see the
    module docstring. Use `live_frames(...)` to make one, `with` (or close()) to end it."""

    def __init__(self, source: str | os.PathLike, *, options: StreamOptions | None = None,
                 motion: bool = False, resize: tuple[int, int] | int | None = None, realtime: bool = False):
        self.source = os.fspath(source)
        self.options = options or StreamOptions()
        self.motion = motion  # read by the reader per frame: a caller may turn it off after open()
        self.resize = resize
        kind = live_kind(self.source)
        if kind is None and not realtime:
            raise DvsnetError(f"{self.source} is a file: pass realtime=True to play it as a live source")
        self._stem = source_stem(self.source) if kind else os.path.splitext(os.path.basename(self.source))[0]
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._begun = threading.Event()  # begin() was called: counting, and files playing
        self._thread: threading.Thread | None = None
        self._pending: LiveFrame | None = None
        self._restart_next = False
        self.info: FeedInfo | None = None
        self.received = self.dropped = self.taken = self.reconnects = 0
        self._index = 0  # frames received since connecting, counted or not (the frames' numbers)
        self._counting = False
        self.state = "starting"  # "running" | "reconnecting" | "ended"
        self.end_reason: str | None = None  # why it ended: "stream ended", "stream lost: ...", "closed"
        self.error: BaseException | None = None  # an unexpected error of the reader thread (a bug)

    # ------------------------------------------------------------------------------------------ life cycle

    def open(self) -> FeedInfo:
        """Connect (raising DvsnetError within the timeout when the source does not open) and start the
        reader thread; returns what the source says about itself."""
        connection = self._connect()
        self.info = FeedInfo(
            redact(self.source),
            connection.kind,
            connection.fps,
            connection.height,
            connection.width,
            connection.codec,
            connection.live,
        )
        self.state = "running"
        self._thread = threading.Thread(target=self._read, args=(connection,), name="dvsnet-live-reader",
                                        daemon=True)
        self._thread.start()
        return self.info

    def begin(self) -> None:
        """Start counting from now: the frame waiting (if any) is the first one received."""
        with self._cond:
            if not self._counting:
                self._counting = True
                self.received = 1 if self._pending is not None else 0
                self.dropped = self.taken = 0
        self._begun.set()

    def close(self) -> None:
        """Stop the reader (it returns within the stream timeout, in the background) and count a frame left
        waiting as dropped; safe to call twice."""
        self._stop.set()
        with self._cond:
            if self._pending is not None and self._counting:
                self.dropped += 1
            self._pending = None
            if self.state != "ended":
                self.state, self.end_reason = "ended", self.end_reason or "closed"
            self._cond.notify_all()
        if self._thread is not None and self._thread is not threading.current_thread():
            # a read blocked in FFmpeg ends at its timeout, the thread then too
            self._thread.join(timeout=1.0)

    def __enter__(self) -> LiveFeed:  # noqa: PYI034 (typing.Self needs Python 3.11)
        if self.info is None:
            self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def fps(self) -> float:
        """The source's frame rate, or ASSUMED_FPS when it states none."""
        return (self.info.fps if self.info else None) or ASSUMED_FPS

    @property
    def ended(self) -> bool:
        return self.state == "ended"

    # ------------------------------------------------------------------------------------------ consumer

    def get(self, timeout: float | None = None) -> LiveFrame | None:
        """The newest frame not yet taken, waiting up to `timeout` seconds (None: until one comes or the
        feed ends); None when none came or the feed ended."""
        with self._cond:
            if not self._counting:
                self.begin()
            self._cond.wait_for(lambda: self._pending is not None or self.state == "ended", timeout)
            frame, self._pending = self._pending, None
            if frame is not None:
                self.taken += 1
            return frame

    def __iter__(self) -> Iterator[LiveFrame]:
        """Each newest frame in turn, until the feed ends."""
        while True:
            frame = self.get(timeout=0.5)
            if frame is not None:
                yield frame
            elif self.ended:
                if self.error is not None:
                    raise self.error
                return

    # ------------------------------------------------------------------------------------------ reader

    def _connect(self, timeout: float | None = None) -> Connection | _FileConnection:
        if live_kind(self.source) is None:
            return _FileConnection(self.source, self.motion)
        return connect(self.source, self.options, motion=self.motion, timeout=timeout)

    def _read(self, connection: Connection | _FileConnection) -> None:
        """The reader thread: publish every frame, reopen a live source that breaks, until stopped."""
        try:
            while connection is not None:
                reason = self._play(connection)
                if self._stop.is_set():
                    return
                if not connection.live or self.options.reconnect <= 0:
                    self._end("stream ended" if reason is None else f"stream ended: {reason}")
                    return
                self.state = "reconnecting"
                connection = self._reconnect()
                if connection is None:
                    why = reason or "the stream ended"
                    self._end(
                        f"stream lost: {why}; not back within {self.options.reconnect:g} s (--reconnect)"
                    )
                    return
                with self._cond:
                    self.reconnects += 1 if self._counting else 0
                    self._restart_next = True
                    self.state = "running"
        except BaseException as exc:  # noqa: BLE001 (a bug: hand it to the consumer instead of dying unseen)
            self.error = exc
            self._end(f"internal error: {type(exc).__name__}: {exc}")

    def _play(self, connection: Connection | _FileConnection) -> str | None:
        """Publish the connection's frames until it ends (None) or fails (FFmpeg's words), or the feed is
        closed; files and finished streams at their own pace."""
        start = first_time = None
        if not connection.live:  # a file plays from when the caller is ready for it
            while not self._begun.wait(0.1):
                if self._stop.is_set():
                    connection.close()
                    return None
        try:
            for image, motion, seconds in connection.frames(self.motion):
                if self._stop.is_set():
                    return None
                if not connection.live and seconds is not None:  # a file: hand each frame over when it is due
                    if start is None:
                        start, first_time = time.perf_counter(), seconds
                    wait = start + (seconds - first_time) - time.perf_counter()
                    if wait > 0 and self._stop.wait(wait):
                        return None
                self._publish(resize_frame(image, self.resize), motion if self.motion else None, seconds)
            return None
        except DvsnetError as exc:  # a file that stopped decoding
            return str(exc)
        except Exception as exc:  # PyAV's errors, which a file read by OpenCV never raises
            if type(exc).__module__.split(".")[0] != "av":
                raise
            if type(exc).__name__ == "ExitError":  # PyAV's read timeout interrupted FFmpeg
                return f"no data for {self.options.timeout:g} s (--timeout)"
            return getattr(exc, "strerror", None) or str(exc)
        finally:
            connection.close()

    def _reconnect(self) -> Connection | None:
        """Reopen the source, backing off between tries, for options.reconnect seconds; None: it did not
        come back (or the feed was closed)."""
        deadline = time.monotonic() + self.options.reconnect
        for attempt in range(10**9):
            left = deadline - time.monotonic()
            if left <= 0 or self._stop.is_set():
                return None
            try:
                return self._connect(timeout=min(self.options.timeout, left))
            except DvsnetError:
                pass
            wait = min(BACKOFF_SECONDS[min(attempt, len(BACKOFF_SECONDS) - 1)], deadline - time.monotonic())
            if wait > 0 and self._stop.wait(wait):
                return None
        return None

    def _publish(self, image: np.ndarray, motion: object | None, stream_time: float | None = None) -> None:
        """Put a frame in the slot, replacing (dropping) one the consumer has not taken; its motion is
        chained over the dropped one, computed outside the lock (the consumer never waits on it)."""
        from dvsnet.data.motion import chain_fields

        captured, clock = time.time(), time.perf_counter()
        with self._cond:
            waiting, restarted = self._pending, self._restart_next
            self._restart_next = False
        chained = motion
        if motion is not None and waiting is not None and waiting.motion is not None and not restarted:
            chained = chain_fields(motion, _as_dropped(waiting.motion))
        with self._cond:
            if self._stop.is_set():  # closed meanwhile: the counts are final
                return
            index = self._index
            self._index += 1
            if self._counting:
                self.received += 1
            if self._pending is not None and self._pending is waiting:  # not taken meanwhile: replaced
                self.dropped += 1 if self._counting else 0
                restarted = restarted or waiting.restarted
                motion = chained
            self._pending = LiveFrame(
                image, f"{self._stem}_{index:06d}", index, captured, clock, motion, restarted, stream_time
            )
            self._cond.notify_all()

    def _end(self, reason: str) -> None:
        with self._cond:
            self.state, self.end_reason = "ended", reason
            self._cond.notify_all()


def _as_dropped(field: MotionField) -> MotionField:
    """A dropped frame's field as a link of a chain (module docstring): its intra cells filled with their
    neighbours' motion and no longer intra, unless the frame was mostly intra (an I-frame, a scene cut)."""
    import torch

    from dvsnet.data.motion import fill_intra
    from dvsnet.flow_mv import UNTRUSTED_INTRA_SHARE

    if field.intra_share > UNTRUSTED_INTRA_SHARE or not field.intra.any():
        return field
    filled = fill_intra(
        torch.from_numpy(field.flow)[None], torch.from_numpy(field.intra).float()[None, None]
    )[0]
    return MotionField(filled.numpy(), np.zeros_like(field.intra), field.frame_size)


def live_frames(source: str | os.PathLike, *, timeout: float = DEFAULT_TIMEOUT,
                reconnect: float = DEFAULT_RECONNECT, rtsp_transport: str = "tcp",
                ffmpeg_options: dict[str, str] | None = None, motion: bool = False,
                resize: tuple[int, int] | int | None = None, realtime: bool = False) -> LiveFeed:
    """The newest frames of a camera, a network stream, or (realtime=True) a video file played at its own
    pace, as a LiveFeed (already connected; iterate it, close it or use `with`): see the module docstring.

    source: 0, "/dev/video0", "rtsp://...", "udp://...", ... (dvsnet.live.sources). timeout: seconds to
    connect, and of silence before a stream counts as stalled; reconnect: seconds a broken stream is
    reopened for; rtsp_transport: "tcp" (default) or "udp"; ffmpeg_options: more FFmpeg options for the
    source; motion: give each frame its codec motion vectors (LiveFrame.motion), for the `mv` flow;
    resize: a width or (height, width). DvsnetError within `timeout` when the source does not open.
    """
    options = StreamOptions(timeout=timeout, reconnect=reconnect, rtsp_transport=rtsp_transport,
                            ffmpeg=tuple((ffmpeg_options or {}).items()))
    feed = LiveFeed(str(source), options=options, motion=motion, resize=resize, realtime=realtime)
    feed.open()
    return feed

