"""The run loop of a live source: `dvsnet segment rtsp://...` (and a file with `--realtime`).

dvsnet.run.segment_video hands a live source (dvsnet.live.sources.is_live) or a `realtime` file to
dvsnet.run.segment_live, which opens it here (`open_live`), runs `run_live` over a `LiveRun` and writes the
same run folder as a file run (dvsnet.outputs.RunRecorder) with:
- the newest frame only (dvsnet.live.feed.LiveFeed): frames arriving while the pipeline is busy are
  dropped and counted, never queued, so latency cannot grow;
- frames.csv's extra columns `stream_time` (the frame's presentation time in the stream, s), `captured_at`,
  `ready_at` (time.time() seconds: the frame's arrival and the moment its labels were ready) and
  `latency_ms`; summary.json's `live` (dvsnet.stats.LiveStats);
- the overlay as fragmented MP4 (dvsnet.outputs.StreamingVideoOutput), each frame at its capture time, so
  it plays in real time and stays playable if the process is killed;
- a progress line on stderr: frames, fps, latency, drops, the threshold, reconnects;
- an optional hook called per frame with (overlay H×W×3 uint8 RGB, status dict), and with (None, status)
  when the feed's state changes (reconnecting, ended): what `--serve` shows (dvsnet.live.view).

The policy, when the caller leaves the default: `dn:fps=<LIVE_KEEP_SHARE × the source's fps>`, the target
controller of dvsnet.control on the live clock (LiveFpsTarget). Any `dn:fps=F` on a live source runs on
that clock: F counts the frames per second TAKEN from the source. A frame then costs the controller what
it costs the run: the pipeline's time plus the outputs' (overlay, csv, hook), and never less than the
source's frame interval, because a frame that finishes early waits for the next one: that idle time
cannot be spent later. So the frames a segmentation outlasts are paid for by frames dropped, and F below
the source's rate is what leaves room for segmentations on a machine where one outlasts a frame interval.

A run ends at `duration`, after `max_frames`, on Ctrl-C / SIGTERM (after the frame in progress), or when
the source ends (a file) or is lost (a stream not back within StreamOptions.reconnect seconds). All of
these close every output and write summary.json with "complete": true and `live.ended` saying why; only
an error leaves "complete": false.
"""
from __future__ import annotations

import dataclasses
import math
import queue
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import numpy as np

from dvsnet.config import PipelineConfig
from dvsnet.control import WARM_UP_FRAMES, FpsTarget
from dvsnet.errors import DvsnetError
from dvsnet.flow_mv import FALLBACK_FLOW, FLOW_FALLBACKS
from dvsnet.live.feed import FeedInfo, LiveFeed, LiveFrame
from dvsnet.live.sources import StreamOptions, live_kind
from dvsnet.outputs import RunRecorder
from dvsnet.pipeline import DVSNet
from dvsnet.policy_strings import parse_policy
from dvsnet.stats import LiveStats

LIVE_KEEP_SHARE = 0.92  # the default live policy takes this share of the source's frames per second
LIVE_COLUMNS: tuple[str, ...] = ("stream_time", "captured_at", "ready_at", "latency_ms")
PROGRESS_EVERY_TTY = 0.5  # s between progress-line updates on a terminal
PROGRESS_EVERY_LOG = 10.0  # s between progress lines written to a file or pipe
WAIT_SLICE = 0.1  # s the loop waits for a frame before it looks at the clock and the signals again
OUTSIDE_SMOOTHING = 0.2  # weight of the newest frame in the running time spent outside the pipeline

FrameHook = Callable[[np.ndarray | None, dict[str, Any]], None]  # (overlay or None: the status alone, status)


def live_policy(fps: float) -> str:
    """The default policy of a live source of `fps` frames/s: dn:fps=LIVE_KEEP_SHARE × fps."""
    return f"dn:fps={round(LIVE_KEEP_SHARE * fps, 2):g}"


class LiveFpsTarget(FpsTarget):
    """dn:fps=F on the live clock (module docstring): the controller of dvsnet.control, told before each
    frame how long the frame waited in the feed and how long the previous frame spent outside the
    pipeline (`frame_taken`). The cost model learns from the frame's busy time (pipeline + outputs); the
    bank of time ahead or behind F also pays for the time a frame that finished early idles until the next
    one arrives: interval - waited - busy, when positive."""

    def __init__(self, fps: float, net: Any = None, *, interval: float | None = None, **kwargs: Any):
        super().__init__(fps, net, **kwargs)
        self.interval = interval if interval else 1.0 / fps  # s between the source's frames
        self.outside = 0.0  # s the previous frame spent outside the pipeline (outputs, hook)
        self.waited = 0.0  # s this frame waited in the feed before the pipeline took it

    def with_net(self, net: Any, dn_file: str | None = None) -> LiveFpsTarget:
        policy = super().with_net(net, dn_file)
        policy.interval = self.interval
        return policy

    def reset(self) -> None:
        """Back to the state before the first frame (DVSNet.reset: a reconnected stream), on the same
        source."""
        interval = self.interval
        super().reset()
        self.interval = interval

    def frame_taken(self, waited: float, outside: float) -> None:
        """Before the pipeline steps a frame: it waited `waited` s in the feed; the previous frame spent
        `outside` s outside the pipeline."""
        self.waited, self.outside = max(waited, 0.0), max(outside, 0.0)

    def observe(self, result: Any) -> None:
        busy = float(result.timings["total"]) + self.outside
        counted = self._seen + 1 > WARM_UP_FRAMES and not result.restarted  # FpsTarget.observe's own rule
        super().observe(dataclasses.replace(result, timings={**result.timings, "total": busy}))
        if counted:
            idle = max(self.interval - self.waited - busy, 0.0)
            self.bank = max(self.bank - idle, -1.0)  # FpsTarget's bound on time owed


def live_config(config: PipelineConfig, fps: float, *, keep_policy: bool) -> PipelineConfig:
    """The config a live run of a `fps` frames/s source runs: the default policy (unless `keep_policy`)
    replaced by live_policy(fps), and any dn:fps=F policy put on the live clock."""
    policy = config.policy
    if not keep_policy and policy == PipelineConfig.policy:
        policy = live_policy(fps)
    parsed = parse_policy(policy)
    if type(parsed) is FpsTarget:
        policy = LiveFpsTarget(
            parsed.target, parsed.net, interval=1.0 / fps, table=parsed.table, note=parsed.note
        )
    return config.replace(policy=policy)


def plan_live_motion(flow: object, info: FeedInfo, fallback: str, note: Callable[[str], None]) -> object:
    """The flow a live run runs: "mv" stays when the stream's codec exports motion vectors, else
    `fallback` ("dis" with a note; "none": DvsnetError), as dvsnet.flow_mv.plan_motion for files."""
    from dvsnet.data.motion import VECTOR_CODECS

    if fallback not in FLOW_FALLBACKS:
        raise DvsnetError(f"unknown flow fallback {fallback!r}; valid: {', '.join(FLOW_FALLBACKS)}")
    if flow != "mv" or info.kind == "file" or info.codec in VECTOR_CODECS:
        return flow
    reason = (
        f"{info.source} is {info.codec}, whose decoder exports no motion vectors (H.264 and MPEG-4 Part 2 do)"
    )
    if fallback == "none":
        raise DvsnetError(f"--flow mv: {reason} (and --flow-fallback none)")
    note(f"note: {reason}; flow falls back to {FALLBACK_FLOW}")
    return FALLBACK_FLOW


class Progress:
    """The progress line of a live run on stderr: rewritten in place every PROGRESS_EVERY_TTY s on a
    terminal, a new line every PROGRESS_EVERY_LOG s otherwise (logs keep a record); `note` prints a line
    without mangling it."""

    def __init__(self, enabled: bool, stream: Any = None):
        self.stream = stream or sys.stderr
        self.enabled = enabled
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self._last = -math.inf
        self._width = 0

    def show(self, text: str, *, force: bool = False) -> None:
        now = time.perf_counter()
        if not self.enabled or (
            not force and now - self._last < (PROGRESS_EVERY_TTY if self.tty else PROGRESS_EVERY_LOG)
        ):
            return
        self._last = now
        if self.tty:
            self.stream.write("\r" + text.ljust(self._width))
            self._width = len(text)
        else:
            self.stream.write(text + "\n")
        self.stream.flush()

    def note(self, line: str) -> None:
        if self.tty and self._width:
            self.stream.write("\r" + " " * self._width + "\r")
            self._width = 0
            self._last = -math.inf
        print(line, file=self.stream, flush=True)

    def close(self) -> None:
        if self.enabled and self.tty and self._width:
            self.stream.write("\n")
            self.stream.flush()


def _clock_text(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 3600:d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


class OutputWriter:
    """The run's outputs (overlay, label PNGs, frames.csv, the hook) written by a thread of their own, so the
    pipeline takes the next frame as soon as its labels are ready: the outputs of a frame are written
    while the next one is segmented (drawing and encoding the overlay costs about a third of a warped
    frame's pipeline time here, and more than the whole of it on a GPU). At most QUEUE frames wait; when
    the writer falls further behind, the loop waits for it (and the policy sees that time). An error of
    the writer (disk full) is raised in the loop at its next `put`."""

    QUEUE = 2

    def __init__(self, recorder: RunRecorder, hook: FrameHook | None):
        self.recorder, self.hook = recorder, hook
        self._jobs: queue.Queue = queue.Queue(maxsize=self.QUEUE)
        self.error: BaseException | None = None
        self.last_overlay: np.ndarray | None = None
        self._thread = threading.Thread(target=self._write, name="dvsnet-live-writer", daemon=True)
        self._thread.start()

    def put(self, job: tuple) -> None:
        """Queue one frame's outputs: (name, image, FrameResult, wall s, overlay note, seconds, csv extra,
        status dict)."""
        if self.error is not None:
            raise self.error
        self._jobs.put(job)

    def republish(self, status: dict[str, Any]) -> None:
        """Tell the hook a new status without a frame (the feed reconnecting or ended): hook(None, status)."""
        self._jobs.put((None, status))

    def close(self) -> None:
        """Write what is queued, then stop; raises the writer's error, if any."""
        self._jobs.put(None)
        self._thread.join()
        if self.error is not None:
            raise self.error

    def _write(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                return
            if self.error is not None:
                continue  # after an error: drain, so the loop never blocks on a full queue
            try:
                if job[0] is None:  # a status alone
                    if self.hook is not None:
                        self.hook(None, job[1])
                    continue
                name, image, result, wall, note, seconds, extra, status = job
                overlay = self.recorder.record(
                    name,
                    image,
                    result,
                    wall,
                    note=note,
                    seconds=seconds,
                    extra=extra,
                    draw=self.hook is not None,
                )
                if overlay is not None:
                    self.last_overlay = overlay
                if self.hook is not None and overlay is not None:
                    self.hook(overlay, status)
            except BaseException as exc:  # noqa: BLE001 (handed to the loop, which stops the run with it)
                self.error = exc


class LiveRun:
    """One live run's state between frames: the feed, pipeline and output writer, and its figures;
    `step` processes one frame, `status` describes the run (the hook's dict), `line` the progress line."""

    def __init__(self, feed: LiveFeed, pipe: DVSNet, writer: OutputWriter, *, policy_text: str):
        self.feed, self.pipe, self.writer = feed, pipe, writer
        self.policy_text = policy_text
        self.stats = LiveStats(source_fps=feed.info.fps if feed.info else None)
        self.frames = 0  # frames processed
        self.started = time.perf_counter()
        self.epoch = time.time()  # the overlay's time zero
        # running mean of the time per frame outside the pipeline (handing over its outputs)
        self.outside = 0.0
        self._taken: deque = deque(maxlen=64)  # perf_counter of the latest frames taken, for the running fps
        self._latency: deque = deque(maxlen=32)  # ms of the latest frames
        self._last_result = None
        self._last_state = feed.state

    def start(self) -> None:
        """The clock starts: counting frames from now."""
        self.feed.begin()
        self.started, self.epoch = time.perf_counter(), time.time()

    def step(self, frame: LiveFrame, note: Callable[[str], None]) -> None:
        """Segment one frame taken from the feed and hand its outputs to the writer."""
        taken = time.perf_counter()
        if frame.restarted and self.frames:
            self.pipe.reset()  # the stream was reopened: what came before is no key for what comes now
            note(
                f"note: {self.feed.info.source} reconnected (reconnect {self.feed.reconnects}): "
                "key frames restarted"
            )
        if isinstance(self.pipe.policy, LiveFpsTarget):
            self.pipe.policy.frame_taken(taken - frame.clock, self.outside)
        out = self.pipe.step(frame.image, motion=frame.motion)
        ready = time.perf_counter()
        latency = ready - frame.clock
        out = dataclasses.replace(out, index=self.frames)  # frames count on across reconnects
        self.frames += 1
        self.stats.add(latency)
        self._latency.append(1000 * latency)
        self._taken.append(taken)
        self._last_result = out
        wall = taken - self._taken[-2] if len(self._taken) > 1 else out.timings["total"]
        note_text = f"latency {1000 * latency:.0f} ms, dropped {self.feed.dropped}"
        if out.restarted and out.index > 0:
            note_text += ", key frames restarted"
        extra = ("" if frame.stream_time is None else f"{frame.stream_time:.6f}", f"{frame.captured:.6f}",
                 f"{frame.captured + latency:.6f}", f"{1000 * latency:.3f}")
        self.writer.put(
            (
                frame.name,
                frame.image,
                out,
                wall,
                note_text,
                max(frame.captured - self.epoch, 0.0),
                extra,
                self.status() if self.writer.hook is not None else None,
            )
        )
        spent = time.perf_counter() - ready
        weight = OUTSIDE_SMOOTHING if self.frames > 1 else 1.0  # the first frame sets it
        self.outside += weight * (spent - self.outside)

    def fps(self) -> float | None:
        """Frames taken per second over the latest ones (None before two)."""
        if len(self._taken) < 2 or self._taken[-1] <= self._taken[0]:
            return None
        return (len(self._taken) - 1) / (self._taken[-1] - self._taken[0])

    def status(self) -> dict[str, Any]:
        """The run as the hook (the live view) sees it: frame (frames processed), fps, latency_ms, dropped,
        received, threshold, policy, source, regions [{box: [y0, x0, y1, x1] (the cell, no overlap), path,
        score}], reconnects, state ("running" | "reconnecting" | "ended")."""
        out = self._last_result
        regions = [] if out is None else [
            {"box": [r.core_top, r.core_left, r.core_bottom, r.core_right], "path": path, "score": score}
            for r, path, score in zip(out.regions, out.paths, out.scores)]
        return {
            "frame": self.frames, "fps": self.fps(),
            "latency_ms": self._latency[-1] if self._latency else None,
            "dropped": self.feed.dropped, "received": self.feed.received,
            "threshold": None if out is None else out.threshold, "policy": self.policy_text,
            "source": self.feed.info.source if self.feed.info else self.feed.source, "regions": regions,
            "reconnects": self.feed.reconnects, "state": self.feed.state,
        }

    def state_changed(self) -> bool:
        """Whether the feed's state changed since the last call (the hook then hears of it)."""
        changed = self.feed.state != self._last_state
        self._last_state = self.feed.state
        if changed and self.writer.hook is not None:
            self.writer.republish(self.status())
        return changed

    def line(self) -> str:
        """The progress line."""
        fps = self.fps()
        received, dropped = self.feed.received, self.feed.dropped
        latency = f"{np.median(self._latency):.0f} ms" if self._latency else "-"
        threshold = None if self._last_result is None else self._last_result.threshold
        parts = [
            f"live {_clock_text(time.perf_counter() - self.started)}",
            f"{self.frames} frames" + (f" {fps:.1f} fps" if fps else ""),
            f"latency {latency}",
            f"dropped {dropped}" + (f" ({dropped / received:.0%})" if received else ""),
        ]
        if threshold is not None:
            parts.append(f"threshold {threshold:.2f}")
        if self.feed.reconnects:
            parts.append(f"reconnects {self.feed.reconnects}")
        if self.feed.state != "running":
            parts.append(self.feed.state)
        return ", ".join(parts)

    def figures(self, ended: str | None) -> dict[str, Any]:
        return self.stats.figures(received=self.feed.received, dropped=self.feed.dropped,
                                  reconnects=self.feed.reconnects, seconds=time.perf_counter() - self.started,
                                  ended=ended)


def warm_up(pipe: DVSNet, height: int, width: int, motion: bool) -> None:
    """Two steps on a blank frame, then a reset: the networks' first calls (allocations, graph loading)
    happen before the first frame of the stream, not during it."""
    from dvsnet.data.motion import no_motion

    frame = np.zeros((height, width, 3), np.uint8)
    for _ in range(2):
        pipe.step(frame, motion=no_motion(height, width) if motion else None)
    pipe.reset()


def open_live(
    source: str,
    config: PipelineConfig,
    *,
    stream: StreamOptions,
    resize: Any,
    realtime: bool,
    flow_fallback: str,
    keep_policy: bool,
    note: Callable[[str], None],
) -> tuple[LiveFeed, PipelineConfig]:
    """Connect to `source` (its one-line DvsnetError within the stream timeout, before anything is loaded)
    and start its feed; returns the feed and the config the run runs: "mv" kept only where the codec
    exports vectors (plan_live_motion), the live policy (live_config) for the source's fps."""
    motion = config.flow == "mv"
    if motion and live_kind(source) is None:  # a file: its codec is known before it is played
        from dvsnet.flow_mv import plan_motion

        flow, motion = plan_motion(config.flow, source, flow_fallback, note)
        config = config.replace(flow=flow)
    feed = LiveFeed(source, options=stream, motion=motion, resize=resize, realtime=realtime)
    info = feed.open()
    try:
        flow = plan_live_motion(config.flow, info, flow_fallback, note)
        if flow != config.flow:
            config, feed.motion = config.replace(flow=flow), False
        if info.fps is None:
            note(f"note: {info.source} states no frame rate; taking it as {feed.fps:g} fps")
        return feed, live_config(config, feed.fps, keep_policy=keep_policy)
    except BaseException:
        feed.close()
        raise


def run_live(run: LiveRun, stop: Any, *, duration: float | None, max_frames: int | None, progress: Progress,
             note: Callable[[str], None]) -> str:
    """The loop: take the newest frame, segment it, hand its outputs over, until `duration` seconds,
    `max_frames` frames, a signal (`stop.requested`, dvsnet.run.StopRequest) or the feed's end; returns why
    it ended. Raises the feed's or the writer's error."""
    run.start()
    while True:
        if stop.requested:
            return "stopped (signal)"
        if duration is not None and time.perf_counter() - run.started >= duration:
            return "duration"
        if max_frames is not None and run.frames >= max_frames:
            return "max frames"
        frame = run.feed.get(timeout=WAIT_SLICE)
        if frame is not None:
            run.step(frame, note)
        elif run.feed.ended:
            if run.feed.error is not None:
                raise run.feed.error
            return run.feed.end_reason
        if run.state_changed() and run.feed.state == "reconnecting":
            progress.show(run.line(), force=True)
        progress.show(run.line())


def live_record(config: PipelineConfig, pipe: DVSNet, info: FeedInfo, *, fps: float, resize: Any,
                max_frames: int | None, writes: tuple[str, ...], stream: StreamOptions, realtime: bool,
                duration: float | None) -> dict[str, object]:
    """summary.json's "config" of a live run: as a file run's (dvsnet.run.run_record), the source being
    the stream (its URL with any password hidden) and the live options."""
    from dvsnet.data.video import resized_size

    height, width = resized_size(info.height, info.width, resize)
    return {
        "config": {
            **pipe.record(width, height),
            "source": info.source,
            "source_info": {
                "kind": info.kind,
                "frames": None,
                "fps": info.fps,
                "height": info.height,
                "width": info.width,
                "codec": info.codec,
                "live": info.live,
            },
            "frame_size": f"{height}x{width}",
            "resize": resize,
            "stride": 1,
            "max_frames": max_frames,
            "writes": list(writes),
            "realtime": realtime,
            "duration": duration,
            "assumed_fps": fps,
            "stream": {
                "timeout": stream.timeout,
                "reconnect": stream.reconnect,
                "rtsp_transport": stream.rtsp_transport,
                "ffmpeg": dict(stream.ffmpeg),
            },
        }
    }
