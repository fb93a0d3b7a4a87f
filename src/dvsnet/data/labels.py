"""Cityscapes label space: the 19 train ids, their label ids, names and colours.

Facts from the Cityscapes label table. Train ids are what every network here predicts
(uint8, 255 = ignore/void); label ids are what the official evaluator reads.
"""
from __future__ import annotations

import numpy as np

IGNORE = 255
NUM_CLASSES = 19

# (train id, label id, name, RGB colour)
TRAIN_CLASSES: tuple[tuple[int, int, str, tuple[int, int, int]], ...] = (
    (0, 7, "road", (128, 64, 128)),
    (1, 8, "sidewalk", (244, 35, 232)),
    (2, 11, "building", (70, 70, 70)),
    (3, 12, "wall", (102, 102, 156)),
    (4, 13, "fence", (190, 153, 153)),
    (5, 17, "pole", (153, 153, 153)),
    (6, 19, "traffic light", (250, 170, 30)),
    (7, 20, "traffic sign", (220, 220, 0)),
    (8, 21, "vegetation", (107, 142, 35)),
    (9, 22, "terrain", (152, 251, 152)),
    (10, 23, "sky", (70, 130, 180)),
    (11, 24, "person", (220, 20, 60)),
    (12, 25, "rider", (255, 0, 0)),
    (13, 26, "car", (0, 0, 142)),
    (14, 27, "truck", (0, 0, 70)),
    (15, 28, "bus", (0, 60, 100)),
    (16, 31, "train", (0, 80, 100)),
    (17, 32, "motorcycle", (0, 0, 230)),
    (18, 33, "bicycle", (119, 11, 32)),
)

CLASS_NAMES: tuple[str, ...] = tuple(name for _, _, name, _ in TRAIN_CLASSES)
TRAIN_ID = {name: tid for tid, _, name, _ in TRAIN_CLASSES}

# label id (0..33) -> train id; every label id not in the table maps to IGNORE.
LABEL_TO_TRAIN = np.full(256, IGNORE, dtype=np.uint8)
# train id (0..255) -> label id; IGNORE maps to 0 ("unlabeled").
TRAIN_TO_LABEL = np.zeros(256, dtype=np.uint8)
# train id (0..255) -> RGB colour; IGNORE is black.
TRAIN_TO_COLOR = np.zeros((256, 3), dtype=np.uint8)
for _tid, _lid, _name, _rgb in TRAIN_CLASSES:
    LABEL_TO_TRAIN[_lid] = _tid
    TRAIN_TO_LABEL[_tid] = _lid
    TRAIN_TO_COLOR[_tid] = _rgb


def label_ids_to_train_ids(label_ids: np.ndarray) -> np.ndarray:
    """Map an (H, W) uint8 Cityscapes label-id map to train ids (255 for void classes)."""
    return LABEL_TO_TRAIN[label_ids]


def train_ids_to_label_ids(train_ids: np.ndarray) -> np.ndarray:
    """Map an (H, W) uint8 train-id map to Cityscapes label ids (255 -> 0, unlabeled)."""
    return TRAIN_TO_LABEL[train_ids]


def colorize(train_ids: np.ndarray) -> np.ndarray:
    """(H, W) uint8 train ids -> (H, W, 3) uint8 RGB Cityscapes colours."""
    return TRAIN_TO_COLOR[train_ids]
