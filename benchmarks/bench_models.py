"""Cost of the segmenters (and the flow/decision nets): params, GFLOPs, ms per 256x512 frame on CPU.

GFLOPs = 2 x multiply-accumulates of every Conv2d / ConvTranspose2d / Linear layer, counted with forward
hooks on one 256x512 frame (elementwise ops, pooling and upsampling not counted). Time: median of
`--repeats` forward passes of one frame with torch.set_num_threads(--threads), after `--warmup` passes.
Also scores val mIoU per frame when --data is given (frame 19 of every val snippet unless --all-frames).
Writes results/bench_models.json and prints a table.

    PYTHONPATH=src python benchmarks/bench_models.py [--data data/synth] [--models accurate]
        [--weights accurate=path]
"""
from __future__ import annotations

import argparse
import platform
import statistics
import time
from pathlib import Path

import torch
from torch import nn

from dvsnet.atomic import write_json_atomic
from dvsnet.errors import DvsnetError
from dvsnet.models import SEGMENTERS, build_flownet, load_segmenter
from dvsnet.models.decision import DecisionNet


def count_macs(model: nn.Module, *inputs: torch.Tensor) -> int:
    """Multiply-accumulates of conv / deconv / linear layers for one forward pass of `inputs`."""
    total = 0

    def conv_hook(mod: nn.Module, inp: tuple, out: torch.Tensor) -> None:
        nonlocal total
        if isinstance(mod, nn.ConvTranspose2d):  # every input pixel scatters a kernel
            total += inp[0].numel() * mod.out_channels // mod.groups * mod.kernel_size[0] * mod.kernel_size[1]
        else:
            total += out.numel() * mod.in_channels // mod.groups * mod.kernel_size[0] * mod.kernel_size[1]

    def linear_hook(mod: nn.Module, inp: tuple, out: torch.Tensor) -> None:
        nonlocal total
        total += out.numel() * mod.in_features

    hooks = [m.register_forward_hook(conv_hook) for m in model.modules()
             if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))]
    hooks += [m.register_forward_hook(linear_hook) for m in model.modules() if isinstance(m, nn.Linear)]
    with torch.inference_mode():
        model(*inputs)
    for h in hooks:
        h.remove()
    return total


def time_ms(model: nn.Module, *inputs: torch.Tensor, warmup: int, repeats: int) -> float:
    with torch.inference_mode():
        for _ in range(warmup):
            model(*inputs)
        times = []
        for _ in range(repeats):
            t = time.perf_counter()
            model(*inputs)
            times.append(time.perf_counter() - t)
    return 1000 * statistics.median(times)


def val_miou(model: nn.Module, data: str, all_frames: bool) -> tuple[float, int]:
    from dvsnet.data.cityscapes import CityscapesSequences, labelled_frames
    from dvsnet.train.seg import evaluate_segmenter, load_pairs

    if all_frames:
        pairs = labelled_frames(data, "val")
    else:
        pairs = [(snippet.annotated_frame, snippet.annotated_labels)
                 for snippet in CityscapesSequences(data, "val")]
    images, labels = load_pairs(pairs)
    miou, _ = evaluate_segmenter(model, images, labels, torch.device("cpu"))
    return miou, len(pairs)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", default="256x512", help="frame size HxW (default 256x512)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--data", default=None, help="score val mIoU on this tree (frame 19 of each snippet)")
    parser.add_argument("--all-frames", action="store_true", help="score every labelled val frame")
    parser.add_argument("--weights", nargs="*", default=[], metavar="NAME=PATH",
                        help="weights per segmenter (default: the shipped ones when they exist)")
    parser.add_argument("--models", nargs="*", default=list(SEGMENTERS), choices=list(SEGMENTERS),
                        help="segmenters to measure (default: all)")
    parser.add_argument("--out", default="results/bench_models.json")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    height, width = (int(v) for v in args.size.split("x"))
    weights = dict(item.split("=", 1) for item in args.weights)
    frame = torch.rand(1, 3, height, width)
    rows = []
    for name in args.models:
        build = SEGMENTERS[name]
        model = build().eval()
        trained = None
        try:
            model = load_segmenter(weights.get(name, name))
            trained = weights.get(name, f"shipped {name}")
        except DvsnetError as exc:  # untrained: still report the cost
            print(f"{name}: no weights ({exc}); cost only")
        row = {"model": name, "params_M": sum(p.numel() for p in model.parameters()) / 1e6,
               "GFLOPs": 2 * count_macs(model, frame) / 1e9,
               "ms_per_frame": time_ms(model, frame, warmup=args.warmup, repeats=args.repeats),
               "weights": trained}
        if args.data and trained:
            row["val_miou"], row["val_frames"] = val_miou(model, args.data, args.all_frames)
        rows.append(row)
    # the flow path's networks, for the economics: flownet on the 4 regions of a 2x2 grid (+16 px overlap)
    regions = torch.rand(4, 3, height // 2 + 8 * (height // 256), width // 2 + 8 * (width // 256))
    flownet = build_flownet().eval()
    rows.append({"model": "flownet (4 regions)",
                 "params_M": sum(p.numel() for p in flownet.parameters()) / 1e6,
                 "GFLOPs": 2 * count_macs(flownet, regions, regions) / 1e9,
                 "ms_per_frame": time_ms(flownet, regions, regions, warmup=args.warmup,
                                         repeats=args.repeats)})
    dn = DecisionNet(7, (16, 16)).eval()
    feats = torch.rand(4, 7, 16, 16)
    rows.append({"model": "decision net dis (4 regions)",
                 "params_M": sum(p.numel() for p in dn.parameters()) / 1e6,
                 "GFLOPs": 2 * count_macs(dn, feats) / 1e9,
                 "ms_per_frame": time_ms(dn, feats, warmup=args.warmup, repeats=args.repeats)})
    result = {"size": [height, width], "threads": args.threads,
              "machine": platform.processor() or platform.machine(),
              "cpus": __import__("os").cpu_count(), "torch": torch.__version__, "rows": rows}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(out, result)
    print(f"{'model':30s} {'params (M)':>10s} {'GFLOPs':>8s} {'ms/frame':>9s} {'val mIoU':>9s}")
    for r in rows:
        miou = f"{100 * r['val_miou']:.2f}%" if "val_miou" in r else "-"
        print(f"{r['model']:30s} {r['params_M']:10.3f} {r['GFLOPs']:8.3f} {r['ms_per_frame']:9.1f} "
              f"{miou:>9s}")
    print(f"({args.size}, {args.threads} threads, median of {args.repeats} after {args.warmup} warm-up; "
          f"-> {out})")


if __name__ == "__main__":
    main()
