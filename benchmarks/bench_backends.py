"""Backends and precisions of `fast` in one run: per-frame torch eager fp32 (the baseline), ONNX Runtime
fp32, torch bf16 and ONNX Runtime int8, and DVSNet's balanced and high-speed points on each, at each
frame size and thread count; ms per frame, speed against torch eager fp32, mIoU on synthetic val and
label agreement with torch fp32.

    PYTHONPATH=src python benchmarks/bench_backends.py --data data/synth --threads 1,2

Frames: the first `--snippets` snippets of DATA's val split, frames 0..19 of each, every frame scored
against its labels (the synthetic set labels them all). At a `--sizes` entry other than the data's own
size the frames are resized (bilinear) and the labels too (nearest): upscaled 256x512 frames at 512x1024,
not rendered ones (`--snippets-large` of them). Per-frame = the pipeline with policy `always` on a 1x1
grid; balanced = dn:0.95 on 1x1 and high-speed = dn:0.8 on 1x1 (docs/evaluation.md's operating points,
without a key-age cap as they were measured: max_key_age 0).
Every pipeline of a size and thread count steps through the same frame before the next frame (load falls
on all alike); ms = mean of the pipeline's own frame time (`timings["total"]`), the first 3 frames of the
first snippet run once untimed (then a reset). bf16 runs only where the CPU has it natively. Writes
results/bench_backends.json and benchmarks/report/backends.md (benchmarks/REPORT.md includes it).
"""
from __future__ import annotations

import argparse
import datetime
import os
import sys
from pathlib import Path

import cv2
import numpy as np
import torch

from dvsnet import DVSNet
from dvsnet.atomic import write_json_atomic, write_text_atomic
from dvsnet.backends import native_bf16
from dvsnet.cli.options import parse_size
from dvsnet.evaluate import load_snippets
from dvsnet.metrics import confusion_matrix, mean_iou
from dvsnet.provenance import describe_machine, set_threads, versions

HERE = Path(__file__).resolve().parent
CANDIDATES = (("torch fp32", "torch", "fp32"), ("onnxruntime fp32", "onnxruntime", "fp32"),
              ("torch bf16", "torch", "bf16"), ("onnxruntime int8", "onnxruntime", "int8"),
              ("auto (default)", "auto", "auto"))  # what the defaults run here: dvsnet.auto_precision
POINTS = (("per-frame", "always"), ("balanced", "dn:0.95"), ("high-speed", "dn:0.8"))
WARMUP = 3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="data/synth")
    parser.add_argument("--snippets", type=int, default=5,
                        help="val snippets at the data's size (default: 5)")
    parser.add_argument("--snippets-large", type=int, default=2,
                        help="val snippets at sizes larger than the data's (default: 2)")
    parser.add_argument("--sizes", default="256x512,512x1024", help="HxW list (default: 256x512,512x1024)")
    parser.add_argument("--threads", default="1", help="thread counts, e.g. 1,2 (default: 1)")
    parser.add_argument("--segmenter", default="fast")
    parser.add_argument("--out", type=Path, default=Path("results/bench_backends.json"))
    parser.add_argument("--markdown", type=Path, default=HERE / "report" / "backends.md")
    parser.add_argument("--points", default=",".join(p for p, _ in POINTS),
                        help="operating points to run (default: per-frame,balanced,high-speed)")
    args = parser.parse_args()
    points = tuple(p for p in POINTS if p[0] in args.points.split(","))
    forced = os.environ.get("DVSNET_NATIVE_BF16")  # a machine of the other kind, faked (docs/speed.md)
    command = (f"DVSNET_NATIVE_BF16={forced} " if forced else "") + \
        "PYTHONPATH=src python benchmarks/bench_backends.py " + " ".join(sys.argv[1:])
    candidates = [c for c in CANDIDATES if c[2] != "bf16" or native_bf16()]
    snippets = load_snippets(args.data, "val", all_frames=True,
                             max_snippets=max(args.snippets, args.snippets_large))
    native = snippets[0].frames[0].shape[:2]
    rows, loads = [], []
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.markdown.parent.mkdir(parents=True, exist_ok=True)
    for threads in (int(t) for t in args.threads.split(",")):
        set_threads(threads)
        for size in (parse_size(s) for s in args.sizes.split(",")):
            count = args.snippets if size == native else args.snippets_large
            frames, labels = resized(snippets[:count], size, native)
            rows += measure(frames, labels, candidates, args.segmenter, size, threads, points)
            loads.append(describe_machine()["load_average_1m"])
            print_rows([r for r in rows if r["threads"] == threads and r["size"] == list(size)])
            # written after each block: a run cut short keeps what it measured
            result = {"date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
                      "command": command, "data": args.data, "segmenter": args.segmenter,
                      "native_bf16": native_bf16(),
                      "native_bf16_forced": os.environ.get("DVSNET_NATIVE_BF16"),
                      "load_average_1m_after_each_block": loads,
                      "versions": {**versions(), "onnxruntime": __import__("onnxruntime").__version__},
                      "machine": describe_machine(), "rows": rows}
            write_json_atomic(args.out, result)
            write_text_atomic(args.markdown, markdown(result))
    print(f"-> {args.out}, {args.markdown}")


def resized(snippets, size: tuple[int, int], native: tuple[int, int]) -> tuple[list, list]:
    """Per snippet its frames and labels at `size` (H, W): as they are at the data's size, else resized."""
    frames, labels = [], []
    for snippet in snippets:
        if size == native:
            frames.append(list(snippet.frames))
            labels.append([snippet.labels[i] for i in range(len(snippet.frames))])
        else:
            frames.append([cv2.resize(f, size[::-1], interpolation=cv2.INTER_LINEAR) for f in snippet.frames])
            labels.append([cv2.resize(snippet.labels[i], size[::-1], interpolation=cv2.INTER_NEAREST)
                           for i in range(len(snippet.frames))])
    return frames, labels


def measure(frames, labels, candidates, segmenter: str, size: tuple[int, int], threads: int,
            points: tuple = POINTS) -> list[dict]:
    """One row per (candidate, point): ms per frame, mIoU, label agreement with torch fp32 per-frame."""
    pipes = {(name, point): DVSNet(segmenter=segmenter, policy=policy, grid=(1, 1), max_key_age=0,
                                   backend=backend, precision=precision)
             for name, backend, precision in candidates for point, policy in points}
    for frame in frames[0][:WARMUP]:
        for pipe in pipes.values():
            pipe.step(frame)
    seconds = dict.fromkeys(pipes, 0.0)
    matrices = {key: np.zeros((19, 19), dtype=np.int64) for key in pipes}
    agree = {key: [] for key in pipes}
    segmented = dict.fromkeys(pipes, 0)
    for snippet_frames, snippet_labels in zip(frames, labels):
        for pipe in pipes.values():
            pipe.reset()
        for frame, truth in zip(snippet_frames, snippet_labels):
            outputs = {}
            for key, pipe in pipes.items():
                out = pipe.step(frame)
                seconds[key] += out.timings["total"]
                segmented[key] += out.paths.count("seg")
                outputs[key] = out.labels
            reference = outputs[(candidates[0][0], "per-frame")]
            for key, labels_out in outputs.items():
                matrices[key] += confusion_matrix(truth, labels_out, 19)
                agree[key].append(float(np.mean(labels_out == reference)))
    count = sum(len(f) for f in frames)
    base_ms = 1000 * seconds[(candidates[0][0], "per-frame")] / count
    rows = []
    for (name, point), pipe in pipes.items():
        ms = 1000 * seconds[(name, point)] / count
        own_ms = 1000 * seconds[(name, "per-frame")] / count
        rows.append({"candidate": name, "backend": pipe.backend, "backend_choice": pipe.backend_choice,
                     "precision": pipe.precision, "point": point,
                     "policy": dict(points)[point], "size": list(size), "threads": threads, "frames": count,
                     "ms": ms, "speed_vs_torch_fp32": base_ms / ms, "speed_vs_own_per_frame": own_ms / ms,
                     "miou": mean_iou(matrices[(name, point)]),
                     "agreement_vs_torch_fp32": float(np.mean(agree[(name, point)])),
                     "segmented_share": segmented[(name, point)] / count})
    return rows


def print_rows(rows: list[dict]) -> None:
    for r in rows:
        print(f"{r['size'][0]}x{r['size'][1]} t{r['threads']} {r['candidate']:<17} {r['point']:<10} "
              f"{r['ms']:8.1f} ms {r['speed_vs_torch_fp32']:6.2f}x  mIoU {100 * r['miou']:6.2f}  "
              f"agree {100 * r['agreement_vs_torch_fp32']:7.3f}%")


def markdown(result: dict) -> str:
    """The table benchmarks/REPORT.md includes (report.py), with the command and machine."""
    machine = result["machine"]
    forced = result.get("native_bf16_forced")
    lines = [
        (f"Measured {result['date']} by `{result['command']}` on {machine['cpu']} "
        f"({machine['usable_cores']} usable cores, 1-min load average after each size "
        f"{result['load_average_1m_after_each_block']}), torch {result['versions']['torch']}, "
        f"onnxruntime {result['versions']['onnxruntime']}; native bf16: {result['native_bf16']}"
        f"{f' (DVSNET_NATIVE_BF16={forced})' if forced else ''}"
        ". Speed = torch eager "
        "fp32 per-frame ms / the row's ms (same size, threads and run); agreement = share of pixels whose "
        "label equals torch fp32 per-frame's; mIoU over every frame 0..19 of the snippets (synthetic val; "
        "512x1024 = upscaled 256x512 frames and labels)."),
        "",
        ("| size | threads | backend | precision | point | frames | ms/frame | speed vs torch fp32 "
        "| speed vs own per-frame | mIoU % | agreement % | segmented |"),
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in result["rows"]:
        auto = " (auto)" if r["candidate"].startswith("auto") else ""
        lines.append(f"| {r['size'][0]}x{r['size'][1]} | {r['threads']} | {r['backend']}{auto} | "
                     f"{r['precision']} | {r['point']} ({r['policy']}) | {r['frames']} | {r['ms']:.1f} | "
                     f"{r['speed_vs_torch_fp32']:.2f}x | {r['speed_vs_own_per_frame']:.2f}x | "
                     f"{100 * r['miou']:.2f} | {100 * r['agreement_vs_torch_fp32']:.2f} | "
                     f"{100 * r['segmented_share']:.0f}% |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    torch.set_grad_enabled(False)
    main()
