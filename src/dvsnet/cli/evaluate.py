"""`dvsnet evaluate DATA`: mIoU and fps of one configuration with the paper's protocol (dvsnet.evaluate)."""
from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from dvsnet.atomic import slug, write_json_new
from dvsnet.cli.options import add_pipeline_options, non_negative_int, pipeline_config, positive_int, require

EPILOG = """examples:
  dvsnet evaluate data/synth                                   # dn:0.92, fast + DIS, 2x2 regions
  dvsnet evaluate data/synth --policy always --grid 1x1        # the per-frame baseline
  dvsnet evaluate data/synth --policy fixed:5 --max-snippets 10 --all-frames
  dvsnet evaluate /data/cityscapes --split val --segmenter accurate --policy dn:0.83
"""


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "evaluate", help="accuracy (mIoU) and speed (fps) of a configuration on a Cityscapes-layout split",
        description="Evaluate with the paper's protocol (docs/design.md §5): per snippet, frame 0 is the key "
                    "frame, frames 0..19 run in order, frame 19 is scored against its labels. fps counts "
                    "pipeline time only (frames are decoded before timing; warm-up excluded). Writes a "
                    "JSON result (mIoU, per-class IoU, fps, path shares, workload saved, config, versions, "
                    "machine) and prints a summary.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("data", metavar="DATA",
                        help="root of a Cityscapes-layout tree (leftImg8bit_sequence/ and gtFine/), e.g. "
                             "data/synth or a real Cityscapes folder")
    parser.add_argument("--split", default="val", help="split folder to evaluate (default: val)")
    add_pipeline_options(parser)
    parser.add_argument("--all-frames", action="store_true",
                        help="score every frame 0..19 instead of frame 19 only (needs labels on every "
                             "frame, as the synthetic set has)")
    parser.add_argument("--max-snippets", type=positive_int, default=None, metavar="N",
                        help="evaluate the first N snippets only (default: all)")
    parser.add_argument("--warmup-frames", type=non_negative_int, default=5, metavar="N",
                        help="frames run once before timing and then discarded (default: 5)")
    parser.add_argument("--threads", type=positive_int, default=None, metavar="N",
                        help="CPU threads for torch and OpenCV (default: their own choice; recorded in the result). "
                             "On a machine shared with other jobs, 1 gives steadier timings")
    parser.add_argument("--output", default="results", metavar="DIR",
                        help="folder for the JSON result; a new file is created, none is overwritten "
                             "(default: results)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.set_defaults(run=run)


def format_summary(result: dict) -> str:
    """A few lines: the headline figures of an evaluate() result."""
    c = result["config"]
    miou = result["miou"]
    lines = [
        (f"{c['segmenter']} + {c['flow']}, policy {c['policy']}, grid {c['grid']}, overlap {c['overlap']} px, "
        f"{result['snippets']} snippets at {c['frame_size']}"),
        f"mIoU {100 * miou:.2f}%" if miou is not None else "mIoU n/a (no class present)",
        (f"fps {result['fps']:.2f} ({result['ms_per_frame']:.1f} ms/frame, pipeline time only, "
        f"{result['machine']['torch_threads']} torch threads)"),
        (f"regions: {100 * result['seg_share']:.1f}% seg, {100 * result['warp_share']:.1f}% warp; "
        f"workload saved {100 * result['workload_saved']:.1f}%"),
    ]
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    from dvsnet.evaluate import evaluate
    from dvsnet.provenance import set_threads

    require(Path(args.data).is_dir(), f"data folder {args.data} does not exist")
    output = Path(args.output)
    blocker = next((p for p in (output, *output.parents) if p.exists()), None)
    require(blocker is None or (blocker.is_dir() and os.access(blocker, os.W_OK)),
            f"cannot write the result into {args.output}: {blocker} is not a writable folder")
    set_threads(args.threads)
    result = evaluate(args.data, pipeline_config(args), split=args.split, all_frames=args.all_frames,
                      max_snippets=args.max_snippets, warmup_frames=args.warmup_frames,
                      progress=not args.no_progress)
    c = result["config"]
    stem = slug(f"evaluate-{Path(c['segmenter']).stem}-{c['flow']}-{c['policy']}-{c['grid']}")
    try:
        path = write_json_new(Path(args.output), stem, result)
    except OSError as exc:
        require(False, f"cannot write the result into {args.output}: {exc.strerror or exc}")
    print(format_summary(result))
    print(f"result: {path}")
    return 0
