"""A tiny Cityscapes-layout tree written by code (never committed): textured road/building/sky bands and
a car-coloured box that moves 2 px right per frame, with label ids for every frame."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from dvsnet.data.labels import TRAIN_TO_LABEL

HEIGHT, WIDTH = 64, 128


def render(frame: int, rng_seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(H, W, 3) uint8 RGB image and (H, W) uint8 train ids for one frame."""
    rng = np.random.default_rng(rng_seed)
    train = np.full((HEIGHT, WIDTH), 10, np.uint8)  # sky
    train[16:40] = 2  # building
    train[40:] = 0  # road
    colours = {10: (70, 130, 180), 2: (90, 80, 70), 0: (120, 60, 120), 13: (20, 20, 160)}
    image = np.zeros((HEIGHT, WIDTH, 3), np.float32)
    left = 10 + 2 * frame
    train[36:52, left:left + 24] = 13  # car
    for tid, colour in colours.items():
        image[train == tid] = colour
    image += rng.normal(0, 6, image.shape)
    return np.clip(image, 0, 255).astype(np.uint8), train


def write_tree(root: Path, snippets: dict[str, int], frames: int) -> Path:
    """Write `frames` frames per snippet; snippets = {split: count}. Returns root."""
    for split, count in snippets.items():
        for seq in range(count):
            image_dir = root / "leftImg8bit_sequence" / split / "tiny"
            label_dir = root / "gtFine" / split / "tiny"
            image_dir.mkdir(parents=True, exist_ok=True)
            label_dir.mkdir(parents=True, exist_ok=True)
            for f in range(frames):
                image, train = render(f, seed := seq * 1000 + f + (0 if split == "train" else 500))
                stem = f"tiny_{seq:06d}_{f:06d}"
                cv2.imwrite(str(image_dir / f"{stem}_leftImg8bit.png"),
                            cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
                cv2.imwrite(str(label_dir / f"{stem}_gtFine_labelIds.png"), TRAIN_TO_LABEL[train])
                del seed
    return root


@pytest.fixture(scope="session")
def tiny_tree(tmp_path_factory) -> Path:
    return write_tree(tmp_path_factory.mktemp("synth"), {"train": 2, "val": 1}, frames=30)  # one snippet each


@pytest.fixture(scope="session")
def tiny_fast(tiny_tree, tmp_path_factory) -> Path:
    """A `fast` segmenter trained for 30 steps on the tiny tree (its weights file)."""
    from dvsnet.train.seg import SegTrainConfig, train_segmenter

    out = tmp_path_factory.mktemp("seg")
    train_segmenter(SegTrainConfig(data=str(tiny_tree), out=str(out), steps=30, batch=2, crop=(32, 64),
                                   lr=1e-2, frame_stride=1, val_every=30, val_frames=2, device="cpu",
                                   threads=1), progress=False)
    return out / "model.safetensors"


@pytest.fixture(autouse=True)
def _one_thread():
    """Training tests run single-threaded: on a shared 2-core machine two OpenMP threads fighting other
    processes are several times slower than one."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
