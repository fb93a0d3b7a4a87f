"""`dvsnet demo`: synthesise a short street clip, segment it with the shipped weights, write a run folder.

Needs nothing but the install. The clip is rendered by dvsnet.data.synthetic, written as `input.mp4`
into the run folder, and read back through the same video path as `dvsnet segment` (so the demo also
exercises decoding); the run folder then holds input.mp4, overlay.mp4, frames.csv and summary.json.
"""
from __future__ import annotations

import argparse
import sys

from tqdm import tqdm

from dvsnet.cli.options import (
    add_io_options,
    add_pipeline_options,
    add_threshold_option,
    non_negative_int,
    parse_size,
    pipeline_config,
    positive_int,
    print_summary,
    writes_of,
)
from dvsnet.config import PipelineConfig
from dvsnet.data.labels import classes_of
from dvsnet.data.video import SourceInfo, expected_frames, probe, read_named_frames
from dvsnet.errors import DvsnetError
from dvsnet.flow_mv import plan_motion
from dvsnet.outputs import VideoOutput, check_writes, create_run_folder
from dvsnet.pipeline import DVSNet
from dvsnet.provenance import set_threads
from dvsnet.run import check_source_and_grid, output_fps, run_record, segment_frames

EPILOG = """\
examples:
  dvsnet demo                                  60 frames at 256x512, policy dn:0.92, into runs/demo-NNNN
  dvsnet demo --threshold 0.8 --grid 2x4       lower threshold: more regions warped, faster
  dvsnet demo --frames 120 --seed 7 --write color
"""


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "demo", help="synthesise a street clip and segment it (start here)",
        description="Render a short synthetic street clip, segment it with DVSNet and the shipped weights, "
                    "and write input.mp4, overlay.mp4, frames.csv and summary.json into a new run folder.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    group = parser.add_argument_group("clip")
    group.add_argument("--frames", type=positive_int, default=60, metavar="N",
                       help="frames to synthesise (default: 60, about 3.5 s at the renderer's 17 fps)")
    group.add_argument("--size", type=parse_size, default=(256, 512), metavar="HxW",
                       help="frame size of the synthetic clip (default: 256x512)")
    group.add_argument("--seed", type=non_negative_int, default=0,
                       help="scene seed: the same seed renders the same street (default: 0)")
    add_pipeline_options(parser)
    add_threshold_option(parser)
    # One thread by default: on the shared 2-core machine with two training jobs running, a `fast` pass
    # at 256x512 took 114 ms with 1 thread and 1173 ms with 2 (benchmarks/bench_models.py --threads 1|2);
    # the demo promises under 2 minutes there. --threads N overrides.
    add_io_options(parser, threads=1)
    parser.set_defaults(run=run, source=None)
    return parser


def render_input(path, frames: int, size: tuple[int, int], seed: int, progress: bool) -> None:
    """Render the synthetic clip straight into an mp4 at `path` (one frame in memory at a time)."""
    from dvsnet.data.synthetic import render_sequence
    from dvsnet.data.synthetic.scene import FPS  # the frame rate the renderer simulates

    video = VideoOutput(path, FPS)
    bar = tqdm(total=frames, unit="frame", desc="rendering", disable=None if progress else True,
               file=sys.stderr, dynamic_ncols=True)
    try:
        for frame in render_sequence(seed, frames, size):
            video.write(frame.image)
            bar.update()
    except BaseException:
        video.abort()  # an unfinished clip keeps its .partial name
        raise
    finally:
        bar.close()
    video.close()


def build_demo_pipeline(config: PipelineConfig) -> DVSNet:
    """DVSNet.from_config, with a way forward when the decision network's shipped weights are missing."""
    try:
        return DVSNet.from_config(config)
    except DvsnetError as exc:
        if "decision network" in str(exc):
            raise DvsnetError(f"{exc}; meanwhile `dvsnet demo --policy fixed:5` runs without a decision "
                              "network") from None
        raise


def run(args: argparse.Namespace) -> int:
    # Weights, policy, grid: all checked before the run folder exists, so a missing shipped file
    # (e.g. the decision network for dn:T) is one line and leaves nothing behind.
    set_threads(args.threads)
    config = pipeline_config(args)
    height, width = args.size
    check_source_and_grid(config, SourceInfo("video", "", args.frames, None, height, width), args.resize)
    pipe = build_demo_pipeline(config)
    writes = writes_of(args.write)
    check_writes(writes, classes_of(pipe.segmenter))
    run_dir = create_run_folder(args.output, "demo")
    source = run_dir / "input.mp4"
    render_input(source, args.frames, args.size, args.seed, not args.no_progress)
    info = probe(source)
    flow, motion = plan_motion(config.flow, source, args.flow_fallback,
                               note=lambda line: print(line, file=sys.stderr))
    if flow is not config.flow:  # --flow mv without PyAV: the fallback flow
        config = config.replace(flow=flow)
        pipe = build_demo_pipeline(config)
    frames = read_named_frames(source, resize=args.resize, stride=args.stride, max_frames=args.max_frames,
                               motion=motion)
    record = run_record(config, pipe, source, info, resize=args.resize, stride=args.stride,
                        max_frames=args.max_frames, writes=writes)
    record["config"]["synthetic"] = {"seed": args.seed, "frames": args.frames, "size": list(args.size)}
    summary = segment_frames(frames, pipe, run_dir, writes=writes, fps=output_fps(info, args.stride),
                             total=expected_frames(info, stride=args.stride, max_frames=args.max_frames),
                             progress=not args.no_progress, record=record)
    print_summary(summary, run_dir, "demo: segmented")
    return 0
