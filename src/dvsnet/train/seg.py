"""Train a segmentation network (`fast` or `accurate`) on a Cityscapes-layout tree.

Data: the labelled frames of the snippets of a Cityscapes-layout tree, read through dvsnet.data.cityscapes
(`labelled_frames`, `load_image`, `load_labels`: label ids mapped to train ids, or their train-id twins).
Training: random crops (`crop` h x w) with horizontal flips and mild brightness/contrast jitter,
cross-entropy on logits upsampled bilinearly to the crop (255 ignored), AdamW with linear warm-up then
cosine decay, optional ENet class weighting (rare classes count more), optional initial weights
(`init`, for a second stage), forward passes under bf16 autocast where the hardware has native bf16
(`precision="auto"`; weights and optimiser stay fp32). Validation: per-frame mIoU on the first
`val_frames` labelled val frames at full size.
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

from dvsnet.data.cityscapes import labelled_frames, load_image, load_labels
from dvsnet.data.labels import IGNORE, NUM_CLASSES
from dvsnet.errors import DvsnetError
from dvsnet.metrics import confusion_matrix, mean_iou
from dvsnet.models.segnets import SEGMENTERS
from dvsnet.models.weights import load_matching_weights, load_weights, save_weights
from dvsnet.train.common import (
    CsvLog,
    pick_device,
    restore,
    save_checkpoint,
    start_run,
)


@dataclasses.dataclass(frozen=True)
class SegTrainConfig:
    data: str = "data/synth"
    out: str = "runs/seg-fast"
    arch: str = "fast"
    steps: int = 4000
    batch: int = 8
    crop: tuple[int, int] = (192, 384)
    lr: float = 2e-3
    weight_decay: float = 1e-4
    warmup: int = 100
    frame_stride: int = 2       # use every n-th labelled training frame (neighbours are near duplicates)
    val_frames: int = 40
    val_every: int = 500
    checkpoint_minutes: float = 3.0
    seed: int = 0
    device: str = "auto"
    threads: int = 2
    # "none" or "enet": w_c = 1 / ln(1.02 + share_c) (ENet), rare classes count more
    class_weighting: str = "none"
    init: str | None = None     # start from these weights (.safetensors of the same arch) instead of random
    # start the tensors whose names and shapes match these weights' (any arch)
    init_matching: str | None = None
    # autocast dtype for forward passes: auto, bf16 or fp32 (see resolve_precision)
    precision: str = "auto"


def load_pairs(pairs: list[tuple[Path, Path]]) -> tuple[np.ndarray, np.ndarray]:
    """Stack the images (N, H, W, 3) uint8 RGB and labels (N, H, W) uint8 train ids of (image, label) paths
    (see dvsnet.data.cityscapes.labelled_frames); all frames must share one size."""
    images = np.stack([load_image(image) for image, _ in pairs])
    labels = np.stack([load_labels(label) for _, label in pairs])
    return images, labels


def sample_batch(images: np.ndarray, labels: np.ndarray, batch: int, crop: tuple[int, int],
                 rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Random crops + flips + brightness/contrast jitter -> (B,3,h,w) float [0,1], (B,h,w) int64."""
    n, height, width = labels.shape
    ch, cw = min(crop[0], height), min(crop[1], width)
    xs, ys = [], []
    for _ in range(batch):
        i = rng.integers(n)
        top, left = rng.integers(height - ch + 1), rng.integers(width - cw + 1)
        img = images[i, top:top + ch, left:left + cw]
        lab = labels[i, top:top + ch, left:left + cw]
        if rng.random() < 0.5:
            img, lab = img[:, ::-1], lab[:, ::-1]
        xs.append(np.ascontiguousarray(img))
        ys.append(np.ascontiguousarray(lab))
    x = torch.from_numpy(np.stack(xs)).permute(0, 3, 1, 2).float() / 255.0  # (B,3,h,w)
    contrast = torch.from_numpy(rng.uniform(0.8, 1.2, (batch, 1, 1, 1))).float()
    brightness = torch.from_numpy(rng.uniform(-0.08, 0.08, (batch, 1, 1, 1))).float()
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    x = ((x - mean) * contrast + mean + brightness).clamp(0, 1)
    return x, torch.from_numpy(np.stack(ys)).long()


def to_tensor(images: np.ndarray) -> torch.Tensor:
    """(N,H,W,3) uint8 -> (N,3,H,W) float [0,1]."""
    return torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255.0


@torch.inference_mode()
def evaluate_segmenter(model: torch.nn.Module, images: np.ndarray, labels: np.ndarray,
                       device: torch.device, batch: int = 4) -> tuple[float, np.ndarray]:
    """Per-frame mIoU (fraction) of `model` on (N,H,W,3) images vs (N,H,W) labels; also the confusion matrix.

    Logits are upsampled bilinearly to the frame size and argmax'ed, as the pipeline does.
    """
    was_training = model.training
    model.eval()
    matrix = np.zeros((NUM_CLASSES, NUM_CLASSES), dtype=np.int64)
    for start in range(0, len(images), batch):
        x = to_tensor(images[start:start + batch]).to(device)
        logits = model(x)
        pred = F.interpolate(logits, size=x.shape[2:], mode="bilinear", align_corners=False).argmax(1)
        matrix += confusion_matrix(labels[start:start + batch], pred.cpu().numpy().astype(np.uint8))
    model.train(was_training)
    return mean_iou(matrix), matrix


def class_weights(labels: np.ndarray, scheme: str) -> torch.Tensor | None:
    """Per-class loss weights (K,) from the label share in `labels`; None for "none".

    "enet": w_c = 1 / ln(1.02 + share_c) (Paszke et al., ENet), classes absent from `labels` get 0."""
    if scheme == "none":
        return None
    if scheme != "enet":
        raise DvsnetError(f"unknown class weighting {scheme!r}; valid: none, enet")
    counts = np.bincount(labels.reshape(-1), minlength=256)[:NUM_CLASSES].astype(np.float64)
    share = counts / max(1.0, counts.sum())
    weights = np.where(counts > 0, 1.0 / np.log(1.02 + share), 0.0)
    return torch.tensor(weights, dtype=torch.float32)


def lr_at(step: int, config: SegTrainConfig) -> float:
    """Linear warm-up, then cosine decay to 1% of the peak."""
    if step < config.warmup:
        return config.lr * (step + 1) / config.warmup
    progress = (step - config.warmup) / max(1, config.steps - config.warmup)
    return config.lr * (0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress))))


def resolve_precision(precision: str, device: torch.device) -> str:
    """"auto" -> "bf16" where the hardware computes bf16 natively (CUDA GPUs that support it, CPUs with
    AVX512-BF16 or AMX), else "fp32": emulated bf16 on an AVX2-only CPU made a training step ~12x slower."""
    if precision not in ("auto", "bf16", "fp32"):
        raise DvsnetError(f"unknown precision {precision!r}; valid: auto, bf16, fp32")
    if precision != "auto":
        return precision
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
    return "bf16" if torch.ops.mkldnn._is_mkldnn_bf16_supported() else "fp32"


def train_segmenter(config: SegTrainConfig, resume: bool = False, progress: bool = True) -> dict[str, float]:
    """Train `config.arch`; writes the run folder (see dvsnet.train.common). Returns final figures."""
    # resolved before the run folder is made, so config.json records the precision actually used
    config = dataclasses.replace(config,
                                 precision=resolve_precision(config.precision, pick_device(config.device)))
    if config.arch not in SEGMENTERS:
        raise DvsnetError(f"unknown segmenter {config.arch!r}; valid: {', '.join(SEGMENTERS)}")
    out = Path(config.out)
    checkpoint, device = start_run(out, config, resume)
    train_pairs = labelled_frames(config.data, "train")[:: config.frame_stride]
    val_pairs = labelled_frames(config.data, "val")
    val_pairs = val_pairs[:: max(1, len(val_pairs) // config.val_frames)][: config.val_frames]
    images, labels = load_pairs(train_pairs)
    val_images, val_labels = load_pairs(val_pairs)

    model = SEGMENTERS[config.arch]()
    if config.init is not None and config.init_matching is not None:
        raise DvsnetError("give --init or --init-matching, not both")
    if config.init is not None:
        load_weights(model, config.init, config.arch)
    if config.init_matching is not None and checkpoint is None:
        loaded, total = load_matching_weights(model, config.init_matching)
        print(f"{loaded} of {total} tensors start from {config.init_matching}; the rest are random")
    model = model.to(device).train()
    weights = class_weights(labels, config.class_weighting)
    weights = None if weights is None else weights.to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    step, last_val = 0, -1.0
    rng = np.random.default_rng(config.seed)
    if checkpoint is not None:
        state = restore(checkpoint, model, optimizer)
        step, last_val = state["step"], state["last_val"]
        rng = np.random.default_rng([config.seed, step])
    log = CsvLog(out / "log.csv", ["step", "time_s", "lr", "loss", "val_miou"])
    meta = {"arch": config.arch, "num_classes": str(NUM_CLASSES)}

    def save(step_done: int) -> None:
        save_checkpoint(out / "checkpoint.pt", model=model.state_dict(), optimizer=optimizer.state_dict(),
                        step=step_done, last_val=last_val)

    start, last_save, running = time.time(), time.time(), []
    bar = tqdm(total=config.steps, initial=step, desc=f"train {config.arch}", disable=not progress)
    while step < config.steps:
        for group in optimizer.param_groups:
            group["lr"] = lr_at(step, config)
        x, y = sample_batch(images, labels, config.batch, config.crop, rng)
        x, y = x.to(device), y.to(device)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=config.precision == "bf16"):
            logits = model(x)  # (B,K,h/8,w/8)
        logits = F.interpolate(logits.float(), size=x.shape[2:], mode="bilinear", align_corners=False)
        loss = F.cross_entropy(logits, y, weight=weights, ignore_index=IGNORE)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        step += 1
        running.append(loss.item())
        bar.update(1)
        if step % 25 == 0:
            log.write(step=step, time_s=time.time() - start, lr=lr_at(step, config),
                      loss=float(np.mean(running)))
            bar.set_postfix(loss=f"{np.mean(running):.3f}")
            running = []
        if step % config.val_every == 0 or step == config.steps:
            miou, _ = evaluate_segmenter(model, val_images, val_labels, device)
            log.write(step=step, time_s=time.time() - start, val_miou=miou)
            bar.write(f"step {step}: val mIoU {100 * miou:.2f}% on {len(val_images)} frames")
            last_val = miou  # the latest weights are kept (no selection on the val frames)
            save_weights(model, out / "model.safetensors",
                         {**meta, "step": str(step), "val_miou": f"{miou:.4f}"})
            save(step)
            last_save = time.time()
        elif time.time() - last_save > 60 * config.checkpoint_minutes:
            save(step)
            last_save = time.time()
    bar.close()
    return {"steps": step, "val_miou": last_val}
