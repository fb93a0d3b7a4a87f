"""Train a decision network (paper §3.4): regress the confidence score with an MSE loss and Adam.

Targets and features come from the confidence-score cache (dvsnet.train.confidence), generated once
per split and reused by every variant: train split for fitting, val split for the error rate.
Error rate (paper Table 2) = mean |expected - true confidence score| over the val samples, in points
(x100), also split by grid and by key offset (up to the paper's 10, and beyond), beside two predictors
without features: the training mean, and the training mean per grid and key offset. The feature
normalisation (per-channel mean/std over the training samples) is stored in the network's buffers, so
the shipped module takes raw features.
"""
from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from dvsnet.errors import DvsnetError
from dvsnet.models.decision import DIS_VARIANTS, DN_VARIANTS, KEYSEG_SUFFIX, MV_VARIANTS, DecisionNet
from dvsnet.models.weights import save_weights
from dvsnet.train.common import (
    CsvLog,
    restore,
    save_checkpoint,
    start_run,
)
from dvsnet.train.confidence import ScoreConfig, load_or_generate_scores
from dvsnet.train.mv import mv_samples

PAPER_MAX_OFFSET = 10  # the paper's training pairs have key offsets up to 10; ours go to 20


@dataclasses.dataclass(frozen=True)
class DNTrainConfig:
    data: str = "data/synth"
    out: str = "runs/dn-dis"
    variant: str = "dis"
    segmenter: str = "fast"
    flownet: str | None = None
    cache: str = "data/cache"
    grids: tuple[tuple[int, int], ...] = ((2, 2),)
    max_offset: int = 20
    keys_per_snippet: int = 2
    max_snippets: int | None = None
    steps: int = 3000
    batch: int = 64
    lr: float = 1e-3
    weight_decay: float = 1e-4
    val_every: int = 250
    seed: int = 0
    device: str = "auto"
    threads: int = 2
    flip: bool = False          # mirror half of each batch (DIS variants only; see mirror_features)
    train_snippets: int | None = None  # train on the first N snippets of the training cache (learning curves)
    train_max_offset: int | None = None  # train on key offsets 1..N of the training cache (the paper's 10)


@dataclasses.dataclass
class Samples:
    """One split's samples of a variant: features (N,C,h,w) float32, targets (N,) float32, and per sample
    its grid name (e.g. "2x2") and key offset (frames between key and current)."""

    features: torch.Tensor
    targets: torch.Tensor
    grids: np.ndarray
    offsets: np.ndarray


def dataset(config: DNTrainConfig, split: str, progress: bool) -> Samples:
    """The samples of `config.variant` on `split` (cached); on the train split only the first
    `config.train_snippets` snippets and key offsets up to `config.train_max_offset`, when set."""
    if config.variant in MV_VARIANTS:  # sampled from the split encoded to H.264 (dvsnet.train.mv)
        return _mv_dataset(config, split, progress)
    # one cache serves every variant when --flownet is given for all of them (DIS parts included)
    flownet = config.flownet
    if config.variant not in DIS_VARIANTS and flownet is None:
        flownet = "shipped"
    scores = load_or_generate_scores(config.cache, ScoreConfig(
        data=config.data, split=split, segmenter=config.segmenter, flownet=flownet, grids=config.grids,
        max_offset=config.max_offset, keys_per_snippet=config.keys_per_snippet,
        max_snippets=config.max_snippets, seed=config.seed), progress)
    keep = np.ones(len(scores["snippet"]), dtype=bool)
    if split == "train" and config.train_snippets is not None:
        available = int(scores["snippet"].max()) + 1
        if config.train_snippets > available:
            raise DvsnetError(f"--train-snippets {config.train_snippets}: the training cache holds "
                              f"{available} snippets (raise --max-snippets)")
        keep &= scores["snippet"] < config.train_snippets
    if split == "train" and config.train_max_offset is not None:
        if config.train_max_offset > config.max_offset:
            raise DvsnetError(f"--train-max-offset {config.train_max_offset}: the cache holds key offsets "
                              f"up to --max-offset {config.max_offset}")
        keep &= scores["offset"] <= config.train_max_offset
    # only the arrays this variant reads are indexed, and not at all when every sample is kept: the
    # feature arrays are ~100 MB and a boolean index copies them
    keep = slice(None) if keep.all() else keep
    target = "target-dis" if config.variant in DIS_VARIANTS else "target-flownet"
    grids = np.char.add(np.char.add(scores["grid_rows"][keep].astype(str), "x"),
                        scores["grid_cols"][keep].astype(str))
    features = scores[f"features-{config.variant.removesuffix(KEYSEG_SUFFIX)}"][keep]
    if config.variant.endswith(KEYSEG_SUFFIX):
        features = np.concatenate([features, scores["features-keyseg"][keep]], axis=1)
    return Samples(torch.from_numpy(features.astype(np.float32)),
                   torch.from_numpy(scores[target][keep].astype(np.float32)),
                   grids, scores["offset"][keep].astype(np.int64))


def _mv_dataset(config: DNTrainConfig, split: str, progress: bool) -> Samples:
    if config.train_snippets is not None or config.train_max_offset is not None:
        raise DvsnetError("--train-snippets and --train-max-offset apply to the image-sampled variants, "
                          "not mv (use --max-snippets and --max-offset)")
    samples = mv_samples(config, split, progress)
    return Samples(torch.from_numpy(samples["features"].astype(np.float32)),
                   torch.from_numpy(samples["targets"]),
                   samples["grids"], samples["offsets"].astype(np.int64))


def mirror_features(features: torch.Tensor) -> torch.Tensor:
    """DIS- or mv-variant features of the horizontally mirrored region pair: every map flipped left-right
    and the x component of the flow (channel 0 of dvsnet.features.motion_features and of MV_FEATURES)
    negated."""
    mirrored = features.flip(-1)
    mirrored[:, 0] = -mirrored[:, 0]
    return mirrored


@torch.no_grad()
def predict(net: DecisionNet, features: torch.Tensor, device: torch.device) -> torch.Tensor:
    """The net's expected confidence scores (N,) for features (N, C, h, w), in eval mode, on the CPU."""
    was_training = net.training
    net.eval()
    preds = torch.cat([net(features[i:i + 1024].to(device)).cpu() for i in range(0, len(features), 1024)])
    net.train(was_training)
    return preds


def error_points(net: DecisionNet, features: torch.Tensor, targets: torch.Tensor,
                 device: torch.device) -> float:
    """Mean |expected - true confidence score| x 100 (the paper's DN error rate)."""
    return float((predict(net, features, device) - targets).abs().mean() * 100)


def error_breakdown(preds: torch.Tensor, samples: Samples) -> dict[str, Any]:
    """Error rate (points) of `preds`: "all" samples, "per_grid" ({"2x2": ...}) and "per_offsets", the key
    offsets up to PAPER_MAX_OFFSET (the paper's training pairs) and beyond ({"1-10": ..., "11-20": ...})."""
    errors = (preds - samples.targets).abs().numpy() * 100
    per_grid = {g: float(errors[samples.grids == g].mean()) for g in dict.fromkeys(samples.grids.tolist())}
    per_offsets = {}
    top = int(samples.offsets.max())
    for lo, hi in ((1, min(PAPER_MAX_OFFSET, top)), (PAPER_MAX_OFFSET + 1, top)):
        in_range = (samples.offsets >= lo) & (samples.offsets <= hi)
        if in_range.any():
            per_offsets[f"{lo}-{hi}"] = float(errors[in_range].mean())
    return {"all": float(errors.mean()), "per_grid": per_grid, "per_offsets": per_offsets}


def baseline_points(train: Samples, val: Samples) -> dict[str, float]:
    """Error rates (points) on `val` of two predictors without features, fitted on `train`: the training
    mean everywhere, and the training mean of each (grid, key offset), i.e. what the key's age alone says."""
    out = {"mean": float((val.targets - train.targets.mean()).abs().mean() * 100)}
    preds = torch.full_like(val.targets, float(train.targets.mean()))
    for g in dict.fromkeys(val.grids.tolist()):
        for o in np.unique(val.offsets[val.grids == g]):
            fit = torch.from_numpy((train.grids == g) & (train.offsets == o))
            if fit.any():
                preds[torch.from_numpy((val.grids == g) & (val.offsets == o))] = train.targets[fit].mean()
    out["mean per grid and offset"] = float((preds - val.targets).abs().mean() * 100)
    return out


def train_decision_net(config: DNTrainConfig, resume: bool = False, progress: bool = True) -> dict[str, Any]:
    """Fit a DecisionNet on cached scores; writes the run folder. Returns the final val error figures."""
    if config.variant not in DN_VARIANTS:
        raise DvsnetError(f"unknown decision-network variant {config.variant!r}; "
                          f"valid: {', '.join(DN_VARIANTS)}")
    if config.flip and config.variant not in DIS_VARIANTS + MV_VARIANTS:
        raise DvsnetError(f"--flip mirrors DIS and mv motion features; {config.variant!r} features have no "
                          "known mirror")
    out = Path(config.out)
    checkpoint, device = start_run(out, config, resume)
    train, val = dataset(config, "train", progress), dataset(config, "val", progress)
    net, best = fit_decision_net(
        train.features, train.targets, val.features, val.targets, variant=config.variant, out=out,
        steps=config.steps, batch=config.batch, lr=config.lr, weight_decay=config.weight_decay,
        val_every=config.val_every, seed=config.seed, device=device, flip=config.flip, checkpoint=checkpoint,
        progress=progress)
    breakdown = error_breakdown(predict(net, val.features, device), val)
    return {"steps": config.steps, "val_error_points": best, "val_error_points_by": breakdown,
            "baseline_points": baseline_points(train, val), "train_samples": len(train.features),
            "val_samples": len(val.features)}


def fit_decision_net(x_train: torch.Tensor, y_train: torch.Tensor, x_val: torch.Tensor, y_val: torch.Tensor,
                     *, variant: str, out: Path, steps: int, batch: int = 64, lr: float = 1e-3,
                     weight_decay: float = 1e-4, val_every: int = 250, seed: int = 0,
                     device: torch.device | str = "cpu", flip: bool = False,
                     checkpoint: Path | None = None, metadata: dict[str, str] | None = None,
                     progress: bool = True) -> tuple[DecisionNet, float]:
    """Fit a DecisionNet to features (N, C, h, w) -> confidence scores (N,) with MSE and Adam (lr decaying
    exponentially to 1 %), validating every `val_every` steps; writes out/model.safetensors (with
    `metadata`), out/checkpoint.pt and out/log.csv there, resuming from `checkpoint` when given. Returns the
    net and its last val error in points. Used by `dvsnet train dn` and `dvsnet calibrate`."""
    device = torch.device(device)
    channels, height, width = x_train.shape[1:]
    net = DecisionNet(channels, (height, width), variant=variant).to(device)
    dims = (0, 2, 3)
    net.feature_mean.copy_(x_train.mean(dims, keepdim=True))
    net.feature_std.copy_(x_train.std(dims, keepdim=True).clamp_min(1e-3))
    optimizer = torch.optim.Adam(net.parameters(), lr=lr, weight_decay=weight_decay)
    scheduler_gamma = 0.01 ** (1 / max(1, steps))  # exponential decay to 1% of lr
    step, best = 0, float("inf")
    if checkpoint is not None:
        state = restore(checkpoint, net, optimizer)
        step, best = state["step"], state["best"]
    generator = torch.Generator().manual_seed(seed + step)
    log = CsvLog(out / "log.csv", ["step", "time_s", "lr", "loss", "val_error_points"])
    meta = {"arch": "decision", "variant": variant, "in_channels": str(channels),
            "in_height": str(height), "in_width": str(width), **(metadata or {})}
    start, running = time.time(), []
    bar = tqdm(total=steps, initial=step, desc=f"train dn {variant}", disable=not progress)
    while step < steps:
        lr_now = lr * scheduler_gamma ** step
        for group in optimizer.param_groups:
            group["lr"] = lr_now
        idx = torch.randint(len(x_train), (batch,), generator=generator)
        x = x_train[idx]
        if flip:
            flipped = torch.rand(len(idx), generator=generator) < 0.5
            x = torch.where(flipped[:, None, None, None], mirror_features(x), x)
        pred = net(x.to(device))
        loss = F.mse_loss(pred, y_train[idx].to(device))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        step += 1
        running.append(loss.item())
        bar.update(1)
        if step % val_every == 0 or step == steps:
            err = error_points(net, x_val, y_val, device)
            log.write(step=step, time_s=time.time() - start, lr=lr_now, loss=float(np.mean(running)),
                      val_error_points=err)
            bar.set_postfix(val_err=f"{err:.2f}")
            running = []
            best = err  # the latest weights are kept (no selection on the reported val set)
            save_weights(net, out / "model.safetensors", {**meta, "val_error_points": f"{err:.3f}"})
            save_checkpoint(out / "checkpoint.pt", model=net.state_dict(), optimizer=optimizer.state_dict(),
                            step=step, best=best)
    bar.close()
    return net, best
