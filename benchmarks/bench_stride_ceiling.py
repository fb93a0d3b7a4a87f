"""How much mIoU a segmenter's output stride leaves reachable: the ground truth itself put on a stride-s grid.

For each stride s, every val label map is turned into logits on the (H/s, W/s) grid and scored the way the
pipeline scores a segmenter (bilinear upsampling to the frame, argmax, mIoU over the val frames):
- "shares": the class shares of each s×s cell (what a well-calibrated network would output);
- "fitted" (--fit): free logits fitted to the labels through the same upsampling by gradient descent
  (cross-entropy, Adam), an upper bound no network of that stride can beat.
Frames: frame 19 of every val snippet, as bench_models.py scores. Writes results/bench_stride_ceiling.json.

    PYTHONPATH=src python benchmarks/bench_stride_ceiling.py --data data/synth [--strides 8 4] [--fit]
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from dvsnet.atomic import write_json_atomic
from dvsnet.data.labels import IGNORE, NUM_CLASSES, TRAIN_CLASSES
from dvsnet.errors import DvsnetError
from dvsnet.metrics import confusion_matrix, iou_per_class, mean_iou


def val_labels(data: str) -> np.ndarray:
    """(N, H, W) uint8 train-id labels of the annotated frame (offset 19) of every val snippet."""
    from dvsnet.data.cityscapes import CityscapesSequences, load_labels

    return np.stack([load_labels(snippet.annotated_labels) for snippet in CityscapesSequences(data, "val")])


def share_logits(labels: torch.Tensor, stride: int) -> torch.Tensor:
    """(N, K, H/s, W/s): each cell's share of every class (ignored pixels count for none)."""
    valid = (labels != IGNORE).unsqueeze(1)
    one_hot = F.one_hot(labels.clamp(max=NUM_CLASSES - 1).long(), NUM_CLASSES).permute(0, 3, 1, 2).float()
    return F.avg_pool2d(one_hot * valid, stride)


def fitted_logits(labels: torch.Tensor, stride: int, steps: int) -> torch.Tensor:
    """(N, K, H/s, W/s) free logits fitted so that their bilinear upsampling reproduces `labels`."""
    height, width = labels.shape[1:]
    logits = (4 * share_logits(labels, stride)).requires_grad_(True)  # a warm start
    optimizer = torch.optim.Adam([logits], lr=0.5)
    target = labels.long()
    for _ in range(steps):
        up = F.interpolate(logits, size=(height, width), mode="bilinear", align_corners=False)
        loss = F.cross_entropy(up, target, ignore_index=IGNORE)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return logits.detach()


def score(logits: torch.Tensor, labels: np.ndarray) -> tuple[float, dict[str, float]]:
    """(mIoU, IoU per class name) in percent; classes absent from the labels and the prediction are left
    out."""
    pred = F.interpolate(logits, size=labels.shape[1:], mode="bilinear", align_corners=False).argmax(1)
    matrix = confusion_matrix(labels, pred.numpy().astype(np.uint8))
    per_class = {name: 100 * float(iou) for (_, _, name, _), iou in zip(TRAIN_CLASSES, iou_per_class(matrix))
                 if not np.isnan(iou)}
    return 100 * mean_iou(matrix), per_class


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", default="data/synth", help="synthetic or Cityscapes-layout tree")
    parser.add_argument("--strides", type=int, nargs="+", default=[8, 4],
                        help="output strides (default: 8 4)")
    parser.add_argument("--fit", action="store_true",
                        help="also fit free logits (the upper bound; ~2 min a stride)")
    parser.add_argument("--fit-steps", type=int, default=300, help="Adam steps of --fit (default: 300)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--output", default="results/bench_stride_ceiling.json")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    try:
        labels = val_labels(args.data)
        if not len(labels):
            raise DvsnetError(f"no labelled val frames under {args.data}")
        if any(s < 1 or labels.shape[1] % s or labels.shape[2] % s for s in args.strides):
            raise DvsnetError(f"every stride must divide the frame size {labels.shape[1:]}, "
                              f"got {args.strides}")
    except DvsnetError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    tensor = torch.from_numpy(labels)
    rows = []
    for stride in args.strides:
        row = {"stride": stride}
        row["shares"], row["shares_per_class"] = score(share_logits(tensor, stride), labels)
        if args.fit:
            row["fitted"], row["fitted_per_class"] = score(fitted_logits(tensor, stride, args.fit_steps),
                                                           labels)
        rows.append(row)
        print(f"stride {stride}: shares {row['shares']:.2f}%"
              + (f", fitted {row['fitted']:.2f}%" if args.fit else ""))
        print("  IoU per class (shares): "
              + ", ".join(f"{k} {v:.1f}" for k, v in row["shares_per_class"].items()))
    output = Path(args.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(output, {"frames": len(labels), "data": args.data, "rows": rows})
    print(f"{len(labels)} val frames; wrote {output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
