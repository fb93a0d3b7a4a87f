"""Label-free calibration: a decision network for the user's segmenter and flow, trained on their own video.

The DN's target (paper Eq. 1) is the agreement between a warped key segmentation and the segmenter's own
output on the current region, so it needs no labels. Samples come from the pipeline itself (one code path
with inference): a DVSNet with the `oracle:0` policy warps every region from the first frame of a chunk of
`max_offset + 1` frames and reports, on each later frame, the true confidence score of every region; the
flow estimator's features for that frame (the DN's input) are recorded beside it. Chunks follow each other
without overlap, so every frame is segmented once.

Held out: the `held_out` sources when given; else, with two sources or more, the last quarter of the sources
(`holdout`, at least one); with one, the last quarter of its frames. The held-out frames give the DN's error, and a table per threshold T: the
predicted agreement with per-frame output (each frame: segmented regions count 1, warped ones their DN
score, weighted by their cell's area), the measured one (share of pixels equal to the labels of the same
segmenter run on every frame, in the same run), the share of regions segmented and the speed-up over that
per-frame run. Samples are cached per chunk (`cache`), so an interrupted calibration resumes.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from dvsnet.atomic import atomic_path, write_json_atomic
from dvsnet.calibration_table import TABLE_FILE, CalibrationTable, ThresholdRow, predicted_agreement
from dvsnet.config import PipelineConfig, format_grid
from dvsnet.data.video import Frame, SourceInfo, expected_frames, probe, read_named_frames
from dvsnet.errors import DvsnetError
from dvsnet.flow import build_flow
from dvsnet.models.weights import segmenter_identity
from dvsnet.pipeline import DVSNet
from dvsnet.provenance import describe_machine, versions
from dvsnet.regions import core_shares
from dvsnet.runner import Clip as RunnerClip
from dvsnet.runner import run_interleaved

MAX_OFFSET = 10  # the paper's training pairs have key offsets up to 10 frames
THRESHOLDS = (0.5, 0.6, 0.7, 0.8, 0.85, 0.88, 0.9, 0.92, 0.94, 0.96, 0.98)
WITHIN = (0.05, 0.10)  # "within 5 % / 10 % of per-frame output": agreement >= 0.95 / 0.90
CACHE_FORMAT = 1


def default_cache() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "dvsnet" / "calibrate"


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


@dataclasses.dataclass
class Clip:
    """Frames [start, stop) of one source (after --stride and --max-frames)."""

    source: str
    info: SourceInfo
    start: int
    stop: int


class RecordingFlow:
    """A flow estimator that keeps the features of its last call: the DN's input for that frame. It wraps
    the codec's motion vectors (dvsnet.flow_mv) as well: the same calls, region_flow's features recorded."""

    def __init__(self, estimator: Callable):
        self.estimator = estimator
        self.name = getattr(estimator, "name", "custom")
        self.dn_variant = getattr(estimator, "dn_variant", None)
        self.features: torch.Tensor | None = None

    def __getattr__(self, name: str):  # the rest is the estimator's (the mv one's advance, reset, untrusted...)
        if name == "estimator":  # not set yet (a copy being built): no recursion
            raise AttributeError(name)
        return getattr(self.estimator, name)

    def __call__(self, key: torch.Tensor, cur: torch.Tensor):
        flow, features = self.estimator(key, cur)
        self.features = features
        return flow, features

    def region_flow(self, index: torch.Tensor, key: torch.Tensor | None, cur: torch.Tensor | None,
                    features: bool = True):
        flow, found = self.estimator.region_flow(index, key, cur, features)
        if features:
            self.features = found
        return flow, found


def _clip(source: str, config: CalibrationConfig, need: int) -> Clip:
    """The whole of `source` as a Clip; DvsnetError when it has fewer than `need` frames."""
    info = probe(source)
    count = expected_frames(info, stride=config.stride, max_frames=config.max_frames)
    if count is None:
        count = sum(1 for _ in _frames(source, config))
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
        return ([_clip(s, config, chunk) for s in config.sources], [_clip(s, config, chunk) for s in config.held_out])
    if len(config.sources) == 1:  # a training part and a held-out part, each at least one chunk
        clip = _clip(config.sources[0], config, 2 * chunk)
        cut = min(max(chunk, round(clip.stop * (1 - config.holdout))), clip.stop - chunk)
        return [Clip(clip.source, clip.info, 0, cut)], [Clip(clip.source, clip.info, cut, clip.stop)]
    clips = [_clip(s, config, chunk) for s in config.sources]
    held = max(1, round(len(clips) * config.holdout))
    return clips[:-held], clips[-held:]


def _frames(source: str, config: CalibrationConfig) -> Iterator[Frame]:
    return read_named_frames(source, resize=config.resize, stride=config.stride, max_frames=config.max_frames,
                             motion=config.pipeline.flow == "mv")


def clip_frames(clip: Clip, config: CalibrationConfig) -> Iterator[Frame]:
    """The frames of `clip`, each with its codec motion when the flow is "mv" (Frame.motion)."""
    for index, frame in enumerate(_frames(clip.source, config)):
        if index >= clip.stop:
            return
        if index >= clip.start:
            yield frame


def _step(pipe: DVSNet, frame: Frame):
    return pipe.step(frame.image, motion=frame.motion)


def chunks(frames: Iterator[Frame], length: int) -> Iterator[list[Frame]]:
    """Consecutive chunks of `length` frames; a shorter last chunk if it has a key and one frame after."""
    chunk: list[Frame] = []
    for frame in frames:
        chunk.append(frame)
        if len(chunk) == length:
            yield chunk
            chunk = []
    if len(chunk) >= 2:
        yield chunk


def _cache_key(clip: Clip, index: int, config: CalibrationConfig) -> str:
    path = Path(clip.source)
    stat = path.stat() if path.exists() else None
    p = config.pipeline
    key = {"source": str(path.resolve()) if stat else clip.source, "mtime": stat.st_mtime_ns if stat else None,
           "size": stat.st_size if stat else None, "start": clip.start, "chunk": index,
           "segmenter": segmenter_identity(p.segmenter), "flow": str(p.flow), "grid": format_grid(p.grid),
           "overlap": p.overlap, "flow_width": p.flow_width, "max_offset": config.max_offset,
           "resize": config.resize, "stride": config.stride, "format": CACHE_FORMAT,
           # the targets are the segmenter's own output: its arithmetic is part of what was sampled
           "backend": p.backend, "precision": p.precision}
    return hashlib.sha1(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:16]


def sampling_pipeline(pipeline: PipelineConfig) -> tuple[DVSNet, RecordingFlow]:
    """The pipeline that samples (oracle:0 warps every region from its chunk's first frame; no key-age cap
    may cut the key offsets short) and its flow estimator, which records the DN's features."""
    flow = RecordingFlow(build_flow(pipeline.flow))
    if flow.name not in ("dis", "mv") and not flow.name.startswith("flownet"):
        raise DvsnetError(f"flow estimator {flow.name!r} has no decision-network features to calibrate")
    return DVSNet.from_config(pipeline.replace(flow=flow, policy="oracle:0", dn=None, max_key_age=0)), flow


def sample_chunk(pipe: DVSNet, flow: RecordingFlow, frames: list[Frame]) -> dict[str, np.ndarray]:
    """Features (N, C, h, w) float16, true confidence scores (N,) and key offsets (N,) of every region of
    every frame after the chunk's first, each warped from the first (the pipeline's `oracle:0`)."""
    pipe.reset()
    features, targets, offsets = [], [], []
    for frame in frames:
        out = _step(pipe, frame)
        if out.index == 0:
            continue
        if flow.features is None:
            raise DvsnetError(f"flow estimator {flow.name!r} gives no features for a decision network")
        features.append(flow.features.float().cpu().half().numpy())
        targets.append(np.asarray(out.scores, dtype=np.float32))
        offsets.append(np.full(len(out.scores), out.index, dtype=np.int16))
    return {"features": np.concatenate(features), "targets": np.concatenate(targets),
            "offsets": np.concatenate(offsets)}


def collect_samples(clips: list[Clip], config: CalibrationConfig, pipe: DVSNet, flow: RecordingFlow, *,
                    what: str, progress: bool) -> dict[str, np.ndarray]:
    """Samples of every chunk of `clips`, from the cache where a chunk was done before."""
    cache = Path(config.cache) if config.cache else default_cache()
    cache.mkdir(parents=True, exist_ok=True)
    parts = []
    total = sum(-(-(c.stop - c.start) // (config.max_offset + 1)) for c in clips)
    bar = tqdm(total=total, desc=f"calibrate: {what} samples", unit="chunk", disable=not progress)
    for clip in clips:
        for index, chunk in enumerate(chunks(clip_frames(clip, config), config.max_offset + 1)):
            path = cache / f"chunk-{_cache_key(clip, index, config)}.npz"
            if path.is_file():
                with np.load(path) as data:
                    parts.append({k: data[k] for k in data.files})
            else:
                part = sample_chunk(pipe, flow, chunk)
                with atomic_path(path) as tmp, open(tmp, "wb") as f:
                    np.savez(f, **part)
                parts.append(part)
            bar.update(1)
    bar.close()
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


def threshold_table(clips: list[Clip], config: CalibrationConfig, dn_path: Path, *,
                    progress: bool) -> list[ThresholdRow]:
    """One row per threshold on the held-out clips: predicted and measured agreement with per-frame
    output, share of regions segmented, fps and speed-up over the per-frame reference, every threshold
    interleaved with that reference in one run (dvsnet.runner)."""
    held = []
    for clip in clips:
        frames = list(clip_frames(clip, config))
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
        rows.append(ThresholdRow(threshold, float(np.mean(predicted)), measured.agreement, figures["seg_share"],
                                 figures["fps"], per_frame, run.speedup(measured)))
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
    from dvsnet.train.dn import fit_decision_net, predict

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
    train = collect_samples(train_clips, config, pipe, flow, what="training", progress=progress)
    held = collect_samples(held_clips, config, pipe, flow, what="held-out", progress=progress)
    sampled = time.time()
    work = out.with_name(f".{out.stem}.training")
    work.mkdir(parents=True, exist_ok=True)
    identity = segmenter_identity(config.pipeline.segmenter)
    metadata = {"calibrated": "1", "segmenter": identity, "flow": str(config.pipeline.flow),
                "grid": format_grid(config.pipeline.grid), "max_offset": str(config.max_offset)}
    torch.manual_seed(config.seed)
    x_train, y_train = torch.from_numpy(train["features"].astype(np.float32)), torch.from_numpy(train["targets"])
    x_held, y_held = torch.from_numpy(held["features"].astype(np.float32)), torch.from_numpy(held["targets"])
    net, error = fit_decision_net(x_train, y_train, x_held, y_held, variant=flow.dn_variant or flow.name, out=work, steps=config.steps,
                                  lr=config.lr, val_every=max(1, config.steps // 5), seed=config.seed,
                                  device=pipe.device, metadata=metadata, progress=progress)
    mean_error = float((y_held - y_train.mean()).abs().mean() * 100)
    trained = time.time()
    rows = threshold_table(held_clips, config, work / "model.safetensors", progress=progress)
    chosen = recommend(rows)
    def describe(clips: list[Clip]) -> list[dict[str, Any]]:
        return [{"source": c.source, "frames": [c.start, c.stop]} for c in clips]

    record = {
        "weights": out.name, "pipeline": {**config.pipeline.to_record(), "policy": "dn:T", "dn": out.name},
        "segmenter_identity": identity, "sources": list(config.sources),
        "training_clips": describe(train_clips), "held_out_clips": describe(held_clips),
        "max_offset": config.max_offset, "samples": {"training": len(y_train), "held_out": len(y_held)},
        "dn_error_points": error, "mean_predictor_error_points": mean_error,
        "held_out_mean_score": {"true": float(y_held.mean()),
                                "predicted": float(predict(net, x_held, pipe.device).mean())},
        "thresholds": CalibrationTable(tuple(rows), out.name).to_records(),
        "recommended": {name: row and row.to_record() for name, row in chosen.items()},
        "seconds": {"samples": sampled - started, "training": trained - sampled, "table": time.time() - trained},
        "versions": versions(), "machine": describe_machine(pipe.device),
    }
    write_json_atomic(record_path, record)
    plot_table(rows, plot_path)
    os.replace(work / "model.safetensors", out)  # last: the weights appear with their table
    shutil.rmtree(work)
    log(f"calibrated {out}: DN error {error:.2f} points on held-out clips (a constant guess: {mean_error:.2f})")
    for name, row in chosen.items():
        tolerance = name.removeprefix("within_").removesuffix("pct")
        if row is None:
            best = max(rows, key=lambda r: r.measured_agreement)
            log(f"  within {tolerance}% of per-frame output: no threshold reaches it (best: dn:{best.threshold:g}, "
                f"{100 * best.measured_agreement:.1f}% agreement)")
        else:
            log(f"  within {tolerance}% of per-frame output: --policy dn:{row.threshold:g} --dn {out} "
                f"({100 * row.measured_agreement:.1f}% agreement, {row.speedup:.2f}x, "
                f"{100 * row.seg_share:.0f}% of regions segmented)")
    log(f"  table and plot: {record_path}, {plot_path}")
    return record
