"""The paper's experiment grid (§4.2–4.6) as one resumable list of evaluation rows.

Experiments (letters as in issue #5):
    a  mIoU vs fps over DN thresholds for every segmenter × flow estimator on the default 2×2 grid
       (paper Fig. 8), plus the curve of (first segmenter, first flow) on each of `curve_grids`: 1×1 by
       default, since a 2×2 region of our 256×512 frames is 128×256 px against the paper's 512×1024, and
       Table 1 picks its operating points across grids
    b  key-frame policies on (first segmenter, first flow): dn vs fixed (DFF) vs diff vs flow vs oracle
       (Fig. 9)
    c  division schemes 1×1, 1×2, 2×2, 3×3, 4×4 at one threshold: warp/seg ratio and mIoU (Table 3)
    d  overlap depth vs mIoU at one threshold on the 2×2 grid (Fig. 10)
    e  per-frame baselines (policy `always`, one region) of every segmenter (Table 1, top)
Each configuration is one row, evaluated once even when several experiments use it (the 2×2 dn rows
serve a, b, c and d). Rows run in a fixed priority order (e, b's dn curve, a's dn curves on the curve
grids, fixed, flow, diff, oracle, c, d, then the rest of a) and are appended to `sweep.csv` as they
finish, the file being rewritten atomically each time, so an interrupted sweep resumes where it stopped
without redoing rows.

Speed on a shared machine: every row runs interleaved frame by frame with its per-frame reference
(`PipelineConfig.per_frame()`: the same segmenter, policy always, 1×1) on the same snippets
(dvsnet.runner), and records the reference's fps as `ref_fps` and `speedup` = reference time / the row's;
so a row's speed-up compares two timings taken under the same load.
Overlap in the row key is the effective value in pixels (the default is resolved from the frame width).

Each row's configuration is a PipelineConfig (`PlannedRow.config`), built with DVSNet.from_config; its CSV
columns come from PipelineConfig.to_record. The CSV's rows (dvsnet.experiments.SweepRow), its I/O and
the analysis the report and the figures share live in dvsnet.experiments.
"""
from __future__ import annotations

import datetime
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from dvsnet.atomic import write_json_atomic
from dvsnet.config import PipelineConfig, format_grid
from dvsnet.errors import DvsnetError
from dvsnet.experiments import DEFAULT_GRID, SweepRow, read_rows, row_key, write_rows

EXPERIMENTS = "abcde"
CSV_NAME = "sweep.csv"
# per-frame rows (policy always) warp nothing: they are built with the cheapest estimator, and their flow
# column and key say "-"
NO_FLOW, PER_FRAME_FLOW = "-", "dis"


@dataclass(frozen=True)
class SweepConfig:
    """What the sweep varies. Thresholds in [0, 1]; diff in grey levels 0..255; flow limits in px."""

    segmenters: tuple[str, ...] = ("fast", "accurate")
    flows: tuple[str, ...] = ("dis", "flownet")
    # the shipped DIS DN scores regions 0.23..0.96 (5th..95th percentile, key 1..19 frames back); denser
    # from 0.94 up, where the curve bends (below it most regions warp, above it most are segmented)
    thresholds: tuple[float, ...] = (0.50, 0.60, 0.70, 0.80, 0.85, 0.90, 0.92, 0.94, 0.95, 0.96, 0.97, 0.98)
    fixed: tuple[int, ...] = (2, 3, 5, 8, 12, 20)
    # diff and flow ranges cover the 10th..90th percentiles of a region's grey difference (5..74) and
    # mean flow (2..39 px) to its key frame 1..19 frames back on the synthetic set at 256x512
    diff: tuple[float, ...] = (8.0, 12.0, 16.0, 24.0, 32.0, 48.0)
    flow_limits: tuple[float, ...] = (2.0, 4.0, 8.0, 12.0, 16.0, 24.0)
    oracle: tuple[float, ...] = (0.80, 0.88, 0.92, 0.96)
    grids: tuple[tuple[int, int], ...] = ((1, 1), (1, 2), (2, 2), (3, 3), (4, 4))
    # experiment a: grids (rows, cols) that also get the dn curve of (first segmenter, first flow)
    curve_grids: tuple[tuple[int, int], ...] = ((1, 1),)
    overlaps: tuple[int, ...] = (0, 4, 8, 16, 24, 32)
    threshold: float = 0.92  # the one DN threshold of experiments c and d
    experiments: str = EXPERIMENTS
    backend: str = "auto"  # what runs the segmenters of every row (dvsnet.backends)
    precision: str = "auto"

    def to_record(self) -> dict[str, Any]:
        """config.json: the fields, grids written "RxC" as in every result file."""
        return {**asdict(self), "grids": [format_grid(g) for g in self.grids],
                "curve_grids": [format_grid(g) for g in self.curve_grids]}


@dataclass(frozen=True)
class PlannedRow:
    """One configuration to evaluate on frames `width` px wide, and the experiments it serves."""

    config: PipelineConfig
    width: int
    experiments: tuple[str, ...] = field(default=(), compare=False)

    def record(self) -> dict[str, Any]:
        """The row's configuration columns: PipelineConfig.to_record, flow "-" on a per-frame row."""
        record = self.config.to_record(self.width)
        return {**record, "flow": NO_FLOW} if record["policy"] == "always" else record

    @property
    def key(self) -> str:
        r = self.record()
        return row_key(r["segmenter"], r["flow"], r["policy"], r["grid"], r["overlap"])


def _policy(kind: str, value: float) -> str:
    return f"{kind}:{value:g}"


def plan_rows(config: SweepConfig, width: int) -> list[PlannedRow]:
    """The configurations of the requested experiments on frames `width` px wide, unique, in priority
    order (see module doc). A row at the default overlap has overlap None (PipelineConfig.overlap_px)."""
    unknown = set(config.experiments) - set(EXPERIMENTS)
    if unknown:
        raise DvsnetError(f"unknown experiment(s) {''.join(sorted(unknown))}; valid: {EXPERIMENTS}")
    if not config.segmenters or not config.flows:
        raise DvsnetError("the sweep needs at least one segmenter and one flow estimator")
    seg0, flow0 = config.segmenters[0], config.flows[0]
    wanted: list[tuple[str, PlannedRow]] = []

    def add(exp: str, seg: str, flow: str, policy: str, grid=DEFAULT_GRID, overlap: int | None = None):
        # the paper's method: no key-age cap (its protocol keeps keys < 20 frames) and the DN's own scores
        # (online self-calibration, docs/adaptive.md, is ours), so REPORT.md's sweep stays reproducible
        row = PipelineConfig(segmenter=seg, flow=flow, policy=policy, grid=grid, overlap=overlap,
                             max_key_age=0, online=False, backend=config.backend, precision=config.precision)
        wanted.append((exp, PlannedRow(row, width)))

    exps = config.experiments
    if "e" in exps:
        for seg in config.segmenters:
            add("e", seg, PER_FRAME_FLOW, "always", (1, 1))
    for exp in "ab":
        if exp in exps:
            for t in config.thresholds:
                add(exp, seg0, flow0, _policy("dn", t))
    if "b" in exps:
        add("b", seg0, PER_FRAME_FLOW, "always", (1, 1))
    if "a" in exps:  # right after the 2x2 curve: Table 1 picks its operating points across these grids
        for grid in config.curve_grids:
            for t in config.thresholds:
                add("a", seg0, flow0, _policy("dn", t), grid)
    if "b" in exps:
        for n in config.fixed:
            add("b", seg0, flow0, f"fixed:{n}")
        for f in config.flow_limits:
            add("b", seg0, flow0, _policy("flow", f))
        for d in config.diff:
            add("b", seg0, flow0, _policy("diff", d))
        for t in config.oracle:
            add("b", seg0, flow0, _policy("oracle", t))
    if "c" in exps:
        for grid in config.grids:
            add("c", seg0, flow0, _policy("dn", config.threshold), grid)
    if "d" in exps:
        for px in config.overlaps:
            add("d", seg0, flow0, _policy("dn", config.threshold), DEFAULT_GRID, px)
        add("d", seg0, flow0, _policy("dn", config.threshold), (1, 1))  # Fig. 10's "no division" line
    if "a" in exps:
        for seg in config.segmenters:
            add("e", seg, PER_FRAME_FLOW, "always", (1, 1))
            for flow in config.flows:
                for t in config.thresholds:
                    add("a", seg, flow, _policy("dn", t))
    rows: dict[str, PlannedRow] = {}
    for exp, row in wanted:
        old = rows.setdefault(row.key, row)
        if exp not in old.experiments:
            rows[row.key] = PlannedRow(old.config, width, old.experiments + (exp,))
    return list(rows.values())


def _ran_otherwise(row: SweepRow, config: SweepConfig) -> bool:
    """Whether one of our segmenters ran the row on another backend or precision than `config` gives on the
    CPU (rows from before the backends ran torch fp32)."""
    import torch

    from dvsnet.auto_precision import resolve_for
    from dvsnet.backends import is_ours

    if not is_ours(row.segmenter):
        return False
    ran = (row.backend or "torch", row.precision or "fp32")
    return ran != resolve_for(row.segmenter, config.backend, config.precision, torch.device("cpu"))[:2]


def result_to_row(row: PlannedRow, result: dict[str, Any], *, data: str, frame_size: str,
                  machine: dict[str, Any]) -> SweepRow:
    """One CSV row: the planned row's configuration record and a run_pipeline() result with a reference."""
    stage = result["stage_ms"]
    return SweepRow(
        **{**row.record(), "backend": result.get("backend"), "precision": result.get("precision")},
        **{name: result[name] for name in ("miou", "pixel_accuracy", "fps", "ms_per_frame", "seg_share",
                                           "warp_share", "warp_seg_ratio", "snippets",
                                           "frames")},
        **{f"{s}_ms": stage.get(s) for s in ("flow", "decision", "segmentation", "warp", "stitch")},
        ref_fps=result["ref_fps"], speedup=result["speedup"], ref_frames=result["frames"],
        frame_size=frame_size, data=data,
        load_1m=machine["load_average_1m"], torch_threads=machine["torch_threads"],
        finished_utc=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    )


def weights_id(segmenter: str, flow: str, policy: str) -> str:
    """Short hashes of the weights files a row depends on: its segmenter, FlowNetS for a flownet flow, and
    for a dn policy the decision network shipped for the flow's features (dvsnet.flow.dn_variant).

    Rows measured with other weights (e.g. before a retrained `fast` shipped) are stale: the sweep moves
    them aside and measures them again, so one CSV never mixes networks.
    """
    from dvsnet.flow import dn_variant
    from dvsnet.models.weights import shipped_path, weights_digest

    parts = [weights_digest(segmenter, 10)]
    if flow.startswith("flownet"):
        parts.append(weights_digest(shipped_path("flownet"), 10))
    if policy.startswith("dn:"):
        parts.append(weights_digest(shipped_path(f"dn-{dn_variant(flow)}"), 10))
    return "-".join(parts)


def row_file(output: str | Path, key: str) -> Path:
    """Where run_sweep writes the full result JSON of row `key`."""
    return Path(output) / "rows" / f"{_slug(key)}.json"


def _slug(key: str) -> str:  # not atomic.slug: the names of rows/*.json already on disk
    return "".join(c if c.isalnum() or c in ".-" else "_" for c in key)


# (row, result, machine, "") for a measured row; (row, None, {}, why) for a skipped one
RowOutcome = tuple[PlannedRow, dict[str, Any] | None, dict[str, Any], str]


class _RowRunner:
    """Evaluates rows in one process: its snippets and the segmenters it has loaded."""

    def __init__(self, snippets: list, *, warmup_frames: int, segmenter_loader: Callable[[str], Any] | None,
                 progress: bool):
        self.snippets = snippets
        self.warmup_frames = warmup_frames
        self.load = segmenter_loader  # None: the row's backend and precision (dvsnet.backends)
        self.progress = progress
        self.segmenters: dict[str, Any] = {}
        self.failed: dict[str, str] = {}

    def segmenter(self, row: PlannedRow) -> Any:
        """The row's segmenter, loaded once per name; DvsnetError (remembered) when it cannot be."""
        from dvsnet.auto_precision import load_pipeline_segmenter

        name = row.config.segmenter
        if name in self.failed:
            raise DvsnetError(self.failed[name])
        if name not in self.segmenters:
            try:
                self.segmenters[name] = self.load(name) if self.load else load_pipeline_segmenter(
                    name, row.config.backend, row.config.precision, "cpu")[0]
            except DvsnetError as exc:
                self.failed[name] = str(exc)
                raise
        return self.segmenters[name]

    def run(self, row: PlannedRow) -> RowOutcome:
        """The row on every snippet, interleaved frame by frame with its per-frame reference
        (dvsnet.runner)."""
        from dvsnet.evaluate import run_pipeline
        from dvsnet.pipeline import DVSNet
        from dvsnet.provenance import describe_machine

        try:
            config = row.config.replace(segmenter=self.segmenter(row))
            pipe = DVSNet.from_config(config)  # fails fast
            reference = DVSNet.from_config(config.per_frame())
            result = run_pipeline(self.snippets, pipe, warmup_frames=self.warmup_frames,
                                  progress=self.progress, reference=reference)
            result = {**result, "backend": pipe.backend, "precision": pipe.precision}  # what ran
        except DvsnetError as exc:
            return row, None, {}, str(exc)
        return row, result, describe_machine(), ""


_worker: _RowRunner | None = None


def _start_worker(root: str, split: str, max_snippets: int | None, threads: tuple[int, int],
                  options: dict) -> None:
    """Pool initializer: the same threads as the parent, the snippets decoded once per worker; Ctrl-C is
    the parent's to handle (it terminates the pool), so workers print no tracebacks of their own."""
    import signal
    import threading

    import cv2
    import torch
    from tqdm import tqdm

    from dvsnet.evaluate import load_snippets

    global _worker
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # tqdm's default lock includes a multiprocessing semaphore; a worker terminated on Ctrl-C never frees
    # it and the resource tracker warns about a leak at exit. Workers draw no bars, a thread lock will do.
    tqdm.set_lock(threading.RLock())
    torch.set_num_threads(threads[0])
    cv2.setNumThreads(threads[1])
    _worker = _RowRunner(load_snippets(root, split, max_snippets=max_snippets), **options)


def _run_in_worker(row: PlannedRow) -> RowOutcome:
    assert _worker is not None, "pool worker was not initialised"
    return _worker.run(row)


def run_sweep(
    root: str | Path,
    output: str | Path,
    *,
    split: str = "val",
    config: SweepConfig = SweepConfig(),
    max_snippets: int | None = None,
    warmup_frames: int = 5,
    jobs: int = 1,
    segmenter_loader: Callable[[str], Any] | None = None,
    progress: bool = False,
    log: Callable[[str], None] = lambda line: print(line, file=sys.stderr),
) -> Path:
    """Evaluate every planned row not yet in output/sweep.csv; returns the CSV path.

    jobs: rows evaluated at once, each in its own process with this process's torch/OpenCV thread counts
    (rows are appended in the order they finish). Every row's speed-up still compares two timings of the
    same worker under the same load, but `jobs` workers share the machine's cores and memory bandwidth.
    segmenter_loader: name -> segmenter (default: loaded on the rows' backend and precision; tests pass
    their own; with jobs > 1 it must be picklable). A row whose segmenter, flow or policy cannot be built
    (e.g. no trained weights ship for it yet) is logged and skipped, so a later run picks it up. Full
    results per row go to output/rows/<key>.json.
    """
    from dvsnet.evaluate import load_snippets

    if jobs < 1:
        raise DvsnetError(f"jobs must be >= 1, got {jobs}")
    output = Path(output)
    try:
        (output / "rows").mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DvsnetError(f"cannot create the sweep folder {output}: {exc.strerror or exc}") from None
    snippets = load_snippets(root, split, max_snippets=max_snippets)
    height, width = snippets[0].frames[0].shape[:2]
    book = _RowBook(output, str(root), f"{height}x{width}", log)
    book.resume(len(snippets), config)
    planned = plan_rows(config, width)
    done = {row.key for row in book.done}
    todo = [row for row in planned if row.key not in done]
    book.jobs = jobs = min(jobs, max(1, len(todo)))
    book.total = len(todo)
    log(f"sweep: {len(planned)} rows planned, {len(planned) - len(todo)} already in {book.csv_path}, "
        f"{len(todo)} to run on {len(snippets)} snippets at {book.frame_size}"
        + (f", {jobs} at a time" if jobs > 1 else ""))
    write_json_atomic(output / "config.json", config.to_record())
    options = {"warmup_frames": warmup_frames, "segmenter_loader": segmenter_loader}
    if jobs == 1:
        runner = _RowRunner(snippets, **options, progress=progress)
        for n, row in enumerate(todo, 1):
            book.record(n, runner.run(row))
    else:
        del snippets  # each worker decodes its own copy
        _run_in_pool(todo, jobs, (str(root), split, max_snippets), {**options, "progress": False},
                     book.record)
    return book.csv_path


class _RowBook:
    """sweep.csv and rows/*.json of one sweep folder: the rows done, and each row recorded as it finishes."""

    def __init__(self, output: Path, data: str, frame_size: str, log: Callable[[str], None]):
        self.output, self.data, self.frame_size, self.log = output, data, frame_size, log
        self.csv_path = output / CSV_NAME
        self.done = read_rows(self.csv_path)
        self.jobs, self.total = 1, 0

    def resume(self, snippets: int, config: SweepConfig) -> None:
        """Refuse rows of other data; move rows of other weights, backend or precision to
        sweep-stale-*.csv."""
        for row in self.done:
            if row.snippets != snippets or row.frame_size != self.frame_size or row.data != self.data:
                raise DvsnetError(f"{self.csv_path} holds rows for {row.snippets} snippets of {row.data} at "
                                  f"{row.frame_size}, not {snippets} of {self.data} at {self.frame_size}; "
                                  f"resume with the same data and --max-snippets, or use another --output")
        stale = [row for row in self.done if row.weights_id != weights_id(row.segmenter, row.flow, row.policy)
                 or _ran_otherwise(row, config)]
        if stale:
            stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%S")
            write_rows(self.output / f"sweep-stale-{stamp}.csv", stale)
            self.done = [row for row in self.done if row not in stale]
            write_rows(self.csv_path, self.done)
            self.log(f"sweep: {len(stale)} rows were measured with other weights or another backend or "
                     f"precision; moved to sweep-stale-{stamp}.csv and measured again")

    def record(self, n: int, outcome: RowOutcome) -> None:
        """Append the n-th row to finish to sweep.csv (rewritten atomically) and write its rows/<key>.json."""
        plan, result, machine, skipped = outcome
        if result is None:
            self.log(f"sweep: [{n}/{self.total}] {plan.key}: skipped: {skipped}")
            return
        row = result_to_row(plan, result, data=self.data, frame_size=self.frame_size, machine=machine)
        # jobs: rows measured at the same time as this one, this one included
        row = row.replace(weights_id=weights_id(row.segmenter, row.flow, row.policy), jobs=self.jobs)
        full = {"key": plan.key, "experiments": list(plan.experiments), "config": plan.record(),
                **result, "machine": machine, "jobs": self.jobs}
        write_json_atomic(row_file(self.output, plan.key), full)
        self.done.append(row)
        write_rows(self.csv_path, self.done)
        miou = "n/a" if row.miou is None else f"{100 * row.miou:.2f}%"
        self.log(f"sweep: [{n}/{self.total}] {plan.key}: mIoU {miou}, {row.fps:.2f} fps "
                 f"({row.speedup:.2f}x per-frame), {100 * row.seg_share:.1f}% regions segmented")


def _run_in_pool(todo: list[PlannedRow], jobs: int, data: tuple, options: dict,
                 record: Callable[[int, RowOutcome], None]) -> None:
    """The rows in `jobs` spawned worker processes (each with this process's thread counts, its snippets
    of data = (root, split, max_snippets) decoded once), recorded in the order they finish."""
    import multiprocessing

    import cv2
    import torch

    threads = (torch.get_num_threads(), cv2.getNumThreads())
    pool = multiprocessing.get_context("spawn").Pool(jobs, initializer=_start_worker,
                                                     initargs=(*data, threads, options))
    try:
        for n, outcome in enumerate(pool.imap_unordered(_run_in_worker, todo), 1):
            record(n, outcome)
        pool.close()
    finally:
        pool.terminate()  # on Ctrl-C or an error: rows already recorded stay in sweep.csv
        pool.join()
