"""Decision-network error rate of trained runs, broken down by grid and key offset, beside predictors
without features, on the val cache each run was trained against (no retraining).

    PYTHONPATH=src python benchmarks/bench_dn_error.py runs/dn-dis-d runs/dn-dis-keyseg
    PYTHONPATH=src python benchmarks/bench_dn_error.py runs/dn-dis-d
        --weights src/dvsnet/weights/dn-dis.safetensors

Each RUN is a `dvsnet train dn` output folder: its config.json names the cache (the same samples as the
training command printed), its model.safetensors is evaluated unless --weights names another file (one
RUN only). The paper trains on key offsets up to 10; our caches go to 20, so the table also gives the
error over offsets 1-10. "age only" predicts the training mean of each (grid, key offset): what a DN
would score from the key's age alone. Writes results/bench_dn_error.json.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

from dvsnet.atomic import write_json_atomic
from dvsnet.errors import DvsnetError
from dvsnet.models import load_decision_net
from dvsnet.train.dn import DNTrainConfig, baseline_points, dataset, error_breakdown, predict


def run_config(run: Path) -> DNTrainConfig:
    path = run / "config.json"
    if not path.is_file():
        raise DvsnetError(f"{run}: no config.json (not a `dvsnet train dn` run folder)")
    saved = json.loads(path.read_text())
    fields = {f.name for f in dataclasses.fields(DNTrainConfig)}
    saved = {k: v for k, v in saved.items() if k in fields}
    if "grids" in saved:
        saved["grids"] = tuple(tuple(g) for g in saved["grids"])
    return DNTrainConfig(**saved)


def evaluate_run(run: Path, weights: Path) -> dict:
    config = run_config(run)
    net = load_decision_net(None, path=weights)
    train, val = dataset(config, "train", progress=False), dataset(config, "val", progress=False)
    return {"run": str(run), "weights": str(weights), "variant": config.variant,
            "val_samples": len(val.targets),
            "error_points": error_breakdown(predict(net, val.features, "cpu"), val),
            "baseline_points": baseline_points(train, val)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("runs", nargs="+", type=Path, metavar="RUN")
    parser.add_argument("--weights", type=Path,
                        help="evaluate this weights file instead of RUN/model.safetensors")
    parser.add_argument("--output", default="results/bench_dn_error.json")
    args = parser.parse_args(argv)
    try:
        if args.weights is not None and len(args.runs) != 1:
            raise DvsnetError("--weights goes with exactly one RUN")
        results = [evaluate_run(run, args.weights or run / "model.safetensors") for run in args.runs]
    except DvsnetError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    flat = [{"all": r["error_points"]["all"], **r["error_points"]["per_grid"],
             **{f"offsets {k}": e for k, e in r["error_points"]["per_offsets"].items()}} for r in results]
    columns = list(dict.fromkeys(k for f in flat for k in f))
    print("| run | " + " | ".join(columns) + " | training mean | age only |")
    print("|---" * (len(columns) + 3) + "|")
    for r, f in zip(results, flat):
        errors = " | ".join(f"{f[c]:.2f}" if c in f else "–" for c in columns)
        base = r["baseline_points"]
        print(f"| {r['weights']} | {errors} | {base['mean']:.2f} | {base['mean per grid and offset']:.2f} |")
    output = Path(args.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(output, results)
    print(f"wrote {output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
