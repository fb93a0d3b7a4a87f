"""Frames per second at larger frame sizes on one device: per-frame segmentation against DVSNet
configurations, in one run (issue #5 item 4 asks for GPU fps at 512×1024 and 1024×2048).

    PYTHONPATH=src python benchmarks/bench_gpu.py --device cuda --sizes 512x1024 1024x2048

Synthetic street clips are rendered at each size (the val set is 256×512; rendering keeps the scenes and
their motion, scaled), and every configuration runs over the same clips with the per-frame reference,
interleaved frame by frame so that load falls on all alike (dvsnet.runner, its warm-up rule). fps,
stage_ms and seg_share are RunStats figures (dvsnet.stats): fps = frames / pipeline time of
`DVSNet.step` (each step ends by copying the labels to the host, so GPU work is included), warm-up frames
excluded. No labels: this measures speed and the share of regions segmented, not accuracy (the decision
network was trained at 256×512, so its choices at other sizes are not those of the val runs).
`benchmarks/report.py` runs it when torch sees a GPU.
"""
from __future__ import annotations

import argparse
import datetime
import sys
from pathlib import Path

import torch

from dvsnet.atomic import write_json_atomic
from dvsnet.cli.options import parse_size
from dvsnet.config import PipelineConfig
from dvsnet.data.synthetic import render_clip
from dvsnet.devices import describe_device, pick_device
from dvsnet.errors import DvsnetError
from dvsnet.models import load_segmenter
from dvsnet.pipeline import DVSNet
from dvsnet.provenance import describe_machine, set_threads
from dvsnet.runner import Clip, run_interleaved

BASELINE = "always@1x1"
DEFAULT_CONFIGS = (BASELINE, "dn:0.95@1x1", "dn:0.93@1x1", "dn:0.8@1x1", "dn:0.92@2x2")


def parse_config(text: str, base: PipelineConfig) -> PipelineConfig:
    """'dn:0.92@2x2' -> `base` with policy dn:0.92 on the 2x2 grid (the grid defaults to 2x2)."""
    policy, _, grid = text.partition("@")
    return base.replace(policy=policy, grid=grid or "2x2")


def measure(device: str = "auto", sizes=((512, 1024), (1024, 2048)), configs=DEFAULT_CONFIGS, clips: int = 3,
            frames: int = 20, warmup: int = 5, segmenter: str = "fast", flow: str = "dis",
            seed: int = 1000) -> dict:
    """fps and share of regions segmented of each configuration at each size; speed-up against BASELINE, the
    per-frame reference run interleaved with them (dvsnet.runner)."""
    where = pick_device(device)
    configs = tuple(dict.fromkeys((BASELINE, *configs)))  # the baseline first, each configuration once
    # max_key_age 0: the DN alone decides, as in the paper (and as docs/frame-size.md and gpu.md measured)
    base = PipelineConfig(segmenter=load_segmenter(segmenter, where), flow=flow, device=where, max_key_age=0)
    # what records say
    named = PipelineConfig(segmenter=segmenter, flow=flow, device=str(where), max_key_age=0)
    rows = []
    for height, width in sizes:
        videos = [Clip(render_clip(seed + i, frames, (height, width))) for i in range(clips)]
        reference = DVSNet.from_config(base.per_frame())  # BASELINE
        pipes = {name: DVSNet.from_config(parse_config(name, base)) for name in configs if name != BASELINE}
        run = run_interleaved(videos, list(pipes.values()), reference=reference, warmup_frames=warmup)
        measured = {BASELINE: run.reference, **dict(zip(pipes, run.runs))}
        for name in configs:
            figures = measured[name].figures()
            rows.append({"size": f"{height}x{width}", "config": name, "fps": figures["fps"],
                         "speedup": run.speedup(measured[name]), "seg_share": figures["seg_share"],
                         "stage_ms": figures["stage_ms"],
                         "pipeline": parse_config(name, named).to_record(width)})
    return {"device": describe_device(where), "device_type": where.type, "segmenter": segmenter, "flow": flow,
            "clips": clips, "frames": frames, "warmup": warmup, "rows": rows,
            "machine": describe_machine(where), "torch": torch.__version__,
            "finished_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda (default: auto)")
    parser.add_argument("--sizes", nargs="+", default=["512x1024", "1024x2048"], help="frame sizes HxW")
    parser.add_argument("--configs", nargs="+", default=list(DEFAULT_CONFIGS),
                        help=f"policy@grid per configuration; {BASELINE} (per frame) is always added")
    parser.add_argument("--clips", type=int, default=3)
    parser.add_argument("--frames", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--segmenter", default="fast")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads (DIS flow runs on the CPU)")
    parser.add_argument("--out", default="results/bench_gpu.json")
    args = parser.parse_args(argv)

    if args.threads:
        set_threads(args.threads)
    try:
        sizes = [parse_size(s) for s in args.sizes]
        result = measure(args.device, sizes, tuple(args.configs), args.clips, args.frames, args.warmup,
                         args.segmenter)
    except (DvsnetError, argparse.ArgumentTypeError) as exc:
        print(f"bench_gpu: {exc}", file=sys.stderr)
        return 2
    for row in result["rows"]:
        print(f"{row['size']:>10s} {row['config']:>12s}  {row['fps']:7.2f} fps  {row['speedup']:5.2f}x  "
              f"{100 * row['seg_share']:5.1f}% regions segmented")
    print(f"({result['device']}; -> {args.out})")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(Path(args.out), result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
