"""`dvsnet segment SOURCE`: segment a video, a folder of frames or a glob, into a numbered run folder.

Thin front end: frames come from dvsnet.data.video, the pipeline is dvsnet.DVSNet, files are written by
dvsnet.outputs.RunRecorder (see its docstring for the files and what an interrupted run leaves);
the run loop is dvsnet.run.segment_video.
"""
from __future__ import annotations

import argparse

from dvsnet.cli.options import (
    add_io_options,
    add_pipeline_options,
    add_threshold_option,
    pipeline_config,
    print_summary,
    writes_of,
)
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
    parser.add_argument("source", help="a video file (mp4, avi, mkv, webm, ...), a folder of frames, or a "
                                       "quoted glob of frames ('clips/*.png'); frames are read in natural order")
    add_pipeline_options(parser)
    add_threshold_option(parser)
    add_io_options(parser)
    parser.set_defaults(run=run)
    return parser


def run(args: argparse.Namespace) -> int:
    set_threads(args.threads)
    run_dir, summary = segment_video(args.source, pipeline_config(args), output=args.output,
                                     writes=writes_of(args.write), resize=args.resize, stride=args.stride,
                                     max_frames=args.max_frames, progress=not args.no_progress)
    print_summary(summary, run_dir, "segmented")
    return 0
