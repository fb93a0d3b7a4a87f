"""Write synthetic sequences as a Cityscapes-layout tree with flow, depth and camera beside it.

Under `root`, for split S, city C ("synth"), sequence q (000000..) and frame f (000000..frames-1):

    leftImg8bit_sequence/S/C/C_qqqqqq_ffffff_leftImg8bit.png    RGB uint8
    gtFine/S/C/C_qqqqqq_ffffff_gtFine_labelIds.png              Cityscapes label ids, uint8 (every frame)
    gtFine/S/C/C_qqqqqq_ffffff_gtFine_labelTrainIds.png         train ids, uint8 (no 255: all pixels labelled)
    flow/S/C/C_qqqqqq_ffffff_flow_forward.png                   KITTI 16-bit flow f -> f+1,
                                                                valid = not occluded
    flow/S/C/C_qqqqqq_ffffff_flow_backward.png                  KITTI 16-bit flow f -> f-1 (the engine's
                                                                current -> key direction for key f-1)
    depth/S/C/C_qqqqqq_ffffff_depth.png                         uint16 centimetres along the camera axis;
                                                                0 = sky (or farther than 655.35 m)
    camera/S/C/C_qqqqqq_camera.json                             K (3x3 px) and cam_to_world (4x4 m) per frame
    manifest_S.json                                             seed, parameters, per-sequence summary,
                                                                pixel share of every class present

With flow_format="flo" the flows are Middlebury .flo files instead (same names, .flo) and the
occlusion masks are `flow/S/C/..._occlusion_forward.png` / `_occlusion_backward.png` (uint8, 255 =
occluded). Flow conventions are those of render.py (pixel x of frame f is at x + flow in the other
frame). Every file is written atomically; the manifest is written last, so a tree without its
manifest is incomplete.
"""
from __future__ import annotations

import json
import os
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from tqdm import tqdm

from dvsnet.data.flowio import write_bytes_atomic, write_flo, write_kitti_flow, write_png_atomic
from dvsnet.data.labels import CLASS_NAMES, NUM_CLASSES, train_ids_to_label_ids
from dvsnet.data.synthetic.render import render_sequence, scene_params
from dvsnet.errors import DvsnetError

CITY = "synth"
FORMAT = "dvsnet-synth/1"
FOLDERS = ("leftImg8bit_sequence", "gtFine", "flow", "depth", "camera")
FLOW_FORMATS = ("png", "flo")


def sequence_seed(seed: int, index: int) -> int:
    """The renderer seed of sequence `index` of a dataset with seed `seed` (independent of workers)."""
    return int(np.random.SeedSequence([seed, index]).generate_state(1)[0])


def frame_stem(sequence: int, frame: int, city: str = CITY) -> str:
    return f"{city}_{sequence:06d}_{frame:06d}"


def _write_sequence(job: tuple) -> dict:
    root, split, index, seed, frames, size, flow_format, compression = job
    root = Path(root)
    dirs = {name: root / name / split / CITY for name in FOLDERS}
    rseed = sequence_seed(seed, index)
    counts = np.zeros(NUM_CLASSES, np.int64)
    cameras = []
    start = time.perf_counter()
    for fr in render_sequence(rseed, frames, size):
        stem = frame_stem(index, fr.index)
        write_png_atomic(dirs["leftImg8bit_sequence"] / f"{stem}_leftImg8bit.png", fr.image, compression)
        write_png_atomic(dirs["gtFine"] / f"{stem}_gtFine_labelIds.png", train_ids_to_label_ids(fr.labels),
                         compression)
        write_png_atomic(dirs["gtFine"] / f"{stem}_gtFine_labelTrainIds.png", fr.labels, compression)
        for name, flow, occ in (("forward", fr.flow_forward, fr.occlusion_forward),
                                ("backward", fr.flow_backward, fr.occlusion_backward)):
            if flow_format == "png":
                write_kitti_flow(dirs["flow"] / f"{stem}_flow_{name}.png", flow, ~occ, compression)
            else:
                write_flo(dirs["flow"] / f"{stem}_flow_{name}.flo", flow)
                write_png_atomic(dirs["flow"] / f"{stem}_occlusion_{name}.png", occ.astype(np.uint8) * 255,
                                 compression)
        depth_cm = np.where(np.isfinite(fr.depth) & (fr.depth < 655.35), np.rint(fr.depth * 100), 0)
        write_png_atomic(dirs["depth"] / f"{stem}_depth.png", depth_cm.astype(np.uint16), compression)
        counts += np.bincount(fr.labels.ravel(), minlength=256)[:NUM_CLASSES]
        cameras.append({"frame": fr.index, "cam_to_world": np.round(fr.cam_to_world, 6).tolist()})
        k = fr.intrinsics
    camera = {"K": np.round(k, 6).tolist(), "frames": cameras}
    write_bytes_atomic(dirs["camera"] / f"{CITY}_{index:06d}_camera.json", json.dumps(camera).encode())
    return {"sequence": index, "seed": rseed, "seconds": round(time.perf_counter() - start, 3),
            "class_pixels": counts.tolist(), "params": scene_params(rseed, frames, size)}


def write_dataset(root: str | os.PathLike, split: str, sequences: int, frames: int = 30,
                  size: tuple[int, int] = (256, 512), seed: int = 0, progress: bool = True, workers: int = 1,
                  overwrite: bool = False, flow_format: str = "png", compression: int = 3) -> dict:
    """Render `sequences` sequences of `frames` frames into the tree under `root` (layout in the module
    docstring) and return the manifest (also written to root/manifest_{split}.json).

    Refuses (DvsnetError) to write into a split that already has files unless overwrite=True; with
    overwrite, files of the same names are replaced and nothing else is deleted."""
    root = Path(root)
    if sequences < 1 or frames < 1:
        raise DvsnetError(f"need at least one sequence and one frame, "
                          f"got {sequences} sequences x {frames} frames")
    if flow_format not in FLOW_FORMATS:
        raise DvsnetError(f"unknown flow format {flow_format!r}; valid: {', '.join(FLOW_FORMATS)}")
    if not split or "/" in split or split.startswith("."):
        raise DvsnetError(f"split must be a plain folder name like train or val, got {split!r}")
    if root.exists() and not root.is_dir():
        raise DvsnetError(f"{root}: exists and is not a folder")
    manifest_path = root / f"manifest_{split}.json"
    if not overwrite:
        for name in FOLDERS:
            folder = root / name / split
            if folder.is_dir() and any(folder.iterdir()):
                raise DvsnetError(f"{folder} already has files; choose another folder or pass --overwrite")
        if manifest_path.exists():
            raise DvsnetError(f"{manifest_path} already exists; choose another folder or pass --overwrite")
    try:
        for name in FOLDERS:
            (root / name / split / CITY).mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DvsnetError(f"{root}: cannot create the dataset folders ({exc.strerror})") from None

    jobs = [(str(root), split, i, seed, frames, tuple(size), flow_format, compression)
            for i in range(sequences)]
    start = time.perf_counter()
    results: list[dict] = []
    bar = tqdm(total=sequences * frames, unit="frame", desc=f"synth {split}", disable=not progress)
    try:
        if workers <= 1:
            for job in jobs:
                results.append(_write_sequence(job))
                bar.update(frames)
        else:
            with ProcessPoolExecutor(max_workers=workers) as pool:
                for result in pool.map(_write_sequence, jobs):
                    results.append(result)
                    bar.update(frames)
    finally:
        bar.close()
    seconds = time.perf_counter() - start
    pixels = np.sum([r["class_pixels"] for r in results], axis=0)
    total = max(int(pixels.sum()), 1)
    manifest = {
        "format": FORMAT, "split": split, "city": CITY, "seed": seed, "sequences": sequences,
        "frames": frames, "size": list(size), "annotated_offset": 19, "flow_format": flow_format,
        "flow": "forward: frame f -> f+1, backward: f -> f-1; pixels; valid/occlusion per vector",
        "depth_unit": "cm (uint16, 0 = sky or beyond 655.35 m)", "frame_rate_hz": 17,
        "classes_present": {CLASS_NAMES[c]: round(int(pixels[c]) / total, 6) for c in range(NUM_CLASSES)
                            if pixels[c] > 0},
        "generation_seconds": round(seconds, 1), "workers": workers,
        "sequence_params": [{"sequence": r["sequence"], "seed": r["seed"], **r["params"]} for r in results],
    }
    write_bytes_atomic(manifest_path, json.dumps(manifest, indent=1).encode())
    return manifest
