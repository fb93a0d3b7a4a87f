"""Train a decision network (paper §3.4): regress the confidence score with an MSE loss and Adam.

Targets and features come from the confidence-score cache (dvsnet.train.confidence), generated once
per split and reused by every variant: train split for fitting, val split for the error rate.
Error rate (paper Table 2) = mean |expected - true confidence score| over the val samples, in points
(x100). The feature normalisation (per-channel mean/std over the training samples) is stored in the
network's buffers, so the shipped module takes raw features.
"""
from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from dvsnet.errors import DvsnetError
from dvsnet.models.decision import DIS_VARIANTS, DN_VARIANTS, KEYSEG_SUFFIX, DecisionNet
from dvsnet.models.weights import save_weights
from dvsnet.train.common import (
    CsvLog,
    restore,
    save_checkpoint,
    start_run,
)
from dvsnet.train.confidence import ScoreConfig, load_or_generate_scores


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


def dataset(config: DNTrainConfig, split: str, progress: bool) -> tuple[torch.Tensor, torch.Tensor, np.ndarray]:
    """(features (N,C,h,w) float32, targets (N,) float32, grid name (N,) e.g. "2x2") of `config.variant` on
    `split` (cached); on the train split only the first `config.train_snippets` snippets, when set."""
    # one cache serves every variant when --flownet is given for all of them (DIS parts included)
    flownet = config.flownet
    if config.variant not in DIS_VARIANTS and flownet is None:
        flownet = "shipped"
    scores = load_or_generate_scores(config.cache, ScoreConfig(
        data=config.data, split=split, segmenter=config.segmenter, flownet=flownet, grids=config.grids,
        max_offset=config.max_offset, keys_per_snippet=config.keys_per_snippet,
        max_snippets=config.max_snippets, seed=config.seed), progress)
    keep = slice(None)
    if split == "train" and config.train_snippets is not None:
        available = int(scores["snippet"].max()) + 1
        if config.train_snippets > available:
            raise DvsnetError(f"--train-snippets {config.train_snippets}: the training cache holds {available} "
                              "snippets (raise --max-snippets)")
        keep = scores["snippet"] < config.train_snippets  # only the arrays this variant reads are indexed
    target = "target-dis" if config.variant in DIS_VARIANTS else "target-flownet"
    grids = np.char.add(np.char.add(scores["grid_rows"][keep].astype(str), "x"), scores["grid_cols"][keep].astype(str))
    features = scores[f"features-{config.variant.removesuffix(KEYSEG_SUFFIX)}"][keep]
    if config.variant.endswith(KEYSEG_SUFFIX):
        features = np.concatenate([features, scores["features-keyseg"][keep]], axis=1)
    return (torch.from_numpy(features.astype(np.float32)), torch.from_numpy(scores[target][keep].astype(np.float32)),
            grids)


def mirror_features(features: torch.Tensor) -> torch.Tensor:
    """DIS-variant features of the horizontally mirrored region pair: every map flipped left-right and the
    x component of the flow (channel 0 of dvsnet.flow.motion_features) negated."""
    mirrored = features.flip(-1)
    mirrored[:, 0] = -mirrored[:, 0]
    return mirrored


@torch.no_grad()
def error_points(net: DecisionNet, features: torch.Tensor, targets: torch.Tensor, device: torch.device) -> float:
    """Mean |expected - true confidence score| x 100 (the paper's DN error rate)."""
    net.eval()
    preds = torch.cat([net(features[i:i + 1024].to(device)).cpu() for i in range(0, len(features), 1024)])
    net.train()
    return float((preds - targets).abs().mean() * 100)


def train_decision_net(config: DNTrainConfig, resume: bool = False, progress: bool = True) -> dict[str, float]:
    """Fit a DecisionNet on cached scores; writes the run folder. Returns the final val error figures."""
    if config.variant not in DN_VARIANTS:
        raise DvsnetError(f"unknown decision-network variant {config.variant!r}; valid: {', '.join(DN_VARIANTS)}")
    if config.flip and config.variant not in DIS_VARIANTS:
        raise DvsnetError(f"--flip mirrors DIS motion features; {config.variant!r} features have no known mirror")
    out = Path(config.out)
    checkpoint, device = start_run(out, config, resume)
    x_train, y_train, _ = dataset(config, "train", progress)
    x_val, y_val, grid_val = dataset(config, "val", progress)
    channels, height, width = x_train.shape[1:]
    net = DecisionNet(channels, (height, width), variant=config.variant).to(device)
    dims = (0, 2, 3)
    net.feature_mean.copy_(x_train.mean(dims, keepdim=True))
    net.feature_std.copy_(x_train.std(dims, keepdim=True).clamp_min(1e-3))
    optimizer = torch.optim.Adam(net.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    scheduler_gamma = 0.01 ** (1 / max(1, config.steps))  # exponential decay to 1% of lr
    step, best = 0, float("inf")
    if checkpoint is not None:
        state = restore(checkpoint, net, optimizer)
        step, best = state["step"], state["best"]
    generator = torch.Generator().manual_seed(config.seed + step)
    log = CsvLog(out / "log.csv", ["step", "time_s", "lr", "loss", "val_error_points"])
    meta = {"arch": "decision", "variant": config.variant, "in_channels": str(channels),
            "in_height": str(height), "in_width": str(width)}
    baseline = float((y_val - y_train.mean()).abs().mean() * 100)  # predict the training mean everywhere
    start, running = time.time(), []
    bar = tqdm(total=config.steps, initial=step, desc=f"train dn {config.variant}", disable=not progress)
    while step < config.steps:
        lr = config.lr * scheduler_gamma ** step
        for group in optimizer.param_groups:
            group["lr"] = lr
        idx = torch.randint(len(x_train), (config.batch,), generator=generator)
        x = x_train[idx]
        if config.flip:
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
        if step % config.val_every == 0 or step == config.steps:
            err = error_points(net, x_val, y_val, device)
            log.write(step=step, time_s=time.time() - start, lr=lr, loss=float(np.mean(running)), val_error_points=err)
            bar.set_postfix(val_err=f"{err:.2f}")
            running = []
            best = err  # the latest weights are kept (no selection on the reported val set)
            save_weights(net, out / "model.safetensors", {**meta, "val_error_points": f"{err:.3f}"})
            save_checkpoint(out / "checkpoint.pt", model=net.state_dict(), optimizer=optimizer.state_dict(),
                            step=step, best=best)
    bar.close()
    masks = {g: torch.from_numpy(grid_val == g) for g in dict.fromkeys(grid_val.tolist())}
    per_grid = {g: error_points(net, x_val[m], y_val[m], device) for g, m in masks.items()}
    return {"steps": step, "val_error_points": best, "val_error_points_per_grid": per_grid,
            "mean_baseline_points": baseline, "train_samples": len(x_train), "val_samples": len(x_val)}
