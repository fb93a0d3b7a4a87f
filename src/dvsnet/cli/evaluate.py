"""`dvsnet evaluate SOURCE...`: accuracy and speed of one configuration (dvsnet.evaluate).

A Cityscapes-layout tree is scored against its labels with the paper's protocol; a video, a folder of
frames or a glob, which has no labels, against the same segmenter run on every frame in the same run
(dvsnet.evaluate.evaluate_video). Each SOURCE gets its own JSON result file.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from dvsnet.atomic import slug, write_json_new
from dvsnet.cli.options import (
    add_pipeline_options,
    non_negative_int,
    parse_resize,
    pipeline_config,
    positive_int,
    require,
)
from dvsnet.data.sources import is_glob
from dvsnet.errors import DvsnetError

EPILOG = """examples:
  dvsnet evaluate data/synth                                   # dn:0.92, fast + DIS, 2x2 regions
  dvsnet evaluate data/synth --policy always --grid 1x1        # the per-frame baseline
  dvsnet evaluate data/synth --policy fixed:5 --max-snippets 10 --all-frames
  dvsnet evaluate /data/cityscapes --split val --segmenter accurate --policy dn:0.83
  dvsnet evaluate dashcam.mp4 --max-frames 150                 # no labels: against per-frame output
  dvsnet evaluate a.mp4 b.mp4 'frames/*.png' --resize 512 --policy fixed:5   # one JSON per source

Without labels (a video, folder or glob) the result holds pixel_agreement and miou_vs_per_frame (against
the same segmenter run on every frame, in the same run), temporal_consistency of both outputs, the
flicker_ceiling, fps, fps_per_frame, speedup and seg_share (regions segmented): docs/real-video.md.
"""

TREE_ONLY = ("--split", "--all-frames", "--max-snippets")
VIDEO_ONLY = ("--resize", "--stride", "--max-frames")


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "evaluate", help="accuracy and speed of a configuration: on a labelled Cityscapes-layout split "
                         "(mIoU), or on your own video against per-frame segmentation",
        description="Evaluate one configuration on each SOURCE. A Cityscapes-layout tree (a folder with "
                    "leftImg8bit_sequence/) uses the paper's protocol (docs/design.md §5): per snippet, "
                    "frame 0 is the key frame, frames 0..19 run in order, frame 19 is scored against its "
                    "labels. A video, folder of frames or glob has no labels: it is decoded into memory and "
                    "compared with the same segmenter run on every frame (policy always, grid 1x1) in the "
                    "same run, interleaved frame by frame (docs/real-video.md). fps counts pipeline time "
                    "only (frames are decoded before timing; warm-up excluded). Writes one JSON result per "
                    "SOURCE (config, figures, versions, machine) and prints a summary.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("data", metavar="SOURCE", nargs="+",
                        help="root of a Cityscapes-layout tree (leftImg8bit_sequence/ and gtFine/), e.g. "
                             "data/synth or a real Cityscapes folder; or a video file, a folder of frames or "
                             "a quoted glob of frames, evaluated without labels")
    add_pipeline_options(parser)
    tree = parser.add_argument_group("Cityscapes-layout trees")
    tree.add_argument("--split", default=None, help="split folder to evaluate (default: val)")
    tree.add_argument("--all-frames", action="store_true",
                      help="score every frame 0..19 instead of frame 19 only (needs labels on every "
                           "frame, as the synthetic set has)")
    tree.add_argument("--max-snippets", type=positive_int, default=None, metavar="N",
                      help="evaluate the first N snippets only (default: all)")
    video = parser.add_argument_group("videos, folders and globs (no labels)")
    video.add_argument("--resize", type=parse_resize, default=None, metavar="HxW|W",
                       help="resize frames: HxW, or a width keeping the aspect ratio (default: the source "
                            "size)")
    video.add_argument("--stride", type=positive_int, default=1, metavar="N",
                       help="keep every N-th frame of the source (default: 1, every frame)")
    video.add_argument("--max-frames", type=positive_int, default=None, metavar="N",
                       help="the first N frames only (default: all; every frame is held in memory)")
    parser.add_argument("--warmup-frames", type=non_negative_int, default=5, metavar="N",
                        help="frames run once before timing and then discarded (default: 5)")
    parser.add_argument("--threads", type=positive_int, default=None, metavar="N",
                        help="CPU threads for torch and OpenCV (default: their own choice; recorded in the "
                             "result). On a machine shared with other jobs, 1 gives steadier timings")
    parser.add_argument("--output", default="results", metavar="DIR",
                        help="folder for the JSON results; new files are created, none is overwritten "
                             "(default: results)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.set_defaults(run=run)


def format_summary(result: dict) -> str:
    """A few lines: the headline figures of an evaluate() result."""
    c = result["config"]
    miou = result["miou"]
    lines = [
        (f"{c['segmenter']} + {c['flow']}, policy {c['policy']}, grid {c['grid']}, "
         f"overlap {c['overlap']} px, {result['snippets']} snippets at {c['frame_size']}"),
        f"mIoU {100 * miou:.2f}%" if miou is not None else "mIoU n/a (no class present)",
        (f"fps {result['fps']:.2f} ({result['ms_per_frame']:.1f} ms/frame, pipeline time only, "
        f"{result['machine']['torch_threads']} torch threads)"),
        (f"regions: {100 * result['seg_share']:.1f}% seg, {100 * result['warp_share']:.1f}% warp; "
        f"workload saved {100 * result['warp_share']:.1f}%"),
    ]
    return "\n".join(lines)


def _percent(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.1f}%"


def format_video_summary(result: dict) -> str:
    """A few lines: the headline figures of an evaluate_video() result."""
    c = result["config"]
    consistency = result["temporal_consistency"]
    return "\n".join([
        (f"{c['data']}: {result['frames']} frames at {c['frame_size']}; {c['segmenter']} + {c['flow']}, "
         f"policy {c['policy']}, grid {c['grid']}, overlap {c['overlap']} px"),
        (f"agreement with per-frame output {_percent(result['pixel_agreement'])} of pixels (worst frame "
         f"{_percent(result['pixel_agreement_min'])}), "
         f"mIoU against it {_percent(result['miou_vs_per_frame'])}"),
        (f"temporal consistency {_percent(consistency['dvsnet'])} "
         f"(per-frame {_percent(consistency['per_frame'])}); "
         f"flicker ceiling {_percent(result['flicker_ceiling'])}"),
        (f"fps {result['fps']:.2f} vs per-frame {result['fps_per_frame']:.2f}: {result['speedup']:.2f}x "
         f"(pipeline time only, {result['machine']['torch_threads']} torch threads); "
         f"{_percent(result['seg_share'])} of regions segmented"),
    ])


def _flags(flags: list[str]) -> str:
    return f"{', '.join(flags)} {'applies' if len(flags) == 1 else 'apply'}"


def _refuse_options_of_the_other_kind(args: argparse.Namespace, trees: list[bool]) -> None:
    given = {"--split": args.split is not None, "--all-frames": args.all_frames,
             "--max-snippets": args.max_snippets is not None, "--resize": args.resize is not None,
             "--stride": args.stride != 1, "--max-frames": args.max_frames is not None}
    if not all(trees):
        misplaced = [flag for flag in TREE_ONLY if given[flag]]
        require(not misplaced, f"{_flags(misplaced)} to Cityscapes-layout trees only, not to videos, "
                               "folders of frames or globs")
    if any(trees):
        misplaced = [flag for flag in VIDEO_ONLY if given[flag]]
        require(not misplaced, f"{_flags(misplaced)} to videos, folders of frames and globs only, not to "
                               "Cityscapes-layout trees")


def _video_stem(source: str, config: dict) -> str:
    name = "glob" if is_glob(source) else Path(source.rstrip("/\\")).stem
    return slug(f"evaluate-{name}-{Path(config['segmenter']).stem}-{config['flow']}-{config['policy']}-"
                f"{config['grid']}")


def run(args: argparse.Namespace) -> int:
    from dvsnet.data.video import probe
    from dvsnet.evaluate import evaluate, evaluate_video, is_cityscapes_tree
    from dvsnet.provenance import set_threads

    trees = [is_cityscapes_tree(source) for source in args.data]
    for source, tree in zip(args.data, trees):
        require(tree or os.path.exists(source) or is_glob(source), f"source {source} does not exist")
    _refuse_options_of_the_other_kind(args, trees)
    output = Path(args.output)
    blocker = next((p for p in (output, *output.parents) if p.exists()), None)
    require(blocker is None or (blocker.is_dir() and os.access(blocker, os.W_OK)),
            f"cannot write the result into {args.output}: {blocker} is not a writable folder")
    config = pipeline_config(args)
    for source, tree in zip(args.data, trees):
        if tree:
            continue
        try:
            probe(source)  # every source checked (exists, decodes) before the first one is evaluated
        except DvsnetError as exc:
            if not os.path.isdir(source):
                raise
            raise DvsnetError(f"{exc}; nor is it a Cityscapes-layout tree "
                              "(no leftImg8bit_sequence/)") from None
    set_threads(args.threads)
    from dvsnet.flow_mv import plan_motion

    base = config
    for source, tree in zip(args.data, trees):
        flow, motion = plan_motion(base.flow, source, args.flow_fallback,
                                   note=lambda line: print(line, file=sys.stderr))
        config = base.replace(flow=flow) if flow is not base.flow else base
        if tree:
            result = evaluate(source, config, split=args.split or "val", all_frames=args.all_frames,
                              max_snippets=args.max_snippets, warmup_frames=args.warmup_frames,
                              progress=not args.no_progress)
            c = result["config"]
            stem = slug(f"evaluate-{Path(c['segmenter']).stem}-{c['flow']}-{c['policy']}-{c['grid']}")
            summary = format_summary(result)
        else:
            result = evaluate_video(source, config, resize=args.resize, stride=args.stride,
                                    max_frames=args.max_frames, warmup_frames=args.warmup_frames,
                                    progress=not args.no_progress, motion=motion)
            stem, summary = _video_stem(source, result["config"]), format_video_summary(result)
        try:
            path = write_json_new(output, stem, result)
        except OSError as exc:
            require(False, f"cannot write the result into {args.output}: {exc.strerror or exc}")
        print(summary)
        print(f"result: {path}")
    return 0
