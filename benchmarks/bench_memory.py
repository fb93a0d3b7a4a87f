"""Peak memory of `dvsnet segment` over a long video: flat from 1 000 to 10 000 frames?

Writes one generated video (a moving pattern, 10 000 frames at 64x128 by default), then runs the real
CLI path (read -> DVSNet -> overlay video + frames.csv + label PNGs) on its first 1 000 frames and on all
10 000, each in a fresh subprocess, and reads the subprocess's peak resident set size (VmHWM from
/proc/self/status) at the end. Results: results/memory.json, and one line per run on stdout.

    PYTHONPATH=src .venv/bin/python benchmarks/bench_memory.py            # 1 000 and 10 000 frames
    PYTHONPATH=src .venv/bin/python benchmarks/bench_memory.py --frames 200 2000 --size 64x128

The segmenter is the shipped `fast` when its weights exist, otherwise the `fast` architecture with
random weights (same compute and memory; labels are then meaningless, which does not matter here).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def peak_rss_mib() -> float:
    """This process's peak resident set size (VmHWM) in MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024  # kB
    raise RuntimeError("no VmHWM in /proc/self/status (Linux only)")


def current_rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc/self/status (Linux only)")


def write_stream(path: Path, frames: int, height: int, width: int) -> None:
    """A textured background panning left with a bright block moving right (MJPG, 25 fps)."""
    rng = np.random.default_rng(0)
    canvas = cv2.GaussianBlur(rng.integers(0, 256, (height, width * 4, 3), np.uint8), (0, 0), 3)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 25.0, (width, height))
    for i in range(frames):
        x = i % (width * 3)
        frame = canvas[:, x:x + width].copy()
        block = (3 * i) % (width - 16)
        frame[height // 2:, block:block + 16] = 255
        writer.write(frame)
    writer.release()


def child(argv: list[str]) -> None:
    """Run the CLI in this process, then print peak RSS as JSON on the last line."""
    from dvsnet.cli import main

    start = time.perf_counter()
    status = main(argv)
    seconds = time.perf_counter() - start
    print(json.dumps({"status": status, "peak_rss_mib": peak_rss_mib(), "end_rss_mib": current_rss_mib(),
                      "seconds": seconds}))


def segmenter_spec(tmp: Path) -> str:
    from dvsnet.models.weights import shipped_path

    if shipped_path("fast").is_file():
        return "fast"
    import torch

    from dvsnet.models import build_fast, save_weights

    torch.manual_seed(0)
    return str(save_weights(build_fast().eval(), tmp / "fast_random.safetensors", {"arch": "fast"}))


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(sys.argv[2:])
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--size", default="64x128", help="HxW of the generated video (default 64x128)")
    parser.add_argument("--policy", default="fixed:5")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default=str(ROOT / "results" / "memory.json"))
    args = parser.parse_args()
    height, width = (int(v) for v in args.size.lower().split("x"))
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src") + os.pathsep + os.environ.get("PYTHONPATH", "")}
    runs = []
    with tempfile.TemporaryDirectory(prefix="bench_memory_") as tmp_name:
        tmp = Path(tmp_name)
        video = tmp / "stream.avi"
        t = time.perf_counter()
        write_stream(video, max(args.frames), height, width)
        print(f"wrote {max(args.frames)} frames {height}x{width} in {time.perf_counter() - t:.1f} s",
              flush=True)
        seg = segmenter_spec(tmp)
        for frames in args.frames:
            cli = ["segment", str(video), "--max-frames", str(frames), "--segmenter", seg,
                   "--policy", args.policy, "--grid", "2x2",
                   "--output", str(tmp / "runs"), "--write", "overlay", "--write", "csv", "--write", "labels",
                   "--no-progress", "--threads", str(args.threads)]
            proc = subprocess.run([sys.executable, __file__, "--child", *cli], capture_output=True, text=True,
                                  env=env, check=False)
            if proc.returncode != 0:
                sys.exit(f"child failed ({proc.returncode}):\n{proc.stderr}")
            result = json.loads(proc.stdout.strip().splitlines()[-1])
            summary_line = proc.stdout.strip().splitlines()[0]
            runs.append({"frames": frames, **result, "cli": summary_line})
            print(f"{frames:6d} frames: peak RSS {result['peak_rss_mib']:.1f} MiB, RSS at end "
                  f"{result['end_rss_mib']:.1f} MiB, {result['seconds']:.1f} s", flush=True)
    report = {
        "what": "peak RSS (VmHWM) of one `dvsnet segment` process, writing overlay + csv + label PNGs",
        "size": [height, width], "policy": args.policy,
        "segmenter": "fast" if seg == "fast" else "fast (random weights)",
        "threads": args.threads, "machine": {"platform": platform.platform(), "cpu_count": os.cpu_count(),
                                             "load_avg_1m_at_end": os.getloadavg()[0]},
        "runs": runs,
        "growth_mib": runs[-1]["peak_rss_mib"] - runs[0]["peak_rss_mib"] if len(runs) > 1 else None,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    if report["growth_mib"] is not None:
        print(f"growth from {runs[0]['frames']} to {runs[-1]['frames']} frames: "
              f"{report['growth_mib']:+.1f} MiB -> {out}")


if __name__ == "__main__":
    main()
