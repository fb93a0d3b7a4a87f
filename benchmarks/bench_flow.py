"""Flow estimators on the synthetic val set: EPE and ms per pair, flownet beside OpenCV DIS presets.

Pairs: for each of the first --snippets val snippets, current frame t = 19 and key frame t - o for each
o in --offsets. Ground truth: the stored backward flows composed over o frames (current -> key, the
engine's convention; see dvsnet.train.flow). EPE: mean end-point error over all pixels of the
256x512 frame, in pixels, each estimate resized to the full grid first (flownet predicts at 1/8).
Time: median per pair (one 256x512 pair, batch 1) with torch.set_num_threads(--threads), after warm-up.
Writes results/bench_flow.json and prints a table.

    PYTHONPATH=src python benchmarks/bench_flow.py --data data/synth
        [--flownet runs/flownet/model.safetensors]
"""
from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from dvsnet.data.cityscapes import CityscapesSequences, load_image
from dvsnet.errors import DvsnetError
from dvsnet.flow import DISFlow
from dvsnet.models import load_flownet
from dvsnet.train.flow import compose_backward, flow_epe


def to_tensor(image: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(image).permute(2, 0, 1).float()[None] / 255  # (1,3,H,W)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", default="data/synth")
    parser.add_argument("--snippets", type=int, default=20)
    parser.add_argument("--offsets", type=int, nargs="+", default=[1, 5, 10])
    parser.add_argument("--flownet", default=None, help="flownet weights (default: the shipped ones)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", default="results/bench_flow.json")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    estimators = {f"dis-{p}": DISFlow(p, with_features=False) for p in ("ultrafast", "fast", "medium")}
    try:
        net = load_flownet(path=args.flownet)
        estimators["flownet"] = lambda key, cur: net(key, cur)
    except DvsnetError as exc:
        print(f"flownet skipped: {exc}")

    pairs = []
    data = CityscapesSequences(args.data, "val", with_flow=True)
    for s in range(min(args.snippets, len(data))):
        frames, t = data[s].frame_paths, data[s].annotated_offset
        cur = to_tensor(load_image(frames[t]))
        for o in args.offsets:
            if t - o < 0:
                continue
            flows = [torch.from_numpy(data.load_flow(s, t - j, "backward")[0]).permute(2, 0, 1)[None]
                     for j in range(o)]
            pairs.append((o, to_tensor(load_image(frames[t - o])), cur, compose_backward(flows)))
    if not pairs:
        raise SystemExit(f"no val pairs under {args.data}")

    rows = []
    with torch.inference_mode():
        for name, estimate in estimators.items():
            for _ in range(2):  # warm-up
                estimate(pairs[0][1], pairs[0][2])
            errors: dict[int, list[float]] = {}
            times = []
            for o, key, cur, target in pairs:
                t0 = time.perf_counter()
                flow, _ = estimate(key, cur)
                times.append(time.perf_counter() - t0)
                errors.setdefault(o, []).append(flow_epe(flow, target).item())
            row = {"estimator": name, "ms_per_pair": 1000 * statistics.median(times),
                   "epe_all": float(np.mean([e for v in errors.values() for e in v]))}
            row.update({f"epe_offset_{o}": float(np.mean(v)) for o, v in sorted(errors.items())})
            rows.append(row)
    zero = {f"epe_offset_{o}": float(np.mean([flow_epe(torch.zeros_like(t), t).item()
                                              for oo, _, _, t in pairs if oo == o]))
            for o in sorted({p[0] for p in pairs})}
    rows.append({"estimator": "zero flow (reference)", "ms_per_pair": 0.0,
                 "epe_all": float(np.mean([flow_epe(torch.zeros_like(p[3]), p[3]).item() for p in pairs])),
                 **zero})
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"pairs": len(pairs), "size": list(pairs[0][2].shape[2:]),
                               "threads": args.threads, "rows": rows}, indent=2) + "\n")
    offsets = sorted({p[0] for p in pairs})
    print(f"{'estimator':24s} {'ms/pair':>8s} {'EPE all':>8s} "
          + " ".join(f"{'EPE o=' + str(o):>9s}" for o in offsets))
    for r in rows:
        print(f"{r['estimator']:24s} {r['ms_per_pair']:8.1f} {r['epe_all']:8.2f} "
              + " ".join(f"{r[f'epe_offset_{o}']:9.2f}" for o in offsets))
    print(f"({len(pairs)} pairs of {tuple(pairs[0][2].shape[2:])} frames, {args.threads} threads -> {out})")


if __name__ == "__main__":
    main()
