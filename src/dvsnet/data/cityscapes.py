"""Cityscapes sequence trees, real or synthetic, as torch Datasets of snippets and of labelled frames.

Layout (docs/design.md §4), for split S and city C:

    ROOT/leftImg8bit_sequence/S/C/C_{seq:06d}_{frame:06d}_leftImg8bit.png   every frame, RGB
    ROOT/gtFine/S/C/C_{seq:06d}_{frame:06d}_gtFine_labelIds.png            labelled frames (label ids)
    ROOT/gtFine/S/C/..._gtFine_labelTrainIds.png                           optional train-id twins
                                                                          (older synthetic trees:
                                                                          _gtFine_trainIds.png)
    ROOT/flow/S/C/..._flow_forward.png|.flo, ..._flow_backward.png|.flo     optional (synthetic tree)

A snippet is 30 consecutive frames whose 20th (offset 19) is annotated. Real Cityscapes labels one
frame per snippet and its frame numbers do not start at 0, so snippets are grouped by their
annotated frame f: frames f-19 .. f+10. A sequence whose frames are all labelled (the synthetic
tree, where consecutive frames are both labelled) is cut into consecutive 30-frame snippets from
its first frame instead, with every offset in `label_paths`.

Images come back H×W×3 uint8 RGB, labels H×W uint8 train ids (255 = ignore), flow (H, W, 2)
float32 (dx, dy) px with a (H, W) bool valid mask (see dvsnet.data.flowio).
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from dvsnet.data.flowio import read_flow
from dvsnet.data.labels import label_ids_to_train_ids
from dvsnet.errors import DvsnetError

SNIPPET_LENGTH = 30
ANNOTATED_OFFSET = 19
IMAGES = "leftImg8bit_sequence"
LABELS = "gtFine"
FLOW = "flow"
_LABEL_NAME = re.compile(r"^(?P<city>.+)_(?P<seq>\d{6})_(?P<frame>\d{6})_gtFine_labelIds\.png$")
_IMAGE_NAME = re.compile(r"^(?P<city>.+)_(?P<seq>\d{6})_(?P<frame>\d{6})_leftImg8bit\.png$")
_TRAIN_ID_SUFFIXES = ("_gtFine_labelTrainIds.png", "_gtFine_trainIds.png")  # Cityscapes scripts' name first


@dataclass(frozen=True)
class SnippetFiles:
    """The files of one 30-frame snippet (load them with load_image, load_labels,
    CityscapesSequences.load_flow)."""

    city: str
    sequence: int
    first_frame: int                      # frame number of offset 0
    frame_paths: tuple[Path, ...]         # 30 leftImg8bit paths in order
    label_paths: dict[int, Path]          # offset -> labelIds path (real Cityscapes: {19: ...})
    annotated_offset: int = ANNOTATED_OFFSET
    flow_forward_paths: tuple[Path, ...] | None = None    # per offset: flow offset -> offset + 1
    flow_backward_paths: tuple[Path, ...] | None = None   # per offset: flow offset -> offset - 1

    @property
    def annotated_frame(self) -> Path:
        return self.frame_paths[self.annotated_offset]

    @property
    def annotated_labels(self) -> Path:
        return self.label_paths[self.annotated_offset]


def image_path(root: Path, split: str, city: str, sequence: int, frame: int) -> Path:
    return root / IMAGES / split / city / f"{city}_{sequence:06d}_{frame:06d}_leftImg8bit.png"


def load_image(path: str | os.PathLike) -> np.ndarray:
    """Read an image file -> H×W×3 uint8 RGB; DvsnetError if missing or unreadable."""
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise DvsnetError(f"{path}: cannot read image (missing or not an image file)")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def load_labels(path: str | os.PathLike) -> np.ndarray:
    """Read a gtFine label map -> H×W uint8 train ids.

    A `_gtFine_labelIds.png` path is read from its train-id twin when one exists beside it, else mapped
    through label_ids_to_train_ids; a `_labelTrainIds.png` / `_trainIds.png` path is read as it is."""
    path = Path(path)
    name = path.name
    source, is_train = path, not name.endswith("_gtFine_labelIds.png")
    if not is_train:
        stem = name[: -len("_gtFine_labelIds.png")]
        for suffix in _TRAIN_ID_SUFFIXES:
            twin = path.with_name(stem + suffix)
            if twin.is_file():
                source, is_train = twin, True
                break
    raw = cv2.imread(str(source), cv2.IMREAD_UNCHANGED)
    if raw is None:
        raise DvsnetError(f"{source}: cannot read label map (missing or not an image file)")
    if raw.ndim != 2 or raw.dtype != np.uint8:
        raise DvsnetError(f"{source}: expected a single-channel 8-bit label PNG, got {raw.dtype} {raw.shape}")
    return raw if is_train else label_ids_to_train_ids(raw)


def _require_dir(path: Path, expected: str) -> None:
    if not path.is_dir():
        raise DvsnetError(f"{path}: no such folder; expected {expected}")


class CityscapesSequences(Dataset):
    """Snippets of a Cityscapes-layout split. `ds[i]` (or `ds.snippet(i)`) is a SnippetFiles.

    Every snippet's 30 frames (and, with_flow, its flow files) are checked to exist when the dataset
    is opened; a missing or misnamed file raises DvsnetError naming the file and what was expected."""

    def __init__(self, root: str | os.PathLike, split: str, with_flow: bool = False) -> None:
        self.root = Path(root)
        self.split = split
        self.with_flow = with_flow
        _require_dir(self.root, f"a Cityscapes tree with {IMAGES}/ and {LABELS}/ inside")
        label_dir = self.root / LABELS / split
        image_dir = self.root / IMAGES / split
        _require_dir(label_dir, f"{LABELS}/{split}/<city>/<city>_<seq>_<frame>_gtFine_labelIds.png")
        _require_dir(image_dir, f"{IMAGES}/{split}/<city>/<city>_<seq>_<frame>_leftImg8bit.png")
        labelled: dict[tuple[str, int], dict[int, Path]] = {}
        for city_dir in sorted(p for p in label_dir.iterdir() if p.is_dir()):
            for name in sorted(os.listdir(city_dir)):
                if not name.endswith("_gtFine_labelIds.png"):
                    continue  # colour, instance, polygon and train-id files
                match = _LABEL_NAME.match(name)
                if match is None or match["city"] != city_dir.name:
                    raise DvsnetError(f"{city_dir / name}: unexpected name; expected "
                                      f"{city_dir.name}_<6-digit seq>_<6-digit frame>_gtFine_labelIds.png")
                key = (city_dir.name, int(match["seq"]))
                labelled.setdefault(key, {})[int(match["frame"])] = city_dir / name
        if not labelled:
            raise DvsnetError(f"{label_dir}: no label files; expected "
                              f"{LABELS}/{split}/<city>/<city>_<seq>_<frame>_gtFine_labelIds.png")
        images: dict[str, set[str]] = {}
        snippets: list[SnippetFiles] = []
        for (city, seq), frames in sorted(labelled.items()):
            if city not in images:
                folder = image_dir / city
                _require_dir(folder, f"the frames of city {city} ({city}_<seq>_<frame>_leftImg8bit.png)")
                images[city] = set(os.listdir(folder))
            numbers = sorted(frames)
            dense = any(b == a + 1 for a, b in pairwise(numbers))
            if dense:  # every frame labelled: consecutive 30-frame snippets from the first frame
                starts = list(range(numbers[0], numbers[-1] - SNIPPET_LENGTH + 2, SNIPPET_LENGTH))
                if not starts:
                    raise DvsnetError(f"{frames[numbers[0]]}: sequence {city}_{seq:06d} has only "
                                      f"{len(numbers)} labelled frames; "
                                      f"expected snippets of {SNIPPET_LENGTH}")
            else:
                starts = [f - ANNOTATED_OFFSET for f in numbers]
            for start in starts:
                snippets.append(self._snippet(city, seq, start, frames, images[city]))
        self.snippets = snippets

    def _snippet(self, city: str, seq: int, start: int, frames: dict[int, Path],
                 names: set[str]) -> SnippetFiles:
        annotated = start + ANNOTATED_OFFSET
        paths = []
        for frame in range(start, start + SNIPPET_LENGTH):
            path = image_path(self.root, self.split, city, seq, frame)
            if frame < 0 or path.name not in names:
                source = frames.get(annotated, next(iter(frames.values())))
                raise DvsnetError(f"{path}: missing; the snippet of {source.name} needs frames "
                                  f"{max(start, 0):06d}..{start + SNIPPET_LENGTH - 1:06d} in {path.parent}")
            paths.append(path)
        labels = {f - start: p for f, p in frames.items() if start <= f < start + SNIPPET_LENGTH}
        forward = backward = None
        if self.with_flow:
            forward = tuple(self._flow_path(city, seq, f, "forward")
                            for f in range(start, start + SNIPPET_LENGTH))
            backward = tuple(self._flow_path(city, seq, f, "backward")
                             for f in range(start, start + SNIPPET_LENGTH))
        return SnippetFiles(city=city, sequence=seq, first_frame=start, frame_paths=tuple(paths),
                            label_paths=labels, flow_forward_paths=forward, flow_backward_paths=backward)

    def _flow_path(self, city: str, seq: int, frame: int, direction: str) -> Path:
        base = self.root / FLOW / self.split / city / f"{city}_{seq:06d}_{frame:06d}_flow_{direction}"
        for ext in (".png", ".flo"):
            if base.with_name(base.name + ext).is_file():
                return base.with_name(base.name + ext)
        raise DvsnetError(f"{base}.png: missing; with_flow needs {FLOW}/{self.split}/<city>/"
                          f"<city>_<seq>_<frame>_flow_{direction}.png (or .flo) for every frame")

    def __len__(self) -> int:
        return len(self.snippets)

    def __getitem__(self, index: int) -> SnippetFiles:
        return self.snippets[index]

    def snippet(self, index: int) -> SnippetFiles:
        return self.snippets[index]

    load_image = staticmethod(load_image)
    load_labels = staticmethod(load_labels)

    def load_flow(self, index: int, offset: int, direction: str = "forward") -> tuple[np.ndarray, np.ndarray]:
        """Flow of snippet `index` at `offset` towards offset+1 ("forward") or offset-1 ("backward"):
        ((H, W, 2) float32 px, (H, W) bool valid = not occluded)."""
        if direction not in ("forward", "backward"):
            raise DvsnetError(f"flow direction must be forward or backward, got {direction!r}")
        snip = self.snippets[index]
        paths = snip.flow_forward_paths if direction == "forward" else snip.flow_backward_paths
        if paths is None:
            raise DvsnetError("flow was not requested; open the dataset with with_flow=True")
        occlusion = _occlusion_path(paths[offset])
        flow, valid = read_flow(paths[offset])
        if occlusion is not None:
            valid &= load_occlusion(occlusion) == 0
        return flow, valid

    def key_pairs(self, distances: tuple[int, ...] = (1, 5, 10)) -> list[tuple[int, int, int]]:
        """(snippet index, key offset, current offset) for every snippet and key distance d, where the
        current frame is the annotated one and the key is d frames before it (d <= 19)."""
        if any(d < 0 or d > ANNOTATED_OFFSET for d in distances):
            raise DvsnetError(f"key distances must be within 0..{ANNOTATED_OFFSET}, got {list(distances)}")
        return [(i, s.annotated_offset - d, s.annotated_offset) for i, s in enumerate(self.snippets)
                for d in distances]


def _occlusion_path(flow_path: Path) -> Path | None:
    """The occlusion PNG that goes with a .flo file (KITTI PNGs carry their own mask)."""
    if flow_path.suffix != ".flo":
        return None
    path = flow_path.with_name(flow_path.name.replace("_flow_", "_occlusion_").replace(".flo", ".png"))
    return path if path.is_file() else None


def load_occlusion(path: str | os.PathLike) -> np.ndarray:
    raw = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if raw is None:
        raise DvsnetError(f"{path}: cannot read occlusion mask")
    return raw


def labelled_frames(root: str | os.PathLike, split: str) -> list[tuple[Path, Path]]:
    """(leftImg8bit path, labelIds path) of every labelled frame in the snippets of `split`, in order of
    city, sequence and frame, each frame once."""
    pairs: dict[Path, Path] = {}
    for snip in CityscapesSequences(root, split).snippets:
        for offset, label in sorted(snip.label_paths.items()):
            pairs[snip.frame_paths[offset]] = label
    return list(pairs.items())


class CityscapesFrames(Dataset):
    """Every labelled frame of a split for segmentation training: item i is (image (3, H, W) float32 in
    [0, 1], labels (H, W) int64 train ids with 255 = ignore), resized to `size` = (H, W) if given
    (bilinear/area for the image, nearest for the labels)."""

    def __init__(self, root: str | os.PathLike, split: str, size: tuple[int, int] | None = None) -> None:
        self.items = labelled_frames(root, split)
        self.size = size

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        image_file, label_file = self.items[index]
        image, labels = load_image(image_file), load_labels(label_file)
        if image.shape[:2] != labels.shape:
            raise DvsnetError(f"{label_file}: label size {labels.shape} differs from its image "
                              f"{image.shape[:2]} ({image_file.name})")
        if self.size is not None and tuple(self.size) != image.shape[:2]:
            h, w = self.size
            shrink = h < image.shape[0]
            image = cv2.resize(image, (w, h), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
            labels = cv2.resize(labels, (w, h), interpolation=cv2.INTER_NEAREST)
        tensor = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).float().div_(255)
        return tensor, torch.from_numpy(labels.astype(np.int64))
