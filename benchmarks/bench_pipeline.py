"""Engine cost per stage: the per-frame `fast` pass against DVSNet's warp path, in one run.

    PYTHONPATH=src python benchmarks/bench_pipeline.py [--frames 40] [--size 256x512]

Runs the same synthetic clip through (a) per-frame segmentation (grid 1x1, policy `always`), (b) every
region segmented on a 2x2 grid, (c) the warp path (2x2 and 1x1 grids, every region warped after frame 0 by
dn:0 without a key-age cap: DIS flow, the decision network's features and forward pass, warp, stitch) and
(d) the per-frame pass on ONNX Runtime fp32 and int8 and, where the CPU has native bf16, torch bf16,
interleaving them frame by frame so that load from other processes falls on all alike. Timing does not depend
on the weights, so random-init networks are used when none ship. Writes results/bench_pipeline.json and prints
per-stage medians in ms.
"""
from __future__ import annotations

import argparse
import os
import platform
from pathlib import Path

import numpy as np
import torch

from dvsnet import DVSNet
from dvsnet.atomic import write_json_atomic
from dvsnet.backends import native_bf16
from dvsnet.data.synthetic import render_clip
from dvsnet.models import build_segmenter

STAGES = ("flow", "decision", "segmentation", "warp", "stitch", "total")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=40)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--size", default="256x512")
    parser.add_argument("--segmenter", default="fast", choices=("fast", "accurate"))
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    height, width = (int(v) for v in args.size.split("x"))
    frames = render_clip(seed=7, frames=args.frames + args.warmup, size=(height, width))
    segmenter = build_segmenter(args.segmenter).eval()
    pipes = {
        "per-frame 1x1 always": DVSNet(segmenter, flow="dis", policy="always", grid=(1, 1)),
        "2x2 always": DVSNet(segmenter, flow="dis", policy="always", grid=(2, 2)),
        # every region warped after frame 0: dn:0 with no key-age cap runs the whole warp path (DIS flow, the
        # decision network's features and forward pass, warp, stitch) and never segments
        "2x2 warp path": DVSNet(segmenter, flow="dis", policy="dn:0", grid=(2, 2), max_key_age=0),
        "1x1 warp path": DVSNet(segmenter, flow="dis", policy="dn:0", grid=(1, 1), max_key_age=0),
    }
    # the per-frame pass on the other backends (the shipped weights by name: timing does not depend on them)
    precisions = [("onnxruntime", "fp32"), ("onnxruntime", "int8")] + [("torch", "bf16")] * native_bf16()
    for backend, precision in precisions:
        pipes[f"per-frame 1x1 always, {backend} {precision}"] = DVSNet(
            args.segmenter, flow="dis", policy="always", grid=(1, 1), backend=backend, precision=precision)
    timings: dict[str, list[dict[str, float]]] = {name: [] for name in pipes}
    last = {}
    for i, frame in enumerate(frames):
        for name, pipe in pipes.items():
            last[name] = pipe.step(frame)
            if i >= args.warmup:
                timings[name].append(last[name].timings)
    assert all(p == "warp" for name in ("2x2 warp path", "1x1 warp path") for p in last[name].paths)
    result = {
        "machine": {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
                    "torch_threads": torch.get_num_threads(), "torch": torch.__version__},
        "size": [height, width], "frames": args.frames, "segmenter": args.segmenter,
        "median_ms": {name: {s: round(1000 * float(np.median([t[s] for t in ts])), 2) for s in STAGES}
                      for name, ts in timings.items()},
    }
    base = result["median_ms"]["per-frame 1x1 always"]["total"]
    warp = result["median_ms"]["2x2 warp path"]["total"]
    result["warp_path_over_per_frame"] = round(warp / base, 3)
    result["warp_path_1x1_over_per_frame"] = round(result["median_ms"]["1x1 warp path"]["total"] / base, 3)
    for backend, precision in precisions:  # the yardstick: the warp path against ONNX Runtime's pass
        other = result["median_ms"][f"per-frame 1x1 always, {backend} {precision}"]["total"]
        result[f"warp_path_over_per_frame_{backend}_{precision}"] = round(warp / other, 3)
        result[f"warp_path_1x1_over_per_frame_{backend}_{precision}"] = round(
            result["median_ms"]["1x1 warp path"]["total"] / other, 3)
    for name, stages in result["median_ms"].items():
        print(f"{name:22s} " + "  ".join(f"{s} {v:7.2f}" for s, v in stages.items()))
    print(f"warp path / per-frame {args.segmenter} pass = {warp:.1f} / {base:.1f} ms = {warp / base:.3f} "
          f"(upper bound on speed-up {base / warp:.1f}x)")
    for key, value in result.items():
        if key.startswith("warp_path_") and key.count("_") > 5:
            print(f"{key} = {value}")
    out_dir = Path("results")
    out_dir.mkdir(exist_ok=True)
    write_json_atomic(out_dir / "bench_pipeline.json", result)


if __name__ == "__main__":
    main()
