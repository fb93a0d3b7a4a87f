"""`dvsnet sweep DATA`: the paper's experiments (dvsnet.sweep) to a resumable CSV plus PNG plots."""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from dvsnet.cli.options import add_backend_options, non_negative_int, parse_grid, positive_int, require

EPILOG = """examples:
  dvsnet sweep data/synth --max-snippets 10                       # every experiment, 10 val snippets
  dvsnet sweep data/synth --experiments eb --output results/policies
  dvsnet sweep data/synth --segmenters fast --flows dis --thresholds 0.8,0.9,0.95
  dvsnet sweep data/synth --experiments a --curve-grids 1x1,1x2    # dn curves on 2x2, 1x1 and 1x2
  dvsnet sweep data/synth --plots-only                            # redraw the PNGs from sweep.csv

Run it again with the same options to resume: rows already in sweep.csv are not redone.
"""


def _floats(text: str) -> tuple[float, ...]:
    try:
        return tuple(float(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None


def _ints(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated whole numbers, got {text!r}") from None
    if any(v < 0 for v in values):
        raise argparse.ArgumentTypeError(f"expected numbers >= 0, got {text!r}")
    return values


def _names(text: str) -> tuple[str, ...]:
    return tuple(x.strip() for x in text.split(",") if x.strip())


def _grids(text: str) -> tuple[tuple[int, int], ...]:
    return tuple(parse_grid(x) for x in text.split(",") if x.strip())


def _show(values: tuple) -> str:
    """Defaults for --help: 0.9,0.92 or 2x2,3x3."""
    from dvsnet.config import format_grid

    return ",".join(format_grid(v) if isinstance(v, tuple) else f"{v:g}" for v in values)


def add_parser(subparsers: Any) -> None:
    from dvsnet.sweep import SweepConfig

    d = SweepConfig()
    parser = subparsers.add_parser(
        "sweep", help="the paper's experiments: threshold curves, policies, division, overlap, baselines",
        description="Run the experiment grid of paper §4 on a Cityscapes-layout split with the evaluation "
                    "protocol of `dvsnet evaluate`: (a) mIoU vs fps over DN thresholds per segmenter x "
                    "flow (Fig. 8; also on --curve-grids), (b) dn vs fixed vs diff vs flow vs oracle "
                    "policies (Fig. 9), (c) division schemes (Table 3), (d) overlap depth (Fig. 10), (e) "
                    "per-frame baselines (Table 1). One CSV row per configuration, written as each "
                    "finishes; plots as PNG.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("data", metavar="DATA", help="root of a Cityscapes-layout tree, e.g. data/synth")
    parser.add_argument("--split", default="val", help="split to evaluate (default: val)")
    parser.add_argument("--output", default="results/sweep", metavar="DIR",
                        help="folder for sweep.csv, rows/*.json and the PNGs (default: results/sweep)")
    parser.add_argument("--experiments", default=d.experiments, metavar="LETTERS",
                        help=f"which experiments to run, any of a b c d e (default: {d.experiments})")
    parser.add_argument("--max-snippets", type=positive_int, default=None, metavar="N",
                        help="evaluate the first N snippets of the split (default: all)")
    parser.add_argument("--segmenters", type=_names, default=d.segmenters, metavar="LIST",
                        help="segmenters, names or weights files; the first one is used by b, c, d "
                             f"(default: {','.join(d.segmenters)})")
    parser.add_argument("--flows", type=_names, default=d.flows, metavar="LIST",
                        help="flow estimators; the first one is used by b, c, d "
                             f"(default: {','.join(d.flows)})")
    parser.add_argument("--thresholds", type=_floats, default=d.thresholds, metavar="LIST",
                        help=f"DN thresholds of the dn curves (default: {_show(d.thresholds)})")
    parser.add_argument("--fixed", type=_ints, default=d.fixed, metavar="LIST",
                        help=f"key-frame intervals of the fixed (DFF) curve (default: {_show(d.fixed)})")
    parser.add_argument("--diff", type=_floats, default=d.diff, metavar="LIST",
                        help=f"grey-level limits of the diff curve, 0..255 (default: {_show(d.diff)})")
    parser.add_argument("--flow-limits", type=_floats, default=d.flow_limits, metavar="LIST",
                        help="mean flow magnitude limits in px of the flow curve "
                             f"(default: {_show(d.flow_limits)})")
    parser.add_argument("--oracle", type=_floats, default=d.oracle, metavar="LIST",
                        help=f"thresholds of the oracle curve (default: {_show(d.oracle)})")
    parser.add_argument("--grids", type=_grids, default=d.grids, metavar="LIST",
                        help=f"division schemes of experiment c (default: {_show(d.grids)})")
    parser.add_argument("--curve-grids", type=_grids, default=d.curve_grids, metavar="LIST",
                        help="grids on which experiment a also runs the dn threshold curve of the first "
                             "segmenter and flow, besides the default 2x2; '' for none "
                             f"(default: {_show(d.curve_grids)})")
    parser.add_argument("--overlaps", type=_ints, default=d.overlaps, metavar="LIST",
                        help=f"overlap depths in px of experiment d (default: {_show(d.overlaps)})")
    parser.add_argument("--threshold", type=float, default=d.threshold, metavar="T",
                        help=f"DN threshold of experiments c and d (default: {d.threshold:g})")
    parser.add_argument("--warmup-frames", type=non_negative_int, default=5, metavar="N",
                        help="frames run before each timing and discarded (default: 5)")
    parser.add_argument("--threads", type=positive_int, default=None, metavar="N",
                        help="CPU threads for torch and OpenCV (default: their own choice; recorded per "
                             "row). On a machine shared with other jobs, 1 gives steadier timings")
    parser.add_argument("--jobs", type=positive_int, default=1, metavar="N",
                        help="rows evaluated at once, each in its own process with --threads threads "
                             "(default: 1). Each row's speed-up still compares two timings of one worker, "
                             "but the workers share cores and memory bandwidth: keep jobs x threads <= the "
                             "cores")
    add_backend_options(parser)
    parser.add_argument("--plots-only", action="store_true",
                        help="do not evaluate anything: redraw the PNGs from an existing sweep.csv")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from dvsnet.experiments import read_rows
    from dvsnet.plots import draw_figures
    from dvsnet.provenance import set_threads
    from dvsnet.sweep import CSV_NAME, EXPERIMENTS, SweepConfig, run_sweep

    output = Path(args.output)
    unknown = sorted(set(args.experiments) - set(EXPERIMENTS))
    require(not unknown, f"unknown experiment(s) {''.join(unknown)}; valid: {EXPERIMENTS}")
    require(0.0 <= args.threshold <= 1.0, f"--threshold must be in [0, 1], got {args.threshold:g}")
    require(all(0.0 <= t <= 1.0 for t in args.thresholds + args.oracle),
            "--thresholds and --oracle values must be in [0, 1]")
    require(all(n >= 1 for n in args.fixed), "--fixed intervals must be >= 1 frame")
    require(args.segmenters and args.flows, "--segmenters and --flows each need at least one name")
    require("mv" not in args.flows, "--flows mv needs video files with motion vectors; the sweep evaluates "
            "Cityscapes-layout frame trees (benchmarks/bench_mv.py encodes them to H.264 first)")
    config = SweepConfig(
        segmenters=args.segmenters, flows=args.flows, thresholds=args.thresholds, fixed=args.fixed,
        diff=args.diff, flow_limits=args.flow_limits, oracle=args.oracle, grids=args.grids,
        curve_grids=args.curve_grids, overlaps=args.overlaps, threshold=args.threshold,
        experiments=args.experiments, backend=args.backend, precision=args.precision,
    )
    if args.plots_only:
        require((output / CSV_NAME).exists(), f"no {CSV_NAME} in {output} to draw from")
    else:
        require(Path(args.data).is_dir(), f"data folder {args.data} does not exist")
        if args.threads:
            set_threads(args.threads)
        run_sweep(args.data, output, split=args.split, config=config, max_snippets=args.max_snippets,
                  warmup_frames=args.warmup_frames, jobs=args.jobs, progress=not args.no_progress)
    rows = read_rows(output / CSV_NAME)
    written = draw_figures(rows, output, segmenter=config.segmenters[0], flow=config.flows[0],
                           threshold=config.threshold, curve_grids=config.curve_grids)
    print(f"sweep: {len(rows)} rows in {output / CSV_NAME}; "
          f"plots: {', '.join(p.name for p in written) or 'none'}")
    return 0
