"""How much accuracy does warping lose, and where? Whole frames, no regions, no policy.

For each of the first N val snippets, the annotated frame c (offset 19) is segmented directly
("per-frame"), and the key frame c - d is segmented and carried to frame c by each flow (ground truth
chained from the synthetic set's backward flow, OpenCV DIS ultrafast and medium) with each warp grid
(the segmenter's stride 8, stride 4 = the engine's default, full resolution). Two references bound
the result: no warp at all (zero flow), and the true labels of frame c - d warped by the true flow (what a
perfect segmenter and a perfect flow would still lose to occlusion and new content).

    PYTHONPATH=src python benchmarks/bench_warp.py --data data/synth --snippets 20 --distance 1

Writes results/bench_warp-d<distance>.json and prints a table of mIoU per row.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from dvsnet.atomic import write_json_atomic
from dvsnet.data.cityscapes import CityscapesSequences
from dvsnet.metrics import confusion_matrix, mean_iou
from dvsnet.models import load_segmenter
from dvsnet.train.flow import compose_backward
from dvsnet.warp import backward_warp, logits_to_labels, warp_logits

DIS = {"dis-ultrafast": cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST, "dis-medium": cv2.DISOPTICAL_FLOW_PRESET_MEDIUM}


def to_tensor(image: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(image).permute(2, 0, 1).float().div(255)[None]


def true_flow(data: CityscapesSequences, index: int, current: int, key: int) -> np.ndarray:
    """current -> key flow (H, W, 2): the per-frame backward flows current -> current-1 -> ... key,
    chained."""
    steps = [torch.from_numpy(data.load_flow(index, offset, "backward")[0]).permute(2, 0, 1)[None]
             for offset in range(current, key, -1)]
    return compose_backward(steps)[0].permute(1, 2, 0).numpy()


def remap_nearest(labels: np.ndarray, flow: np.ndarray) -> np.ndarray:
    height, width = labels.shape
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    return cv2.remap(labels, xs + flow[..., 0], ys + flow[..., 1], cv2.INTER_NEAREST,
                     borderMode=cv2.BORDER_REPLICATE)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="data/synth")
    parser.add_argument("--snippets", type=int, default=20)
    parser.add_argument("--distance", type=int, default=1, help="key frame this many frames before frame 19")
    parser.add_argument("--segmenter", default="fast")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--output", default="results")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    cv2.setNumThreads(args.threads)

    data = CityscapesSequences(args.data, "val", with_flow=True)
    segmenter = load_segmenter(args.segmenter)
    dis = {name: cv2.DISOpticalFlow_create(preset) for name, preset in DIS.items()}
    matrices: dict[str, np.ndarray] = {}

    def add(name: str, prediction: np.ndarray, truth: np.ndarray) -> None:
        matrices[name] = matrices.get(name, 0) + confusion_matrix(truth, prediction)

    for index in range(min(args.snippets, len(data))):
        snippet = data[index]
        current = snippet.annotated_offset
        key = current - args.distance
        cur_image, key_image = (data.load_image(snippet.frame_paths[current]),
                                data.load_image(snippet.frame_paths[key]))
        truth = data.load_labels(snippet.label_paths[current])
        size = truth.shape
        with torch.no_grad():
            cur_logits, key_logits = segmenter(to_tensor(cur_image)), segmenter(to_tensor(key_image))
        add("per-frame", logits_to_labels(cur_logits, size)[0].numpy(), truth)
        add("zero flow (key labels as they are)", logits_to_labels(key_logits, size)[0].numpy(), truth)
        flows = {"true flow": true_flow(data, index, current, key)}
        cur_grey, key_grey = (cv2.cvtColor(x, cv2.COLOR_RGB2GRAY) for x in (cur_image, key_image))
        for name, estimator in dis.items():
            flows[name] = estimator.calc(cur_grey, key_grey, None)  # current -> key (engine convention)
        full_logits = F.interpolate(key_logits, size=size, mode="bilinear", align_corners=False)
        for name, flow in flows.items():
            flow_t = torch.from_numpy(flow).permute(2, 0, 1)[None]
            add(f"{name}, warp at stride 8",
                logits_to_labels(warp_logits(key_logits, flow_t, upscale=1), size)[0].numpy(), truth)
            add(f"{name}, warp at stride 4 (engine)",
                logits_to_labels(warp_logits(key_logits, flow_t), size)[0].numpy(), truth)
            add(f"{name}, warp at full resolution", backward_warp(full_logits, flow_t).argmax(1)[0].numpy(),
                truth)
        key_truth = data.load_labels(snippet.label_paths[key])
        add("true labels of the key, true flow", remap_nearest(key_truth, flows["true flow"]), truth)

    results = {name: round(100 * mean_iou(m), 2) for name, m in matrices.items()}
    for name, miou in results.items():
        print(f"{name:45s} {miou:6.2f}")
    path = Path(args.output) / f"bench_warp-d{args.distance}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(path, {"args": vars(args), "miou_percent": results})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
