"""`dvsnet synth`: render the synthetic street-scene benchmark into a Cityscapes-layout tree."""
from __future__ import annotations

import argparse
import time

from dvsnet.cli.options import non_negative_int, parse_size, positive_int, require

# the default benchmark (README): data/synth with these splits
DEFAULT_BENCHMARK = (("train", 150, 1), ("val", 50, 2))  # (split, sequences, seed)

EPILOG = ("examples:\n"
          "  dvsnet synth data/synth --default-benchmark --workers 2     "
          "# train (150 x 30, seed 1) + val (50 x 30, seed 2)\n"
          "  dvsnet synth data/tiny --split val --sequences 2 --frames 30 --size 128x256 --seed 7\n"
          "  dvsnet synth data/flo --split train --sequences 4 --flow-format flo\n")


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "synth", help="render the synthetic street-scene video benchmark (Cityscapes layout, exact flow)",
        description="Render procedural driving video with exact labels, optical flow, occlusion and depth "
                    "into OUT in the Cityscapes sequence layout (leftImg8bit_sequence/, gtFine/) with flow/, "
                    "depth/, camera/ and manifest_<split>.json beside it.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", metavar="OUT", help="dataset root folder (created if missing)")
    parser.add_argument("--split", default=None, help="split name, e.g. train or val (default: train)")
    parser.add_argument("--sequences", type=positive_int, default=None,
                        help="number of 30-frame snippets (default: 10)")
    parser.add_argument("--frames", type=positive_int, default=30, help="frames per snippet (default: 30)")
    parser.add_argument("--size", type=parse_size, default=(256, 512), metavar="HxW",
                        help="frame size (default: 256x512)")
    parser.add_argument("--seed", type=non_negative_int, default=None,
                        help="dataset seed; same seed, same bytes (default: 0)")
    parser.add_argument("--workers", type=positive_int, default=1,
                        help="processes to render with (default: 1)")
    parser.add_argument("--flow-format", choices=("png", "flo"), default="png",
                        help="flow files: png (KITTI 16-bit, valid mask inside) or flo (Middlebury, plus "
                             "occlusion PNGs) (default: png)")
    parser.add_argument("--overwrite", action="store_true",
                        help="allow writing into a split that already has files (same names are replaced)")
    parser.add_argument("--default-benchmark", action="store_true",
                        help="build the documented benchmark in OUT: train 150 snippets seed 1, val 50 "
                             "seed 2, 30 frames, 256x512 (--split/--sequences/--seed must not be given)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from dvsnet.data.synthetic import write_dataset

    if args.default_benchmark:
        require(args.split is None and args.sequences is None and args.seed is None,
                "--default-benchmark sets --split, --sequences and --seed itself; leave them out")
        jobs = DEFAULT_BENCHMARK
    else:
        jobs = ((args.split or "train", args.sequences or 10, 0 if args.seed is None else args.seed),)
    for split, sequences, seed in jobs:
        start = time.perf_counter()
        manifest = write_dataset(args.out, split, sequences, frames=args.frames, size=args.size, seed=seed,
                                 progress=not args.quiet, workers=args.workers, overwrite=args.overwrite,
                                 flow_format=args.flow_format)
        seconds = time.perf_counter() - start
        frames = sequences * args.frames
        print(f"{split}: {sequences} snippets x {args.frames} frames at {args.size[0]}x{args.size[1]} "
              f"(seed {seed}) in {seconds:.1f} s ({frames / seconds:.1f} frames/s, {args.workers} workers); "
              f"{len(manifest['classes_present'])} classes present -> {args.out}")
    return 0
