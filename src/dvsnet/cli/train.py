"""`dvsnet train seg|flow|dn`: train the segmenters, the flow network and the decision networks."""
from __future__ import annotations

import argparse

from dvsnet.cli.options import non_negative_float, parse_grid, parse_size, positive_int
from dvsnet.devices import DEVICES
from dvsnet.models.decision import DN_VARIANTS

EPILOG = """examples:
  dvsnet train seg --arch fast --data data/synth --out runs/seg-fast --steps 4000
  dvsnet train seg --arch fast --out runs/seg-fast --resume          # continue after an interruption
  dvsnet train flow --data data/synth --out runs/flownet --steps 3000
  dvsnet train dn --variant dis --segmenter runs/seg-fast/model.safetensors --out runs/dn-dis
  dvsnet train ship runs/seg-fast --name fast                        # fp16 copy into dvsnet/weights/
"""


def _common(parser: argparse.ArgumentParser, out: str, steps: int) -> None:
    parser.add_argument("--data", default="data/synth", help="Cityscapes-layout tree (default: data/synth)")
    parser.add_argument("--out", default=out,
                        help=f"run folder for logs, checkpoints, weights (default: {out})")
    parser.add_argument("--steps", type=positive_int, default=steps,
                        help=f"optimiser steps (default: {steps})")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    parser.add_argument("--device", choices=DEVICES, default="auto",
                        help="auto uses a CUDA GPU when there is one (default: auto)")
    parser.add_argument("--threads", type=positive_int, default=2, help="CPU threads (default: 2)")
    parser.add_argument("--resume", action="store_true", help="continue the run in --out from its checkpoint")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "train", help="train the segmentation, flow and decision networks",
        description="Train one network. Each run folder gets config.json, log.csv, checkpoint.pt "
                    "(every few minutes; --resume continues) and model.safetensors (weights at the latest "
                    "validation).",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    which = parser.add_subparsers(dest="network", metavar="NETWORK", required=True)

    seg = which.add_parser("seg", help="a segmentation network (fast or accurate)")
    _common(seg, "runs/seg-fast", 4000)
    seg.add_argument("--arch", choices=("fast", "accurate"), default="fast",
                     help="architecture (default: fast)")
    seg.add_argument("--batch", type=positive_int, default=8, help="crops per step (default: 8)")
    seg.add_argument("--crop", type=parse_size, default=(192, 384), metavar="HxW",
                     help="random crop size (default: 192x384)")
    seg.add_argument("--lr", type=float, default=2e-3, help="peak AdamW learning rate (default: 2e-3)")
    seg.add_argument("--frame-stride", type=positive_int, default=2,
                     help="use every n-th labelled training frame (default: 2)")
    seg.add_argument("--val-every", type=positive_int, default=500,
                     help="validate every N steps (default: 500)")
    seg.add_argument("--val-frames", type=positive_int, default=40, help="val frames scored (default: 40)")
    seg.add_argument("--class-weighting", choices=("none", "enet"), default="none",
                     help="loss weight per class: none, or enet = 1/ln(1.02 + pixel share) (default: none)")
    seg.add_argument("--init", default=None, metavar="WEIGHTS",
                     help="start from these .safetensors weights of the same arch (default: random init)")
    seg.add_argument("--init-matching", default=None, metavar="WEIGHTS",
                     help="start every tensor whose name and shape match these .safetensors weights of any "
                          "arch from them, e.g. accurate from fast's backbone and head; the rest random")
    seg.add_argument("--precision", choices=("auto", "bf16", "fp32"), default="auto",
                     help="autocast dtype of forward passes; weights stay fp32 (default: auto = bf16 where "
                          "the GPU or CPU has native bf16, else fp32)")
    seg.set_defaults(run=run_seg)

    flow = which.add_parser("flow", help="the FlowNetS flow network (multi-scale EPE on ground-truth flow)")
    _common(flow, "runs/flownet", 3000)
    flow.add_argument("--batch", type=positive_int, default=8, help="pairs per step (default: 8)")
    flow.add_argument("--crop", type=parse_size, default=(128, 256), metavar="HxW",
                      help="random crop size (default: 128x256)")
    flow.add_argument("--max-offset", type=positive_int, default=10,
                      help="key-to-current frame distance, 1..N (default: 10)")
    flow.add_argument("--lr", type=float, default=1e-3, help="peak Adam learning rate (default: 1e-3)")
    flow.add_argument("--val-every", type=positive_int, default=500,
                      help="validate every N steps (default: 500)")
    flow.add_argument("--max-snippets", type=positive_int, default=60,
                      help="snippets per split held in memory, frames and flows (default: 60)")
    flow.set_defaults(run=run_flow)

    dn = which.add_parser("dn", help="a decision network on cached confidence scores (generated once)")
    _common(dn, "runs/dn-dis", 3000)
    dn.add_argument("--variant", default="dis",
                    choices=DN_VARIANTS,
                    help="which features feed the DN (default: dis, the DIS motion features; dis-keyseg adds "
                         "the key segmentation's uncertainty and class boundaries; mv: the codec's motion "
                         "vectors, sampled from the split encoded to H.264)")
    dn.add_argument("--segmenter", default="fast",
                    help="segmenter whose output defines the confidence score: name or .safetensors "
                         "(default: fast)")
    dn.add_argument("--flownet", default=None,
                    help="flownet weights for flownet-* variants (default: the shipped ones)")
    dn.add_argument("--cache", default="data/cache",
                    help="folder of cached confidence scores + features (default: data/cache)")
    dn.add_argument("--grids", type=parse_grid, nargs="+", default=[(2, 2)], metavar="RxC",
                    help="region grids to generate scores on (default: 2x2)")
    dn.add_argument("--max-offset", type=positive_int, default=20,
                    help="key offsets 1..K per key frame (default: 20)")
    dn.add_argument("--keys-per-snippet", type=positive_int, default=2,
                    help="key frames drawn per training snippet (default: 2)")
    dn.add_argument("--max-snippets", type=positive_int, default=None,
                    help="use only the first N snippets of each split (default: all)")
    dn.add_argument("--train-snippets", type=positive_int, default=None, metavar="N",
                    help="train on the first N snippets of the training cache only, e.g. for a learning "
                         "curve on one cache (default: all of them)")
    dn.add_argument("--train-max-offset", type=positive_int, default=None, metavar="N",
                    help="train on key offsets 1..N of the training cache only, e.g. the paper's 10; the val "
                         "error is still over all offsets and printed per range (default: all of them)")
    dn.add_argument("--batch", type=positive_int, default=64, help="samples per step (default: 64)")
    dn.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate (default: 1e-3)")
    dn.add_argument("--weight-decay", type=non_negative_float, default=1e-4,
                    help="Adam's L2 penalty on the weights (default: 1e-4)")
    dn.add_argument("--flip", action="store_true",
                    help="augment: mirror half of each batch left-right (dis, dis-keyseg and mv only)")
    dn.set_defaults(run=run_dn)

    ship = which.add_parser(
        "ship", help="copy a run's weights into the package as fp16 (what load_* find by name)")
    ship.add_argument("run_dir", metavar="RUN", help="run folder holding model.safetensors and config.json")
    ship.add_argument("--name", required=True,
                      help="shipped name: fast, accurate, flownet, or dn-<variant> (e.g. dn-dis)")
    ship.add_argument("--weights-dir", default=None, help="target folder (default: the package's weights/)")
    ship.set_defaults(run=run_ship)


def run_seg(args: argparse.Namespace) -> int:
    from dvsnet.train.seg import SegTrainConfig, train_segmenter

    config = SegTrainConfig(
        data=args.data, out=args.out, arch=args.arch, steps=args.steps, batch=args.batch,
        crop=tuple(args.crop), lr=args.lr, frame_stride=args.frame_stride, val_every=args.val_every,
        val_frames=args.val_frames,
        seed=args.seed, device=args.device, threads=args.threads, precision=args.precision,
        class_weighting=args.class_weighting, init=args.init,
        init_matching=args.init_matching)
    result = train_segmenter(config, resume=args.resume, progress=not args.no_progress)
    print(f"{args.arch}: val mIoU {100 * result['val_miou']:.2f}% after {result['steps']} steps; "
          f"weights {args.out}/model.safetensors")
    return 0


def run_flow(args: argparse.Namespace) -> int:
    from dvsnet.train.flow import FlowTrainConfig, train_flownet

    config = FlowTrainConfig(
        data=args.data, out=args.out, steps=args.steps, batch=args.batch, crop=tuple(args.crop),
        max_offset=args.max_offset, lr=args.lr, val_every=args.val_every, max_snippets=args.max_snippets,
        seed=args.seed, device=args.device, threads=args.threads)
    result = train_flownet(config, resume=args.resume, progress=not args.no_progress)
    print(f"flownet: val EPE {result['val_epe']:.3f} px after {result['steps']} steps; "
          f"weights {args.out}/model.safetensors")
    return 0


def run_dn(args: argparse.Namespace) -> int:
    from dvsnet.train.dn import DNTrainConfig, train_decision_net

    config = DNTrainConfig(
        data=args.data, out=args.out, variant=args.variant, segmenter=args.segmenter, flownet=args.flownet,
        cache=args.cache, grids=tuple(tuple(g) for g in args.grids), max_offset=args.max_offset,
        keys_per_snippet=args.keys_per_snippet, max_snippets=args.max_snippets, steps=args.steps,
        batch=args.batch, lr=args.lr, weight_decay=args.weight_decay, flip=args.flip,
        train_snippets=args.train_snippets, train_max_offset=args.train_max_offset,
        seed=args.seed, device=args.device, threads=args.threads)
    result = train_decision_net(config, resume=args.resume, progress=not args.no_progress)
    by = result["val_error_points_by"]
    per_grid = ", ".join(f"{g} {e:.2f}" for g, e in by["per_grid"].items())
    per_offset = ", ".join(f"{offsets} {e:.2f}" for offsets, e in by["per_offsets"].items())
    base = result["baseline_points"]
    print(f"dn {args.variant}: val error rate {result['val_error_points']:.2f} points ({per_grid}; mean "
          f"|expected - true| confidence score); by key offset {per_offset}; without features: the "
          f"training mean {base['mean']:.2f}, the mean per grid and key offset "
          f"{base['mean per grid and offset']:.2f}; weights {args.out}/model.safetensors")
    return 0


def run_ship(args: argparse.Namespace) -> int:
    from dvsnet.train.common import ship_weights

    path = ship_weights(args.run_dir, args.name, args.weights_dir)
    print(f"shipped {args.run_dir} as {path} (+ {path.with_suffix('.json').name})")
    return 0
