"""Label-free calibration: a decision network for the user's segmenter and flow, trained on their own video.

The DN's target (paper Eq. 1) is the agreement between a warped key segmentation and the segmenter's own
output on the current region, so it needs no labels. Samples come from the pipeline itself (dvsnet.sampling:
key frames warped to every region of the next `max_offset` frames by the `oracle:0` policy, the flow's
features recorded beside the true scores, cached per chunk).

Held out: the `held_out` sources when given; else, with two sources or more, the last quarter of the
sources (`holdout`, at least one); with one, the last quarter of its frames. The held-out frames give the
DN's error, and a table per threshold T: the predicted agreement with per-frame output (each frame:
segmented regions count 1, warped ones their DN score, weighted by their cell's area), the measured one
(share of pixels equal to the labels of the same segmenter run on every frame, in the same run), the share
of regions segmented and the speed-up over that per-frame run, all timed interleaved with that run
(dvsnet.runner); the table is a CalibrationTable (dvsnet.calibration_table), written as calibration.json
beside the weights.
"""
from __future__ import annotations

import dataclasses
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from dvsnet.atomic import atomic_path, write_json_atomic
from dvsnet.calibration_table import TABLE_FILE, CalibrationTable, ThresholdRow, predicted_agreement
from dvsnet.config import PipelineConfig, format_grid
from dvsnet.data.video import count_video_frames, expected_frames, probe
from dvsnet.errors import DvsnetError
from dvsnet.models.weights import segmenter_identity
from dvsnet.pipeline import DVSNet
from dvsnet.provenance import describe_machine, versions
from dvsnet.regions import core_shares
from dvsnet.runner import Clip as RunnerClip
from dvsnet.runner import run_interleaved
from dvsnet.sampling import (
    MAX_OFFSET,
    Clip,
    SamplingConfig,
    clip_frames,
    collect_samples,
    read_source,
    sampling_pipeline,
)
from dvsnet.train.dn import fit_decision_net, predict

THRESHOLDS = (0.5, 0.6, 0.7, 0.8, 0.85, 0.88, 0.9, 0.92, 0.94, 0.96, 0.98)
WITHIN = (0.05, 0.10)  # "within 5 % / 10 % of per-frame output": agreement >= 0.95 / 0.90


@dataclasses.dataclass(frozen=True)
class CalibrationConfig:
    """What `calibrate` does. pipeline: segmenter, flow, grid, overlap, flow_width, device (its policy and
    dn are ignored). max_offset: key ages sampled, 1..max_offset frames. holdout: share of the sources (or
    of the one source's frames) held out. steps, lr: DN training. thresholds: rows of the table."""

    sources: tuple[str, ...]
    held_out: tuple[str, ...] = ()  # sources held out, when given: then every one of `sources` is trained on
    pipeline: PipelineConfig = dataclasses.field(default_factory=PipelineConfig)
    max_offset: int = MAX_OFFSET
    holdout: float = 0.25
    steps: int = 1500
    lr: float = 1e-3
    thresholds: tuple[float, ...] = THRESHOLDS
    resize: tuple[int, int] | int | None = None
    stride: int = 1
    max_frames: int | None = None
    cache: str | None = None
    seed: int = 0

    @property
    def sampling(self) -> SamplingConfig:
        """How this calibration draws its samples (dvsnet.sampling)."""
        return SamplingConfig(self.pipeline, self.max_offset, self.resize, self.stride, self.max_frames,
                              self.cache)


def _clip(source: str, config: CalibrationConfig, need: int) -> Clip:
    """The whole of `source` as a Clip; DvsnetError when it has fewer than `need` frames."""
    info = probe(source)
    if info.kind == "video":  # the frames it holds, not its header's count (which may lie)
        info = dataclasses.replace(info, frames=count_video_frames(source))
    count = expected_frames(info, stride=config.stride, max_frames=config.max_frames)
    if count is None:
        count = sum(1 for _ in read_source(source, config.sampling))
    if count < need:
        raise DvsnetError(f"{source} has {count} frames; key offsets up to {config.max_offset} need at least "
                          f"{need} (lower --max-offset or give longer clips)")
    return Clip(str(source), info, 0, count)


def split_clips(config: CalibrationConfig) -> tuple[list[Clip], list[Clip]]:
    """(training clips, held-out clips); DvsnetError for sources too short for the key offsets."""
    if not config.sources:
        raise DvsnetError("calibrate needs at least one video, frame folder or glob")
    if not 0.0 < config.holdout < 1.0:
        raise DvsnetError(f"holdout must be in (0, 1), got {config.holdout:g}")
    chunk = config.max_offset + 1
    if config.held_out:
        return ([_clip(s, config, chunk) for s in config.sources],
                [_clip(s, config, chunk) for s in config.held_out])
    if len(config.sources) == 1:  # a training part and a held-out part, each at least one chunk
        clip = _clip(config.sources[0], config, 2 * chunk)
        cut = min(max(chunk, round(clip.stop * (1 - config.holdout))), clip.stop - chunk)
        return [Clip(clip.source, clip.info, 0, cut)], [Clip(clip.source, clip.info, cut, clip.stop)]
    clips = [_clip(s, config, chunk) for s in config.sources]
    held = max(1, round(len(clips) * config.holdout))
    return clips[:-held], clips[-held:]


def threshold_table(clips: list[Clip], config: CalibrationConfig, dn_path: Path, *,
                    progress: bool) -> list[ThresholdRow]:
    """One row per threshold on the held-out clips: predicted and measured agreement with per-frame
    output, share of regions segmented, fps and speed-up over the per-frame reference, every threshold
    interleaved with that reference in one run (dvsnet.runner)."""
    held = []
    for clip in clips:
        frames = list(clip_frames(clip, config.sampling))
        held.append(RunnerClip([f.image for f in frames], [f.motion for f in frames], name=clip.source))
    reference = DVSNet.from_config(config.pipeline.per_frame())
    pipes = [DVSNet.from_config(config.pipeline.replace(policy=f"dn:{t:g}", dn=str(dn_path)))
             for t in config.thresholds]
    run = run_interleaved(held, pipes, reference=reference, progress=progress)
    per_frame = run.reference.figures()["fps"]
    rows = []
    for threshold, measured in zip(config.thresholds, run.runs):
        predicted = [predicted_agreement(r.paths, r.scores, core_shares(r.regions)) for r in measured.frames]
        figures = measured.figures()
        rows.append(ThresholdRow(threshold, float(np.mean(predicted)), measured.agreement,
                                 figures["seg_share"], figures["fps"], per_frame, run.speedup(measured)))
    return rows


def recommend(rows: list[ThresholdRow]) -> dict[str, ThresholdRow | None]:
    """For each tolerance in WITHIN: the fastest row whose measured agreement is >= 1 - tolerance."""
    out = {}
    for tolerance in WITHIN:
        fits = [r for r in rows if r.measured_agreement >= 1 - tolerance]
        out[f"within_{round(tolerance * 100)}pct"] = max(fits, key=lambda r: r.speedup) if fits else None
    return out


def plot_table(rows: list[ThresholdRow], path: Path) -> None:
    """calibration.png: agreement (predicted, measured), regions segmented and speed-up per threshold."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t = [r.threshold for r in rows]
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(6.4, 6.4), sharex=True)
    top.plot(t, [100 * r.predicted_agreement for r in rows], "o--", label="predicted by the DN")
    top.plot(t, [100 * r.measured_agreement for r in rows], "o-", label="measured (held-out clips)")
    for tolerance in WITHIN:
        top.axhline(100 * (1 - tolerance), color="grey", lw=0.8, ls=":")
    top.set_ylabel("agreement with per-frame output (%)")
    top.legend(loc="lower right")
    bottom.plot(t, [r.speedup for r in rows], "o-", color="C2", label="speed-up over per-frame")
    bottom.set_ylabel("speed-up (x)")
    twin = bottom.twinx()
    twin.plot(t, [100 * r.seg_share for r in rows], "s:", color="C3", label="regions segmented")
    twin.set_ylabel("regions segmented (%)")
    bottom.set_xlabel("threshold T of dn:T")
    bottom.legend(loc="upper left")
    twin.legend(loc="upper right")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)


def calibrate(config: CalibrationConfig, out: str | Path, *, progress: bool = False,
              log: Callable[[str], None] = print) -> dict[str, Any]:
    """Train a DN for `config.pipeline`'s segmenter and flow on `config.sources`; write `out` (weights),
    calibration.json and calibration.png beside it; return the calibration record."""
    out = Path(out)
    if out.suffix != ".safetensors":
        raise DvsnetError(f"--out must name a .safetensors file, got {out}")
    record_path, plot_path = out.with_name(TABLE_FILE), out.with_name("calibration.png")
    for path in (out, record_path, plot_path):
        if path.exists():
            raise DvsnetError(f"{path} exists; calibrate never overwrites: pick another --out folder")
    started = time.time()
    train_clips, held_clips = split_clips(config)
    pipe, flow = sampling_pipeline(config.pipeline)
    train = collect_samples(train_clips, config.sampling, pipe, flow, what="training", progress=progress)
    held = collect_samples(held_clips, config.sampling, pipe, flow, what="held-out", progress=progress)
    sampled = time.time()
    work = out.with_name(f".{out.stem}.training")
    work.mkdir(parents=True, exist_ok=True)
    fit = _fit(config, train, held, flow.dn_variant or flow.name, pipe.device, work, progress)
    trained = time.time()
    rows = threshold_table(held_clips, config, work / "model.safetensors", progress=progress)
    chosen = recommend(rows)

    def describe(clips: list[Clip]) -> list[dict[str, Any]]:
        return [{"source": c.source, "frames": [c.start, c.stop]} for c in clips]

    record = {
        "weights": out.name, "pipeline": {**config.pipeline.to_record(), "policy": "dn:T", "dn": out.name},
        "segmenter_identity": segmenter_identity(config.pipeline.segmenter), "sources": list(config.sources),
        "training_clips": describe(train_clips), "held_out_clips": describe(held_clips),
        "max_offset": config.max_offset, **fit,
        "thresholds": CalibrationTable(tuple(rows), out.name).to_records(),
        "recommended": {name: row and row.to_record() for name, row in chosen.items()},
        "seconds": {"samples": sampled - started, "training": trained - sampled,
                    "table": time.time() - trained},
        "versions": versions(), "machine": describe_machine(pipe.device),
    }
    write_json_atomic(record_path, record)
    plot_table(rows, plot_path)
    os.replace(work / "model.safetensors", out)  # last: the weights appear with their table
    shutil.rmtree(work)
    _log_recommendations(log, out, record, rows, chosen)
    log(f"  table and plot: {record_path}, {plot_path}")
    return record


def _fit(config: CalibrationConfig, train: dict[str, np.ndarray], held: dict[str, np.ndarray], variant: str,
         device: torch.device, work: Path, progress: bool) -> dict[str, Any]:
    """Train the DN on the training samples into work/model.safetensors; the record's figures of the fit
    (samples, dn_error_points, mean_predictor_error_points, held_out_mean_score)."""
    metadata = {"calibrated": "1", "segmenter": segmenter_identity(config.pipeline.segmenter),
                "flow": str(config.pipeline.flow), "grid": format_grid(config.pipeline.grid),
                "max_offset": str(config.max_offset)}
    torch.manual_seed(config.seed)
    x_train, y_train = (torch.from_numpy(train["features"].astype(np.float32)),
                        torch.from_numpy(train["targets"]))
    x_held, y_held = torch.from_numpy(held["features"].astype(np.float32)), torch.from_numpy(held["targets"])
    net, error = fit_decision_net(x_train, y_train, x_held, y_held, variant=variant, out=work,
                                  steps=config.steps, lr=config.lr, val_every=max(1, config.steps // 5),
                                  seed=config.seed, device=device, metadata=metadata, progress=progress)
    return {"samples": {"training": len(y_train), "held_out": len(y_held)}, "dn_error_points": error,
            "mean_predictor_error_points": float((y_held - y_train.mean()).abs().mean() * 100),
            "held_out_mean_score": {"true": float(y_held.mean()),
                                    "predicted": float(predict(net, x_held, device).mean())}}


def _log_recommendations(log: Callable[[str], None], out: Path, record: dict[str, Any],
                         rows: list[ThresholdRow], chosen: dict[str, ThresholdRow | None]) -> None:
    log(f"calibrated {out}: DN error {record['dn_error_points']:.2f} points on held-out clips "
        f"(a constant guess: {record['mean_predictor_error_points']:.2f})")
    for name, row in chosen.items():
        tolerance = name.removeprefix("within_").removesuffix("pct")
        if row is None:
            best = max(rows, key=lambda r: r.measured_agreement)
            log(f"  within {tolerance}% of per-frame output: no threshold reaches it "
                f"(best: dn:{best.threshold:g}, {100 * best.measured_agreement:.1f}% agreement)")
        else:
            log(f"  within {tolerance}% of per-frame output: --policy dn:{row.threshold:g} --dn {out} "
                f"({100 * row.measured_agreement:.1f}% agreement, {row.speedup:.2f}x, "
                f"{100 * row.seg_share:.0f}% of regions segmented)")
