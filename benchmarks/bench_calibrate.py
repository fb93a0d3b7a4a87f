"""Leave-one-out calibration on the real sample clips, and the issue's comparisons on each held-out clip.

For each clip: `dvsnet calibrate` on the other two, then, on the held-out clip in ONE label-free run (one
per-frame reference, every configuration interleaved with it): the calibrated DN at several thresholds,
the shipped synthetic-trained DN at the same thresholds, and fixed key-frame schedules. So every clip's
figures come from a DN that never saw it, and every speed-up is timed under the same load as its reference.

    PYTHONPATH=src python benchmarks/bench_calibrate.py --threads 1

The segmenter defaults to the shipped `fast` exported to ONNX (`dvsnet export fast`, done here when
results/fast.onnx is missing), the user's model of the issue. bigbuckbunny (1280x720) is read at 512x288
(the shipped networks' training width; per-frame fast costs ~2.3 s a frame at 720p on this machine): its
first frames are written once as PNGs to results/clips/. Writes results/calibrate/<clip>/ (dn.safetensors,
calibration.json, calibration.png, compare.json), results/calibrate/summary.json and summary.md.
"""
from __future__ import annotations

import argparse
import itertools
import sys
import time
from pathlib import Path

import cv2
import numpy as np

from dvsnet.atomic import write_json_atomic, write_text_atomic
from dvsnet.calibrate import CalibrationConfig, calibrate
from dvsnet.config import PipelineConfig
from dvsnet.data.sample_clips import sample_clips
from dvsnet.data.video import read_frames
from dvsnet.evaluate import evaluate_video_configs
from dvsnet.provenance import set_threads

THRESHOLDS = (0.5, 0.7, 0.8, 0.85, 0.9, 0.92, 0.94, 0.96)
FIXED = (2, 3, 5, 8, 10)


def prepare_clips(max_frames: int, out: Path) -> dict[str, str]:
    """The clips as calibrate and evaluate read them: bikes and carphone as shipped, bigbuckbunny at 512
    wide."""
    clips = sample_clips()
    folder = out / "bigbuckbunny-512"
    if not (folder.is_dir() and len(list(folder.glob("*.png"))) == max_frames):
        folder.mkdir(parents=True, exist_ok=True)
        for i, frame in enumerate(read_frames(clips["bigbuckbunny"], resize=512, max_frames=max_frames)):
            cv2.imwrite(str(folder / f"frame{i:04d}.png"), frame[:, :, ::-1])
    return {"bikes": str(clips["bikes"]), "carphone": str(clips["carphone"]), "bigbuckbunny": str(folder)}


def interpolate(points: list[tuple[float, float]], x: float) -> float | None:
    """The agreement of a curve of (speed-up, agreement) points at speed-up `x` (linear; None outside it)."""
    points = sorted(points)
    for (x0, y0), (x1, y1) in itertools.pairwise(points):
        if x0 <= x <= x1:
            return y0 if x1 == x0 else y0 + (y1 - y0) * (x - x0) / (x1 - x0)
    return None


def compare(results: list[dict], labels: list[str]) -> dict:
    """The issue's checks on one held-out clip, from the label-free results of every configuration."""
    rows = {label: r for label, r in zip(labels, results)}

    def curve(prefix: str) -> list[tuple[float, float]]:
        return [(r["speedup"], r["pixel_agreement"]) for label, r in rows.items() if label.startswith(prefix)]

    calibrated, shipped = curve("calibrated"), curve("shipped")
    versus_fixed = []
    for n in FIXED:
        fixed = rows[f"fixed:{n}"]
        at = interpolate(calibrated, fixed["speedup"])
        versus_fixed.append({"fixed": n, "speedup": fixed["speedup"],
                             "fixed_agreement": fixed["pixel_agreement"], "calibrated_agreement": at,
                             "difference": None if at is None else at - fixed["pixel_agreement"]})
    versus_shipped = []
    for speedup, agreement in shipped:
        at = interpolate(calibrated, speedup)
        versus_shipped.append({"speedup": speedup, "shipped_agreement": agreement, "calibrated_agreement": at,
                               "difference": None if at is None else at - agreement})
    first = results[0]
    return {
        "versus_fixed": versus_fixed, "versus_shipped": versus_shipped,
        "temporal_consistency": {label: r["temporal_consistency"]["dvsnet"] for label, r in rows.items()},
        "temporal_consistency_per_frame": first["temporal_consistency"]["per_frame"],
        "flicker_ceiling": first["flicker_ceiling"],
        "rows": {label: {k: r[k] for k in ("pixel_agreement", "speedup", "seg_share", "fps", "fps_per_frame")}
                 for label, r in rows.items()},
    }


REPORT_SECTION = Path(__file__).parent / "report" / "calibrate.md"  # included in REPORT.md by report.py


def report_section(summary: dict) -> str:
    """REPORT.md's section: the machine, what was compared, and the tables (the command is their first
    line)."""
    m = summary.get("machine") or {}
    errors = ", ".join(f"{clip} {fold['dn_error_points']:.2f} (a constant guess: "
                       f"{fold['mean_predictor_error_points']:.2f})"
                       for clip, fold in summary["folds"].items())
    return (f"On {m.get('cpu', 'an unrecorded machine')} ({m.get('usable_cores', '?')} usable cores), "
            "leave-one-out: each clip's decision network calibrated on the other two, the shipped `fast` "
            "exported to ONNX as the user's model; agreement with per-frame output on the held-out clip. "
            f"DN error on held-out samples in points: {errors}. docs/calibrate.md says what it means.\n\n"
            + markdown(summary))


def markdown(summary: dict) -> str:
    lines = [f"Command: `{summary['command']}`", "",
             ("| held-out clip | configuration | agreement | speed-up | regions segmented "
              "| temporal consistency |"),
             "|---|---|---|---|---|---|"]
    for clip, fold in summary["folds"].items():
        c = fold["compare"]
        lines.append(f"| {clip} | per-frame | 100.0% | 1.00x | 100.0% "
                     f"| {100 * c['temporal_consistency_per_frame']:.1f}% |")
        for label, row in c["rows"].items():
            lines.append(f"| {clip} | {label} | {100 * row['pixel_agreement']:.1f}% "
                         f"| {row['speedup']:.2f}x | {100 * row['seg_share']:.1f}% "
                         f"| {100 * c['temporal_consistency'][label]:.1f}% |")
        lines.append(f"| {clip} | flicker ceiling | {100 * c['flicker_ceiling']:.1f}% | | | |")
    lines += ["", ("| held-out clip | fixed:L | its speed-up | fixed agreement "
                   "| calibrated DN at that speed-up | difference |"),
              "|---|---|---|---|---|---|"]
    for clip, fold in summary["folds"].items():
        for v in fold["compare"]["versus_fixed"]:
            at = ("outside the curve" if v["calibrated_agreement"] is None
                  else f"{100 * v['calibrated_agreement']:.1f}%")
            diff = "" if v["difference"] is None else f"{100 * v['difference']:+.1f}"
            lines.append(f"| {clip} | {v['fixed']} | {v['speedup']:.2f}x | {100 * v['fixed_agreement']:.1f}% "
                         f"| {at} | {diff} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--segmenter", default="results/fast.onnx",
                        help="model file or name; a missing results/fast.onnx is exported from the "
                             "shipped fast")
    parser.add_argument("--out", default="results/calibrate")
    parser.add_argument("--clips", default="bikes,carphone,bigbuckbunny")
    parser.add_argument("--max-frames", type=int, default=120)
    parser.add_argument("--max-offset", type=int, default=10)
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--grid", default="1x1")
    parser.add_argument("--max-key-age", type=int, default=0,
                        help="key-age cap of the dn rows (default 0: none, as docs/calibrate.md measured; "
                             "-1: dvsnet's default, 10 frames for dn:T)")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    set_threads(args.threads)
    segmenter = Path(args.segmenter)
    if args.segmenter == "results/fast.onnx" and not segmenter.exists():
        from dvsnet.cli import main as cli

        cli(["export", "fast", "--out", str(segmenter)])
    clips = prepare_clips(args.max_frames, Path("results/clips"))
    names = [n for n in args.clips.split(",") if n]
    out = Path(args.out)
    summary = {"command": " ".join(["PYTHONPATH=src python", *sys.argv]), "segmenter": str(segmenter),
               "folds": {}}
    pipeline = PipelineConfig(segmenter=str(segmenter), flow="dis", grid=args.grid,
                              max_key_age=None if args.max_key_age < 0 else args.max_key_age)
    for held in names:
        fold = out / held
        fold.mkdir(parents=True, exist_ok=True)
        for stale in ("dn.safetensors", "calibration.json", "calibration.png"):
            (fold / stale).unlink(missing_ok=True)
        config = CalibrationConfig(
            sources=tuple(clips[n] for n in names if n != held), held_out=(clips[held],), pipeline=pipeline,
            max_offset=args.max_offset, steps=args.steps, max_frames=args.max_frames, thresholds=THRESHOLDS)
        started = time.time()
        record = calibrate(config, fold / "dn.safetensors",
                           log=lambda line, held=held: print(f"[{held}] {line}", flush=True))
        calibrated_s = time.time() - started
        labels, configs = [], []
        for t in THRESHOLDS:
            labels += [f"calibrated dn:{t:g}", f"shipped dn:{t:g}"]
            configs += [pipeline.replace(policy=f"dn:{t:g}", dn=str(fold / "dn.safetensors")),
                        pipeline.replace(policy=f"dn:{t:g}")]
        for n in FIXED:
            labels.append(f"fixed:{n}")
            configs.append(pipeline.replace(policy=f"fixed:{n}"))
        frames = [np.ascontiguousarray(f) for f in read_frames(clips[held], max_frames=args.max_frames)]
        results = evaluate_video_configs(clips[held], configs, frames=frames)
        write_json_atomic(fold / "compare.json", {"labels": labels, "results": results})
        summary["machine"] = record["machine"]  # calibration.json's: the machine this fold ran on
        summary["folds"][held] = {"calibration_seconds": calibrated_s,
                                  "dn_error_points": record["dn_error_points"],
                                  "mean_predictor_error_points": record["mean_predictor_error_points"],
                                  "recommended": record["recommended"], "compare": compare(results, labels)}
        write_json_atomic(out / "summary.json", summary)
        print(f"[{held}] compared in {time.time() - started - calibrated_s:.0f} s", flush=True)
    text = markdown(summary)
    write_text_atomic(out / "summary.md", text)
    write_text_atomic(REPORT_SECTION, report_section(summary))
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
