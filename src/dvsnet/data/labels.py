"""Label spaces: Cityscapes' 19 train ids, their label ids, names and colours; and the ClassSet of any
K-class segmenter (names and colours for overlays and colour PNGs).

Facts from the Cityscapes label table. Train ids are what every network here predicts
(uint8, 255 = ignore/void); label ids are what the official evaluator reads.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

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


@dataclass(frozen=True)
class ClassSet:
    """The classes a segmenter predicts: names and RGB colours per label 0..K-1 (255 stays ignore).

    `cityscapes` says whether the labels are Cityscapes train ids (then label-id PNGs can be written).
    """

    names: tuple[str, ...]
    colors: np.ndarray  # (K, 3) uint8 RGB
    cityscapes: bool = False

    def __post_init__(self) -> None:
        if len(self.names) != len(self.colors):
            raise ValueError(f"{len(self.names)} class names but {len(self.colors)} colours")
        if len(self.names) > IGNORE:
            raise ValueError(f"at most {IGNORE} classes fit uint8 labels with {IGNORE} = ignore, "
                             f"got {len(self.names)}")

    @property
    def lookup(self) -> np.ndarray:
        """(256, 3) uint8: the colour of every label value (IGNORE and unused values black)."""
        table = np.zeros((256, 3), dtype=np.uint8)
        table[: len(self.colors)] = self.colors
        return table

    def colorize(self, labels: np.ndarray) -> np.ndarray:
        """(H, W) uint8 labels -> (H, W, 3) uint8 RGB."""
        return self.lookup[labels]


def generated_palette(count: int) -> np.ndarray:
    """(count, 3) uint8 RGB colours, distinct and bright enough to read: hues a golden angle apart, with
    saturation and value stepped so that neighbours in a long list differ in brightness too."""
    hues = (np.arange(count) * 0.618033988749895) % 1.0
    saturation = 0.55 + 0.35 * ((np.arange(count) // 7) % 2)
    value = 0.95 - 0.25 * ((np.arange(count) // 3) % 2)
    i = np.floor(hues * 6).astype(int) % 6
    f = hues * 6 - np.floor(hues * 6)
    p, q, t = value * (1 - saturation), value * (1 - f * saturation), value * (1 - (1 - f) * saturation)
    rgb = np.choose(i[None], [np.stack(c) for c in ((value, t, p), (q, value, p), (p, value, t),
                                                    (p, q, value), (t, p, value), (value, p, q))])
    return np.round(rgb.T * 255).astype(np.uint8)


CITYSCAPES = ClassSet(CLASS_NAMES, TRAIN_TO_COLOR[:NUM_CLASSES].copy(), cityscapes=True)


def class_set(num_classes: int, names: Sequence[str] | None = None,
              palette: Sequence | None = None) -> ClassSet:
    """The ClassSet of a K-class segmenter: Cityscapes' when K is 19 and nothing else is declared;
    otherwise the given names (default "class 0", ...) and colours (default generated_palette)."""
    if num_classes == NUM_CLASSES and names is None and palette is None:
        return CITYSCAPES
    names = tuple(names) if names is not None else tuple(f"class {k}" for k in range(num_classes))
    colors = np.asarray(palette, dtype=np.uint8).reshape(-1, 3) if palette is not None \
        else generated_palette(num_classes)
    return ClassSet(names, colors, cityscapes=names == CLASS_NAMES and num_classes == NUM_CLASSES)


def classes_of(segmenter: object) -> ClassSet:
    """The ClassSet a segmenter declares: attributes num_classes, and optional class_names (K names) and
    palette (K x 3 RGB 0..255). Attributes of another shape are not ours (a module may keep something
    else under those names) and are left out."""
    count = int(segmenter.num_classes)
    names = getattr(segmenter, "class_names", None)
    names = tuple(str(n) for n in names) if isinstance(names, (list, tuple)) and len(names) == count else None
    palette = getattr(segmenter, "palette", None)
    try:
        palette = np.asarray(palette.cpu() if hasattr(palette, "cpu") else palette, dtype=np.float64)
    except (TypeError, ValueError):
        palette = None
    fits = palette is not None and palette.shape == (count, 3) and ((0 <= palette) & (palette <= 255)).all()
    return class_set(count, names, palette.astype(np.uint8) if fits else None)
