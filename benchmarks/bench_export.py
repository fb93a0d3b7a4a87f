"""Exported `fast` against the torch module, in one run: label agreement and ms per frame of torch, ONNX
Runtime (.onnx) and torch.export (.pt2) on a rendered clip, the segmenter alone and in the pipeline.

    PYTHONPATH=src python benchmarks/bench_export.py --threads 1 --frames 8

`fast` is exported to a temporary folder (dvsnet.models.export, as `dvsnet export` does). The segmenter
alone runs whole frames (1, 3, H, W); the pipeline runs the default 2x2 grid with policy "always" and
with dn:0.92. Forms are interleaved frame by frame so that load falls on all alike; warm-up frames are
excluded from the times. Agreement = share of pixels whose labels equal the torch pipeline's. Writes
results/bench_export.json and prints a table (docs/models.md quotes it).
"""
from __future__ import annotations

import argparse
import datetime
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from dvsnet import DVSNet
from dvsnet.atomic import write_json_atomic
from dvsnet.cli.options import parse_size
from dvsnet.data.synthetic import render_sequence
from dvsnet.models import load_segmenter
from dvsnet.models.export import export_segmenter
from dvsnet.provenance import describe_machine, set_threads, versions

FORMS = ("torch", "onnx", "pt2")
POLICIES = ("always", "dn:0.92")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=parse_size, default=(256, 512), metavar="HxW")
    parser.add_argument("--frames", type=int, default=8, help="timed frames per form (default: 8)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed first frames (default: 2)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=3, help="render_sequence seed (default: 3)")
    parser.add_argument("--out", type=Path, default=Path("results/bench_export.json"))
    args = parser.parse_args()
    set_threads(args.threads)
    frames = [f.image for f in render_sequence(args.seed, args.warmup + args.frames, args.size)]
    with tempfile.TemporaryDirectory() as folder:
        specs = {"torch": "fast"}
        exports = {}
        for form in ("onnx", "pt2"):
            report = export_segmenter(load_segmenter("fast"), Path(folder) / f"fast.{form}", size=args.size)
            specs[form] = str(report.path)
            exports[form] = {"max_abs_logit_diff": report.max_abs_diff,
                             "check_label_agreement": report.label_agreement}
        # after set_threads: ORT too
        segmenters = {form: load_segmenter(spec) for form, spec in specs.items()}
        rows = [segmenter_row(segmenters, frames, args.warmup)]
        rows += [pipeline_row(specs, frames, args.warmup, policy) for policy in POLICIES]
    result = {"date": datetime.datetime.now().isoformat(timespec="seconds"), "size": list(args.size),
              "frames": args.frames, "warmup": args.warmup, "seed": args.seed, "versions": versions(),
              "onnxruntime": __import__("onnxruntime").__version__, "machine": describe_machine(),
              "exports": exports, "rows": rows}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(args.out, result)
    print(f"fast at {args.size[0]}x{args.size[1]}, {args.threads} thread(s), {args.frames} frames "
          f"(+{args.warmup} warm-up), {result['machine']['cpu']}")
    print(f"{'what':<22}" + "".join(f"{form + ' ms':>12}" for form in FORMS) + "   agreement onnx / pt2")
    for row in rows:
        agree = " / ".join(f"{100 * row['agreement'][f]:.3f}%" for f in ("onnx", "pt2"))
        print(f"{row['what']:<22}" + "".join(f"{row['ms'][form]:>12.1f}" for form in FORMS) + f"   {agree}")
    print(f"-> {args.out}")


def segmenter_row(segmenters: dict, frames: list[np.ndarray], warmup: int) -> dict:
    """Whole frames through each segmenter alone: mean ms and label agreement with torch."""
    seconds = dict.fromkeys(FORMS, 0.0)
    agree = {form: [] for form in FORMS}
    for i, frame in enumerate(frames):
        images = torch.from_numpy(frame).permute(2, 0, 1)[None].float().div(255)  # (1, 3, H, W)
        labels = {}
        for form in FORMS:
            start = time.perf_counter()
            with torch.no_grad():
                labels[form] = segmenters[form](images).argmax(1)
            if i >= warmup:
                seconds[form] += time.perf_counter() - start
        for form in FORMS:
            agree[form].append(float((labels[form] == labels["torch"]).float().mean()))
    timed = len(frames) - warmup
    return {"what": "segmenter, whole frame", "ms": {f: 1000 * s / timed for f, s in seconds.items()},
            "agreement": {f: float(np.mean(a)) for f, a in agree.items()}}


def pipeline_row(specs: dict, frames: list[np.ndarray], warmup: int, policy: str) -> dict:
    """The 2x2 pipeline with each form of fast: mean ms per frame, label agreement with torch's (mean and
    worst frame), and whether every form took the same paths."""
    pipes = {form: DVSNet(segmenter=spec, policy=policy, grid=(2, 2), max_key_age=0, backend="torch",
                          precision="fp32")  # eager fp32: as documented
             for form, spec in specs.items()}
    seconds = dict.fromkeys(FORMS, 0.0)
    agree = {form: [] for form in FORMS}
    same_paths = True
    for i, frame in enumerate(frames):
        results = {}
        for form in FORMS:
            start = time.perf_counter()
            results[form] = pipes[form].step(frame)
            if i >= warmup:
                seconds[form] += time.perf_counter() - start
        for form in FORMS:
            agree[form].append(float(np.mean(results[form].labels == results["torch"].labels)))
            same_paths &= results[form].paths == results["torch"].paths
    timed = len(frames) - warmup
    return {"what": f"pipeline 2x2 {policy}", "ms": {f: 1000 * s / timed for f, s in seconds.items()},
            "agreement": {f: float(np.mean(a)) for f, a in agree.items()},
            "worst_frame_agreement": {f: float(np.min(a)) for f, a in agree.items()},
            "same_paths": same_paths}


if __name__ == "__main__":
    main()
