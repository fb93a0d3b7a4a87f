"""The run loop: segment a video, a folder of frames or a glob into a numbered run folder.

`segment_video` is what `dvsnet segment` does, for Python callers:

    run_dir, summary = dvsnet.segment_video("clip.mp4", PipelineConfig(policy="dn:0.9"), output="runs")

It checks everything the caller gave (source, pipeline, grid) before the run folder exists, so a mistake
leaves nothing behind, then runs the pipeline frame by frame into dvsnet.outputs.RunRecorder (see its
docstring for the files and what an interrupted run leaves) and returns the summary written to
summary.json.
"""
from __future__ import annotations

import math
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from tqdm import tqdm

from dvsnet.auto_precision import first_frames
from dvsnet.config import DEFAULT_CONFIG, PipelineConfig
from dvsnet.data.labels import classes_of
from dvsnet.data.video import (
    Frame,
    ShortVideo,
    SourceInfo,
    expected_frames,
    probe,
    read_named_frames,
    resized_size,
)
from dvsnet.errors import DvsnetError
from dvsnet.flow_mv import plan_motion
from dvsnet.live.loop import (
    LIVE_COLUMNS,
    FrameHook,
    LiveRun,
    OutputWriter,
    Progress,
    live_record,
    open_live,
    run_live,
    warm_up,
)
from dvsnet.live.sources import StreamOptions, is_live
from dvsnet.models import SEGMENTERS, SHIPPED_FRAME_SIZE
from dvsnet.outputs import RunRecorder, check_writes, create_run_folder
from dvsnet.pipeline import DVSNet
from dvsnet.provenance import describe_machine, versions
from dvsnet.regions import check_grid

DEFAULT_WRITES: tuple[str, ...] = ("overlay", "csv")
Resize = tuple[int, int] | int | None


def _stderr(line: str) -> None:
    tqdm.write(line, file=sys.stderr)


class StopRequest:
    """SIGINT/SIGTERM handler: the first signal asks the loop to stop after the frame in progress (so
    every output ends on a whole frame); a second one stops at once (KeyboardInterrupt)."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self) -> None:
        self.requested = False
        self._previous: dict[int, object] = {}

    def __call__(self, signum: int, frame: object) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True

    def __enter__(self) -> None:
        if threading.current_thread() is threading.main_thread():  # signal handlers live in the main thread
            for signum in self.SIGNALS:
                self._previous[signum] = signal.signal(signum, self)

    def __exit__(self, *exc: object) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)


def segment_frames(
    frames: Iterator[Frame],
    pipe: DVSNet,
    run_dir: Path,
    *,
    writes: tuple[str, ...] = DEFAULT_WRITES,
    fps: float | None = None,
    total: int | None = None,
    progress: bool = False,
    record: dict[str, object] | None = None,
    note: Callable[[str], None] = _stderr,
    on_frame: FrameHook | None = None,
) -> dict:
    """Run `pipe` over `frames`, recording into `run_dir`; returns the summary (also in summary.json).

    record: what summary.json holds besides the figures (the config). on_frame: called after each frame
    with (overlay H×W×3 uint8 RGB, status dict) and once at the end with (None, status) (the live view's
    feed, dvsnet.live.view; the status as dvsnet.live.loop.LiveRun.status's). On a DvsnetError from the source
    (truncated video, unreadable frame) or Ctrl-C/SIGTERM (honoured after the frame in progress; a second
    one stops at once), the outputs of the finished frames are closed and kept, summary.json says
    "complete": false, and the error is raised again (naming the run folder) for the caller to report.
    """
    recorder = RunRecorder(run_dir, writes, fps=fps, classes=classes_of(pipe.segmenter))
    # disable=None: a bar only when stderr is a terminal, so logs and pipes get no carriage-return noise
    bar = tqdm(total=total, unit="frame", disable=None if progress else True, file=sys.stderr,
               dynamic_ncols=True, desc=run_dir.name)
    complete, reason, error = False, None, None
    stop = StopRequest()
    try:
        with stop:
            last = time.perf_counter()
            for frame in frames:
                read = time.perf_counter()
                out = pipe.step(frame.image, motion=frame.motion)
                now = time.perf_counter()
                if out.restarted and out.index > 0:
                    height, width = frame.image.shape[:2]
                    note(
                        f"note: frame {out.index} ({frame.name}) is {height}x{width}, a new size: "
                        "key frames restarted"
                    )
                overlay = recorder.record(frame.name, frame.image, out, now - last, draw=on_frame is not None)
                last = now
                if on_frame is not None:
                    on_frame(overlay, file_status(recorder, out, 1000 * (now - read), record, "running"))
                bar.update()
                if bar.n % 10 == 1:
                    bar.set_postfix_str(f"{recorder.stats.figures()['warp_share']:.0%} warped", refresh=False)
                if stop.requested:
                    raise KeyboardInterrupt
            complete = True
    except DvsnetError as exc:
        reason, error = str(exc), exc
    except KeyboardInterrupt as exc:
        reason, error = "interrupted", exc
    except Exception as exc:  # noqa: BLE001 (a bug: close what was written, then re-raise for the traceback)
        reason, error = f"internal error: {type(exc).__name__}: {exc}", exc
    finally:
        bar.close()
        if on_frame is not None:
            on_frame(None, file_status(recorder, None, None, record, "ended"))
        summary = recorder.close(
            complete=complete,
            reason=reason,
            extra={**(record or {}), "versions": versions(), "machine": describe_machine(pipe.device)},
        )
    if isinstance(error, DvsnetError):
        raise DvsnetError(
            f"{error} (the {recorder.frames} frames before it are saved in {run_dir})"
        ) from None
    if isinstance(error, KeyboardInterrupt):
        note(f"stopped after {recorder.frames} frames; their outputs are in {run_dir}")
    if error is not None:
        raise error
    return summary


def file_status(recorder: RunRecorder, out: object | None, latency_ms: float | None,
                record: dict[str, object] | None, state: str) -> dict[str, object]:
    """The status a file run gives its on_frame hook (the keys of a live run's:
    dvsnet.live.loop.LiveRun.status; latency: from the frame read to its labels; nothing is dropped)."""
    config = (record or {}).get("config", {})
    return {
        "frame": recorder.frames,
        "fps": recorder.running_fps(),
        "latency_ms": latency_ms,
        "dropped": 0,
        "received": recorder.frames,
        "threshold": getattr(out, "threshold", None),
        "policy": config.get("policy"),
        "source": config.get("source"),
        "reconnects": 0,
        "state": state,
        "regions": []
        if out is None
        else [
            {"box": [r.core_top, r.core_left, r.core_bottom, r.core_right], "path": path, "score": score}
            for r, path, score in zip(out.regions, out.paths, out.scores)
        ],
    }


def run_record(config: PipelineConfig, pipe: DVSNet, source: str | Path, info: SourceInfo, *, resize: Resize,
               stride: int, max_frames: int | None, writes: tuple[str, ...]) -> dict[str, object]:
    """summary.json's "config": the pipeline (PipelineConfig.to_record) and the source options."""
    height, width = resized_size(info.height, info.width, resize)
    return {
        "config": {
            **pipe.record(width, height),
            "source": str(source),
            "source_info": {
                "kind": info.kind,
                "frames": info.frames,
                "fps": info.fps,
                "height": info.height,
                "width": info.width,
            },
            "frame_size": f"{height}x{width}",
            "resize": resize,
            "stride": stride,
            "max_frames": max_frames,
            "writes": list(writes),
        }
    }


def training_scale_note(segmenter: object, height: int, width: int) -> str | None:
    """A note when a shipped segmenter meets frames twice its training width or more (docs: frame size): at
    twice the scale the same scenes score ~11 points lower per frame."""
    trained_height, trained_width = SHIPPED_FRAME_SIZE
    if not isinstance(segmenter, str) or segmenter not in SEGMENTERS or width < 2 * trained_width:
        return None
    return (
        f"note: frames are {height}x{width}; the shipped networks were trained on {trained_height}x"
        f"{trained_width} frames and segment larger ones worse; --resize {trained_width} runs at that scale"
    )


def check_source_and_grid(config: PipelineConfig, info: SourceInfo, resize: Resize) -> tuple[int, int]:
    """The frame size the pipeline will see; DvsnetError when the grid does not suit it."""
    height, width = resized_size(info.height, info.width, resize)
    check_grid(height, width, *config.grid_at(height, width), config.overlap_px(width, height))
    return height, width


def segment_video(source: str | Path, config: PipelineConfig = DEFAULT_CONFIG, *, output: str | Path = "runs",
                  writes: tuple[str, ...] = DEFAULT_WRITES, resize: Resize = None, stride: int = 1,
                  max_frames: int | None = None, progress: bool = False, prefix: str = "segment",
                  note: Callable[[str], None] | None = None, pipe: DVSNet | None = None,
                  extra: dict[str, object] | None = None, flow_fallback: str = "dis",
                  realtime: bool = False, duration: float | None = None, stream: StreamOptions | None = None,
                  keep_policy: bool = False, on_frame: FrameHook | None = None) -> tuple[Path, dict]:
    """Segment every frame of `source` (video file, frame folder or glob) with the pipeline `config`
    describes, into a new run folder `output/<prefix>-NNNN`; returns (run folder, summary).

    resize: (H, W) or a width keeping the aspect ratio; stride: keep every N-th frame; max_frames: stop
    after N. writes: any of dvsnet.outputs.OUTPUTS. Every mistake is a DvsnetError before the folder exists.
    pipe: a pipeline already built from `config`, reused (reset first) so that a caller segmenting many
    videos loads the networks once (dvsnet.batch); extra: more keys for summary.json.
    flow_fallback: what flow "mv" becomes on a source without motion vectors: "dis" (with a note) or
    "none" (a DvsnetError); see dvsnet.flow_mv.plan_motion.

    A live source (a camera index or /dev/videoN, a stream URL: dvsnet.live.sources.is_live), or a video
    file with `realtime`, runs in real time instead (dvsnet.live.loop.segment_live): the newest frame
    only, drops and latency recorded, until `duration` seconds, max_frames, a signal, or the stream's end.
    stream: its timeouts, reconnect window and FFmpeg options (dvsnet.live.sources.StreamOptions);
    keep_policy: run config.policy even when it is the default (else the live default, dn:fps at 0.9 x
    the source's fps). on_frame (files and live sources): called per frame with (overlay H×W×3 uint8 RGB,
    status dict), and with (None, status) when the state changes (reconnecting, ended).
    """
    live = is_live(source)
    if live or realtime:
        if stride != 1:
            raise DvsnetError("--stride does not apply to a live source: the newest frame is taken whenever "
                              "the pipeline is free")
        if pipe is not None:
            raise DvsnetError(
                "a live source runs a pipeline of its own (pipe= reuses one across a batch of files)"
            )
        return segment_live(os.fspath(source), config, output=output, writes=writes, resize=resize,
                            max_frames=max_frames, progress=progress, prefix=prefix, note=note, extra=extra,
                            flow_fallback=flow_fallback, stream=stream, realtime=realtime, duration=duration,
                            keep_policy=keep_policy, on_frame=on_frame)
    if duration is not None:
        raise DvsnetError("duration applies to live sources (or realtime=True)")
    note = note or _stderr
    info = probe(source)
    flow, motion = plan_motion(config.flow, source, flow_fallback, note)
    if flow is not config.flow:  # "mv" on a source without vectors: the fallback flow, a pipeline of its own
        config, pipe = config.replace(flow=flow), None
    record: dict[str, object] = {}

    def short(video: ShortVideo) -> None:  # a header that lies: said once, recorded in summary.json
        note(video.note())
        record["source_ended_early"] = video.record()

    frames = read_named_frames(source, resize=resize, stride=stride, max_frames=max_frames, motion=motion,
                               on_short=short)
    height, width = check_source_and_grid(config, info, resize)
    if pipe is None:
        # auto checks its backend and precision on the first frames of this footage (dvsnet.auto_precision)
        pipe = DVSNet.from_config(config, first_frames(source, resize=resize, stride=stride))
    else:
        pipe.reset()
    check_writes(writes, classes_of(pipe.segmenter))
    scale_note = training_scale_note(config.segmenter, height, width)
    if scale_note:
        note(scale_note)
    run_dir = create_run_folder(output, prefix)
    record.update(run_record(config, pipe, source, info, resize=resize, stride=stride, max_frames=max_frames,
                             writes=writes))
    record.update(extra or {})
    summary = segment_frames(frames, pipe, run_dir, writes=writes, fps=output_fps(info, stride),
                             total=expected_frames(info, stride=stride, max_frames=max_frames),
                             progress=progress, record=record, note=note, on_frame=on_frame)
    return run_dir, summary


def output_fps(info: SourceInfo, stride: int) -> float | None:
    """Overlay video frame rate: the source's divided by the stride, so playback keeps real time."""
    return None if info.fps is None else info.fps / stride


def segment_live(
    source: str,
    config: PipelineConfig,
    *,
    output: str | Path = "runs",
    writes: tuple[str, ...] = DEFAULT_WRITES,
    resize: Resize = None,
    max_frames: int | None = None,
    progress: bool = False,
    prefix: str = "segment",
    note: Callable[[str], None] | None = None,
    extra: dict[str, object] | None = None,
    flow_fallback: str = "dis",
    stream: StreamOptions | None = None,
    realtime: bool = False,
    duration: float | None = None,
    keep_policy: bool = False,
    on_frame: FrameHook | None = None,
) -> tuple[Path, dict]:
    """segment_video for a live source (or a video file played at its own pace: `realtime`): the newest
    frame only, into a new run folder `output/<prefix>-NNNN`; returns (run folder, summary). What it
    records and when it ends: dvsnet.live.loop. Every mistake (bad URL, a source that does not open within
    the timeout, a grid the frames cannot hold) is a DvsnetError before the run folder exists."""
    progress_line = Progress(progress)
    note = note or progress_line.note
    if duration is not None and not (duration > 0 and math.isfinite(duration)):
        raise DvsnetError(f"duration must be a number of seconds > 0, got {duration!r}")
    if max_frames is not None and (
        isinstance(max_frames, bool) or not isinstance(max_frames, int) or max_frames < 1
    ):
        raise DvsnetError(f"max_frames must be a whole number >= 1 or None, got {max_frames!r}")
    check_writes(writes)
    stream = stream or StreamOptions()
    feed, config = open_live(source, config, stream=stream, resize=resize, realtime=realtime,
                             flow_fallback=flow_fallback, keep_policy=keep_policy, note=note)
    try:
        info = feed.info
        height, width = check_source_and_grid(
            config, SourceInfo(info.kind, info.source, None, info.fps, info.height, info.width), resize
        )
        pipe = DVSNet.from_config(config)
        check_writes(writes, classes_of(pipe.segmenter))
        scale_note = training_scale_note(config.segmenter, height, width)
        if scale_note:
            note(scale_note)
        warm_up(pipe, height, width, feed.motion)
        run_dir = create_run_folder(output, prefix)
    except BaseException:
        feed.close()
        raise
    record = live_record(
        config,
        pipe,
        info,
        fps=feed.fps,
        resize=resize,
        max_frames=max_frames,
        writes=writes,
        stream=stream,
        realtime=realtime,
        duration=duration,
    )
    record.update(extra or {})
    recorder = RunRecorder(run_dir, writes, fps=feed.fps, classes=classes_of(pipe.segmenter), streaming=True,
                           extra_columns=LIVE_COLUMNS)
    run = LiveRun(feed, pipe, OutputWriter(recorder, on_frame), policy_text=repr(pipe.policy))
    summary = _close_live(
        run, recorder, record, progress_line, note, duration=duration, max_frames=max_frames
    )
    return run_dir, summary


def _close_live(run: LiveRun, recorder: RunRecorder, record: dict[str, object], progress: Progress,
                note: Callable[[str], None], *, duration: float | None, max_frames: int | None) -> dict:
    """Run the live loop and close every output however it ends (module docstring of dvsnet.live.loop):
    summary.json says "complete": true unless an error stopped it; the error is raised again."""
    ended, error = None, None
    stop = StopRequest()
    try:
        with stop:
            ended = run_live(
                run, stop, duration=duration, max_frames=max_frames, progress=progress, note=note
            )
    except DvsnetError as exc:
        error, ended = exc, f"error: {exc}"
    except KeyboardInterrupt as exc:  # a second Ctrl-C: stop at once
        error, ended = exc, "interrupted"
    except Exception as exc:  # noqa: BLE001 (a bug: close what was written, then re-raise for the traceback)
        error, ended = exc, f"internal error: {type(exc).__name__}: {exc}"
    finally:
        run.feed.close()
        live = run.figures(ended)
        run.state_changed()
        try:
            run.writer.close()
        except BaseException as exc:  # noqa: BLE001 (the writer's error, unless the loop stopped on one first)
            if error is None:
                error, ended = exc, f"error: {exc}"
                live["ended"] = ended
        progress.show(run.line(), force=True)
        progress.close()
        summary = recorder.close(complete=error is None, reason=None if error is None else ended, extra={
            **record, "versions": versions(), "machine": describe_machine(run.pipe.device), "live": live})
    if isinstance(error, DvsnetError):
        raise DvsnetError(
            f"{error} (the {recorder.frames} frames before it are saved in {recorder.run_dir})"
        ) from None
    if error is not None:
        raise error
    if ended and ended.startswith("stream lost"):
        note(f"note: {ended}")
    return summary
