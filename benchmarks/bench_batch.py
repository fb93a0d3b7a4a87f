"""Batch throughput: `dvsnet segment` on a folder of videos with --workers 1, --workers N and --ray.

    PYTHONPATH=src python benchmarks/bench_batch.py [--videos 8] [--frames 40] [--size 256x512] [--workers 2]

Renders `--videos` synthetic street clips (dvsnet.data.synthetic.render_clip, one seed each) as mp4 files
under data/bench_batch/ (git-ignored; reused when present), then segments the folder with the shipped
networks and the default policy, once per backend, each into a fresh batch folder:
  1. --workers 1 --threads N   (one process, the whole CPU budget)
  2. --workers N --threads N   (N processes, one thread each)
  3. --ray --threads 1         (a local Ray instance the command starts itself, N actors of one CPU)
Each command runs in its own process; its wall time (start to exit, imports and Ray start-up included) and
the batch's own seconds (batch.json, from the first video to the last) are both recorded. Throughput is
frames segmented / batch seconds. The label PNGs (--write labels) of every backend are compared byte for
byte. Backends run one after the other, not interleaved, so load from other processes falls unevenly:
the machine's load average before and after each run is recorded. Writes results/bench_batch.json.
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
            "--write", "labels", "--no-progress", *extra]
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
              "load_average_before": round(load_before, 2), "load_average_after": round(os.getloadavg()[0], 2)}
    print(f"{name:10s} {frames} frames in {seconds:.1f} s batch ({wall:.1f} s wall): {result['fps']:.2f} fps "
          f"(load {result['load_average_before']} -> {result['load_average_after']})", flush=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--videos", type=int, default=8)
    parser.add_argument("--frames", type=int, default=40)
    parser.add_argument("--size", default="256x512")
    parser.add_argument("--workers", type=int, default=2, help="N: the parallelism compared with one worker")
    parser.add_argument("--no-ray", action="store_true", help="skip the Ray run")
    args = parser.parse_args()
    size = tuple(int(v) for v in args.size.split("x"))
    sources = render_videos(Path("data/bench_batch"), args.videos, args.frames, size)
    n = str(args.workers)
    backends = {"workers-1": ["--workers", "1", "--threads", n], f"workers-{n}": ["--workers", n, "--threads", n]}
    if not args.no_ray:
        backends["ray"] = ["--threads", "1", "--ray"]
    results, digests = {}, {}
    with tempfile.TemporaryDirectory(prefix="bench_batch.") as tmp:
        for name, extra in backends.items():
            results[name] = run_backend(name, sources, Path(tmp) / name, extra)
            digests[name] = labels_digest(Path(tmp) / name)
    base = results["workers-1"]["fps"]
    summary = {
        "videos": args.videos, "frames_per_video": args.frames, "size": args.size,
        "machine": describe_machine(), "versions": versions(), "backends": results,
        f"workers_{n}_over_1": round(results[f"workers-{n}"]["fps"] / base, 3),
        "labels_equal_to_workers_1": {name: d == digests["workers-1"] for name, d in digests.items()},
    }
    if "ray" in results:
        summary[f"ray_over_workers_{n}"] = round(results["ray"]["fps"] / results[f"workers-{n}"]["fps"], 3)
    print(json.dumps({k: v for k, v in summary.items() if k not in ("machine", "versions", "backends")}))
    out_dir = Path("results")
    out_dir.mkdir(exist_ok=True)
    write_json_atomic(out_dir / "bench_batch.json", summary)


if __name__ == "__main__":
    main()
