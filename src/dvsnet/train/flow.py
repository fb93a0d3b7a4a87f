"""Train the FlowNetS flow network on the synthetic ground-truth flow (multi-scale end-point error).

Pairs: a current frame t and a key frame t - o of one 30-frame snippet (dvsnet.data.cityscapes), o uniform
in 1..`max_offset`. The target is the ground-truth flow mapping CURRENT pixels to KEY positions (the
engine's convention): the synthetic tree stores each frame's backward flow (pixel of frame t -> its
position in frame t-1), and offsets > 1 are composed:
F_{t->t-o}(p) = F_{t->t-1}(p) + F_{t-1->t-o}(p + F_{t->t-1}(p)) (bilinear).
Loss (FlowNet's multi-scale EPE): for each decoder level, mean end-point error against the target
average-pooled to that level's grid, measured in full-resolution pixels, weighted (flow6..flow2)
= (0.1, 0.1, 0.2, 0.5, 1.0). Validation EPE: flownet's stride-4 flow resized to the full grid
(warp.resize_flow) vs the target, mean over all pixels, in pixels of the 256x512 frame crop.
"""
from __future__ import annotations

import dataclasses
import math
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from dvsnet.data.cityscapes import CityscapesSequences, load_image
from dvsnet.errors import DvsnetError
from dvsnet.models.flownet import build_flownet
from dvsnet.models.weights import save_weights
from dvsnet.train.common import (
    CsvLog,
    restore,
    save_checkpoint,
    start_run,
)
from dvsnet.warp import backward_warp, resize_flow

LEVEL_WEIGHTS = (0.1, 0.1, 0.2, 0.5, 1.0)  # flow6, flow5, flow4, flow3, flow2


@dataclasses.dataclass(frozen=True)
class FlowTrainConfig:
    data: str = "data/synth"
    out: str = "runs/flownet"
    steps: int = 3000
    batch: int = 8
    crop: tuple[int, int] = (128, 256)
    max_offset: int = 10
    lr: float = 1e-3
    weight_decay: float = 1e-4
    warmup: int = 100
    val_every: int = 500
    val_pairs: int = 48
    max_snippets: int | None = None
    checkpoint_minutes: float = 3.0
    seed: int = 0
    device: str = "auto"
    threads: int = 2


def compose_backward(flows: torch.Tensor) -> torch.Tensor:
    """Chain backward flows [F_t->t-1, F_t-1->t-2, ...] (each (B,2,H,W)) into F_t->t-o (B,2,H,W)."""
    total = flows[0]
    for step in flows[1:]:
        total = total + backward_warp(step, total)  # F(p) + F'(p + F(p))
    return total


class FlowPairs:
    """The frames and backward flows of a split's first `max_snippets` snippets (dvsnet.data.cityscapes) in
    memory: frames (S, T, H, W, 3) uint8, flows (S, T, 2, H, W) fp16 px, T = 30. Occluded pixels keep the
    flow the renderer gave them (their valid mask is not used)."""

    def __init__(self, root: str, split: str, max_snippets: int | None) -> None:
        data = CityscapesSequences(root, split, with_flow=True)
        snippets = range(len(data))[:max_snippets]
        self.frames = np.stack([np.stack([load_image(p) for p in data[s].frame_paths]) for s in snippets])
        flows = [[data.load_flow(s, t, "backward")[0] for t in range(len(data[s].frame_paths))]
                 for s in snippets]
        self.flows = torch.from_numpy(np.stack([np.stack(f) for f in flows])).permute(0, 1, 4, 2, 3).half()

    def pair(self, s: int, t: int, offset: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(key (3,H,W), cur (3,H,W) float [0,1], target flow (2,H,W) cur -> key) for frames t-offset, t."""
        flows = [self.flows[s, t - j][None].float() for j in range(offset)]
        target = compose_backward(flows)[0]
        key = torch.from_numpy(self.frames[s, t - offset]).permute(2, 0, 1).float() / 255
        cur = torch.from_numpy(self.frames[s, t]).permute(2, 0, 1).float() / 255
        return key, cur, target


def multiscale_epe(predictions: list[torch.Tensor], target: torch.Tensor) -> torch.Tensor:
    """Weighted sum over levels of the mean EPE in full-resolution pixels (see module docstring)."""
    height, width = target.shape[-2:]
    loss = target.new_zeros(())
    for weight, pred in zip(LEVEL_WEIGHTS, predictions):
        h, w = pred.shape[-2:]
        scale = torch.tensor([width / w, height / h], device=pred.device).view(1, 2, 1, 1)
        gt = F.adaptive_avg_pool2d(target, (h, w))  # full-res px
        loss = loss + weight * (pred * scale - gt).norm(dim=1).mean()
    return loss


def flow_epe(flow: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean EPE (B,) of `flow` (any grid, pixels of its grid) against `target` (B,2,H,W) full-res px."""
    return (resize_flow(flow, target.shape[-2:]) - target).norm(dim=1).flatten(1).mean(1)


def train_flownet(config: FlowTrainConfig, resume: bool = False, progress: bool = True) -> dict[str, float]:
    """Train FlowNetS; writes the run folder (see dvsnet.train.common). Returns the final val EPE."""
    out = Path(config.out)
    checkpoint, device = start_run(out, config, resume)
    train = FlowPairs(config.data, "train", config.max_snippets)
    val = FlowPairs(config.data, "val", 12)  # 48 validation pairs drawn from the first 12 val snippets
    steps_per_snippet = train.frames.shape[1]
    if steps_per_snippet <= config.max_offset:
        raise DvsnetError(f"snippets have {steps_per_snippet} frames; "
                          f"max_offset {config.max_offset} needs more")
    val_rng = np.random.default_rng(1234)
    val_items = [(int(val_rng.integers(len(val.frames))),
                  int(val_rng.integers(config.max_offset, steps_per_snippet)),
                  int(val_rng.integers(1, config.max_offset + 1))) for _ in range(config.val_pairs)]

    net = build_flownet().to(device).train()
    optimizer = torch.optim.AdamW(net.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    step, last_val = 0, float("nan")
    if checkpoint is not None:
        state = restore(checkpoint, net, optimizer)
        step, last_val = state["step"], state["last_val"]
    rng = np.random.default_rng([config.seed, step])
    log = CsvLog(out / "log.csv", ["step", "time_s", "lr", "loss", "val_epe"])

    def lr_at(i: int) -> float:
        if i < config.warmup:
            return config.lr * (i + 1) / config.warmup
        progress_ = (i - config.warmup) / max(1, config.steps - config.warmup)
        return config.lr * (0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress_))))

    @torch.no_grad()
    def validate() -> float:
        net.eval()
        errors = []
        for s, t, o in val_items:
            key, cur, target = val.pair(s, t, o)
            flow, _ = net(key[None].to(device), cur[None].to(device))
            errors.append(flow_epe(flow, target[None].to(device)).item())
        net.train()
        return float(np.mean(errors))

    start, last_save, running = time.time(), time.time(), []
    height, width = train.frames.shape[2:4]
    ch, cw = min(config.crop[0], height), min(config.crop[1], width)
    bar = tqdm(total=config.steps, initial=step, desc="train flownet", disable=not progress)
    while step < config.steps:
        for group in optimizer.param_groups:
            group["lr"] = lr_at(step)
        keys, curs, targets = [], [], []
        for _ in range(config.batch):
            s = int(rng.integers(len(train.frames)))
            o = int(rng.integers(1, config.max_offset + 1))
            t = int(rng.integers(o, steps_per_snippet))
            key, cur, target = train.pair(s, t, o)
            top, left = int(rng.integers(height - ch + 1)), int(rng.integers(width - cw + 1))
            crop = (..., slice(top, top + ch), slice(left, left + cw))
            key, cur, target = key[crop], cur[crop], target[crop]
            if rng.random() < 0.5:  # horizontal flip: mirror images, negate dx
                key, cur, target = (key.flip(-1), cur.flip(-1),
                                    target.flip(-1) * torch.tensor([-1.0, 1.0]).view(2, 1, 1))
            keys.append(key), curs.append(cur), targets.append(target)
        key, cur, target = (torch.stack(v).to(device) for v in (keys, curs, targets))
        _, features = net(key, cur)
        loss = multiscale_epe(features["multiscale"], target)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        step += 1
        running.append(loss.item())
        bar.update(1)
        if step % 25 == 0:
            log.write(step=step, time_s=time.time() - start, lr=lr_at(step), loss=float(np.mean(running)))
            bar.set_postfix(loss=f"{np.mean(running):.3f}")
            running = []
        if step % config.val_every == 0 or step == config.steps:
            last_val = validate()
            log.write(step=step, time_s=time.time() - start, val_epe=last_val)
            bar.write(f"step {step}: val EPE {last_val:.3f} px on {len(val_items)} pairs")
            save_weights(net, out / "model.safetensors",
                         {"arch": "flownet", "step": str(step), "val_epe": f"{last_val:.4f}"})
            save_checkpoint(out / "checkpoint.pt", model=net.state_dict(), optimizer=optimizer.state_dict(),
                            step=step, last_val=last_val)
            last_save = time.time()
        elif time.time() - last_save > 60 * config.checkpoint_minutes:
            save_checkpoint(out / "checkpoint.pt", model=net.state_dict(), optimizer=optimizer.state_dict(),
                            step=step, last_val=last_val)
            last_save = time.time()
    bar.close()
    return {"steps": step, "val_epe": last_val}
