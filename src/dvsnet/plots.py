"""The paper's figures from sweep rows (dvsnet.experiments.read_rows): matplotlib, Agg backend, PNG files.

Each function takes the rows of a sweep CSV and a PNG path, draws what the rows hold (missing
configurations are simply absent from the figure), writes the file atomically and returns its path, or
returns None when the rows hold nothing for that figure. mIoU is drawn in percent, fps in frames/s.
Rows are chosen by dvsnet.experiments' selections, the report's. `default_overlap`: px of the default
overlap; None = the default at the rows' frame width.
"""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from dvsnet.atomic import atomic_path
from dvsnet.config import default_overlap as overlap_at
from dvsnet.config import format_grid
from dvsnet.experiments import (
    DEFAULT_GRID,
    POLICY_KINDS,
    SweepRow,
    baseline,
    division_rows,
    dn_curves,
    overlap_rows,
    policy_curves,
    scored,
    select,
)

Rows = list[SweepRow]
POLICY_STYLE = {  # paper Fig. 9 colours: dn red, DFF blue, diff green, flow orange
    "dn": ("tab:red", "o", "DVSNet dn:t (expected confidence)"),
    "fixed": ("tab:blue", "s", "DFF fixed:l (key every l frames)"),
    "diff": ("tab:green", "^", "diff:d (frame difference, Eq. 2)"),
    "flow": ("tab:orange", "v", "flow:f (flow magnitude, Eq. 3)"),
    "oracle": ("tab:purple", "D", "oracle:t (true confidence score)"),
}


def _save(fig: plt.Figure, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
    finally:
        plt.close(fig)
    return path


def _pct(row: SweepRow) -> float:
    return 100.0 * row.miou


def _overlap(rows: Rows, default_overlap: int | None) -> int:
    return overlap_at(rows[0].width) if default_overlap is None else default_overlap


def draw_figures(rows: Rows, folder: str | Path, *, segmenter: str, flow: str, threshold: float,
                 curve_grids: tuple[tuple[int, int], ...] = ((1, 1),),
                 default_overlap: int | None = None) -> list[Path]:
    """Every figure the rows allow, as PNGs in `folder`: Fig. 8 (every segmenter and flow), Fig. 9,
    Table 3 and Fig. 10 for (segmenter, flow) at dn:`threshold`; returns the paths written."""
    if not rows:
        return []
    folder = Path(folder)
    policy = f"dn:{threshold:g}"
    ov = _overlap(rows, default_overlap)
    written = [
        plot_tradeoff(rows, folder / "fig8_tradeoff.png", default_overlap=ov, curve_grids=curve_grids),
        plot_policies(rows, folder / "fig9_policies.png", segmenter=segmenter, flow=flow, default_overlap=ov),
        plot_division(rows, folder / "table3_division.png", segmenter=segmenter, flow=flow, policy=policy,
                      default_overlap=ov),
        plot_overlap(rows, folder / "fig10_overlap.png", segmenter=segmenter, flow=flow, policy=policy),
    ]
    return [p for p in written if p is not None]


def plot_tradeoff(rows: Rows, path: str | Path, *, default_overlap: int | None = None,
                  curve_grids: tuple[tuple[int, int], ...] = ((1, 1),)) -> Path | None:
    """Fig. 8: mIoU vs fps over DN thresholds, one curve per segmenter × flow × grid (experiments.dn_curves);
    stars = per-frame.

    Curves on the default 2x2 grid are solid (DIS) or dashed (FlowNet); those on `curve_grids` (drawn for
    the segmenter/flow pairs with at least two dn rows there) are dotted / dash-dotted with square markers.
    """
    pairs = sorted({(r.segmenter, r.flow) for r in select(rows, policy_kind="dn")})
    if not pairs:
        return None
    by_pair = {(seg, flow): dn_curves(rows, seg, flow, curve_grids, _overlap(rows, default_overlap))
               for seg, flow in pairs}
    curves = []  # (segmenter, flow, grid name, scored rows by threshold), grid by grid
    for grid in dict.fromkeys(format_grid(g) for g in (DEFAULT_GRID, *curve_grids)):
        for (seg, flow), found in by_pair.items():
            if scored(found.get(grid, [])):
                curves.append((seg, flow, grid, scored(found[grid])))
    if not curves:
        return None
    fig, ax = plt.subplots(figsize=(7, 5))
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    segs = sorted({seg for seg, *_ in curves})
    for seg, flow, grid, curve in curves:
        colour = colours[segs.index(seg) % len(colours)]
        dis = flow.startswith("dis")
        if grid == format_grid(DEFAULT_GRID):
            style, marker = ("-" if dis else "--"), "o"
        else:
            style, marker = (":" if dis else "-."), "s"
        ax.plot([r.fps for r in curve], [_pct(r) for r in curve], style, marker=marker,
                color=colour, label=f"({seg}, {flow}) {grid}")
        for r in curve:
            ax.annotate(f"{r.policy_value:g}", (r.fps, _pct(r)), fontsize=7, textcoords="offset points",
                        xytext=(3, 3))
    for i, seg in enumerate(segs):
        base = baseline(rows, seg)
        if base is not None and base.miou is not None:
            ax.plot(base.fps, _pct(base), "*", markersize=14, color=colours[i % len(colours)],
                    label=f"{seg} per-frame")
    ax.set_xlabel("frames per second (pipeline time)")
    ax.set_ylabel("mIoU (%)")
    ax.set_title("mIoU vs fps over DN threshold t (paper Fig. 8)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return _save(fig, path)


def plot_policies(rows: Rows, path: str | Path, *, segmenter: str, flow: str,
                  default_overlap: int | None = None) -> Path | None:
    """Fig. 9: key-frame policies compared (experiments.policy_curves); left mIoU vs fps, right mIoU vs
    share of regions segmented.

    The oracle runs the segmenter on every region to know the true score, so its fps says nothing about
    the policy; it appears on the right panel only, where the x axis is the segmentation workload.
    """
    if not rows:
        return None
    chosen = policy_curves(rows, segmenter, flow, _overlap(rows, default_overlap))
    if not any(chosen.values()):
        return None
    fig, (left, right) = plt.subplots(1, 2, figsize=(13, 5))
    for kind in POLICY_KINDS:
        colour, marker, label = POLICY_STYLE[kind]
        curve = scored(chosen[kind])
        if not curve:
            continue
        y = [_pct(r) for r in curve]
        if kind != "oracle":
            left.plot([r.fps for r in curve], y, "-", marker=marker, color=colour, label=label)
            for r in curve:
                left.annotate(f"{r.policy_value:g}", (r.fps, _pct(r)), fontsize=7,
                              textcoords="offset points", xytext=(3, 3), color=colour)
        right.plot([100 * r.seg_share for r in curve], y, "-", marker=marker, color=colour, label=label)
    base = baseline(rows, segmenter)
    if base is not None and base.miou is not None:
        left.plot(base.fps, _pct(base), "k*", markersize=12, label=f"{segmenter} per-frame")
        right.plot(100.0, _pct(base), "k*", markersize=12, label=f"{segmenter} per-frame")
    left.set_xlabel("frames per second (pipeline time)")
    right.set_xlabel("regions segmented (%) = 100 - workload saved")
    for ax in (left, right):
        ax.set_ylabel("mIoU (%)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    left.set_title(f"policies, ({segmenter}, {flow}) (paper Fig. 9)")
    right.set_title("same rows vs segmentation workload (oracle included)")
    return _save(fig, path)


def plot_division(rows: Rows, path: str | Path, *, segmenter: str, flow: str, policy: str,
                  default_overlap: int | None = None) -> Path | None:
    """Table 3: warp/seg region ratio and mIoU for each division scheme at one policy
    (experiments.division_rows)."""
    if not rows:
        return None
    found = division_rows(rows, segmenter, flow, policy, _overlap(rows, default_overlap))
    by_grid = {g: r for g, r in found.items() if r.miou is not None}
    if not by_grid:
        return None
    order = list(by_grid)
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    ratios = [by_grid[g].warp_seg_ratio or 0.0 for g in order]
    left.bar(order, ratios, color="tab:blue")
    for x, v in zip(order, ratios):
        left.annotate(f"{v:.2f}", (x, v), ha="center", va="bottom", fontsize=8)
    left.set_ylabel("warped / segmented regions")
    left.set_title(f"division schemes at {policy} (paper Table 3)")
    mious = [_pct(by_grid[g]) for g in order]
    right.bar(order, mious, color="tab:red")
    for x, v in zip(order, mious):
        right.annotate(f"{v:.1f}", (x, v), ha="center", va="bottom", fontsize=8)
    right.set_ylabel("mIoU (%)")
    right.set_ylim(max(0.0, min(mious) - 10), min(100.0, max(mious) + 5))
    right.set_title("mIoU per division scheme")
    for ax in (left, right):
        ax.set_xlabel("grid (rows x cols)")
        ax.grid(alpha=0.3, axis="y")
    return _save(fig, path)


def plot_overlap(rows: Rows, path: str | Path, *, segmenter: str, flow: str, policy: str) -> Path | None:
    """Fig. 10: mIoU vs overlap depth on the 2x2 grid (experiments.overlap_rows); dashed line = the same
    policy on one region."""
    curve = overlap_rows(rows, segmenter, flow, policy)
    if not curve:
        return None
    fig, ax = plt.subplots(figsize=(7, 4.5))
    ax.plot([r.overlap for r in curve], [_pct(r) for r in curve], "-o", color="tab:blue",
            label=f"2x2 regions, {policy}")
    whole = select(rows, segmenter=segmenter, flow=flow, policy=policy, grid="1x1")
    if whole and whole[0].miou is not None:
        ax.axhline(_pct(whole[0]), color="tab:red", linestyle=":", label="one region (no division)")
    base = baseline(rows, segmenter)
    if base is not None and base.miou is not None:
        ax.axhline(_pct(base), color="k", linestyle="--", alpha=0.5, label=f"{segmenter} per-frame")
    ax.set_xlabel("overlap between neighbouring regions (px)")
    ax.set_ylabel("mIoU (%)")
    ax.set_title("mIoU vs overlap depth (paper Fig. 10)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return _save(fig, path)
