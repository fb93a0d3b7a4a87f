"""The paper's claims checked on sweep rows: the analysis behind benchmarks/REPORT.md, which only writes it.

Each function takes the rows of a sweep (dvsnet.experiments.SweepRow, speed-ups already pooled by
experiments.pool_reference) and returns what one section of the report states, as numbers and verdicts:

    table1              Table 1: the per-frame rows and the operating points of every (segmenter, flow),
                        and the first one's verdicts against TARGETS (table1_verdicts: the lines)
    policy_comparisons  Fig. 9: the dn curve against fixed (DFF), diff and flow at equal speed-up, and the
                        oracle's headroom at equal share of regions segmented (policy_verdicts)
    threshold_curves    Fig. 8: the range of each dn curve and how often each threshold step moves as claimed
    division            Table 3: the division schemes' warp/seg ratios and mIoU (division_verdict);
                        overlap_verdict: Fig. 10
    run_setup           where and how the rows ran (machine, load, jobs, reference protocol)
    class_ious          IoU per class of the per-frame row and the operating points (rows/<key>.json)
and which rows a check on more snippets re-runs (check_configs). The `*_section` functions state each claim as
REPORT.md's section (our table beside the paper's, the verdicts); benchmarks/report.py writes the rest.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dvsnet import experiments as ex
from dvsnet.config import format_grid
from dvsnet.experiments import OperatingPoint, SweepRow
from dvsnet.sweep import SweepConfig, row_file

# The paper's figures (Xu et al., Cityscapes val, GTX 1080 Ti), quoted from its text and tables:
# (configuration, mIoU %, fps, speed-up or None)
PAPER_TABLE1 = [
    ("DeepLab-Fast per-frame", 73.5, 5.6, None),
    ("PSPNet per-frame", 77.0, 1.7, None),
    ("DeepLab-v2 per-frame", 74.8, 1.8, None),
    ("balanced (DeepLab-Fast, FlowNet2-s, t=92)", 70.4, 19.8, 3.5),
    ("balanced (PSPNet, FlowNet2-s, t=83)", 70.2, 11.5, 6.8),
    ("balanced (DeepLab-v2, FlowNet2-s, t=81)", 70.3, 8.3, 4.6),
    ("high-speed (DeepLab-Fast, FlowNet2-s, t=86)", 63.2, 30.4, 5.4),
    ("high-speed (PSPNet, FlowNet2-s, t=75)", 62.6, 30.3, 17.8),
]
PAPER_TABLE3 = {"1x1": 0.83, "1x2": 1.04, "2x2": 5.68, "3x3": 3.32, "4x4": 3.32}  # warp/seg ratio per grid
DFF_MARGIN = 1.5  # points dn must lead fixed (DFF) by at equal speed-up somewhere (Fig. 9's claim)
# the check on more snippets: where the operating points of (fast, DIS) fall on the synthetic set
# (high-speed 0.7-0.85, balanced 0.9-0.96), and on Fig. 9's dn curve also the slow end, to span the slow
# fixed/diff/flow rows
CHECK_THRESHOLDS = (0.7, 0.8, 0.85, 0.9, 0.91, 0.92, 0.93, 0.94, 0.95, 0.96)
CHECK_SLOW_THRESHOLDS = (0.97, 0.98)
GRID = format_grid(ex.DEFAULT_GRID)
Lines = list[str]


def pct(x: float | None) -> str:
    """A fraction as the report prints it: percent with two decimals, "n/a" for None."""
    return "n/a" if x is None else f"{100 * float(x):.2f}"


def verdict(ok: bool) -> str:
    return "**met**" if ok else "**missed**"


def gaps_text(gaps, scale: float = 1.0, unit: str = "×", digits: int = 1) -> str:
    """'+1.20@2.0×, -0.30@3.1×': each (x, gap in points)."""
    return ", ".join(f"{g:+.2f}@{scale * a:.{digits}f}{unit}" for a, g in gaps)


@dataclass(frozen=True)
class Table1Line:
    """One row of Table 1: its name, the sweep row and its mIoU drop in points (None for a per-frame row)."""

    name: str
    row: SweepRow
    drop: float | None


@dataclass(frozen=True)
class ModeVerdict:
    """The first segmenter and flow's verdict for one mode (TARGETS): the point picked across the grids,
    the most accurate dn row at the mode's speed target, and the pick on the default grid alone."""

    mode: str
    base: SweepRow
    point: OperatingPoint
    most_accurate: SweepRow | None
    several_grids: bool  # a dn curve on another grid than the default took part in the pick
    default_grid: OperatingPoint | None


@dataclass
class Table1:
    lines: list[Table1Line] = field(default_factory=list)
    verdicts: list[ModeVerdict] = field(default_factory=list)
    points: list[tuple[str, SweepRow]] = field(default_factory=list)  # the first segmenter and flow's
    other_grids: set[str] = field(default_factory=set)  # grids besides the default with a dn curve


def table1(rows: list[SweepRow], segmenters, flows, curve_grids, overlap: int) -> Table1:
    """Table 1 of `rows` (see experiments.table1_choice for the picking rule); `overlap`: the default's px."""
    out = Table1()
    for seg in segmenters:
        base = ex.baseline(rows, seg)
        if base is None or base.miou is None:
            continue
        out.lines.append(Table1Line(f"{seg} per-frame", base, None))
        for flow in flows:
            choice = ex.table1_choice(rows, base, flow, curve_grids, overlap)
            out.other_grids.update(g for g in choice.curves if g != GRID)
            for mode, point in choice.across.items():
                out.lines.append(Table1Line(f"{mode} ({seg}, {flow})", point.row, point.drop))
                paper = choice.default_grid.get(mode)
                differs = paper is not None and paper.row.key != point.row.key
                if differs:
                    out.lines.append(Table1Line(f"{mode} ({seg}, {flow}), {GRID} only", paper.row,
                                                paper.drop))
                if (seg, flow) != (segmenters[0], flows[0]):
                    continue
                out.points += [(mode, point.row)] + ([(f"{mode}, {GRID} only", paper.row)] if differs else [])
                out.verdicts.append(ModeVerdict(mode, base, point,
                                                ex.most_accurate_at(choice.candidates, ex.TARGETS[mode][0]),
                                                len(choice.curves) > 1, paper))
    return out


@dataclass(frozen=True)
class Comparison:
    """The dn curve against another one: (x, dn's mIoU minus the other's, in points) at each point of the
    other curve inside dn's x range, and whether the claim holds."""

    kind: str
    gaps: list[tuple[float, float]]
    met: bool


def policy_comparisons(curves: dict[str, list[SweepRow]]) -> dict[str, Comparison]:
    """Fig. 9's claims on experiments.policy_curves: dn leads fixed (DFF) by DFF_MARGIN somewhere, and lies
    above diff and flow everywhere they overlap on the speed-up axis; the oracle against dn on the share of
    regions segmented (headroom, no claim). A kind without rows, or without dn rows, is absent."""
    out = {}
    dn = curves["dn"]
    if dn and curves["fixed"]:
        gaps = ex.compare_curves(dn, curves["fixed"])
        out["fixed"] = Comparison("fixed", gaps, bool(gaps) and max(g for _, g in gaps) >= DFF_MARGIN)
    for kind in ("diff", "flow"):
        if dn and curves[kind]:
            gaps = ex.compare_curves(dn, curves[kind])
            out[kind] = Comparison(kind, gaps, bool(gaps) and min(g for _, g in gaps) > 0)
    if dn and curves["oracle"]:
        out["oracle"] = Comparison("oracle", ex.compare_curves(curves["oracle"], dn, x="seg_share"), True)
    return out


@dataclass(frozen=True)
class CurveSummary:
    """One dn threshold curve (Fig. 8): its scored rows by threshold and the steps that move as claimed."""

    segmenter: str
    flow: str
    grid: str
    rows: list[SweepRow]
    miou_rises: int  # threshold steps where mIoU does not fall
    speed_falls: int  # threshold steps where speed-up does not rise


def threshold_curves(rows: list[SweepRow], segmenters, flows, curve_grids,
                     overlap: int) -> list[CurveSummary]:
    """Every dn curve of at least two scored rows, per segmenter, flow and grid."""
    out = []
    for seg in segmenters:
        for flow in flows:
            for grid, dn in ex.dn_curves(rows, seg, flow, curve_grids, overlap).items():
                dn = ex.scored(dn)
                if len(dn) >= 2:
                    out.append(CurveSummary(seg, flow, grid, dn, *ex.monotone_steps(dn)))
    return out


@dataclass(frozen=True)
class Division:
    """Table 3: the row of each grid, and the grids with the highest warp/seg ratio and mIoU."""

    rows: dict[str, SweepRow]  # grid name -> row, in grid order
    best_ratio: str | None  # None when no grid segmented anything less than all
    best_miou: str | None


def division(rows: list[SweepRow], segmenter: str, flow: str, policy: str, grids, overlap: int) -> Division:
    """Table 3 at `policy` over `grids` (experiments.division_rows)."""
    found = ex.division_rows(rows, segmenter, flow, policy, overlap)
    table = {g: found[g] for g in (format_grid(g) for g in grids) if g in found}
    ratios = {g: r.warp_seg_ratio for g, r in table.items() if r.warp_seg_ratio is not None}
    # the first grid of highest mIoU (a row without one counts below any)
    best_miou = max(table, key=lambda g: -1.0 if table[g].miou is None else round(100 * table[g].miou, 2),
                    default=None)
    # compared as the report prints them, to two decimals: the first grid wins a tie
    return Division(table, max(ratios, key=lambda g: round(ratios[g], 2)) if ratios else None, best_miou)


@dataclass(frozen=True)
class RunSetup:
    """Where and how the rows ran."""

    machine: dict[str, Any]  # of the first row's rows/<key>.json
    loads: list[float]  # 1-min load averages during the rows
    jobs: int  # rows run at once, at most
    finished: list[str]  # finishing times, sorted
    interleaved: bool  # every row's reference ran interleaved with it (else: 10 frames before it)


def run_setup(rows: list[SweepRow], sweep_dir: Path) -> RunSetup:
    jsons = sorted((sweep_dir / "rows").glob("*.json"))
    machine = json.loads(jsons[0].read_text()).get("machine", {}) if jsons else {}
    return RunSetup(machine, [r.load_1m for r in rows if r.load_1m is not None],
                    max(r.jobs or 1 for r in rows), sorted(str(r.finished_utc) for r in rows),
                    all(r.ref_frames for r in rows))


def class_ious(rows: list[SweepRow], segmenter: str, sweep_dir: Path,
               points: list[tuple[str, SweepRow]]) -> tuple[list[tuple[str, SweepRow]], dict[str, dict]]:
    """The columns (name, row) of the per-class table, the per-frame row first, and each one's IoU per
    class from rows/<key>.json where it exists ({} when there is nothing to compare)."""
    base = ex.baseline(rows, segmenter)
    if base is None or not points or not row_file(sweep_dir, base.key).exists():
        return [], {}
    columns = [("per-frame", base)] + points
    ious = {name: json.loads(row_file(sweep_dir, r.key).read_text())["iou_per_class"]
            for name, r in columns if row_file(sweep_dir, r.key).exists()}
    return columns, ious


def check_configs(config: SweepConfig,
                  thresholds: tuple[float, ...] = CHECK_THRESHOLDS) -> tuple[SweepConfig, ...]:
    """The sweeps of a check on more snippets, for `config`'s first segmenter and flow: Table 1's per-frame
    row and dn curves at `thresholds` (default grid and curve grids); Fig. 9's policies on the default grid
    with the dn curve's slow end (no oracle: it segments every region)."""
    first = {"segmenters": config.segmenters[:1], "flows": config.flows[:1], "backend": config.backend,
             "precision": config.precision}
    return (SweepConfig(**first, curve_grids=config.curve_grids, experiments="ae", thresholds=thresholds),
            SweepConfig(**first, curve_grids=(), experiments="be", oracle=(),
                        thresholds=tuple(sorted(set(thresholds + CHECK_SLOW_THRESHOLDS)))))


def table1_verdicts(table: Table1) -> list[str]:
    """The verdict lines of Table 1 (the first segmenter and flow, each mode against TARGETS)."""
    def point(r: SweepRow, drop: float) -> str:
        return f"{r.policy} on {r.grid}: {r.speedup:.2f}× at {drop:.2f} points drop"

    lines = []
    for v in table.verdicts:
        (r, drop, ok), (speed, limit) = v.point, ex.TARGETS[v.mode]
        lines.append(f"- **{v.mode}** target (≥ {speed}× per-frame fps, ≤ {limit} points drop): "
                     f"{verdict(ok)} — {point(r, drop)} ({pct(r.miou)}% vs {pct(v.base.miou)}%).")
        x = v.most_accurate
        if x is not None and v.mode == "balanced":
            lines.append(f"  At ≥ {speed}× the most accurate dn row is {x.policy} on {x.grid}: "
                         f"{pct(x.miou)}% ({100 * v.base.miou - 100 * x.miou:.2f} points drop) "
                         f"at {x.speedup:.2f}×.")
        if v.several_grids:  # the paper's division, so the cross-grid choice hides nothing
            paper = v.default_grid
            lines.append(f"  On the paper's {GRID} division alone: " + (
                "no dn row yet." if paper is None else
                f"{verdict(paper.met)} — {point(paper.row, paper.drop)} ({pct(paper.row.miou)}%)."))
    return lines


def policy_verdicts(curves: dict[str, list[SweepRow]]) -> list[str]:
    """Fig. 9's verdict lines (policy_comparisons) on one set of policy curves."""
    found, lines = policy_comparisons(curves), []
    if "fixed" in found:
        gaps = found["fixed"].gaps
        if gaps:
            best = max(gaps, key=lambda g: g[1])
            lines.append(f"- dn vs fixed (DFF), target dn ≥ fixed + {DFF_MARGIN} points at equal speed "
                         f"somewhere: {verdict(found['fixed'].met)}; largest gap {best[1]:+.2f} points at "
                         f"{best[0]:.2f}× (gaps at the {len(gaps)} fixed points inside the dn speed range: "
                         f"{gaps_text(gaps)}).")
        else:
            lines.append("- dn vs fixed: the curves do not overlap in speed-up; no comparison at equal "
                         "speed.")
    for kind, name in (("diff", "frame difference"), ("flow", "flow magnitude")):
        if kind in found:
            c = found[kind]
            lines.append(f"- dn vs {kind} ({name}), target dn above it everywhere the curves overlap: "
                         f"{verdict(c.met)}; gaps {gaps_text(c.gaps)}." if c.gaps else
                         f"- dn vs {kind}: the curves do not overlap in speed-up.")
    if "oracle" in found and found["oracle"].gaps:
        lines.append("- headroom: the oracle (true confidence score) minus dn mIoU at equal share of regions "
                     f"segmented: {gaps_text(found['oracle'].gaps, 100, '%', 0)}.")
    return lines


def division_verdict(found: Division) -> str | None:
    """Table 3's claim: 2x2 has the highest warp/seg ratio; None without a finite ratio."""
    if found.best_ratio is None:
        return None
    best, top = found.best_ratio, found.best_miou
    return (f"Paper claim (Table 3): 2x2 uses the warp path best (highest warp/seg ratio). Ours: highest "
            f"ratio at **{best}** — " + ("reproduced." if best == "2x2" else "not reproduced.")
            + f" Highest mIoU at {top} ({pct(found.rows[top].miou)}%).")


def overlap_verdict(rows: list[SweepRow]) -> str:
    """Fig. 10's claim on experiments.overlap_rows (mIoU rises with the overlap to a plateau)."""
    lo, hi = 100 * rows[0].miou, max(100 * r.miou for r in rows)
    return (f"Paper (Fig. 10): 65.5% without overlap rising to a plateau of ~70% at 64 px (of 2048). Ours: "
            f"{lo:.2f}% at {rows[0].overlap} px, best {hi:.2f}% ({hi - lo:+.2f} points).")


# REPORT.md's section of each claim: our table beside the paper's figures, and the verdicts

def md_table(header, rows) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(str(c) for c in row) + " |" for row in rows])


def table1_lines(table: Table1) -> list[list[str]]:
    """Table 1's rows (dvsnet.table1)."""
    return [[line.name, line.row.policy, line.row.grid, pct(line.row.miou), f"{line.row.fps:.2f}",
             f"{line.row.speedup:.2f}×", "–" if line.drop is None else f"{line.drop:.2f}",
             f"{100 * line.row.warp_share:.1f}%"] for line in table.lines]


def table1_section(rows, config: SweepConfig, ov: int, summary: Lines) -> tuple[Lines, list]:
    """Table 1 beside the paper's, its verdicts and the picking rule; also the first segmenter and flow's
    operating points (for the IoU-per-class table)."""
    table = table1(rows, config.segmenters, config.flows, config.curve_grids, ov)
    t1, verdicts = table1_lines(table), table1_verdicts(table)
    summary.extend(verdicts)
    out = ["## Table 1: per-frame baselines and operating points", ""]
    out += [md_table(["ours (synthetic val, CPU)", "policy", "grid", "mIoU %", "fps", "speed-up",
                      "drop (pts)", "workload saved"], t1) if t1 else "No baseline row has finished yet.", ""]
    out += [md_table(["paper (Cityscapes val, GTX 1080 Ti)", "mIoU %", "fps", "speed-up"],
                     [[n, m, f, "–" if s is None else f"{s}×"] for n, m, f, s in PAPER_TABLE1]), ""]
    out += verdicts + [""]
    rule = ("balanced = the fastest threshold within 3 points of per-frame mIoU; high-speed = the most "
            "accurate threshold at ≥ 6× (or, when none reaches 6×, the fastest one).")
    if not table.other_grids:
        return (out + [(f"Operating points are picked from the dn curve at the default grid and overlap: "
                        f"{rule}"), ""], table.points)
    (n_rows, n_cols), width, height = ex.DEFAULT_GRID, rows[0].width, rows[0].height
    out += [(f"Operating points are picked, for each segmenter and flow, over the dn rows of every grid "
             f"that has a threshold curve ({GRID} at the default overlap, plus "
             f"{', '.join(sorted(table.other_grids))}): {rule} The grid is part of the choice because what "
             f"the segmenter sees is a region's size in pixels, not the count: the paper's {GRID} regions "
             f"are {2048 // n_cols}×{1024 // n_rows} px of a 2048×1024 frame, ours are "
             f"{width // n_cols}×{height // n_rows} px of {width}×{height}, too little context for "
             "the segmenter, and content crosses their borders from one frame to the next. The best "
             f"{GRID}-only picks (the paper's division) follow each verdict above, and appear in the table "
             "where they differ."), ""]
    return out, table.points


def fig8_section(rows, config: SweepConfig, ov: int) -> Lines:
    """One line per dn curve: thresholds, mIoU and speed-up ranges, and how often each moves as claimed."""
    t8 = [[f"({c.segmenter}, {c.flow})", c.grid, f"{c.rows[0].policy_value:g}–{c.rows[-1].policy_value:g}",
           f"{pct(min(r.miou for r in c.rows))}–{pct(max(r.miou for r in c.rows))}",
           f"{min(r.speedup for r in c.rows):.2f}–{max(r.speedup for r in c.rows):.2f}×",
           f"{c.miou_rises}/{len(c.rows) - 1}", f"{c.speed_falls}/{len(c.rows) - 1}"]
          for c in threshold_curves(rows, config.segmenters, config.flows, config.curve_grids, ov)]
    if not t8:
        return ["Not enough dn rows yet.", ""]
    return [md_table(["configuration", "grid", "thresholds", "mIoU %", "speed-up",
                      "mIoU rises with t (steps)", "speed falls with t (steps)"], t8), "",
            ("Paper claim: raising t moves every curve up and to the left (more accuracy, less speed). "
             "The last two columns count the threshold steps where that holds in our rows; timing noise "
             "on the shared machine can flip neighbouring points."), ""]


def fig9_section(rows, seg0: str, flow0: str, ov: int, summary: Lines) -> Lines:
    """Fig. 9: every policy row of the first segmenter and flow, and the claims about them."""
    pol = ex.policy_curves(rows, seg0, flow0, ov)
    t9 = [[r.policy, pct(r.miou), f"{r.fps:.2f}", f"{r.speedup:.2f}×", f"{100 * r.seg_share:.1f}%",
           str(19 % int(r.policy_value)) if k == "fixed" else "–"]
          for k, rs in pol.items() for r in sorted(rs, key=lambda r: r.policy_value)]
    out = []
    if t9:
        out += [md_table(["policy", "mIoU %", "fps", "speed-up", "regions segmented",
                          "fixed: key age at frame 19"], t9), "",
                ("Under the paper's protocol only frame 19 is scored, so a fixed:l row is scored on a frame "
                 "that is 19 mod l frames past its key frame (the last column): fixed:2 and fixed:3 are both "
                 "scored one frame after a key frame, fixed:8 three frames after one, fixed:5 four; the DFF "
                 "curve is not monotone for that reason."), ""]
    lines = policy_verdicts(pol)
    summary.extend(lines)
    return out + lines + ["", ("Gaps are measured on the speed-up axis (mIoU of the dn curve interpolated "
                               "at each point of the other curve, positive = dn better). The oracle runs the "
                               "segmenter on every region to know the true score, so it is compared on "
                               "segmentation workload, not speed. Paper: diff is far below the others; flow "
                               "magnitude and dn both beat DFF; dn is best."), ""]


def table3_section(rows, config: SweepConfig, ov: int, summary: Lines) -> Lines:
    """Table 3: warp/seg ratio and mIoU per division scheme at the one threshold of experiment c."""
    found = division(rows, config.segmenters[0], config.flows[0], f"dn:{config.threshold:g}",
                            config.grids, ov)
    if not found.rows:
        return ["No division rows yet.", ""]
    out = [md_table(["grid", "warp/seg regions (ours)", "mIoU %", "speed-up", "warp/seg (paper)"],
                    [[g, "∞" if r.warp_seg_ratio is None else f"{r.warp_seg_ratio:.2f}", pct(r.miou),
                      f"{r.speedup:.2f}×", PAPER_TABLE3.get(g, "–")] for g, r in found.rows.items()]), ""]
    line = division_verdict(found)
    if line is not None:
        summary.append("- " + line)
        out += [line + " Regions of different sizes are not equal work: a 4x4 region is 1/16 of a frame.", ""]
    return out


def fig10_section(rows, config: SweepConfig, summary: Lines) -> Lines:
    """Fig. 10: mIoU per overlap depth on the default grid."""
    t10 = ex.overlap_rows(rows, config.segmenters[0], config.flows[0], f"dn:{config.threshold:g}")
    if not t10:
        return ["No overlap rows yet.", ""]
    width, line = rows[0].width, overlap_verdict(t10)
    summary.append("- " + line)
    return [md_table([f"overlap px (at {width} px width)", "≈ px at 2048", "mIoU %", "speed-up"],
                     [[r.overlap, round(r.overlap * 2048 / width), pct(r.miou), f"{r.speedup:.2f}×"]
                      for r in t10]), "", line, ""]
