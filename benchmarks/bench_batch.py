"""Batch throughput: `dvsnet segment` on a folder of videos with --workers 1, --workers N and --ray.

    PYTHONPATH=src python benchmarks/bench_batch.py [--videos 8] [--frames 40] [--size 256x512] [--workers 2]
        [--rounds 1] [--no-ray]

Renders `--videos` synthetic street clips (dvsnet.data.synthetic.render_clip, one seed each) as mp4 files
under data/bench_batch/ (git-ignored; reused when present), then segments the folder with the shipped
networks and the default policy, once per backend, each into a fresh batch folder:
  1. --workers 1 --threads N   (one process, the whole CPU budget)
  2. --workers 1 --threads 1   (one process, one thread: on a busy machine N threads in one process can
                                be slower than one, so this is the fairer baseline)
  3. --workers N --threads N   (N processes, one thread each)
  4. --ray --threads 1         (a local Ray instance the command starts itself, N actors of one CPU)
  5. --ray=auto --threads 1    (the same on a local instance started before, `ray start --head
                                --num-cpus N`, as a cluster is: Ray's start-up is not in the figure)
Each command runs in its own process; its wall time (start to exit, imports and Ray start-up included) and
the batch's own seconds (batch.json, from the first video to the last) are both recorded. Throughput is
frames segmented / batch seconds. The label PNGs (--write labels) of every backend are compared byte for
byte. Backends run one after the other, `--rounds` times in turn (medians and per-round ratios reported),
so load from other processes falls unevenly on a busy machine: the load average before and after each
run is recorded. Writes results/bench_batch.json.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from dvsnet.atomic import write_json_atomic
from dvsnet.data.synthetic import render_clip
from dvsnet.provenance import describe_machine, versions

SRC = Path(__file__).resolve().parents[1] / "src"

# the configuration docs/batch.md measured: dn:0.92 on 2x2 regions without a key-age cap, eager fp32 torch
# (the defaults then)
MEASURED_CONFIG = ("--grid", "2x2", "--max-key-age", "0", "--backend", "torch")

def render_videos(folder: Path, videos: int, frames: int, size: tuple[int, int]) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for seed in range(videos):
        path = folder / f"street{seed:02d}_{frames}f_{size[0]}x{size[1]}.mp4"
        if not path.exists():
            writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 17.0, (size[1], size[0]))
            for frame in render_clip(seed, frames, size):
                writer.write(np.ascontiguousarray(frame[:, :, ::-1]))
            writer.release()
        paths.append(path)
    return paths


def labels_digest(batch: Path) -> dict[str, str]:
    """sha256 of every label PNG of a batch, by video and file name."""
    record = json.loads((batch / "batch.json").read_text())
    return {f"{Path(row['source']).name}/{png.name}": hashlib.sha256(png.read_bytes()).hexdigest()
            for row in record["videos"] if row["run"]
            for png in sorted((batch / row["run"] / "labels").iterdir())}


def run_backend(name: str, sources: list[Path], output: Path, extra: list[str]) -> dict:
    argv = [sys.executable, "-m", "dvsnet", "segment", *map(str, sources), "--output", str(output),
            "--write", "labels", "--no-progress", *MEASURED_CONFIG, *extra]
    load_before = os.getloadavg()[0]
    start = time.perf_counter()
    done = subprocess.run(argv, env={**os.environ, "PYTHONPATH": str(SRC)}, capture_output=True, text=True,
                          check=False)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{name} failed ({done.returncode}): {done.stderr.strip()[-2000:]}")
    batch = json.loads((output / "batch.json").read_text())["batch"]
    frames, seconds = batch["frames_segmented"], batch["seconds"]
    result = {"command": " ".join(["dvsnet", "segment", "VIDEOS...", *argv[argv.index("--output"):]]),
              "workers": batch["workers"], "threads_per_worker": batch["threads_per_worker"],
              "frames": frames, "batch_seconds": seconds, "wall_seconds": round(wall, 3),
              "fps": round(frames / seconds, 3), "fps_wall": round(frames / wall, 3),
              "load_average_before": round(load_before, 2),
              "load_average_after": round(os.getloadavg()[0], 2)}
    print(f"{name:10s} {frames} frames in {seconds:.1f} s batch ({wall:.1f} s wall): {result['fps']:.2f} fps "
          f"(load {result['load_average_before']} -> {result['load_average_after']})", flush=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--videos", type=int, default=8)
    parser.add_argument("--frames", type=int, default=40)
    parser.add_argument("--size", default="256x512")
    parser.add_argument("--workers", type=int, default=2, help="N: the parallelism compared with one worker")
    parser.add_argument("--no-ray", action="store_true", help="skip the Ray runs")
    parser.add_argument("--rounds", type=int, default=1,
                        help="runs of every backend, alternating; medians reported")
    parser.add_argument("--backends", default=None,
                        help="comma-separated subset of workers-1,workers-1-thread-1,workers-N,ray,"
                             "ray-running (default: all); ratios are reported where both sides ran")
    args = parser.parse_args()
    size = tuple(int(v) for v in args.size.split("x"))
    sources = render_videos(Path("data/bench_batch"), args.videos, args.frames, size)
    n = str(args.workers)
    backends = {"workers-1": ["--workers", "1", "--threads", n],
                "workers-1-thread-1": ["--workers", "1", "--threads", "1"],
                f"workers-{n}": ["--workers", n, "--threads", n]}
    if not args.no_ray:
        backends["ray"] = ["--threads", "1", "--ray"]
        backends["ray-running"] = ["--threads", "1", "--ray=auto"]
    if args.backends:
        backends = {name: extra for name, extra in backends.items() if name in args.backends.split(",")}
    runs: dict[str, list[dict]] = {name: [] for name in backends}
    digests = {}
    ray = Path(sys.executable).with_name("ray")
    with tempfile.TemporaryDirectory(prefix="bench_batch.") as tmp:
        for round_ in range(args.rounds):  # backends alternate, so load from others falls on all alike
            for name, extra in backends.items():
                if name == "ray-running":
                    subprocess.run([str(ray), "start", "--head", f"--num-cpus={n}",
                                    "--include-dashboard=false"], check=True, capture_output=True)
                try:
                    runs[name].append(run_backend(name, sources, Path(tmp) / f"{name}-{round_}", extra))
                finally:
                    if name == "ray-running":
                        subprocess.run([str(ray), "stop"], check=False, capture_output=True)
                digests[name] = labels_digest(Path(tmp) / f"{name}-{round_}")

    def ratio(a: str, b: str) -> dict[str, object]:
        """Median fps of a over median fps of b, and the ratio in each round (adjacent runs)."""
        per_round = [round(x["fps"] / y["fps"], 3) for x, y in zip(runs[a], runs[b])]
        return {"median": round(median[a] / median[b], 3), "per_round": per_round}

    median = {name: float(np.median([r["fps"] for r in rs])) for name, rs in runs.items()}
    summary = {
        "videos": args.videos, "frames_per_video": args.frames, "size": args.size, "rounds": args.rounds,
        "machine": describe_machine(), "versions": versions(), "runs": runs,
        "median_fps": {name: round(v, 3) for name, v in median.items()},
        "labels_equal_to_first": {name: d == next(iter(digests.values())) for name, d in digests.items()},
    }
    pairs = [(f"workers-{n}", "workers-1"), (f"workers-{n}", "workers-1-thread-1"), ("ray", f"workers-{n}"),
             ("ray-running", f"workers-{n}")]
    for a, b in pairs:
        if a in runs and b in runs:
            summary[f"{a}_over_{b}".replace("-", "_")] = ratio(a, b)
    print(json.dumps({k: v for k, v in summary.items() if k not in ("machine", "versions", "runs")}))
    out_dir = Path("results")
    out_dir.mkdir(exist_ok=True)
    write_json_atomic(out_dir / "bench_batch.json", summary)


if __name__ == "__main__":
    main()
