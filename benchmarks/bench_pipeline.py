"""Engine cost per stage: the per-frame `fast` pass against DVSNet's warp path, in one run.

    PYTHONPATH=src python benchmarks/bench_pipeline.py [--frames 40] [--size 256x512]

Runs the same synthetic clip through (a) per-frame segmentation (grid 1x1, policy `always`), (b) every
region segmented on a 2x2 grid, and (c) the warp path (2x2 and 1x1 grids, every region warped after frame
0, DIS flow + motion features + warp + stitch), interleaving them frame by frame so that load from other
processes falls on all alike. Timing does not depend on the weights, so random-init networks are used
when none ship. Writes results/bench_pipeline.json and prints per-stage medians in ms.
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
from dvsnet.data.synthetic import render_clip
from dvsnet.models import build_segmenter
from dvsnet.policies import FlowMagnitude

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
        # every region warped after frame 0; FlowMagnitude needs flow before deciding, like dn
        "2x2 warp path": DVSNet(segmenter, flow="dis", policy=FlowMagnitude(float("inf")), grid=(2, 2)),
        "1x1 warp path": DVSNet(segmenter, flow="dis", policy=FlowMagnitude(float("inf")), grid=(1, 1)),
    }
    timings: dict[str, list[dict[str, float]]] = {name: [] for name in pipes}
    for i, frame in enumerate(frames):
        for name, pipe in pipes.items():
            out = pipe.step(frame)
            if i >= args.warmup:
                timings[name].append(out.timings)
    assert all(p == "warp" for p in out.paths)
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
    for name, stages in result["median_ms"].items():
        print(f"{name:22s} " + "  ".join(f"{s} {v:7.2f}" for s, v in stages.items()))
    print(f"warp path / per-frame {args.segmenter} pass = {warp:.1f} / {base:.1f} ms = {warp / base:.3f} "
          f"(upper bound on speed-up {base / warp:.1f}x)")
    out_dir = Path("results")
    out_dir.mkdir(exist_ok=True)
    write_json_atomic(out_dir / "bench_pipeline.json", result)


if __name__ == "__main__":
    main()
