"""ONNX Runtime's pool threads spinning between runs (its default) or sleeping (dvsnet's), in one run:
per-frame `fast` and DVSNet balanced (dn:0.95, 1x1) on ONNX Runtime fp32 with each, torch eager fp32
beside them, the pipelines stepping through each frame in turn.

    PYTHONPATH=src python benchmarks/bench_ort_spin.py --threads 2 --snippets 2

Spinning only matters with more than one thread. Writes results/bench_ort_spin.json.
"""
from __future__ import annotations

import argparse
import datetime
import os
from pathlib import Path

import torch

from dvsnet import DVSNet
from dvsnet.atomic import write_json_atomic
from dvsnet.evaluate import load_snippets
from dvsnet.models.external import ORT_SPIN_ENV
from dvsnet.provenance import describe_machine, set_threads, versions

POLICIES = ("always", "dn:0.95")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="data/synth")
    parser.add_argument("--snippets", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path("results/bench_ort_spin.json"))
    args = parser.parse_args()
    set_threads(args.threads)
    snippets = load_snippets(args.data, "val", max_snippets=args.snippets)
    pipes = {}
    for spin in ("1", "0"):  # the session reads the setting when it is made
        os.environ[ORT_SPIN_ENV] = spin
        pipes.update({(f"onnxruntime spin={spin}", policy):
                      DVSNet(policy=policy, grid=(1, 1), backend="onnxruntime", precision="fp32")
                      for policy in POLICIES})
    pipes.update({("torch", policy): DVSNet(policy=policy, grid=(1, 1), backend="torch", precision="fp32")
                  for policy in POLICIES})
    seconds = dict.fromkeys(pipes, 0.0)
    for pipe in pipes.values():  # warm-up
        pipe.step(snippets[0].frames[0])
    with torch.no_grad():
        for snippet in snippets:
            for pipe in pipes.values():
                pipe.reset()
            for frame in snippet.frames:
                for key, pipe in pipes.items():
                    seconds[key] += pipe.step(frame).timings["total"]
    frames = sum(len(s.frames) for s in snippets)
    rows = [{"what": what, "policy": policy, "ms": 1000 * s / frames}
            for (what, policy), s in seconds.items()]
    for row in rows:
        print(f"{row['what']:<22} {row['policy']:<8} {row['ms']:8.1f} ms/frame")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(args.out,
                      {"date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
                       "threads": args.threads, "frames": frames, "versions": versions(),
                       "machine": describe_machine(), "rows": rows})
    print(f"-> {args.out}")


if __name__ == "__main__":
    main()
