"""Decision-network variants in the pipeline: mIoU and speed of `dn:T` with each DN, in one run.

The DN error rate (`dvsnet train dn`) says how close a DN's scores are to the true confidence scores;
this says what that is worth end to end. For each threshold, every DN runs the paper's protocol on the
same in-memory val snippets (frame 0 key, frame 19 scored), every DN and threshold interleaved frame by frame
with the per-frame reference (`always`, 1x1; dvsnet.runner); speed-up = reference time / a row's, in that run.

    PYTHONPATH=src python benchmarks/bench_dn_variants.py --data data/synth --max-snippets 50 --threads 1 \
        --dn dis runs/dn-dis-keyseg/model.safetensors --thresholds 0.9 0.92 0.94 0.96

`--dn` takes shipped variant names or weights files (as `dvsnet segment --dn`), each trained on the features
of `--flow` (default dis; e.g. `--flow flownet-conv4 --dn runs/dn-flownet-conv4/model.safetensors`). Writes
results/bench_dn_variants.json and prints one row per (threshold, DN).
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

from dvsnet.atomic import write_json_atomic
from dvsnet.cli.options import parse_grid
from dvsnet.config import PipelineConfig
from dvsnet.evaluate import load_snippets, run_pipelines
from dvsnet.flow import FLOWS
from dvsnet.pipeline import DVSNet
from dvsnet.provenance import describe_machine, set_threads


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", default="data/synth")
    parser.add_argument("--max-snippets", type=int, default=50)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--segmenter", default="fast")
    parser.add_argument("--grid", type=parse_grid, default=(2, 2), metavar="RxC")
    parser.add_argument("--flow", default="dis", choices=list(FLOWS), help="the flow estimator the DNs read")
    parser.add_argument("--dn", nargs="+", default=["dis"])
    parser.add_argument("--thresholds", type=float, nargs="+", default=[0.9, 0.92, 0.94, 0.96])
    parser.add_argument("--output", default="results/bench_dn_variants.json")
    args = parser.parse_args()
    set_threads(args.threads)
    grid = tuple(args.grid)

    snippets = load_snippets(args.data, "val", max_snippets=args.max_snippets)
    # max_key_age 0: the DN alone decides, as in the paper's protocol; eager fp32: as documented
    base = PipelineConfig(segmenter=args.segmenter, flow=args.flow, grid=grid, max_key_age=0, backend="torch",
                          precision="fp32")
    started = time.time()
    runs = [(threshold, dn) for threshold in args.thresholds for dn in args.dn]
    reference = DVSNet.from_config(base.per_frame())
    pipes = [DVSNet.from_config(base.replace(policy=f"dn:{threshold:g}", dn=dn)) for threshold, dn in runs]
    baseline, results = run_pipelines(snippets, pipes, reference=reference, progress=True)
    rows = [{"policy": "always", "grid": "1x1", "dn": None, "miou": baseline["miou"],
             "fps": baseline["ref_fps"], "speedup": 1.0, "warp_share": 0.0}]
    print(f"per-frame: mIoU {100 * baseline['miou']:.2f} %, {baseline['ref_fps']:.2f} fps")
    print("| policy | DN | mIoU % | drop | fps | speed-up | regions warped |")
    print("|---|---|---|---|---|---|---|")
    for (threshold, dn), result in zip(runs, results):
        row = {"policy": f"dn:{threshold:g}", "grid": f"{grid[0]}x{grid[1]}", "dn": dn,
               "miou": result["miou"], "fps": result["fps"], "speedup": result["speedup"],
               "warp_share": result["warp_share"]}
        rows.append(row)
        print(f"| {row['policy']} | {dn} | {100 * row['miou']:.2f} "
              f"| {100 * (baseline['miou'] - row['miou']):+.2f} "
              f"| {row['fps']:.2f} | {row['speedup']:.2f}x | {100 * row['warp_share']:.1f} % |")
    report = {"rows": rows, "snippets": len(snippets), "segmenter": args.segmenter, "flow": args.flow,
              "seconds": round(time.time() - started, 1), "machine": describe_machine()}
    output = Path(args.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(output, report)
    print(f"wrote {output}")


if __name__ == "__main__":
    main()
