"""Sweep results as typed rows, and the analysis of the paper's experiments that the report
(benchmarks/report.py) and the figures (dvsnet.plots) share, so both pick the same rows.

A row of sweep.csv is a `SweepRow`: its configuration in PipelineConfig.to_record's format (grid "RxC",
overlap in px), the figures of dvsnet.evaluate.run_pipeline under their RunStats names (dvsnet.stats),
the sweep's own speed reference (`ref_fps`, `speedup`: see dvsnet.sweep) and where it ran. mIoU is a
fraction in [0, 1] in rows; curves and drops are in percent points.

    read_rows, write_rows     the CSV, atomically rewritten; old files (fewer columns) still read
    select, baseline          rows by field; the per-frame row of a segmenter
    pool_reference            speed-ups against the run's median per-frame timing
    dn_curves                 DN threshold curves per grid (Fig. 8, Table 1)
    policy_curves             key-frame policies on one grid (Fig. 9)
    division_rows             one row per division scheme (Table 3)
    overlap_rows              the overlap curve (Fig. 10)
    curve, compare_curves     mIoU along an axis; one curve against another
    operating_points, table1_choice   Table 1's balanced and high-speed points
"""
from __future__ import annotations

import csv
import dataclasses
import itertools
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from dvsnet.atomic import atomic_path
from dvsnet.config import PipelineConfig, format_grid, parse_grid
from dvsnet.errors import DvsnetError

DEFAULT_GRID = (2, 2)  # the paper's division (§4.5), the grid of every curve unless said otherwise
POLICY_KINDS = ("dn", "fixed", "diff", "flow", "oracle")  # Fig. 9's curves
TARGETS = {"balanced": (3.5, 3.0), "high-speed": (6.0, 8.0)}  # (min speed-up, max mIoU drop in points)

# sweep.csv's columns in file order; the nine before the last two came with PipelineConfig.to_record (older
# files lack them; their rows ran before grid "auto", the key-age cap and the backends: explicit grids, no
# cap, torch fp32), then one with the one runner (ref_frames: older rows timed their reference apart, see
# SweepRow) and one with online calibration (online: older rows ran the DN's scores as they are)
COLUMNS = (
    "key", "segmenter", "flow", "policy", "policy_kind", "policy_value", "grid", "overlap",
    "miou", "pixel_accuracy", "fps", "ms_per_frame", "ref_fps", "speedup",
    "seg_share", "warp_share", "warp_seg_ratio",
    "flow_ms", "decision_ms", "segmentation_ms", "warp_ms", "stitch_ms",
    "snippets", "frames", "frame_size", "data", "weights_id", "load_1m", "torch_threads", "jobs",
    "finished_utc", "overlap_default", "stitch", "dn", "device", "flow_width", "grid_default", "max_key_age",
    "backend", "precision",
    "ref_frames", "online",
)
# what resuming and drawing cannot do without; a CSV lacking one is not a sweep's, or was cut by hand
REQUIRED_COLUMNS = ("key", "segmenter", "flow", "policy", "grid", "miou", "fps", "snippets", "frame_size",
                    "data")
_TEXT = frozenset({"segmenter", "flow", "policy", "grid", "frame_size", "data", "weights_id", "finished_utc",
                   "stitch", "dn", "device", "backend", "precision"})
_INT = frozenset({"overlap", "snippets", "frames", "torch_threads", "jobs", "flow_width", "max_key_age",
                  "ref_frames"})
_DERIVED = frozenset({"key", "policy_kind", "policy_value"})  # written from the other columns, not read
# a column older files also wrote under another name: read into the one name where that is empty
_RENAMED = {"workload_saved": "warp_share"}


@dataclass(frozen=True)
class SweepRow:
    """One configuration's result (one line of sweep.csv); None where a figure is missing.

    segmenter .. overlap, overlap_default .. max_key_age: PipelineConfig.to_record (flow "-" for the
    per-frame rows, which use none). miou, pixel_accuracy in [0, 1]; fps frames/s; *_ms ms per frame;
    ref_fps, speedup: dvsnet.sweep; speedup_own_ref is no column: pool_reference keeps the row's own
    speed-up there.
    """

    segmenter: str
    flow: str
    policy: str
    grid: str
    overlap: int
    miou: float | None
    fps: float
    snippets: int
    frame_size: str
    data: str
    pixel_accuracy: float | None = None
    ms_per_frame: float | None = None
    ref_fps: float | None = None
    speedup: float | None = None
    seg_share: float | None = None
    warp_share: float | None = None
    warp_seg_ratio: float | None = None
    flow_ms: float | None = None
    decision_ms: float | None = None
    segmentation_ms: float | None = None
    warp_ms: float | None = None
    stitch_ms: float | None = None
    frames: int | None = None
    weights_id: str | None = None
    load_1m: float | None = None
    torch_threads: int | None = None
    jobs: int | None = None
    finished_utc: str | None = None
    overlap_default: bool | None = None
    stitch: str | None = None
    dn: str | None = None
    device: str | None = None
    flow_width: int | None = None
    grid_default: bool | None = None
    max_key_age: int | None = None
    backend: str | None = None  # what ran the segmenter (dvsnet.backends); rows from before: torch fp32
    precision: str | None = None
    # frames the reference was timed on, interleaved with the row (dvsnet.runner); rows from before the one
    # runner have none: their ref_fps is a 10-frame per-frame timing taken just before the row
    ref_frames: int | None = None
    online: bool | None = None  # the DN calibrated online (dvsnet.online); None: a row from before it
    speedup_own_ref: float | None = None

    @property
    def key(self) -> str:
        """'segmenter|flow|policy|RxC|overlap px': what a resumed sweep matches its plan against."""
        return row_key(self.segmenter, self.flow, self.policy, self.grid, self.overlap)

    @property
    def policy_kind(self) -> str:
        return self.policy.partition(":")[0]

    @property
    def policy_value(self) -> float | None:
        value = self.policy.partition(":")[2]
        return float(value) if value else None

    @property
    def height(self) -> int:
        return parse_grid(self.frame_size)[0]

    @property
    def width(self) -> int:
        return parse_grid(self.frame_size)[1]

    def replace(self, **changes: Any) -> SweepRow:
        return dataclasses.replace(self, **changes)


def row_key(segmenter: str, flow: str, policy: str, grid: str, overlap: int) -> str:
    """The row key of sweep.csv (its format is what old files resume by: keep it)."""
    return f"{segmenter}|{flow}|{policy}|{grid}|{overlap}"


def _parse(name: str, text: str) -> Any:
    if name in _TEXT:
        return text
    if name in ("overlap_default", "grid_default", "online"):
        return text.strip().lower() in ("true", "1")
    number = float(text)
    return int(number) if name in _INT else number


def read_rows(path: str | Path) -> list[SweepRow]:
    """Rows of a sweep CSV, old ones (without the newer columns) included. Missing file -> [].

    DvsnetError when a column or cell of REQUIRED_COLUMNS is missing (miou may be empty: no class
    present) or a number is not one.
    """
    path = Path(path)
    if not path.exists():
        return []
    names = {f.name for f in dataclasses.fields(SweepRow)}
    rows = []
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        missing = [name for name in REQUIRED_COLUMNS if name not in (reader.fieldnames or REQUIRED_COLUMNS)]
        if missing:
            raise DvsnetError(f"{path} is not a dvsnet sweep CSV: no {', '.join(missing)} column; "
                              f"move it away or use another --output")
        for line, raw in enumerate(reader, 2):
            empty = [name for name in REQUIRED_COLUMNS if name != "miou" and raw.get(name) in ("", None)]
            if empty:
                raise DvsnetError(f"{path}, line {line}: no {', '.join(empty)}; "
                                  "fix or delete that row to resume")
            fields = {}
            for name, text in raw.items():
                if name in _RENAMED and raw.get(_RENAMED[name]) in ("", None):
                    name = _RENAMED[name]
                if name in names and name not in _DERIVED and text not in ("", None):
                    try:
                        fields[name] = _parse(name, text)
                    except ValueError:
                        raise DvsnetError(f"{path}, line {line}: {name} {text!r} is not a number") from None
            rows.append(SweepRow(**{"miou": None, **fields}))
    return rows


def write_rows(path: str | Path, rows: list[SweepRow]) -> None:
    """Write all rows to `path` atomically (temp file in the same folder, then os.replace)."""
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(COLUMNS)
        for row in rows:
            writer.writerow([_cell(getattr(row, name)) for name in COLUMNS])
        f.flush()
        os.fsync(f.fileno())


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def select(rows: list[SweepRow], **criteria: Any) -> list[SweepRow]:
    """Rows whose fields equal every criterion (numbers compared as floats); policy_kind etc. welcome."""
    def matches(row: SweepRow, name: str, value: Any) -> bool:
        have = getattr(row, name)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return have is not None and float(have) == float(value)
        return have == value

    return [row for row in rows if all(matches(row, name, value) for name, value in criteria.items())]


def scored(rows: list[SweepRow]) -> list[SweepRow]:
    """The rows with an mIoU, sorted by policy value (the threshold along a curve)."""
    return sorted((r for r in rows if r.miou is not None), key=lambda r: r.policy_value)


def baseline(rows: list[SweepRow], segmenter: str) -> SweepRow | None:
    """The per-frame row of `segmenter` (policy always, 1x1), or None."""
    found = select(rows, segmenter=segmenter, policy="always", grid="1x1")
    return found[0] if found else None


def region_overlap(grid: tuple[int, int] | str, overlap: int) -> int:
    """The px a row on `grid` at the default `overlap` records: PipelineConfig.overlap_px (0 on 1x1)."""
    return PipelineConfig(grid=grid, overlap=overlap).overlap_px(0)


def pool_reference(rows: list[SweepRow]) -> tuple[list[SweepRow], dict[str, dict[str, float]]]:
    """The rows with "speedup" = fps / the median `ref_fps` of their segmenter over the whole run, and
    per segmenter the median, range and count of the timings and the medians of the run's first and
    second half (by finishing time), which show any drift of the machine.

    Each row's own `ref_fps` is one 10-frame per-frame timing taken just before it; with other rows sharing
    the cores such timings scatter by tens of percent, while the row's own fps averages hundreds of frames,
    so a ratio to its own reference mostly carries that scatter. The pooled median keeps the same-run,
    same-machine baseline and drops the scatter. The row's ratio to its own reference stays in
    "speedup_own_ref".
    """
    timings: dict[str, list[tuple[str, float]]] = {}
    for r in rows:
        if r.ref_fps:
            timings.setdefault(r.segmenter, []).append((str(r.finished_utc), float(r.ref_fps)))
    stats = {}
    for seg, pairs in timings.items():
        pairs.sort()
        values = [v for _, v in pairs]
        half = len(values) // 2
        stats[seg] = {"median": float(np.median(values)), "min": min(values), "max": max(values),
                      "count": len(values), "first_half": float(np.median(values[:half] or values)),
                      "second_half": float(np.median(values[half:]))}
    pooled = [r.replace(speedup_own_ref=r.speedup,
                        speedup=r.fps / stats[r.segmenter]["median"] if r.segmenter in stats else r.speedup)
              for r in rows]
    return pooled, stats


def curve(rows: list[SweepRow], x: str = "speedup") -> tuple[np.ndarray, np.ndarray]:
    """(x, mIoU %) of the scored rows sorted by x, for interpolation."""
    pts = sorted((float(getattr(r, x)), 100 * r.miou) for r in rows if r.miou is not None)
    return np.array([p[0] for p in pts]), np.array([p[1] for p in pts])


def compare_curves(ours: list[SweepRow], theirs: list[SweepRow],
                   x: str = "speedup") -> list[tuple[float, float]]:
    """(x, mIoU of `ours` interpolated at x minus theirs' mIoU, in points) at each `theirs` point inside
    ours' x range; [] when ours has fewer than two points."""
    ox, oy = curve(ours, x)
    tx, ty = curve(theirs, x)
    if len(ox) < 2:
        return []
    inside = (tx >= ox.min()) & (tx <= ox.max())
    return [(float(a), float(np.interp(a, ox, oy) - b)) for a, b in zip(tx[inside], ty[inside])]


def monotone_steps(rows: list[SweepRow]) -> tuple[int, int]:
    """Over rows sorted by threshold: the steps where mIoU does not fall and where speed-up does not rise
    (Fig. 8's claim, both hold at every step of an ideal curve)."""
    m = [r.miou for r in rows]
    s = [r.speedup for r in rows]
    up = sum(b >= a - 1e-9 for a, b in itertools.pairwise(m))
    down = sum(b <= a + 1e-9 for a, b in itertools.pairwise(s))
    return up, down


class OperatingPoint(NamedTuple):
    row: SweepRow
    drop: float  # mIoU points below the per-frame baseline
    met: bool  # the mode's target (TARGETS) is reached


def operating_points(dn_rows: list[SweepRow], base: SweepRow) -> dict[str, OperatingPoint]:
    """Balanced: fastest row with drop <= 3 points; high-speed: most accurate row with speed-up >= 6
    (the fastest one when none is that fast). A mode without rows is absent."""
    out = {}
    base_miou = 100 * base.miou
    rows = [r for r in dn_rows if r.miou is not None]
    for mode, (speed, drop) in TARGETS.items():
        if mode == "balanced":
            ok = [r for r in rows if base_miou - 100 * r.miou <= drop]
            pick = max(ok, key=lambda r: r.speedup) if ok else None
        else:
            pick = most_accurate_at(rows, speed) or (max(rows, key=lambda r: r.speedup) if rows else None)
        if pick is not None:
            d = base_miou - 100 * pick.miou
            out[mode] = OperatingPoint(pick, d, pick.speedup >= speed and d <= drop)
    return out


def most_accurate_at(rows: list[SweepRow], speedup: float) -> SweepRow | None:
    """The scored row of highest mIoU among those at least `speedup` times per-frame speed, or None."""
    fast = [r for r in rows if r.miou is not None and r.speedup >= speedup]
    return max(fast, key=lambda r: r.miou) if fast else None


def dn_curves(rows: list[SweepRow], segmenter: str, flow: str, curve_grids,
              overlap: int) -> dict[str, list[SweepRow]]:
    """dn rows of (segmenter, flow) per grid name ("2x2") that has a threshold curve, the default grid first.

    The default grid at the default `overlap` is always present (possibly empty, as before curve grids
    existed); each of `curve_grids`, at its region overlap (0 on 1x1), only when it holds at least two scored
    dn rows, so a lone dn row of experiment c (dn:0.92 on 1x1) is not taken for a curve.
    """
    out: dict[str, list[SweepRow]] = {}
    for grid in (DEFAULT_GRID, *(tuple(g) for g in curve_grids)):
        name = format_grid(grid)
        if name in out:
            continue
        dn = select(rows, segmenter=segmenter, flow=flow, policy_kind="dn", grid=name,
                    overlap=region_overlap(grid, overlap))
        if grid == DEFAULT_GRID or len(scored(dn)) >= 2:
            out[name] = dn
    return out


def policy_curves(rows: list[SweepRow], segmenter: str, flow: str, overlap: int,
                  grid: str = format_grid(DEFAULT_GRID)) -> dict[str, list[SweepRow]]:
    """Fig. 9's rows of (segmenter, flow) on `grid` at `overlap` px, per policy kind (POLICY_KINDS)."""
    return {k: select(rows, segmenter=segmenter, flow=flow, policy_kind=k, grid=grid, overlap=overlap)
            for k in POLICY_KINDS}


def division_rows(rows: list[SweepRow], segmenter: str, flow: str, policy: str,
                  overlap: int) -> dict[str, SweepRow]:
    """Table 3: the row of each grid at `policy`, by grid name in grid order; `overlap` px except on 1x1."""
    found: dict[str, SweepRow] = {}
    for r in select(rows, segmenter=segmenter, flow=flow, policy=policy):
        if r.grid == "1x1" or r.overlap == overlap:
            found.setdefault(r.grid, r)
    return dict(sorted(found.items(), key=lambda item: parse_grid(item[0])))


def overlap_rows(rows: list[SweepRow], segmenter: str, flow: str, policy: str) -> list[SweepRow]:
    """Fig. 10: the scored rows at `policy` on the default grid, by overlap."""
    return sorted((r for r in select(rows, segmenter=segmenter, flow=flow, policy=policy,
                                     grid=format_grid(DEFAULT_GRID)) if r.miou is not None),
                  key=lambda r: r.overlap)


@dataclass(frozen=True)
class Table1Choice:
    """Table 1 for one (segmenter, flow): the operating points against the per-frame row `base`."""

    base: SweepRow
    curves: dict[str, list[SweepRow]]  # dn_curves
    across: dict[str, OperatingPoint]  # picked over the dn rows of every curve
    default_grid: dict[str, OperatingPoint]  # picked on the default grid alone; {} when it has the only curve

    @property
    def candidates(self) -> list[SweepRow]:
        return [r for rs in self.curves.values() for r in rs]


def table1_choice(rows: list[SweepRow], base: SweepRow, flow: str, curve_grids, overlap: int) -> Table1Choice:
    """The operating points of (base's segmenter, flow) over its dn curves (see dn_curves)."""
    curves = dn_curves(rows, base.segmenter, flow, curve_grids, overlap)
    across = operating_points([r for rs in curves.values() for r in rs], base)
    paper = operating_points(curves[format_grid(DEFAULT_GRID)], base) if len(curves) > 1 else {}
    return Table1Choice(base, curves, across, paper)
