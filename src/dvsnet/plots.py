"""The paper's figures from sweep rows (dvsnet.sweep.read_rows): matplotlib, Agg backend, PNG files.

Each function takes the rows of a sweep CSV and a PNG path, draws what the rows hold (missing
configurations are simply absent from the figure), writes the file atomically and returns its path, or
returns None when the rows hold nothing for that figure. mIoU is drawn in percent, fps in frames/s.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from dvsnet.atomic import atomic_path
from dvsnet.sweep import DEFAULT_GRID, region_overlap, select

Rows = list[dict[str, Any]]
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


def _grid_text(grid: tuple[int, int]) -> str:
    return f"{grid[0]}x{grid[1]}"


def _pct(row: dict[str, Any]) -> float:
    return 100.0 * float(row["miou"])


def _curve(rows: Rows) -> Rows:
    return sorted((r for r in rows if r.get("miou") is not None), key=lambda r: float(r["policy_value"]))


def baseline(rows: Rows, segmenter: str) -> dict[str, Any] | None:
    """The per-frame row of `segmenter` (policy always, 1x1), or None."""
    found = select(rows, segmenter=segmenter, policy="always", grid="1x1")
    return found[0] if found else None


def plot_tradeoff(rows: Rows, path: str | Path, *, default_overlap: int | None = None,
                  curve_grids: tuple[tuple[int, int], ...] = ((1, 1),)) -> Path | None:
    """Fig. 8: mIoU vs fps over DN thresholds, one curve per segmenter × flow × grid; stars = per-frame.

    Curves on the default 2x2 grid are solid (DIS) or dashed (FlowNet); those on `curve_grids` (drawn for
    the segmenter/flow pairs with at least two dn rows there) are dotted / dash-dotted with square markers.
    """
    def dn_at(grid: tuple[int, int]) -> Rows:
        overlap = None if default_overlap is None else region_overlap(grid, default_overlap)
        return [r for r in select(rows, policy_kind="dn", grid=_grid_text(grid))
                if overlap is None or float(r["overlap"]) == overlap]

    curves = []  # (segmenter, flow, grid, rows sorted by threshold)
    for grid in (DEFAULT_GRID, *(g for g in curve_grids if tuple(g) != DEFAULT_GRID)):
        dn = dn_at(tuple(grid))
        for seg, flow in sorted({(r["segmenter"], r["flow"]) for r in dn}):
            curve = _curve(select(dn, segmenter=seg, flow=flow))
            if curve and (tuple(grid) == DEFAULT_GRID or len(curve) >= 2):
                curves.append((seg, flow, tuple(grid), curve))
    if not curves:
        return None
    fig, ax = plt.subplots(figsize=(7, 5))
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    segs = sorted({seg for seg, *_ in curves})
    for seg, flow, grid, curve in curves:
        colour = colours[segs.index(seg) % len(colours)]
        dis = flow.startswith("dis")
        if grid == DEFAULT_GRID:
            style, marker = ("-" if dis else "--"), "o"
        else:
            style, marker = (":" if dis else "-."), "s"
        ax.plot([float(r["fps"]) for r in curve], [_pct(r) for r in curve], style, marker=marker,
                color=colour, label=f"({seg}, {flow}) {_grid_text(grid)}")
        for r in curve:
            ax.annotate(f"{float(r['policy_value']):g}", (float(r["fps"]), _pct(r)), fontsize=7,
                        textcoords="offset points", xytext=(3, 3))
    for i, seg in enumerate(segs):
        base = baseline(rows, seg)
        if base is not None and base.get("miou") is not None:
            ax.plot(float(base["fps"]), _pct(base), "*", markersize=14, color=colours[i % len(colours)],
                    label=f"{seg} per-frame")
    ax.set_xlabel("frames per second (pipeline time)")
    ax.set_ylabel("mIoU (%)")
    ax.set_title("mIoU vs fps over DN threshold t (paper Fig. 8)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return _save(fig, path)


def plot_policies(rows: Rows, path: str | Path, *, segmenter: str, flow: str,
                  default_overlap: int | None = None) -> Path | None:
    """Fig. 9: key-frame policies compared; left mIoU vs fps, right mIoU vs share of regions segmented.

    The oracle runs the segmenter on every region to know the true score, so its fps says nothing about
    the policy; it appears on the right panel only, where the x axis is the segmentation workload.
    """
    grid = _grid_text(DEFAULT_GRID)
    chosen = [r for r in select(rows, segmenter=segmenter, flow=flow, grid=grid)
              if r["policy_kind"] in POLICY_STYLE
              and (default_overlap is None or float(r["overlap"]) == default_overlap)]
    if not chosen:
        return None
    fig, (left, right) = plt.subplots(1, 2, figsize=(13, 5))
    for kind, (colour, marker, label) in POLICY_STYLE.items():
        curve = _curve(select(chosen, policy_kind=kind))
        if not curve:
            continue
        y = [_pct(r) for r in curve]
        if kind != "oracle":
            left.plot([float(r["fps"]) for r in curve], y, "-", marker=marker, color=colour, label=label)
            for r in curve:
                left.annotate(f"{float(r['policy_value']):g}", (float(r["fps"]), _pct(r)), fontsize=7,
                              textcoords="offset points", xytext=(3, 3), color=colour)
        right.plot([100 * float(r["seg_share"]) for r in curve], y, "-", marker=marker, color=colour,
                   label=label)
    base = baseline(rows, segmenter)
    if base is not None and base.get("miou") is not None:
        left.plot(float(base["fps"]), _pct(base), "k*", markersize=12, label=f"{segmenter} per-frame")
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
    """Table 3: warp/seg region ratio and mIoU for each division scheme at one policy."""
    chosen = [r for r in select(rows, segmenter=segmenter, flow=flow, policy=policy)
              if r["grid"] == "1x1" or default_overlap is None or float(r["overlap"]) == default_overlap]
    by_grid = {r["grid"]: r for r in chosen if r.get("miou") is not None}
    if not by_grid:
        return None
    order = sorted(by_grid, key=lambda g: tuple(int(x) for x in g.split("x")))
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    ratios = [float(by_grid[g]["warp_seg_ratio"] or 0.0) for g in order]
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
    """Fig. 10: mIoU vs overlap depth on the 2x2 grid; dashed line = the same policy on one region."""
    curve = sorted(select(rows, segmenter=segmenter, flow=flow, policy=policy, grid=_grid_text(DEFAULT_GRID)),
                   key=lambda r: float(r["overlap"]))
    curve = [r for r in curve if r.get("miou") is not None]
    if not curve:
        return None
    fig, ax = plt.subplots(figsize=(7, 4.5))
    ax.plot([float(r["overlap"]) for r in curve], [_pct(r) for r in curve], "-o", color="tab:blue",
            label=f"2x2 regions, {policy}")
    whole = select(rows, segmenter=segmenter, flow=flow, policy=policy, grid="1x1")
    if whole and whole[0].get("miou") is not None:
        ax.axhline(_pct(whole[0]), color="tab:red", linestyle=":", label="one region (no division)")
    base = baseline(rows, segmenter)
    if base is not None and base.get("miou") is not None:
        ax.axhline(_pct(base), color="k", linestyle="--", alpha=0.5, label=f"{segmenter} per-frame")
    ax.set_xlabel("overlap between neighbouring regions (px)")
    ax.set_ylabel("mIoU (%)")
    ax.set_title("mIoU vs overlap depth (paper Fig. 10)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return _save(fig, path)
