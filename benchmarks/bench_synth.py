"""Speed of the synthetic street renderer on one CPU core (issue #3: >= 20 frames/s at 256x512).

Measures, single-threaded and pinned to one core:
  render  - render_sequence with all outputs (image, labels, forward/backward flow + occlusion, depth)
            and appearance effects, no file I/O; scene construction included
  write   - write_dataset (render + PNG/flow/depth files), one worker
  check   - ground-truth quality over --check-sequences sequences (effects off): mean absolute error of
            frame t+1 backward-warped by the forward flow against frame t on non-occluded pixels (and
            the same without flow, for scale), label agreement after warping, occluded share
Writes results/bench_synth.json and prints the figures.

    OMP_NUM_THREADS=1 python benchmarks/bench_synth.py [--sequences 6] [--size 256x512]
"""
from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse
import json
import platform
import tempfile
import time
from itertools import pairwise
from pathlib import Path

import cv2
import numpy as np

from dvsnet.data.synthetic import render_sequence, write_dataset


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sequences", type=int, default=6, help="30-frame sequences per measurement")
    parser.add_argument("--size", default="256x512", help="HxW")
    parser.add_argument("--check-sequences", type=int, default=10, help="sequences for the flow check")
    parser.add_argument("--output", default="results/bench_synth.json")
    args = parser.parse_args()
    h, w = (int(v) for v in args.size.split("x"))
    cv2.setNumThreads(1)
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    frames = 30
    list(render_sequence(10_000, 2, (h, w)))  # warm-up: imports, caches

    per_seq = []
    start = time.perf_counter()
    for seed in range(args.sequences):
        t0 = time.perf_counter()
        for _ in render_sequence(seed, frames, (h, w)):
            pass
        per_seq.append(frames / (time.perf_counter() - t0))
    render_fps = args.sequences * frames / (time.perf_counter() - start)

    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        write_dataset(tmp, "bench", args.sequences, frames=frames, size=(h, w), seed=0, progress=False)
        write_fps = args.sequences * frames / (time.perf_counter() - t0)
        bytes_per_frame = sum(p.stat().st_size for p in Path(tmp).rglob("*") if p.is_file()) / (
            args.sequences * frames)

    xs, ys = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    mae, mae_identity, agree, occluded, spread = [], [], [], [], []
    for seed in range(args.check_sequences):
        frames_ = list(render_sequence(seed, 6, (h, w), effects=False))
        for a, b in pairwise(frames_):
            valid = ~a.occlusion_forward
            mx, my = xs + a.flow_forward[..., 0], ys + a.flow_forward[..., 1]
            warped = cv2.remap(b.image.astype(np.float32), mx, my, cv2.INTER_LINEAR)
            labels = cv2.remap(b.labels, mx, my, cv2.INTER_NEAREST)
            mae.append(np.abs(warped - a.image)[valid].mean())
            mae_identity.append(np.abs(b.image.astype(np.float32) - a.image)[valid].mean())
            agree.append((labels == a.labels)[valid].mean())
            occluded.append(1 - valid.mean())
            spread.append(np.abs(a.image - a.image.reshape(-1, 3).mean(0)).mean())

    result = {
        "size": [h, w], "sequences": args.sequences, "frames_per_sequence": frames,
        "render_fps": round(render_fps, 2), "render_fps_per_sequence_min": round(min(per_seq), 2),
        "render_fps_per_sequence_max": round(max(per_seq), 2),
        "render_and_write_fps": round(write_fps, 2), "disk_bytes_per_frame": int(bytes_per_frame),
        "check": {"sequences": args.check_sequences, "pairs": len(mae),
                  "warp_mae_levels": round(float(np.mean(mae)), 3),
                  "warp_mae_worst_pair": round(float(np.max(mae)), 3),
                  "no_flow_mae_levels": round(float(np.mean(mae_identity)), 3),
                  "image_mean_abs_deviation": round(float(np.mean(spread)), 2),
                  "label_agreement_mean": round(float(np.mean(agree)), 5),
                  "label_agreement_worst_pair": round(float(np.min(agree)), 5),
                  "occluded_share": round(float(np.mean(occluded)), 4)},
        "threads": 1, "machine": {"platform": platform.platform(), "processor": platform.processor(),
                                  "cpu_count": os.cpu_count(), "load_avg_1m": round(os.getloadavg()[0], 2),
                                  "numpy": np.__version__, "opencv": cv2.__version__},
    }
    out = Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1))
    print(f"render {h}x{w}: {render_fps:.1f} frames/s on one core "
          f"(per sequence {min(per_seq):.1f}..{max(per_seq):.1f}); render + write: {write_fps:.1f} frames/s, "
          f"{bytes_per_frame / 1e6:.2f} MB/frame on disk; load avg {result['machine']['load_avg_1m']} "
          f"-> {out}")
    c = result["check"]
    print(f"flow check ({c['pairs']} frame pairs): warped-frame MAE {c['warp_mae_levels']:.2f} levels "
          f"(worst pair {c['warp_mae_worst_pair']:.2f}; without flow {c['no_flow_mae_levels']:.2f}; "
          f"image mean abs deviation {c['image_mean_abs_deviation']:.1f}), "
          f"label agreement {c['label_agreement_mean']:.4f} "
          f"(worst {c['label_agreement_worst_pair']:.4f}), occluded {c['occluded_share']:.3f}")


if __name__ == "__main__":
    main()
