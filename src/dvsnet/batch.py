"""Many videos in one batch: each video its own run folder, one batch.json / batch.csv, resumable.

`segment_batch` is what `dvsnet segment` does with many sources (docs/batch.md):

    result = segment_batch(["a.mp4", "b.mp4"], BatchOptions(PipelineConfig(policy="dn:0.9")), "runs/batch",
                           workers=2)

The batch folder holds one run folder per video, `<video stem>-NNNN` (dvsnet.run.segment_video, the same
files as a single run), and batch.json / batch.csv with one row per video: status, run folder, frames,
fps, path shares, error. Each run's summary.json records under "batch" the video and the options, which is
how a later batch knows what is done:

- a video with a complete run (summary.json "complete": true) made with the same options is skipped;
- one whose runs are all incomplete (or made with other options) is segmented again into a NEW run
  folder; nothing already in the batch folder is overwritten or deleted;
- a video that fails (unreadable, corrupt, truncated) gets status "failed" and its one-line error, and
  the batch goes on;
- Ctrl-C stops every video in progress after its current frame (their runs close with "complete":
  false), writes batch.json and raises KeyboardInterrupt; finished runs are untouched.

Where the videos run: in this process (`workers=1`), in `workers` processes on this machine (spawn
context, each with its own pipeline and `threads` torch/OpenCV threads), or on a Ray cluster (`ray=`
an address, "" for the default: one actor per worker, the networks loaded once per actor). Whatever the
backend, each video is run by dvsnet.run.segment_video on a pipeline that is reset between videos.
"""
from __future__ import annotations

import csv
import dataclasses
import datetime
import glob
import io
import json
import os
import queue
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from tqdm import tqdm

from dvsnet.atomic import slug, write_json_atomic, write_text_atomic
from dvsnet.config import PipelineConfig
from dvsnet.data.labels import classes_of
from dvsnet.data.sources import IMAGE_EXTENSIONS, VIDEO_EXTENSIONS, is_glob, natural_key
from dvsnet.errors import DvsnetError
from dvsnet.outputs import check_writes
from dvsnet.pipeline import DVSNet
from dvsnet.provenance import describe_machine, set_threads
from dvsnet.run import DEFAULT_WRITES, Resize, segment_video

BATCH_JSON = "batch.json"
BATCH_CSV = "batch.csv"
LIST_SUFFIX = ".txt"
# batch.csv's columns, in order; batch.json's rows hold the same keys (earlier_runs as a list)
COLUMNS = ("source", "status", "run", "frames", "fps", "fps_end_to_end", "seg_share", "warp_share",
           "workload_saved", "seconds", "error", "earlier_runs")
FIGURES = ("frames", "fps", "fps_end_to_end", "seg_share", "warp_share", "workload_saved")
Row = dict[str, Any]
Note = Callable[[str], None]


def _stderr(line: str) -> None:
    tqdm.write(line, file=sys.stderr)


# ---------------------------------------------------------------------------------------------- sources

def _suffix(path: str | Path) -> str:
    return Path(path).suffix.lower()


def _folder_files(folder: str) -> tuple[list[str], list[str]]:
    """(image files, video files) directly in `folder`, naturally sorted; ([], []) if it cannot be read."""
    try:
        names = sorted((e.path for e in os.scandir(folder) if e.is_file()), key=natural_key)
    except OSError:
        return [], []
    return ([n for n in names if _suffix(n) in IMAGE_EXTENSIONS],
            [n for n in names if _suffix(n) in VIDEO_EXTENSIONS])


def _glob_files(pattern: str) -> tuple[list[str], list[str]]:
    """(image files, video files) a glob matches, naturally sorted."""
    names = sorted((p for p in glob.glob(pattern, recursive=True) if os.path.isfile(p)), key=natural_key)
    return ([n for n in names if _suffix(n) in IMAGE_EXTENSIONS],
            [n for n in names if _suffix(n) in VIDEO_EXTENSIONS])


def read_list(path: str | Path) -> list[str]:
    """The sources of a list file: one path per line; blank lines and lines starting with # are skipped;
    relative paths are relative to the list file's folder."""
    path = Path(path)
    try:
        lines = path.read_text().splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise DvsnetError(f"cannot read the list of videos {path}: "
                          f"{getattr(exc, 'strerror', None) or exc}") from None
    entries = [line.strip() for line in lines if line.strip() and not line.strip().startswith("#")]
    return [entry if os.path.isabs(entry) else str(path.parent / entry) for entry in entries]


def _is_list(source: str) -> bool:
    return _suffix(source) == LIST_SUFFIX and os.path.isfile(source)


def batch_sources(sources: list[str]) -> list[str] | None:
    """The videos a `dvsnet segment` command names, or None when it names ONE source run as today.

    One argument is a single source (one run folder, as before batches existed) when it is a video file,
    an image, a folder holding image files (a frame sequence) or a glob matching image files; anything
    that does not exist stays a single source too, for its usual error. It is a batch when it is a
    `.txt` list, a folder holding videos and no images, or a glob matching videos and no images.
    Several arguments are always a batch: each list, folder of videos or glob of videos adds its videos,
    anything else (a video, a frame folder, a glob of frames, a missing path) is one item. Items are
    absolute paths, in the order given, each once.
    """
    if len(sources) == 1:
        (source,) = sources
        if not _is_list(source):
            images, videos = (_glob_files(source) if is_glob(source) else
                              _folder_files(source) if os.path.isdir(source) else ([], []))
            if images or not videos:
                return None
    if len(sources) > 1 and all(_suffix(s) in IMAGE_EXTENSIONS and os.path.isfile(s) for s in sources):
        raise DvsnetError(f"{len(sources)} image files given: to read them as one frame sequence, quote the "
                          "glob ('frames/*.png') or pass their folder")
    items: list[str] = []
    for source in sources:
        if _is_list(source):
            items += read_list(source)
            continue
        images, videos = (_glob_files(source) if is_glob(source) else
                          _folder_files(source) if os.path.isdir(source) else ([], []))
        items += videos if videos and not images else [source]
    if not items:
        raise DvsnetError(f"no videos to segment in {' '.join(sources)}")
    return list(dict.fromkeys(os.path.abspath(item) for item in items))


# ---------------------------------------------------------------------------------------------- options

@dataclasses.dataclass(frozen=True)
class BatchOptions:
    """How every video of a batch is segmented (the arguments of dvsnet.run.segment_video). Picklable
    when the config's fields are strings, as the command line makes them."""

    config: PipelineConfig
    writes: tuple[str, ...] = DEFAULT_WRITES
    resize: Resize = None
    stride: int = 1
    max_frames: int | None = None
    flow_fallback: str = "dis"  # what flow "mv" becomes on a video without motion vectors (dvsnet.flow_mv)

    def record(self) -> dict[str, Any]:
        """The options as summary.json's "batch" and batch.json record them (JSON types only), and compare
        them on resume: a complete run made with other options is not reused. flow_fallback is recorded
        only when it is not the default, so batches from before it resume as they were."""
        record = {"config": self.config.to_record(), "writes": list(self.writes), "resize": self.resize,
                  "stride": self.stride, "max_frames": self.max_frames}
        if self.flow_fallback != "dis":
            record["flow_fallback"] = self.flow_fallback
        return json.loads(json.dumps(record))


def run_prefix(source: str) -> str:
    """A video's run folders are `<prefix>-NNNN`: its file (or folder) name without the extension."""
    path = Path(source)
    return slug(path.name if os.path.isdir(source) else path.stem) or "video"


# ---------------------------------------------------------------------------------------------- one video

def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text if isinstance(exc, DvsnetError) else f"internal error: {type(exc).__name__}: {text}"


def _figures(summary: dict[str, Any]) -> Row:
    return {name: summary.get(name) for name in FIGURES}


def segment_one(source: str, options: BatchOptions, output: str | Path, pipe: DVSNet | None = None,
                note: Note = _stderr) -> Row:
    """Segment one video of a batch into a new run folder under `output`; returns its batch row. Never
    raises for the video's own failures (status "failed" with the one-line error); Ctrl-C gives status
    "interrupted" (the run closed after its last finished frame)."""
    start, wall_start = time.perf_counter(), time.time()
    row: Row = {"source": source}
    try:
        run_dir, summary = segment_video(
            source, options.config, output=output, writes=options.writes, resize=options.resize,
            stride=options.stride, max_frames=options.max_frames, progress=False, prefix=run_prefix(source),
            note=note, pipe=pipe, extra={"batch": {"source": source, "options": options.record()}},
            flow_fallback=options.flow_fallback)
        row.update(status="complete", run=run_dir.name, **_figures(summary), error="")
    except KeyboardInterrupt:
        row.update(status="interrupted", error="interrupted")
    except Exception as exc:  # noqa: BLE001 (one video's failure, whatever it is, must not stop the batch)
        row.update(status="failed", error=_one_line(exc))
    if row["status"] != "complete":
        latest = latest_run(output, source, since=wall_start)
        if latest is not None:  # stopped mid-run: the frames before it are saved there
            row.update(run=latest[0].name, **_figures(latest[1]))
    row["seconds"] = round(time.perf_counter() - start, 3)
    return row


def _summaries(output: str | Path) -> Iterable[tuple[Path, dict[str, Any]]]:
    """(run folder, summary) of every run folder under `output` that a batch made."""
    try:
        folders = sorted((Path(e.path) for e in os.scandir(output) if e.is_dir()),
                         key=lambda p: natural_key(p.name))
    except OSError:
        return
    for folder in folders:
        try:
            summary = json.loads((folder / "summary.json").read_text())
        except (OSError, ValueError):
            continue
        if isinstance(summary, dict) and isinstance(summary.get("batch"), dict):
            yield folder, summary


def latest_run(output: str | Path, source: str, *, since: float) -> tuple[Path, dict[str, Any]] | None:
    """The newest run folder of `source` under `output` made since `since` (time.time()), or None."""
    cutoff = since - 1.0
    prefix = run_prefix(source) + "-"
    found = [(folder, summary) for folder, summary in _summaries(output)
             if folder.name.startswith(prefix) and summary["batch"].get("source") == source
             and folder.stat().st_mtime >= cutoff]
    return found[-1] if found else None


# ---------------------------------------------------------------------------------------------- the record

def _read_rows(path: Path) -> list[Row]:
    """The rows of an existing batch.json (none if there is none); DvsnetError if it is not one."""
    if not path.exists():
        return []
    try:
        rows = json.loads(path.read_text())["videos"]
    except (OSError, ValueError, KeyError, TypeError):
        rows = None
    if not isinstance(rows, list) or not all(isinstance(r, dict) and "source" in r for r in rows):
        raise DvsnetError(f"{path} is not a batch record of dvsnet; move it away or choose another --output")
    return rows


def _csv_text(rows: list[Row]) -> str:
    text = io.StringIO()
    writer = csv.DictWriter(text, COLUMNS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: ";".join(v) if isinstance(v, list) else ("" if v is None else v)
                         for k, v in row.items()})
    return text.getvalue()


class BatchRecord:
    """batch.json and batch.csv of one batch folder, rewritten atomically after every video. Rows of
    videos that earlier commands segmented into the same folder are kept."""

    def __init__(self, output: Path, sources: list[str], header: dict[str, Any]) -> None:
        self.output = output
        self.header = header
        earlier = {row["source"]: row for row in _read_rows(output / BATCH_JSON)}
        self.rows: dict[str, Row] = {source: {**earlier.get(source, {"source": source}), "source": source}
                                     for source in sources}
        self.kept = [row for source, row in earlier.items() if source not in self.rows]

    def set(self, row: Row) -> None:
        previous = self.rows.get(row["source"], {})
        self.rows[row["source"]] = {**{k: None for k in COLUMNS},
                                    "earlier_runs": previous.get("earlier_runs", []), **row}

    def counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for row in self.rows.values():
            counts[row.get("status") or "pending"] = counts.get(row.get("status") or "pending", 0) + 1
        return counts

    def write(self, **header: Any) -> Path:
        self.header.update(header, counts=self.counts())
        rows = [*self.rows.values(), *self.kept]
        write_json_atomic(self.output / BATCH_JSON, {"batch": self.header, "videos": rows})
        write_text_atomic(self.output / BATCH_CSV, _csv_text(rows))
        return self.output / BATCH_JSON


def plan(record: BatchRecord, options: BatchOptions) -> list[str]:
    """The videos still to segment; the others' rows become "skipped" (a complete run with the same
    options exists). Every other run of a video (incomplete, or other options) is listed in its
    earlier_runs."""
    wanted = options.record()
    runs: dict[str, list[tuple[Path, dict[str, Any]]]] = {}
    for folder, summary in _summaries(record.output):
        runs.setdefault(summary["batch"].get("source"), []).append((folder, summary))
    todo = []
    for source in record.rows:
        mine = runs.get(source, [])
        done = [(f, s) for f, s in mine if s.get("complete") is True and s["batch"].get("options") == wanted]
        reused = done[-1][0] if done else None
        earlier = [folder.name for folder, _ in mine if folder != reused]
        if done:
            folder, summary = done[-1]
            record.set({"source": source, "status": "skipped", "run": folder.name, **_figures(summary),
                        "error": "", "earlier_runs": earlier})
        else:
            record.set({"source": source, "status": "pending", "earlier_runs": earlier})
            todo.append(source)
    return todo


# ---------------------------------------------------------------------------------------------- backends

def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" + ("" if n == 1 else "s")


def default_workers(videos: int) -> int:
    """One worker per usable core, no more than there are videos."""
    return max(1, min(videos, int(describe_machine()["usable_cores"] or 1)))


def _run_here(todo: list[str], options: BatchOptions, output: Path, pipe: DVSNet, threads: int | None,
              done: Callable[[Row], None], started: Callable[[str], None], note: Note) -> None:
    set_threads(threads)
    for source in todo:
        started(source)
        row = segment_one(source, options, output, pipe, note)
        done(row)
        if row["status"] == "interrupted":
            raise KeyboardInterrupt


_stop_signalled = threading.Event()


def _remember_signal(signum: int, frame: object) -> None:
    _stop_signalled.set()


def _worker_main(tasks: Any, results: Any, stop: Any, options: BatchOptions, output: str,
                 threads: int) -> None:
    """A worker process: its own pipeline, one video at a time until the queue is empty or a stop.

    A signal between videos only ends the loop (never a half-written file); during a video the run
    loop's own handler stops it after the current frame (dvsnet.run.StopRequest)."""
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, _remember_signal)
    # tqdm's default lock holds a multiprocessing semaphore (see dvsnet.sweep._start_worker); no bars here
    tqdm.set_lock(threading.RLock())
    set_threads(threads)
    try:
        pipe = DVSNet.from_config(options.config)
    except Exception as exc:  # noqa: BLE001 (reported by the parent, which checked the config already)
        results.put(("dead", os.getpid(), _one_line(exc)))
        return
    while not stop.is_set() and not _stop_signalled.is_set():
        try:
            source = tasks.get(timeout=0.2)
        except queue.Empty:
            continue
        if source is None:
            break
        results.put(("start", os.getpid(), source))
        row = segment_one(source, options, output, pipe,
                          lambda line: results.put(("note", os.getpid(), line)))
        results.put(("done", os.getpid(), row))


def _run_processes(todo: list[str], options: BatchOptions, output: Path, workers: int, threads: int,
                   done: Callable[[Row], None], started: Callable[[str], None], note: Note) -> None:
    import multiprocessing

    context = multiprocessing.get_context("spawn")
    tasks, results, stop = context.Queue(), context.Queue(), context.Event()
    for source in [*todo, *[None] * workers]:
        tasks.put(source)
    procs = [context.Process(target=_worker_main, args=(tasks, results, stop, options, str(output), threads),
                             daemon=True) for _ in range(workers)]
    for proc in procs:
        proc.start()
    running: dict[int, str] = {}  # worker pid -> its video
    remaining = set(todo)

    def handle(message: tuple) -> None:
        kind, pid, payload = message
        if kind == "start":
            running[pid] = payload
            started(payload)
        elif kind == "done":
            running.pop(pid, None)
            remaining.discard(payload["source"])
            done(payload)
        elif kind == "note":
            note(payload)
        elif kind == "dead":
            note(f"batch: a worker could not start: {payload}")

    def drain(until: Callable[[], bool]) -> None:
        """Handle messages until `until()`, then those still queued (an exited worker's last ones)."""
        while True:
            finished = until()
            try:
                handle(results.get(timeout=0.2))
                continue
            except queue.Empty:
                pass
            for proc in procs:  # a worker that died (killed, crashed) takes its video with it
                if proc.exitcode is not None and proc.pid in running:
                    source = running.pop(proc.pid)
                    remaining.discard(source)
                    done({"source": source, "status": "failed",
                          "error": f"worker process died (exit code {proc.exitcode})"})
            if finished:
                return

    try:
        drain(lambda: not remaining or all(p.exitcode is not None for p in procs))
    except KeyboardInterrupt:
        stop.set()
        for proc in procs:  # a terminal sends SIGINT to the workers too; `kill -INT` reaches only us
            if proc.exitcode is None:
                os.kill(proc.pid, signal.SIGINT)
        try:
            drain(lambda: all(p.exitcode is not None for p in procs))
        finally:
            for proc in procs:
                proc.kill()  # a second Ctrl-C: runs in progress are left incomplete, never as complete
        raise
    finally:
        for proc in procs:
            proc.join(timeout=5)
    for source in sorted(remaining):  # every worker exited before these ran (e.g. none could start)
        done({"source": source, "status": "failed", "error": "no worker left to run it"})


class _RayWorker:
    """A Ray actor: the pipeline built once, then one video per call."""

    def __init__(self, options: BatchOptions, output: str, threads: int) -> None:
        set_threads(threads)
        self.options, self.output = options, output
        self.pipe = DVSNet.from_config(options.config)

    def run(self, source: str) -> Row:
        return segment_one(source, self.options, self.output, self.pipe)


def _run_ray(todo: list[str], options: BatchOptions, output: Path, workers: int | None, threads: int,
             address: str, done: Callable[[Row], None], started: Callable[[str], None], note: Note) -> int:
    """Run the videos on Ray actors (connecting to `address`, or the default "" = an instance this
    process already started, RAY_ADDRESS, a local cluster, or a new local instance); returns the actors."""
    try:
        import ray
    except ImportError:
        raise DvsnetError("--ray needs Ray: pip install 'dvsnet[ray]'") from None
    ours = not ray.is_initialized()
    if ours:
        try:
            ray.init(address=address or None, include_dashboard=False, logging_level="warning")
        except Exception as exc:  # noqa: BLE001 (Ray raises many kinds: a bad address, nothing listening)
            raise DvsnetError(f"cannot start or reach Ray at {address or 'the default address'}: "
                              f"{_one_line(exc)}") from None
    try:
        # an actor holds its CPUs for its lifetime: more actors than fit would wait for ever
        fit = max(1, int(ray.cluster_resources().get("CPU", 1)) // threads)
        if workers is not None and workers > fit:
            note(f"batch: the Ray cluster has room for {_count(fit, 'actor')} of {threads} CPUs; using {fit}")
        workers = min(workers or fit, fit, len(todo))
        actor = ray.remote(num_cpus=threads)(_RayWorker)
        idle = [actor.remote(options, str(output), threads) for _ in range(workers)]
        pending: dict[Any, tuple[Any, str]] = {}
        queue_ = list(reversed(todo))
        try:
            while queue_ or pending:
                while queue_ and idle:
                    worker, source = idle.pop(), queue_.pop()
                    pending[worker.run.remote(source)] = (worker, source)
                    started(source)
                ready, _ = ray.wait(list(pending), num_returns=1)
                worker, source = pending.pop(ready[0])
                try:
                    done(ray.get(ready[0]))
                    idle.append(worker)
                except ray.exceptions.RayError as exc:  # the actor died: its video fails, the others go on
                    done({"source": source, "status": "failed",
                          "error": _one_line(exc).splitlines()[0][:300]})
                    if not idle and not pending and queue_:
                        idle.append(actor.remote(options, str(output), threads))
        except KeyboardInterrupt:
            for worker, source in pending.values():  # videos in progress are left incomplete
                ray.kill(worker)
                done({"source": source, "status": "interrupted", "error": "interrupted"})
            raise
        return workers
    finally:
        if ours:
            ray.shutdown()


# ---------------------------------------------------------------------------------------------- the batch

@dataclasses.dataclass
class BatchResult:
    """What segment_batch did: the record's path, the rows of this command's videos, the counts."""

    path: Path
    rows: list[Row]
    counts: dict[str, int]
    frames: int
    seconds: float

    @property
    def ok(self) -> bool:
        return all(row["status"] in ("complete", "skipped") for row in self.rows)


def segment_batch(sources: list[str], options: BatchOptions, output: str | Path, *,
                  workers: int | None = None, threads: int | None = None, ray: str | None = None,
                  progress: bool = False, note: Note = _stderr) -> BatchResult:
    """Segment every video of `sources` (absolute paths, see batch_sources) into its own run folder under
    `output`, skipping those done before; returns the BatchResult (also in output/batch.json).

    workers: videos at once (default: one per usable core, or per Ray CPU / threads); threads: locally
    the torch/OpenCV threads of all workers together, split evenly (default: the usable cores), on Ray
    the CPUs each actor reserves and its threads (default 1); ray: None runs on this machine, else a Ray
    address ("" for the default one). The pipeline is built once here first, so a mistake in the config
    is one DvsnetError before anything is written.
    """
    output = Path(output)
    pipe = DVSNet.from_config(options.config)
    check_writes(options.writes, classes_of(pipe.segmenter))
    try:
        output.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DvsnetError(f"cannot create the batch folder {output}: {exc.strerror or exc}") from None
    cores = int(describe_machine()["usable_cores"] or 1)
    header: dict[str, Any] = {"sources": sources, "options": options.record(),
                              "backend": "local" if ray is None else f"ray:{ray or 'default'}",
                              "started": datetime.datetime.now(datetime.timezone.utc).isoformat(
                                  timespec="seconds")}
    record = BatchRecord(output, sources, header)
    todo = plan(record, options)
    if ray is None:
        workers = min(workers or default_workers(len(todo)), max(1, len(todo)))
        per_worker = max(1, (threads or cores) // workers)
    else:
        per_worker = threads or 1
    header.update(workers=workers, threads_per_worker=per_worker, machine=describe_machine(pipe.device))
    note(f"batch: {len(sources)} videos, {len(sources) - len(todo)} complete already, {len(todo)} to run"
         + (f" with {_count(workers, 'worker')} x {_count(per_worker, 'thread')}" if workers else " on Ray")
         + f" -> {output}")
    record.write()
    bar = tqdm(total=len(todo), unit="video", desc="batch", disable=None if progress else True,
               file=sys.stderr, dynamic_ncols=True)
    frames = 0
    start = time.perf_counter()

    def done(row: Row) -> None:
        nonlocal frames
        record.set(row)
        frames += int(row.get("frames") or 0) if row["status"] == "complete" else 0
        record.write(seconds=round(time.perf_counter() - start, 3), frames_segmented=frames)
        if row["status"] == "failed":
            bar.write(f"batch: {row['source']}: {row['error']}", file=sys.stderr)
        bar.update()
        bar.set_postfix_str(f"{frames} frames", refresh=False)

    def started(source: str) -> None:
        record.set({"source": source, "status": "running"})

    try:
        if not todo:
            pass
        elif ray is not None:
            workers = _run_ray(todo, options, output.absolute(), workers, per_worker, ray, done, started,
                               note)
        elif workers == 1:
            _run_here(todo, options, output, pipe, per_worker, done, started, note)
        else:
            del pipe  # each worker builds its own
            _run_processes(todo, options, output, workers, per_worker, done, started, note)
    finally:
        bar.close()
        for source, row in record.rows.items():  # stopped before these ran
            if row.get("status") in ("pending", "running"):
                record.set({"source": source,
                            "status": "interrupted" if row["status"] == "running" else "pending",
                            "error": "interrupted" if row["status"] == "running" else ""})
        seconds = time.perf_counter() - start
        path = record.write(workers=workers, seconds=round(seconds, 3), frames_segmented=frames,
                            fps_batch=round(frames / seconds, 3) if frames and seconds > 0 else None,
                            finished=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"))
    rows = [record.rows[source] for source in sources]
    return BatchResult(path, rows, record.counts(), frames, seconds)
