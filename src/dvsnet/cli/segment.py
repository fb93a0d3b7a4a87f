"""`dvsnet segment SOURCE...`: segment a video, a folder of frames or a glob, into a numbered run folder;
or many videos (several sources, a folder or glob of videos, a .txt list) into one batch folder.

Thin front end: frames come from dvsnet.data.video, the pipeline is dvsnet.DVSNet, files are written by
dvsnet.outputs.RunRecorder (see its docstring for the files and what an interrupted run leaves);
the run loop is dvsnet.run.segment_video, a batch is dvsnet.batch.segment_batch (docs/batch.md).
"""
from __future__ import annotations

import argparse
import contextlib
import os
import sys
from collections.abc import Iterator

from dvsnet.batch import BatchOptions, BatchResult, batch_sources, segment_batch
from dvsnet.cli.options import (
    add_io_options,
    add_live_options,
    add_pipeline_options,
    add_threshold_option,
    pipeline_config,
    positive_int,
    print_summary,
    stream_options,
    writes_of,
)
from dvsnet.errors import DvsnetError
from dvsnet.live.loop import FrameHook
from dvsnet.live.sources import is_live
from dvsnet.provenance import set_threads
from dvsnet.run import segment_video

EPILOG = """\
examples:
  dvsnet segment dashcam.mp4                          overlay video + frames.csv in runs/segment-NNNN
  dvsnet segment dashcam.mp4 --threshold 0.85 --grid 2x4 --resize 512     faster, coarser
  dvsnet segment frames/ --write label-ids --no-progress          Cityscapes-named label-id PNGs only
  dvsnet segment clip.mp4 --write +color                          the defaults and colour PNGs
  dvsnet segment 'leftImg8bit_sequence/val/*/*.png' --max-frames 300 --stride 2 --output out/
  dvsnet segment clip.mkv --segmenter my_weights.safetensors --flow dis-medium --policy fixed:5

many videos (a batch: one run folder per video in --output, plus batch.json and batch.csv):
  dvsnet segment videos/ --output runs/videos              every video in the folder, one per core
  dvsnet segment a.mp4 b.mp4 'more/*.mp4' --workers 2 --output runs/mine
  dvsnet segment list.txt --output /shared/out --ray        one path per line, on a Ray cluster
  Re-running the same command skips the videos already complete and redoes the others.

live video (the newest frame only; drops, latency and reconnects recorded; docs/live.md):
  dvsnet segment 0                                    the first camera (/dev/video0), until Ctrl-C
  dvsnet segment rtsp://user:pass@192.168.1.20/stream --duration 600
  dvsnet segment 'udp://127.0.0.1:5000' --flow mv     an MPEG-TS stream, with the codec's motion vectors
  dvsnet segment clip.mp4 --realtime                  a file played at its own frame rate, as a camera
  dvsnet segment 0 --serve 8080                       watch it at http://127.0.0.1:8080/ (docs/live-view.md)

Every run writes summary.json (config, versions, fps, path shares, workload saved). An interrupted run
keeps its outputs up to the last finished frame, marked "complete": false in summary.json.
"""


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "segment", help="segment a video, a folder of frames or a glob",
        description="Segment every frame of SOURCE with DVSNet and write an overlay video, frames.csv, "
                    "optional label PNGs and summary.json into a new numbered run folder.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "source",
        nargs="+",
        metavar="SOURCE",
        help="a video file (mp4, avi, mkv, webm, ...), a folder of frames, or a quoted glob of "
        "frames ('clips/*.png'); frames are read in natural order. A batch of videos: "
        "several SOURCEs, a folder holding videos and no images, a quoted glob matching "
        "videos, or a .txt file with one path per line (docs/batch.md). Live: a camera "
        "(0, /dev/video0) or a stream URL (rtsp, rtmp, udp, rtp, tcp, srt, http(s), HLS), "
        "whose default policy is dn:fps at 0.9 x the stream's frame rate (docs/live.md)",
    )
    add_pipeline_options(parser)
    parser.set_defaults(policy=None)  # None: not given, so a live source gets its own default (run)
    add_threshold_option(parser)
    add_io_options(parser)
    add_live_options(parser)
    parser.add_argument(
        "--serve",
        default=None,
        metavar="[HOST:]PORT",
        help="serve a web page showing the run as it is made (overlay, fps, latency, drops, the "
        "threshold, each region's decision) at http://HOST:PORT/, for any number of viewers; "
        "HOST defaults to 127.0.0.1 (this machine only; the page has no password), 0 picks "
        "a free port (docs/live-view.md)",
    )
    group = parser.add_argument_group("many videos (a batch)")
    group.add_argument(
        "--workers",
        type=positive_int,
        default=None,
        metavar="N",
        help="videos segmented at once, each in its own process with its own pipeline; --threads "
        "is then split between them (default: one per core, at most one per video)",
    )
    group.add_argument(
        "--ray",
        nargs="?",
        const="",
        default=None,
        metavar="ADDRESS",
        help="run the batch on a Ray cluster (pip install 'dvsnet[ray]'): one actor per worker, "
        "the networks loaded once per actor, --threads CPUs each (default 1); ADDRESS as "
        "ray.init takes it (default: RAY_ADDRESS, a local cluster, or a new local instance). "
        "--output must be a folder every node can reach. Put --ray after SOURCE, or write "
        "--ray=ADDRESS",
    )
    parser.set_defaults(run=run)
    return parser


def run(args: argparse.Namespace) -> int:
    keep_policy = args.policy is not None or args.threshold is not None or args.target_fps is not None \
        or args.target_agreement is not None
    args.policy = args.policy or "dn:0.92"
    config = pipeline_config(args)
    if args.ray and os.path.exists(args.ray):
        raise DvsnetError(
            f"--ray took {args.ray!r} as a Ray address; put --ray after SOURCE or write --ray=ADDRESS"
        )
    live = [source for source in args.source if is_live(source)]
    if live and len(args.source) > 1:
        raise DvsnetError(
            f"{live[0]} is a live source, which runs alone: one live SOURCE per command (a batch reads files)"
        )
    stream = stream_options(args)
    if not live and not args.realtime and (stream is not None or args.duration is not None):
        raise DvsnetError(
            "--duration, --timeout, --reconnect, --rtsp-transport and --stream-option apply to a "
            "live SOURCE (a camera or stream URL) or to --realtime"
        )
    sources = None if live or args.realtime else batch_sources(args.source)
    if sources is None:
        if args.workers is not None or args.ray is not None:
            raise DvsnetError(
                f"--workers and --ray segment a batch of videos, and {args.source[0]} is one source; "
                "pass several, a folder or glob of videos, or a .txt list"
            )
        if args.realtime and len(args.source) > 1:
            raise DvsnetError("--realtime plays one video as a live source; pass one SOURCE")
        set_threads(args.threads)
        with serving(args.serve) as on_frame:
            run_dir, summary = segment_video(
                args.source[0],
                config,
                output=args.output,
                writes=writes_of(args.write),
                resize=args.resize,
                stride=args.stride,
                max_frames=args.max_frames,
                progress=not args.no_progress,
                flow_fallback=args.flow_fallback,
                realtime=args.realtime,
                duration=args.duration,
                stream=stream,
                keep_policy=keep_policy,
                on_frame=on_frame,
            )
        print_summary(summary, run_dir, "segmented")
        ended = (summary.get("live") or {}).get("ended") or ""
        return 1 if ended.startswith("stream lost") else 0
    if args.serve is not None:
        raise DvsnetError(
            "--serve shows one run; a batch of videos has many (segment them one at a time to watch)"
        )
    options = BatchOptions(config, writes_of(args.write), resize=args.resize, stride=args.stride,
                           max_frames=args.max_frames, flow_fallback=args.flow_fallback)
    result = segment_batch(sources, options, args.output, workers=args.workers, threads=args.threads,
                           ray=args.ray, progress=not args.no_progress)
    print_batch(result)
    return 0 if result.ok else 1


@contextlib.contextmanager
def serving(address: str | None) -> Iterator[FrameHook | None]:
    """`--serve`: the live view (dvsnet.live.view) started on `address` for the block (its URL said on
    stderr), yielding the run's per-frame hook; nothing (None) without an address."""
    if address is None:
        yield None
        return
    from dvsnet.live.view import LiveView, parse_address

    view = LiveView(*parse_address(address), title="dvsnet segment")
    print(f"live view: {view.start()}", file=sys.stderr, flush=True)

    def publish(overlay, status: dict) -> None:
        if overlay is None:
            view.publish_status(status)
        else:
            view.publish(overlay, status)

    try:
        yield publish
    finally:
        view.close()


def print_batch(result: BatchResult) -> None:
    """The one line at the end of a batch, on stdout."""
    counts = ", ".join(f"{n} {status}" for status, n in sorted(result.counts.items()))
    fps = f" ({result.frames / result.seconds:.1f} fps)" if result.frames and result.seconds > 0 else ""
    print(
        f"batch of {len(result.rows)} videos: {counts}; {result.frames} frames in "
        f"{result.seconds:.1f} s{fps} "
        f"-> {result.path}"
    )
