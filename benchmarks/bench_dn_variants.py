"""Decision-network variants in the pipeline: mIoU and speed of `dn:T` with each DN, in one run.

The DN error rate (`dvsnet train dn`) says how close a DN's scores are to the true confidence scores;
this says what that is worth end to end. For each threshold, every DN runs the paper's protocol on the
same in-memory val snippets (frame 0 key, frame 19 scored), one after the other. The per-frame baseline
(`always`, 1x1) is timed in the same run, before and after the DN rows; speed-up = a row's fps / the
mean of the two baseline fps (both are printed, so a change of load during the run shows).

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
from dvsnet.evaluate import evaluate, load_snippets
from dvsnet.flow import FLOWS
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
    per_frame = PipelineConfig(segmenter=args.segmenter, flow=args.flow, policy="always", grid=(1, 1), overlap=0,
                               max_key_age=0, backend="torch", precision="fp32")
    started = time.time()
    baseline = evaluate(args.data, per_frame, snippets=snippets)
    rows = [{"policy": "always", "grid": "1x1", "dn": None, "miou": baseline["miou"], "fps": baseline["fps"],
             "speedup": 1.0, "workload_saved": 0.0}]
    print(f"per-frame: mIoU {100 * baseline['miou']:.2f} %, {baseline['fps']:.2f} fps (before)")
    results = []
    for threshold in args.thresholds:
        for dn in args.dn:
            config = per_frame.replace(policy=f"dn:{threshold:g}", grid=grid, overlap=None, dn=dn)
            results.append((threshold, dn, evaluate(args.data, config, snippets=snippets)))
    after = evaluate(args.data, per_frame, snippets=snippets)
    reference_fps = (baseline["fps"] + after["fps"]) / 2
    print(f"per-frame: {after['fps']:.2f} fps (after); speed-ups against the mean, {reference_fps:.2f} fps")
    rows[0].update(fps=reference_fps, fps_before=baseline["fps"], fps_after=after["fps"])
    print("| policy | DN | mIoU % | drop | fps | speed-up | regions warped |")
    print("|---|---|---|---|---|---|---|")
    for threshold, dn, result in results:
        row = {"policy": f"dn:{threshold:g}", "grid": f"{grid[0]}x{grid[1]}", "dn": dn, "miou": result["miou"],
               "fps": result["fps"], "speedup": result["fps"] / reference_fps,
               "workload_saved": result["workload_saved"]}
        rows.append(row)
        print(f"| {row['policy']} | {dn} | {100 * row['miou']:.2f} | {100 * (baseline['miou'] - row['miou']):+.2f} "
              f"| {row['fps']:.2f} | {row['speedup']:.2f}x | {100 * row['workload_saved']:.1f} % |")
    report = {"rows": rows, "snippets": len(snippets), "segmenter": args.segmenter, "flow": args.flow,
              "seconds": round(time.time() - started, 1), "machine": describe_machine()}
    output = Path(args.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(output, report)
    print(f"wrote {output}")


if __name__ == "__main__":
    main()
