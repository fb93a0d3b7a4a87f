"""`dvsnet calibrate SOURCE...`: a decision network for your segmenter and flow, from your unlabelled video
(dvsnet.calibrate)."""
from __future__ import annotations

import argparse
from pathlib import Path

from dvsnet.cli.options import add_pipeline_options, parse_resize, pipeline_config, positive_int
from dvsnet.provenance import set_threads

EPILOG = """examples:
  dvsnet calibrate clips/*.mp4 --out calib/dn.safetensors          # fast + DIS, 2x2 regions
  dvsnet calibrate drive.mp4 --segmenter model.onnx --grid 1x2 --out calib/dn.safetensors --max-frames 600
  dvsnet segment drive.mp4 --segmenter model.onnx --grid 1x2 --dn calib/dn.safetensors --policy dn:0.9

It prints the thresholds that stay within 5 % and 10 % of per-frame output on the held-out clips and writes
calibration.json (the table per threshold) and calibration.png beside the weights. Re-running the same
command after an interruption reuses the samples already computed (--cache).
"""


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number in (0, 1), got {text!r}") from None
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"expected a number in (0, 1), got {text!r}")
    return value


def _thresholds(text: str) -> tuple[float, ...]:
    try:
        values = tuple(float(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None
    if not values or not all(0 <= v <= 1 for v in values):
        raise argparse.ArgumentTypeError(f"thresholds must be in [0, 1], got {text!r}")
    return values


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    from dvsnet.calibrate import MAX_OFFSET, THRESHOLDS

    parser = subparsers.add_parser(
        "calibrate", help="train a decision network for your segmenter on your unlabelled video",
        description="Calibrate DVSNet's decision network on your own videos, without labels: its target "
                    "(paper Eq. 1) is the agreement between a warped key segmentation and the segmenter's "
                    "own output. Part of the clips is held out to measure, per threshold, the agreement "
                    "with per-frame output and the speed-up.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("sources", nargs="+", metavar="SOURCE",
                        help="videos, frame folders or quoted globs; with two or more, the last quarter of "
                             "them is held out, with one, the last quarter of its frames")
    parser.add_argument("--out", required=True, metavar="FILE.safetensors",
                        help="where the decision network goes; calibration.json and calibration.png are "
                             "written beside it (nothing existing is overwritten)")
    add_pipeline_options(parser, policy=None)
    group = parser.add_argument_group("calibration")
    group.add_argument("--max-offset", type=positive_int, default=MAX_OFFSET, metavar="N",
                       help=f"key ages sampled: 1..N frames (default: {MAX_OFFSET}, the paper's)")
    group.add_argument("--holdout", type=_fraction, default=0.25, metavar="F",
                       help="share of the sources (or of a single source's frames) held out (default: 0.25)")
    group.add_argument("--held-out", nargs="+", default=(), metavar="SOURCE",
                       help="hold out these sources instead (then every SOURCE is trained on)")
    group.add_argument("--steps", type=positive_int, default=1500, metavar="N",
                       help="training steps of the decision network (default: 1500)")
    group.add_argument("--thresholds", type=_thresholds, default=THRESHOLDS, metavar="LIST",
                       help="thresholds measured on the held-out clips (default: "
                            + ",".join(f"{t:g}" for t in THRESHOLDS) + ")")
    group.add_argument("--cache", default=None, metavar="DIR",
                       help="where samples are cached for resuming (default: ~/.cache/dvsnet/calibrate)")
    group.add_argument("--resize", type=parse_resize, default=None, metavar="HxW|W",
                       help="resize frames first, as you will when segmenting (default: source size)")
    group.add_argument("--stride", type=positive_int, default=1, metavar="N", help="keep every N-th frame")
    group.add_argument("--max-frames", type=positive_int, default=None, metavar="N",
                       help="read at most N frames of each source (default: all)")
    group.add_argument("--threads", type=positive_int, default=None, metavar="N",
                       help="CPU threads for torch and OpenCV (default: their own choice)")
    group.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from dvsnet.calibrate import CalibrationConfig, calibrate

    set_threads(args.threads)
    config = CalibrationConfig(
        sources=tuple(args.sources), held_out=tuple(args.held_out), pipeline=pipeline_config(args),
        max_offset=args.max_offset, holdout=args.holdout, steps=args.steps, thresholds=args.thresholds,
        resize=args.resize,
        stride=args.stride, max_frames=args.max_frames, cache=args.cache)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    calibrate(config, args.out, progress=not args.no_progress)
    return 0
