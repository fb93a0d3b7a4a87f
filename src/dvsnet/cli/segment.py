"""`dvsnet segment SOURCE`: segment a video, a folder of frames or a glob, into a numbered run folder.

Thin front end: frames come from dvsnet.data.video, the pipeline is dvsnet.DVSNet, files are written by
dvsnet.outputs.RunRecorder (see its docstring for the files and what an interrupted run leaves).
"""
from __future__ import annotations

import argparse
import os
import platform
import signal
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import torch
from tqdm import tqdm

import dvsnet
from dvsnet.cli.options import add_pipeline_options, parse_size, positive_int
from dvsnet.data.video import Frame, SourceInfo, expected_frames, probe, read_named_frames, resized_size
from dvsnet.devices import describe_device, pick_device
from dvsnet.errors import DvsnetError
from dvsnet.models import SEGMENTERS, SHIPPED_FRAME_SIZE
from dvsnet.outputs import OUTPUTS, RunRecorder, create_run_folder
from dvsnet.regions import default_overlap, region_grid

DEFAULT_WRITES: tuple[str, ...] = ("overlay", "csv")

EPILOG = """\
examples:
  dvsnet segment dashcam.mp4                          overlay video + frames.csv in runs/segment-NNNN
  dvsnet segment dashcam.mp4 --threshold 0.85 --grid 2x4 --resize 512     faster, coarser
  dvsnet segment frames/ --write label-ids --no-progress          Cityscapes-named label-id PNGs
  dvsnet segment 'leftImg8bit_sequence/val/*/*.png' --max-frames 300 --stride 2 --output out/
  dvsnet segment clip.mkv --segmenter my_weights.safetensors --flow dis-medium --policy fixed:5

Every run writes summary.json (config, versions, fps, path shares, workload saved). An interrupted run
keeps its outputs up to the last finished frame, marked "complete": false in summary.json.
"""


def parse_resize(text: str) -> tuple[int, int] | int:
    """'256x512' -> (256, 512) (height x width); '512' -> 512 (width, height keeps the aspect ratio)."""
    if text.isdigit():
        width = int(text)
        if width < 16:
            raise argparse.ArgumentTypeError(f"resize width must be >= 16 px, got {width}")
        return width
    return parse_size(text)


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "segment", help="segment a video, a folder of frames or a glob",
        description="Segment every frame of SOURCE with DVSNet and write an overlay video, frames.csv, "
                    "optional label PNGs and summary.json into a new numbered run folder.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("source", help="a video file (mp4, avi, mkv, webm, ...), a folder of frames, or a "
                                       "quoted glob of frames ('clips/*.png'); frames are read in natural order")
    add_pipeline_options(parser)
    add_threshold_option(parser)
    add_io_options(parser)
    parser.set_defaults(run=run)
    return parser


def parse_threshold(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"threshold must be a number in [0, 1], got {text!r}") from None


def add_threshold_option(parser: argparse.ArgumentParser) -> None:
    """--threshold T: shorthand that sets the threshold of the dn/oracle policy (`--threshold 0.85`)."""
    parser.add_argument("--threshold", type=parse_threshold, default=None, metavar="T",
                        help="confidence threshold in [0, 1] for the dn (or oracle) policy: lower warps more "
                             "regions (faster), higher segments more (more accurate); overrides the T of "
                             "--policy (default: the policy's own, 0.92 for the default dn:0.92)")


def policy_spec(policy: str, threshold: float | None) -> str:
    """The policy string with --threshold applied: ('dn:0.92', 0.8) -> 'dn:0.8'."""
    if threshold is None:
        return policy
    name = policy.strip().lower().partition(":")[0]
    if name not in ("dn", "oracle"):
        raise DvsnetError(f"--threshold applies to the dn and oracle policies, not {policy!r}")
    return f"{name}:{threshold:g}"


def add_io_options(parser: argparse.ArgumentParser, *, threads: int | None = None) -> None:
    """--resize --stride --max-frames --output --write --no-progress --threads (also used by `demo`)."""
    group = parser.add_argument_group("input and output")
    group.add_argument("--resize", type=parse_resize, default=None, metavar="HxW|W",
                       help="resize frames before segmenting: HxW, or a width keeping the aspect ratio "
                            "(default: keep the source size)")
    group.add_argument("--stride", type=positive_int, default=1, metavar="N",
                       help="keep every N-th frame of the source (default: 1, every frame)")
    group.add_argument("--max-frames", type=positive_int, default=None, metavar="N",
                       help="stop after N frames (default: all)")
    group.add_argument("--output", default="runs", metavar="DIR",
                       help="where run folders are created; each run gets a new DIR/<command>-NNNN "
                            "(default: runs)")
    group.add_argument("--write", action="append", choices=OUTPUTS, default=None, metavar="WHAT",
                       help="which outputs to write, repeatable: overlay (video), labels (train-id PNGs), "
                            "label-ids (Cityscapes label-id PNGs, Cityscapes naming), color (colour PNGs), "
                            "csv (frames.csv); summary.json is always written (default: overlay and csv)")
    group.add_argument("--no-progress", action="store_true", help="no progress bar (default: shown on stderr when it is a terminal)")
    group.add_argument("--threads", type=positive_int, default=threads, metavar="N",
                       help="CPU threads for torch and OpenCV; 1 is often faster on a machine busy with other "
                            "work (default: " + ("their own choice, usually the core count)" if threads is None
                                                 else f"{threads})"))


def apply_threads(threads: int | None) -> None:
    """--threads: CPU threads for torch and OpenCV (DIS flow) in this process; None leaves their defaults."""
    if threads:
        torch.set_num_threads(threads)
        cv2.setNumThreads(threads)


def versions() -> dict[str, str]:
    """Software and machine versions recorded in summary.json."""
    return {
        "dvsnet": getattr(dvsnet, "__version__", "unknown"), "torch": torch.__version__,
        "numpy": np.__version__, "opencv": cv2.__version__, "python": platform.python_version(),
        "platform": platform.platform(), "cpu_count": str(os.cpu_count()),
        "torch_threads": str(torch.get_num_threads()), "opencv_threads": str(cv2.getNumThreads()),
        "load_average_1m": f"{os.getloadavg()[0]:.2f}",  # timings on a shared machine need this beside them
    }


def build_pipeline(args: argparse.Namespace) -> dvsnet.DVSNet:
    """DVSNet from the pipeline options; every user mistake raises DvsnetError before any output."""
    policy = dvsnet.parse_policy(policy_spec(args.policy, args.threshold))
    device = pick_device(args.device)
    segmenter = dvsnet.load_segmenter(args.segmenter, device)
    return dvsnet.DVSNet(segmenter=segmenter, flow=args.flow, policy=policy, grid=tuple(args.grid),
                         overlap=args.overlap, stitch=args.stitch, dn=args.dn, device=device,
                         flow_width=args.flow_width)


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


def segment_frames(frames: Iterator[Frame], pipe: dvsnet.DVSNet, run_dir: Path, *, writes: tuple[str, ...],
                   fps: float | None, total: int | None, progress: bool, config: dict[str, object]) -> dict:
    """Run `pipe` over `frames`, recording into `run_dir`; returns the summary (also in summary.json).

    On a DvsnetError from the source (truncated video, unreadable frame) or Ctrl-C/SIGTERM (honoured
    after the frame in progress; a second one stops at once), the outputs of the finished frames are
    closed and kept, summary.json says "complete": false, and the error is raised again (naming the run
    folder) for the CLI to report.
    """
    recorder = RunRecorder(run_dir, writes, fps=fps)
    # disable=None: a bar only when stderr is a terminal, so logs and pipes get no carriage-return noise
    bar = tqdm(total=total, unit="frame", disable=None if progress else True, file=sys.stderr, dynamic_ncols=True,
               desc=run_dir.name)
    complete, reason, error = False, None, None
    stop = StopRequest()
    try:
        with stop:
            last = time.perf_counter()
            for frame in frames:
                out = pipe.step(frame.image)
                now = time.perf_counter()
                if out.restarted and out.index > 0:
                    height, width = frame.image.shape[:2]
                    tqdm.write(f"note: frame {out.index} ({frame.name}) is {height}x{width}, a new size: "
                               "key frames restarted", file=sys.stderr)
                recorder.record(frame.name, frame.image, out, now - last)
                last = now
                bar.update()
                if bar.n % 10 == 1:
                    warped = recorder.regions_warp / max(1, recorder.regions_seg + recorder.regions_warp)
                    bar.set_postfix_str(f"{warped:.0%} warped", refresh=False)
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
        summary = recorder.close(complete=complete, reason=reason, extra={"config": config, "versions": versions()})
    if isinstance(error, DvsnetError):
        raise DvsnetError(f"{error} (the {recorder.frames} frames before it are saved in {run_dir})") from None
    if isinstance(error, KeyboardInterrupt):
        print(f"stopped after {recorder.frames} frames; their outputs are in {run_dir}", file=sys.stderr)
    if error is not None:
        raise error
    return summary


def source_config(args: argparse.Namespace, info: SourceInfo, pipe: dvsnet.DVSNet,
                  writes: tuple[str, ...]) -> dict[str, object]:
    """The run's configuration as recorded in summary.json."""
    height, width = resized_size(info.height, info.width, args.resize)
    return {
        "source": str(args.source),
        "source_info": {"kind": info.kind, "frames": info.frames, "fps": info.fps,
                        "height": info.height, "width": info.width},
        "frame_size": [height, width],
        "policy": repr(pipe.policy), "segmenter": str(args.segmenter), "flow": str(args.flow),
        "grid": list(args.grid), "overlap": default_overlap(width) if args.overlap is None else args.overlap,
        "stitch": args.stitch, "dn": args.dn, "flow_width": args.flow_width, "device": describe_device(pipe.device),
        "resize": args.resize, "stride": args.stride, "max_frames": args.max_frames, "writes": list(writes),
    }


def print_summary(summary: dict, run_dir: Path, what: str) -> None:
    """The one line at the end of a run, on stdout."""
    def fps(value: float | None) -> str:
        return "n/a" if value is None else f"{value:.1f}"

    saved = summary["workload_saved"]
    print(f"{what} {summary['frames']} frames: {fps(summary['fps_pipeline'])} fps pipeline "
          f"({fps(summary['fps_pipeline_warm'])} after the first frame), "
          f"{fps(summary['fps_end_to_end'])} fps end to end, "
          f"{'n/a' if saved is None else f'{saved:.0%}'} of region segmentations saved -> {run_dir}")


def prepare(args: argparse.Namespace) -> tuple[dvsnet.DVSNet, SourceInfo, Iterator[Frame], dict[str, object]]:
    """Check everything the user gave and build the pipeline, before any output exists.

    Returns the pipeline, the source's info, its frame stream and the config for summary.json; every
    user mistake (source, policy, weights, grid) raises DvsnetError here, so it leaves nothing behind.
    """
    apply_threads(args.threads)
    dvsnet.parse_policy(policy_spec(args.policy, args.threshold))  # cheapest check first
    info = probe(args.source)
    frames = read_named_frames(args.source, resize=args.resize, stride=args.stride, max_frames=args.max_frames)
    pipe = build_pipeline(args)
    height, width = resized_size(info.height, info.width, args.resize)
    region_grid(height, width, *args.grid, default_overlap(width) if args.overlap is None else args.overlap)
    writes = tuple(dict.fromkeys(args.write or DEFAULT_WRITES))
    return pipe, info, frames, source_config(args, info, pipe, writes)


def training_scale_note(segmenter: str, height: int, width: int) -> str | None:
    """A note when a shipped segmenter meets frames twice its training width or more (README: Segment your
    own video): at twice the scale the same scenes score ~11 points lower per frame."""
    trained_height, trained_width = SHIPPED_FRAME_SIZE
    if segmenter not in SEGMENTERS or width < 2 * trained_width:
        return None
    return (f"note: frames are {height}x{width}; the shipped networks were trained on {trained_height}x"
            f"{trained_width} frames and segment larger ones worse; --resize {trained_width} runs at that scale")


def run(args: argparse.Namespace) -> int:
    pipe, info, frames, config = prepare(args)
    note = training_scale_note(str(args.segmenter), *config["frame_size"])
    if note:
        print(note, file=sys.stderr)
    run_dir = create_run_folder(args.output, "segment")
    summary = segment_frames(frames, pipe, run_dir, writes=tuple(config["writes"]),
                             fps=output_fps(info, args.stride),
                             total=expected_frames(info, stride=args.stride, max_frames=args.max_frames),
                             progress=not args.no_progress, config=config)
    print_summary(summary, run_dir, "segmented")
    return 0


def output_fps(info: SourceInfo, stride: int) -> float | None:
    """Overlay video frame rate: the source's divided by the stride, so playback keeps real time."""
    return None if info.fps is None else info.fps / stride
