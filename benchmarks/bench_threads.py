"""Threads that do not fight: `dvsnet segment` fps with 1 and 2 threads, on an idle machine and on one
kept busy by two spinning processes, with dvsnet's OpenMP spin setting and with OpenMP's own (300 000).

    PYTHONPATH=src python benchmarks/bench_threads.py

Each run segments the same rendered clip (`dvsnet demo`'s, 256x512, dn:0.92) in a subprocess, so every
setting starts a fresh OpenMP runtime; fps is the summary's (pipeline time). Writes
results/bench_threads.json and prints a Markdown table.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from dvsnet.atomic import write_json_atomic

SPIN = {"dvsnet (GOMP_SPINCOUNT=1000)": "1000", "OpenMP's own (GOMP_SPINCOUNT=300000)": "300000"}


def segment(clip: Path, out: Path, threads: int, spin: str, frames: int) -> float:
    env = {**os.environ, "GOMP_SPINCOUNT": spin}
    subprocess.run([sys.executable, "-m", "dvsnet", "segment", str(clip), "--threads", str(threads),
                    "--output", str(out), "--no-progress", "--write", "csv", "--max-frames", str(frames),
                    "--grid", "2x2", "--max-key-age", "0", "--backend", "torch"],  # as docs/speed.md measured
                   env=env, check=True, capture_output=True)
    run = max(out.glob("segment-*"))
    return json.loads((run / "summary.json").read_text())["fps"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=30)
    parser.add_argument("--busy", type=int, default=2, help="spinning processes in the loaded case")
    parser.add_argument("--out", default="results/bench_threads.json")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        subprocess.run([sys.executable, "-m", "dvsnet", "demo", "--frames", str(args.frames), "--output",
                        str(tmp / "demo"), "--no-progress", "--policy", "fixed:5"],
                       check=True, capture_output=True)
        clip = next((tmp / "demo").glob("demo-*/input.mp4"))
        rows = []
        for load in ("idle", "loaded"):
            busy = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(args.busy)] \
                if load == "loaded" else []
            try:
                time.sleep(1 if busy else 0)
                for name, spin in SPIN.items():
                    for threads in (2, 1):
                        fps = segment(clip, tmp / "runs", threads, spin, args.frames)
                        rows.append({"machine": load, "spin": name, "threads": threads, "fps": fps,
                                     "load_1m": os.getloadavg()[0]})
            finally:
                for process in busy:
                    process.kill()
    write_json_atomic(args.out, {"command": " ".join(["PYTHONPATH=src python", *sys.argv]), "rows": rows})
    print("| machine | OpenMP spin | --threads 2 | --threads 1 |\n|---|---|---|---|")
    for load in ("idle", "loaded"):
        for name in SPIN:
            fps = {r["threads"]: r["fps"] for r in rows if r["machine"] == load and r["spin"] == name}
            print(f"| {load} | {name} | {fps[2]:.1f} fps | {fps[1]:.1f} fps |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
