"""Regenerate benchmarks/REPORT.md and its plots: our figures beside the paper's, claim by claim.

    PYTHONPATH=src .venv/bin/python benchmarks/report.py --data data/synth --max-snippets 10

runs (or resumes) the sweep into results/sweep (dvsnet.sweep: rows already done are not redone), then
writes benchmarks/REPORT.md and benchmarks/report/*.png from results/sweep/sweep.csv. With --check-snippets
N it also runs (or resumes) a check into results/sweep-check on N snippets (dvsnet.claims.check_configs),
whose Table 1 and Fig. 9 verdicts stand where they differ; with --no-run it only reads the CSVs that exist.
What each claim's section states comes from dvsnet.claims and dvsnet.experiments; this file writes the
report around them.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import sys
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "src"))  # run from a checkout without installing

from dvsnet import claims
from dvsnet import experiments as ex
from dvsnet.atomic import write_json_atomic, write_text_atomic
from dvsnet.claims import GRID, Lines, md_table, pct, table1_lines
from dvsnet.config import default_overlap, parse_grid
from dvsnet.errors import DvsnetError
from dvsnet.pipeline import STAGES
from dvsnet.plots import draw_figures
from dvsnet.provenance import set_threads
from dvsnet.runner import WARMUP_FRAMES
from dvsnet.sweep import SweepConfig, run_sweep

# sections other benchmarks write into benchmarks/report/ (each with its command and machine), in order
BENCH_SECTIONS = (
    ("backends.md", "Backends and precisions (benchmarks/bench_backends.py)"),
    ("backends-no-bf16.md", "The default on a CPU without native bf16 (benchmarks/bench_backends.py)"),
    ("real_clips.md", ("Real clips without labels: the defaults against fixed schedules "
                       "(benchmarks/bench_real_clips.py)")),
    ("calibrate.md", ("Real clips: a decision network calibrated without labels "
                      "(benchmarks/bench_calibrate.py)")),
    ("mv.md", "Flow from the codec: `--flow mv` against DIS (benchmarks/bench_mv.py)"),
    ("adaptive.md", ("Adaptive scheduling: online self-calibration against fixed schedules and the oracle "
                     "(benchmarks/bench_headroom.py)")),
    ("live.md", "Live video: a 25 fps stream over UDP in real time (benchmarks/bench_live.py)"),
)


def reference_text(reference: dict[str, dict[str, float]]) -> str:
    """One sentence per segmenter: its per-frame reference timings over the run."""
    return " ".join(
        f"`{seg}` per-frame reference: median {st['median']:.2f} fps over {st['count']} timings (range "
        f"{st['min']:.2f}–{st['max']:.2f}, ±{50 * (st['max'] - st['min']) / st['median']:.0f}% around it; "
        f"first half of the run {st['first_half']:.2f}, second half {st['second_half']:.2f})."
        for seg, st in reference.items())


def header_section(rows, sweep_dir: Path, command: str, reference, gpu: dict | None) -> Lines:
    """Title, setup, the GPU paragraph and the timing noise."""
    setup, first = claims.run_setup(rows, sweep_dir), rows[0]
    machine, loads = setup.machine, setup.loads
    parallel = (f" Rows ran up to {setup.jobs} at a time (`--jobs`), each in its own process: a row and its "
                "reference share the cores with the other rows in flight.") if setup.jobs > 1 else ""
    timed, own = (("interleaved frame by frame with each row on its snippets, dvsnet.runner",
                   "its own reference, timed on the same frames interleaved with it")
                  if setup.interleaved else
                  ("first 10 frames of the first snippet, timed in the same worker just before each row",
                   "its own 10-frame reference"))
    return [
        "# DVSNet reproduction report", "",
        (f"Generated {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC by `{command}` from "
         f"`{sweep_dir / 'sweep.csv'}` ({len(rows)} rows, finished {setup.finished[0]} .. "
         f"{setup.finished[-1]})."), "",
        (f"**Setup.** Data: `{first.data}`, split val, first {first.snippets} snippets "
         f"({first.frames // first.snippets} frames each evaluated, frame size {first.frame_size}), paper "
         "protocol (docs/design.md §5): frame 0 key, "
         "frames 0..19 in order, frame 19 scored. fps = frames / time inside `DVSNet.step` (frames decoded "
         f"beforehand; warm-up frames excluded). Machine: {machine.get('cpu', '?')}, "
         f"{machine.get('usable_cores', '?')} usable cores, {machine.get('torch_threads', '?')} torch / "
         f"{machine.get('opencv_threads', '?')} OpenCV threads, CPU only, shared with other jobs (1-min load "
         f"average during the rows: {f'{min(loads):.1f}–{max(loads):.1f}' if loads else '?'}). Speed-up = a "
         "row's fps / the run's per-frame reference for its segmenter: the median of the `ref_fps` timings "
         f"(policy `always`, 1x1, {timed}) over the whole run. mIoU drops are against the per-frame "
         "baseline row. "
         f"Default regions: {GRID} grid, {default_overlap(first.width)} px overlap (64 px at 2048 px width, "
         f"scaled).{parallel}"), "",
        *gpu_text(gpu),
        ("**Timing noise.** Other jobs ran on the same 2 cores during the sweep. " + reference_text(reference)
         + " A row's fps averages all its frames, so its ratio to that median does not carry the scatter of "
         f"{own} (its ratio to that one is the `own ref` column of the last table). The "
         "per-frame baseline row's speed-up (ideally 1.00×, see Table 1) shows what is left; mIoU is "
         "unaffected by load."), "",
    ]


def gpu_text(gpu: dict | None) -> Lines:
    """The report's GPU paragraph: bench_gpu.py's table when it ran on a CUDA GPU, else why there is none."""
    if not gpu or gpu.get("device_type") != "cuda":
        return [("**GPU.** No GPU was lent to this task, so the GPU fps at 512×1024 and 1024×2048 (issue #5 "
                 "item 4) was not measured; every figure here is from the 2-core CPU."), ""]
    lines = [(f"**GPU.** `benchmarks/bench_gpu.py` on {gpu['device']} ({gpu['finished_utc']}): "
              f"`{gpu['segmenter']}` + {gpu['flow']} flow (DIS on the CPU), {gpu['clips']} synthetic clips "
              f"of {gpu['frames']} frames rendered at each size, {gpu['warmup']} warm-up frames; "
              "fps = frames / time "
              "in `DVSNet.step`; speed only (no labels at these sizes; the DN was trained at 256×512)."), "",
             "| size | configuration | fps | speed-up vs per-frame | regions segmented |",
             "|---|---|---|---|---|"]
    lines += [f"| {r['size']} | `{r['config']}` | {r['fps']:.1f} | {r['speedup']:.2f}× "
              f"| {100 * r['seg_share']:.1f}% |"
              for r in gpu["rows"]]
    return [*lines, ""]


def check_section(check_rows, config: SweepConfig, check_dir: Path | None, ov: int,
                  main_snippets: int) -> tuple[Lines, Lines]:
    """The check run's section (more snippets, first segmenter and flow): Table 1 and, where its rows hold
    other policies, Fig. 9's verdicts. Returns the text and the verdict lines."""
    (check_rows, reference), seg0, flow0 = (ex.pool_reference(check_rows), config.segmenters[0],
                                            config.flows[0])
    n = check_rows[0].snippets
    table = claims.table1(check_rows, (seg0,), (flow0,), config.curve_grids, ov)
    t1, verdicts = table1_lines(table), claims.table1_verdicts(table)
    dn = [r for r in check_rows if r.policy_kind == "dn"]
    pol = ex.policy_curves(check_rows, seg0, flow0, ov)
    others = [k for k in ("fixed", "diff", "flow", "oracle") if pol[k]]
    text = [f"## Checked on {n} snippets", "",
            (f"Only frame 19 of each snippet is scored, so at {main_snippets} snippets one snippet's key "
             "decision moves a row by a few points, and a verdict at the edge of a target can be luck. The "
             f"per-frame baseline and the dn curves of ({seg0}, {flow0}) on "
             f"{', '.join(sorted({r.grid for r in dn}))} "
             f"at thresholds {', '.join(f'{t:g}' for t in sorted({r.policy_value for r in dn}))} (not every "
             "threshold on every grid)"
             + (f", and the {', '.join(others)} curves on {GRID}," if others else "")
             + f" were re-run on the first {n} val snippets"
             + (f" (`{check_dir / 'sweep.csv'}`)" if check_dir else "")
             + ", same protocol and picking rule, speed-ups against this run's own pooled per-frame "
             "reference. " + reference_text(reference) + " These verdicts stand where they differ from "
             "the ones above."), ""]
    if t1:
        text += ["### Table 1", "", md_table([f"ours, {n} snippets", "policy", "grid", "mIoU %", "fps",
                                              "speed-up", "drop (pts)", "workload saved"], t1), ""]
    text += verdicts + [""]
    lines = claims.policy_verdicts(pol)
    if others:
        rows9 = [[r.policy, pct(r.miou), f"{r.fps:.2f}", f"{r.speedup:.2f}×", f"{100 * r.seg_share:.1f}%"]
                 for k in ("dn", "fixed", "diff", "flow")
                 for r in sorted(pol[k], key=lambda r: r.policy_value)]
        text += [f"### Fig. 9 policies on {GRID}", "",
                 md_table(["policy", "mIoU %", "fps", "speed-up", "regions segmented"], rows9), "", *lines,
                 ""]
    return text, verdicts + lines


def time_section(rows, seg0: str, flow0: str, ov: int) -> Lines:
    """Mean ms per frame of each stage along the dn curve."""
    stage_rows = [[r.policy, f"{r.ms_per_frame:.1f}"]
                  + [f"{getattr(r, s + '_ms'):.1f}" if getattr(r, s + "_ms") is not None else "–"
                     for s in STAGES]
                  for r in sorted(ex.policy_curves(rows, seg0, flow0, ov)["dn"],
                                  key=lambda r: r.policy_value)]
    if not stage_rows:
        return []
    return ["## Where the time goes (ms per frame, dn rows)", "",
            md_table(["policy", "total", *STAGES], stage_rows), ""]


def per_class_section(rows, seg0: str, sweep_dir: Path, seg0_points) -> Lines:
    """IoU per class of the per-frame row and the operating points, from the rows' JSON files."""
    columns, ious = claims.class_ious(rows, seg0, sweep_dir, seg0_points)
    classes = [c for c in ious.get("per-frame", {}) if ious["per-frame"][c] is not None]
    if not classes or len(ious) == 1:
        return []
    return ["## IoU per class (%): per-frame vs the operating points", "",
            md_table(["class"] + [f"{n} ({r.policy}, {r.grid})" for n, r in columns if n in ious],
                     [[c] + [pct(ious[n][c]) for n, _ in columns if n in ious] for c in classes]), ""]


def all_rows_section(rows) -> Lines:
    return ["## All rows", "", "From `sweep.csv`, in the order they were measured.", "",
            md_table(["configuration (segmenter, flow, policy, grid, overlap px)", "mIoU %", "fps", "ref fps",
                      "speed-up", "own ref", "regions segmented", "load 1m", "finished (UTC)"],
                     [[f"`{r.key.replace('|', ' / ')}`", pct(r.miou), f"{r.fps:.2f}", f"{r.ref_fps:.2f}",
                       f"{r.speedup:.2f}×", f"{r.speedup_own_ref:.2f}×", f"{100 * r.seg_share:.1f}%",
                       "?" if r.load_1m is None else f"{r.load_1m:.1f}", str(r.finished_utc)[11:19]]
                      for r in rows]), ""]


def bench_sections(folder: Path = HERE / "report") -> Lines:
    """The sections of BENCH_SECTIONS whose benchmark has been run."""
    out: Lines = []
    for name, title in BENCH_SECTIONS:
        if (folder / name).is_file():
            out += [f"## {title}", "", *(folder / name).read_text().splitlines(), ""]
    return out


def build_report(rows, config: SweepConfig, sweep_dir: Path, figures: list[Path], command: str,
                 link_dir: str = "report", check_rows=(), check_dir: Path | None = None,
                 gpu: dict | None = None) -> str:
    """REPORT.md text from the sweep `rows`; `check_rows`, when given, are the first segmenter and flow's dn
    curves re-run on more snippets (from `check_dir`), whose Table 1 verdicts stand where the two differ;
    `gpu`, bench_gpu.py's result, when it ran on a GPU."""
    seg0, flow0 = config.segmenters[0], config.flows[0]
    rows, reference = ex.pool_reference(rows)
    ov, policy = default_overlap(rows[0].width), f"dn:{config.threshold:g}"

    def img(name: str) -> Lines:
        return [f"![{name}]({link_dir}/{name})", ""] if name in {p.name for p in figures} else []

    summary: Lines = []
    table_1, seg0_points = claims.table1_section(rows, config, ov, summary)
    out = [*header_section(rows, sweep_dir, command, reference, gpu), "## Verdicts at a glance", "",
           "SUMMARY", "",
           *table_1,
           "## Fig. 8: mIoU vs fps over the DN threshold", "", *img("fig8_tradeoff.png"),
           *claims.fig8_section(rows, config, ov),
           f"## Fig. 9: key-frame policies ({seg0}, {flow0})", "", *img("fig9_policies.png"),
           *claims.fig9_section(rows, seg0, flow0, ov, summary),
           f"## Table 3: division schemes at {policy}", "", *img("table3_division.png"),
           *claims.table3_section(rows, config, ov, summary),
           f"## Fig. 10: overlap depth at {policy}, 2x2", "", *img("fig10_overlap.png"),
           *claims.fig10_section(rows, config, summary)]
    if check_rows:
        check_text, check_verdicts = check_section(check_rows, config, check_dir, ov, rows[0].snippets)
        out += check_text
        summary[:0] = [(f"- Checked on {check_rows[0].snippets} snippets (these verdicts stand where they "
                        f"differ from the {rows[0].snippets}-snippet ones after them):"),
                       *("  " + line for line in check_verdicts),
                       f"- On {rows[0].snippets} snippets, the whole experiment grid:"]
    out += [*time_section(rows, seg0, flow0, ov), *per_class_section(rows, seg0, sweep_dir, seg0_points),
            *all_rows_section(rows), *bench_sections(), "## Figures", "",
            *(f"- `{link_dir}/{p.name}`" for p in figures), ""]
    at = out.index("SUMMARY")
    out[at:at + 1] = summary or ["Nothing measured yet."]
    return "\n".join(out)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add = parser.add_argument
    add("--data", default="data/synth", help="Cityscapes-layout tree (default: data/synth)")
    add("--sweep", default="results/sweep", help="sweep folder (default: results/sweep)")
    add("--max-snippets", type=int, default=10, help="val snippets per row (default: 10)")
    add("--segmenters", default="fast,accurate")
    add("--flows", default="dis,flownet")
    add("--experiments", default="abcde")
    add("--curve-grids", default="1x1",
        help="grids that also get the dn curve of the first segmenter and flow, besides 2x2; '' for none "
             "(default: 1x1)")
    add("--threads", type=int, default=1,
        help="torch and OpenCV threads for the sweep (default: 1, steadier on a shared machine)")
    add("--jobs", type=int, default=1,
        help="sweep rows evaluated at once, each in its own process with --threads threads (default: 1; "
             "see dvsnet sweep --jobs)")
    add("--warmup-frames", type=int, default=WARMUP_FRAMES,
        help=f"frames run before each row and discarded (default: {WARMUP_FRAMES}, dvsnet.runner's)")
    add("--check-snippets", type=int, default=0,
        help="also re-run, on this many snippets, the first segmenter and flow's per-frame baseline, dn "
             "curves (2x2 and --curve-grids, at --check-thresholds) and fixed/diff/flow curves (2x2), and "
             "report Table 1 and Fig. 9's verdicts from them too (default: 0, no check)")
    add("--check-sweep", default="results/sweep-check",
        help="sweep folder of the check (default: results/sweep-check)")
    add("--check-thresholds", default=",".join(f"{t:g}" for t in claims.CHECK_THRESHOLDS),
        help="DN thresholds of the check (default: around the operating points)")
    add("--gpu-sizes", default="512x1024,1024x2048",
        help="frame sizes of the GPU fps table, measured when torch sees a CUDA GPU "
             "(default: 512x1024,1024x2048)")
    add("--gpu-json", default="results/bench_gpu.json",
        help="bench_gpu.py's result: written on a GPU, read for the report (default: results/bench_gpu.json)")
    add("--backend", default="torch", choices=("auto", "torch", "onnxruntime"),
        help="what runs the segmenters (default: torch, with fp32: the eager PyTorch REPORT.md's figures "
             "came from)")
    add("--precision", default="fp32", choices=("auto", "fp32", "bf16", "int8"), help="(default: fp32)")
    add("--no-run", action="store_true", help="only read the existing sweep.csv (and the check's)")
    add("--report", default=str(HERE / "REPORT.md"), help="report file (default: benchmarks/REPORT.md)")
    add("--plots", default=str(HERE / "report"), help="PNG folder (default: benchmarks/report)")
    return parser.parse_args(argv)


def run(args: argparse.Namespace, config: SweepConfig) -> None:
    """The sweep, the check's sweeps (dvsnet.claims.check_configs) and, on a GPU, bench_gpu.py."""
    set_threads(args.threads)
    checks = claims.check_configs(config, tuple(float(t) for t in args.check_thresholds.split(",")))
    for folder, sweep_config, snippets in ((args.sweep, config, args.max_snippets),
                                           *((args.check_sweep, c, args.check_snippets) for c in checks
                                             if args.check_snippets > 0)):
        run_sweep(args.data, folder, config=sweep_config, max_snippets=snippets,
                  warmup_frames=args.warmup_frames, jobs=args.jobs)
    if torch.cuda.is_available():
        sys.path.insert(0, str(HERE))
        from bench_gpu import measure

        try:
            sizes = tuple(parse_grid(s) for s in args.gpu_sizes.split(","))
            write_json_atomic(args.gpu_json, measure("cuda", sizes))
        except DvsnetError as exc:  # the sweep's rows are saved; the report goes on without a GPU table
            print(f"report: GPU fps not measured: {exc}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    config = SweepConfig(segmenters=tuple(args.segmenters.split(",")), flows=tuple(args.flows.split(",")),
                         curve_grids=tuple(parse_grid(g) for g in args.curve_grids.split(",") if g.strip()),
                         experiments=args.experiments, backend=args.backend, precision=args.precision)
    if not args.no_run:
        run(args, config)
    sweep_dir, check_dir, gpu_json = Path(args.sweep), Path(args.check_sweep), Path(args.gpu_json)
    gpu = json.loads(gpu_json.read_text()) if gpu_json.is_file() else None
    check_rows = ex.read_rows(check_dir / "sweep.csv") if args.check_snippets > 0 else []
    rows = ex.read_rows(sweep_dir / "sweep.csv")
    if not rows:
        print(f"no rows in {sweep_dir / 'sweep.csv'}; nothing to report", file=sys.stderr)
        return 1
    plots_dir, report = Path(args.plots), Path(args.report)
    figures = draw_figures(rows, plots_dir, segmenter=config.segmenters[0], flow=config.flows[0],
                           threshold=config.threshold, curve_grids=config.curve_grids)
    command = "python benchmarks/report.py " + " ".join(argv if argv is not None else sys.argv[1:])
    link_dir = os.path.relpath(plots_dir.resolve(), report.resolve().parent)
    write_text_atomic(report, build_report(rows, config, sweep_dir, figures, command.strip(), link_dir,
                                           check_rows, check_dir, gpu))
    print(f"wrote {report} and {len(figures)} plots in {plots_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
