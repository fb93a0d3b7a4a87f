"""Confidence-score generation (paper Eq. 1) for decision-network training, cached to disk once.

For every 30-frame snippet of a split (dvsnet.data.cityscapes.CityscapesSequences), `keys_per_snippet` key
frames k are drawn (seeded), and for every offset o in 1..K (K = `max_offset`, frames k+o) and every
region of every grid, exactly what the pipeline does at inference is repeated with the engine's own pieces:
  crops    = regions.crop_regions(frame, region_grid(H, W, rows, cols, default_overlap(W)), padded size)
  flow     = warp.estimate_flow(estimator, key crops, current crops)    (and the estimator's features)
  S^r      = labels of segmenter(current crops)             (warp.upsample_logits, bilinear + argmax)
  O^r      = warp.warp_labels(segmenter(key crops), flow)   (warp at WARP_STRIDE, bilinear + argmax)
  target   = policies.confidence_score(O^r, S^r)            # Eq. (1): share of pixels where O^r == S^r
Per (snippet, key, offset, grid, region) the cache stores the target for each flow estimator and the
features of each decision-network variant:
  dis                 dvsnet.features.motion_features of the DIS (ultrafast) flow   (7, 16, 16)
  dis-keyseg          dis + dvsnet.features.key_segmentation_features of the key    (9, 16, 16)
  flownet-conv4/5/6   FlowNetS encoder features                                   (C, h, w) of the crop
  flownet-image-flow  key crop (3 ch) + flownet flow (2 ch), both average-pooled  (5, 16, 16)
(the flownet variants as dvsnet.flow.FlowNetFlow gives them at inference, flow names "flownet-<features>")
Targets: "target-dis" (warped with DIS flow) and "target-flownet" (warped with flownet flow).
The cache is one .npz per (split, settings) under `cache_dir`, named by a hash of the settings and the
segmenter's weights file, written atomically; later calls load it instead of recomputing.
"""
from __future__ import annotations

import ctypes
import dataclasses
import hashlib
import json
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from dvsnet.atomic import atomic_path, write_json_atomic
from dvsnet.config import default_overlap
from dvsnet.data.cityscapes import CityscapesSequences, load_image
from dvsnet.digest import file_digest
from dvsnet.errors import DvsnetError
from dvsnet.features import key_segmentation_features
from dvsnet.flow import DISFlow, FlowNetFlow
from dvsnet.policies import confidence_score
from dvsnet.regions import crop_multiple, crop_regions, padded_size, region_grid
from dvsnet.warp import WARP_UPSCALE, estimate_flow, upsample_logits, warp_labels, warp_upscale

# bumped when the cache gains or changes arrays, so an older cache is not mistaken for a complete one
CACHE_FORMAT = 2


@dataclasses.dataclass(frozen=True)
class ScoreConfig:
    data: str = "data/synth"
    split: str = "train"
    segmenter: str = "fast"
    flownet: str | None = None          # flownet weights; None = no flownet features/targets
    grids: tuple[tuple[int, int], ...] = ((2, 2),)
    max_offset: int = 20
    keys_per_snippet: int = 2
    max_snippets: int | None = None
    seed: int = 0


def cache_path(cache_dir: str | Path, config: ScoreConfig) -> Path:
    """The cache file for `config`: settings, the weights files' contents and the warp grid go into its name
    (targets made with another warp would train the DN for an engine that no longer exists)."""
    from dvsnet.models.weights import shipped_path

    seg = config.segmenter
    seg_path = shipped_path(seg) if seg in ("fast", "accurate") else Path(seg)
    flownet = None if config.flownet is None else (
        shipped_path("flownet") if config.flownet == "shipped" else Path(config.flownet))
    key = json.dumps({**dataclasses.asdict(config), "segmenter": file_digest(seg_path, 12, "sha1"),
                      "flownet": None if flownet is None else file_digest(flownet, 12, "sha1"),
                      "data": str(Path(config.data).resolve()), "warp_upscale": WARP_UPSCALE,
                      "format": CACHE_FORMAT}, sort_keys=True)
    return Path(cache_dir) / f"scores-{config.split}-{hashlib.sha1(key.encode()).hexdigest()[:12]}.npz"


def _to_tensor(image: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(image).permute(2, 0, 1).float().div_(255)  # (3, H, W)


@torch.no_grad()
def generate_scores(config: ScoreConfig, progress: bool = True) -> dict[str, np.ndarray]:
    """Compute targets and features for `config` (see module docstring). Returns arrays keyed by name:
    target-<flow> (N,) float32, features-<variant> (N, C, h, w) float16, and index columns snippet, key,
    offset, grid_rows, grid_cols, region (N,) int16."""
    if config.max_offset < 1:
        raise DvsnetError("max_offset must be >= 1")
    scorer = _Scorer(config)
    snippets = CityscapesSequences(config.data, config.split).snippets[: config.max_snippets]
    rng = np.random.default_rng(config.seed)
    bar = tqdm(total=len(snippets), desc=f"confidence scores ({config.split})", disable=not progress)
    for s, snippet in enumerate(snippets):
        frames = snippet.frame_paths
        last_key = len(frames) - 1 - config.max_offset
        if last_key < 0:
            raise DvsnetError(f"snippet {frames[0].parent.name}/{frames[0].name} has {len(frames)} frames; "
                              f"max_offset {config.max_offset} needs at least {config.max_offset + 1}")
        keys = np.sort(rng.choice(last_key + 1, size=min(config.keys_per_snippet, last_key + 1),
                                  replace=False))
        needed = sorted({int(k) + o for k in keys for o in range(config.max_offset + 1)})
        images = {i: _to_tensor(load_image(frames[i])) for i in needed}
        for rows, cols in config.grids:
            scorer.score_grid(s, [int(k) for k in keys], images, rows, cols)
        bar.update(1)
        _release_freed_memory()
    bar.close()
    out = {name: np.concatenate(_same_size(parts)) for name, parts in scorer.arrays.items()}
    out.update({name: np.asarray(values, dtype=np.int16) for name, values in scorer.columns.items()})
    return out


class _Scorer:
    """The networks of a ScoreConfig, and the samples scored so far: arrays (targets, features) and index
    columns, one entry per region of every (key, offset) pair."""

    def __init__(self, config: ScoreConfig):
        from dvsnet.models import load_flownet, load_segmenter

        self.max_offset = config.max_offset
        self.segmenter = load_segmenter(config.segmenter)
        # logits warped at WARP_STRIDE, as the pipeline
        self.upscale = warp_upscale(self.segmenter.output_stride)
        self.dis = DISFlow("ultrafast", with_features=True)
        self.flownet = None
        if config.flownet is not None:
            self.flownet = load_flownet(path=None if config.flownet == "shipped" else config.flownet)
        self.columns: dict[str, list] = {k: [] for k in ("snippet", "key", "offset", "grid_rows", "grid_cols",
                                                         "region")}
        self.arrays: dict[str, list] = {}

    def add(self, name: str, value: torch.Tensor) -> None:
        self.arrays.setdefault(name, []).append(value.cpu().numpy())

    def score_grid(self, s: int, keys: list[int], images: dict[int, torch.Tensor], rows: int,
                   cols: int) -> None:
        """Every region of a rows x cols grid, warped from each key to each of the max_offset frames after
        it."""
        height, width = next(iter(images.values())).shape[1:]
        regions = region_grid(height, width, rows, cols, default_overlap(width))
        size = padded_size(regions, crop_multiple(self.segmenter))
        crops = {i: crop_regions(image, regions, size) for i, image in images.items()}  # (R, 3, h, w)
        logits = {i: self.segmenter(crops[i]) for i in images}  # (R, K, h/s, w/s)
        seg_labels = {i: upsample_logits(logits[i], size)[1] for i in images}  # (R, h, w)
        key_features = {k: key_segmentation_features(logits[k]) for k in keys}
        for k in keys:
            for o in range(1, self.max_offset + 1):
                key_crops, cur_crops = crops[k], crops[k + o]
                flow, features = estimate_flow(self.dis, key_crops, cur_crops)
                warped = warp_labels(logits[k], flow, size, self.upscale)[1]
                self.add("target-dis", confidence_score(warped, seg_labels[k + o]))
                self.add("features-dis", features.half())
                self.add("features-keyseg", key_features[k].half())
                if self.flownet is not None:  # one flownet run gives every flownet variant's features
                    flow, layers = estimate_flow(self.flownet, key_crops, cur_crops)
                    warped = warp_labels(logits[k], flow, size, self.upscale)[1]
                    self.add("target-flownet", confidence_score(warped, seg_labels[k + o]))
                    for name in FlowNetFlow.FEATURES:
                        self.add(f"features-flownet-{name}",
                                 FlowNetFlow.decision_features(name, key_crops, flow, layers).half())
                for name, value in (("snippet", s), ("key", k), ("offset", o), ("grid_rows", rows),
                                    ("grid_cols", cols)):
                    self.columns[name].extend([value] * len(regions))
                self.columns["region"].extend(range(len(regions)))


def _release_freed_memory() -> None:
    """Hand freed heap pages back to the OS (glibc only; a no-op elsewhere). Without it the generator's
    resident memory grew by ~450 MB per snippet with flownet features, though it keeps ~5 MB: the small
    kept arrays pin heap pages between large freed temporaries, and 100 snippets filled 24 GB."""
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def _same_size(parts: list[np.ndarray]) -> list[np.ndarray]:
    """Feature maps of different grids differ in size (flownet conv4 is 5x9 on a 2x2 region of 256x512, 8x16
    on the whole frame): average-pool every (N, C, h, w) part to the smallest h and w, as DecisionNet does
    with features of another size at inference."""
    if parts[0].ndim != 4:
        return parts
    size = (min(p.shape[2] for p in parts), min(p.shape[3] for p in parts))
    return [p if p.shape[2:] == size else
            F.adaptive_avg_pool2d(torch.from_numpy(p).float(), size).numpy().astype(p.dtype) for p in parts]


def load_or_generate_scores(cache_dir: str | Path, config: ScoreConfig,
                            progress: bool = True) -> dict[str, np.ndarray]:
    """The cached scores for `config`, generating and caching them (atomically) on the first call."""
    path = cache_path(cache_dir, config)
    if path.is_file():
        with np.load(path) as data:
            return {k: data[k] for k in data.files}
    scores = generate_scores(config, progress)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp, open(tmp, "wb") as f:  # a file object: np.savez adds no .npz
        np.savez(f, **scores)
    write_json_atomic(path.with_suffix(".json"), dataclasses.asdict(config))
    return scores
