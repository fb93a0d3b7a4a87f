import json
from itertools import pairwise

import cv2
import numpy as np
import pytest

from dvsnet.cli import main
from dvsnet.data.flowio import read_kitti_flow
from dvsnet.data.labels import CLASS_NAMES, LABEL_TO_TRAIN
from dvsnet.data.synthetic import render_clip, render_sequence, write_dataset
from dvsnet.errors import DvsnetError

SIZE = (96, 192)


def _grid(h, w):
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    return xs, ys


def _pull(image, flow, interpolation=cv2.INTER_LINEAR):
    """Backward warp: out(x) = image(x + flow(x))."""
    xs, ys = _grid(*flow.shape[:2])
    return cv2.remap(image, xs + flow[..., 0], ys + flow[..., 1], interpolation)


@pytest.fixture(scope="module")
def clips():
    # seeds whose camera or objects move by more than a pixel per frame on average (checked below)
    return {seed: list(render_sequence(seed, 4, SIZE, effects=False)) for seed in (0, 1, 3)}


def test_frame_layouts(clips):
    f = clips[0][0]
    h, w = SIZE
    assert f.image.shape == (h, w, 3) and f.image.dtype == np.uint8
    assert f.labels.shape == (h, w) and f.labels.dtype == np.uint8 and f.labels.max() < 19
    for flow in (f.flow_forward, f.flow_backward):
        assert flow.shape == (h, w, 2) and flow.dtype == np.float32 and np.isfinite(flow).all()
    assert f.occlusion_forward.dtype == bool and f.depth.dtype == np.float32
    sky = f.labels == CLASS_NAMES.index("sky")
    assert np.isinf(f.depth[sky]).all() and np.isfinite(f.depth[~sky]).all() and (f.depth[~sky] > 0).all()


def test_backward_warp_of_next_frame_with_forward_flow_reproduces_frame(clips):
    # Known answer: I_t(x) == I_{t+1}(x + F_fwd(x)) wherever x is not occluded. Measured mean absolute
    # error ~3 of 255 levels (texture resampling, exposure drift, edges) against the image's own mean
    # absolute deviation of ~30-50 levels; without the flow (identity) the error is several times larger.
    for seed, frames in clips.items():
        for a, b in pairwise(frames):
            valid = ~a.occlusion_forward
            assert valid.mean() > 0.5
            assert np.abs(a.flow_forward[valid]).mean() > 1.0  # there is motion to explain
            warped = _pull(b.image.astype(np.float32), a.flow_forward)
            mae = np.abs(warped - a.image)[valid].mean()
            identity = np.abs(b.image.astype(np.float32) - a.image)[valid].mean()
            spread = np.abs(a.image - a.image.reshape(-1, 3).mean(0)).mean()
            assert mae < 6.0, (seed, mae)
            assert mae < 0.15 * spread, (seed, mae, spread)
            assert mae < 0.6 * identity, (seed, mae, identity)


def test_backward_flow_pulls_previous_frame_onto_current(clips):
    for seed, frames in clips.items():
        for a, b in pairwise(frames):
            valid = ~b.occlusion_backward
            warped = _pull(a.image.astype(np.float32), b.flow_backward)
            assert np.abs(warped - b.image)[valid].mean() < 6.0, seed


def test_warped_labels_agree_on_98_percent_of_visible_pixels(clips):
    for seed, frames in clips.items():
        for a, b in pairwise(frames):
            valid = ~a.occlusion_forward
            warped = _pull(b.labels, a.flow_forward, cv2.INTER_NEAREST)
            assert (warped == a.labels)[valid].mean() >= 0.98, seed


def test_forward_and_backward_flow_are_inverse_on_visible_pixels(clips):
    a, b = clips[1][1], clips[1][2]
    valid = ~a.occlusion_forward
    back_at_target = _pull(b.flow_backward, a.flow_forward)
    round_trip = a.flow_forward + back_at_target
    assert np.median(np.linalg.norm(round_trip[valid], axis=1)) < 0.1


def test_same_seed_same_bytes_different_seed_different_video():
    one = list(render_sequence(11, 3, (48, 96)))
    two = list(render_sequence(11, 3, (48, 96)))
    other = list(render_sequence(12, 3, (48, 96)))
    for x, y in zip(one, two):
        for name in ("image", "labels", "flow_forward", "flow_backward", "occlusion_forward", "depth"):
            assert getattr(x, name).tobytes() == getattr(y, name).tobytes(), name
    assert not np.array_equal(one[0].image, other[0].image)
    assert not np.array_equal(one[2].labels, other[2].labels)


def test_render_clip_gives_rgb_frames():
    clip = render_clip(5, 3, (64, 128))
    assert len(clip) == 3 and all(f.shape == (64, 128, 3) and f.dtype == np.uint8 for f in clip)
    assert clip[0].std() > 10  # a textured scene, not a flat colour


def test_many_classes_occur_across_a_few_sequences():
    seen = set()
    for seed in range(8):
        frame = next(iter(render_sequence(seed, 1, (96, 192), effects=False)))
        seen |= set(np.unique(frame.labels).tolist())
    assert len(seen) >= 14, sorted(CLASS_NAMES[c] for c in seen)


@pytest.fixture(scope="module")
def tiny_tree(tmp_path_factory):
    root = tmp_path_factory.mktemp("synth")
    manifest = write_dataset(root, "val", sequences=1, frames=30, size=(32, 64), seed=4, progress=False)
    return root, manifest


def test_writer_files_match_the_rendered_frames(tiny_tree):
    root, manifest = tiny_tree
    frames = list(render_sequence(manifest["sequence_params"][0]["seed"], 30, (32, 64)))
    city = root / "gtFine" / "val" / "synth"
    for f in (frames[0], frames[19], frames[29]):
        stem = f"synth_000000_{f.index:06d}"
        image = cv2.imread(str(root / "leftImg8bit_sequence/val/synth"
                               / f"{stem}_leftImg8bit.png"))[..., ::-1]
        np.testing.assert_array_equal(image, f.image)
        train = cv2.imread(str(city / f"{stem}_gtFine_labelTrainIds.png"), cv2.IMREAD_UNCHANGED)
        label_ids = cv2.imread(str(city / f"{stem}_gtFine_labelIds.png"), cv2.IMREAD_UNCHANGED)
        np.testing.assert_array_equal(train, f.labels)
        np.testing.assert_array_equal(LABEL_TO_TRAIN[label_ids], f.labels)
        flow, valid = read_kitti_flow(root / "flow/val/synth" / f"{stem}_flow_forward.png")
        np.testing.assert_array_equal(valid, ~f.occlusion_forward)
        assert np.abs(flow - f.flow_forward).max() <= 1 / 128 + 1e-5
        depth = cv2.imread(str(root / "depth/val/synth" / f"{stem}_depth.png"), cv2.IMREAD_UNCHANGED)
        near = np.isfinite(f.depth) & (f.depth < 600)
        assert depth.dtype == np.uint16
        assert np.abs(depth[near] / 100 - f.depth[near]).max() <= 0.005 + 1e-6
    saved = json.loads((root / "manifest_val.json").read_text())
    assert saved == manifest and saved["seed"] == 4 and saved["frames"] == 30
    assert set(saved["classes_present"]) <= set(CLASS_NAMES) and "road" in saved["classes_present"]
    assert not list(root.rglob("*.tmp"))


def test_writer_refuses_a_split_with_files_unless_overwrite(tiny_tree):
    root, _ = tiny_tree
    before = (root / "manifest_val.json").read_bytes()
    with pytest.raises(DvsnetError, match="already has files"):
        write_dataset(root, "val", sequences=1, frames=2, size=(32, 64), progress=False)
    assert (root / "manifest_val.json").read_bytes() == before


def test_synth_command_writes_a_tree_and_reports_user_errors(tmp_path, capsys):
    out = tmp_path / "tree"
    assert main(["synth", str(out), "--split", "train", "--sequences", "1", "--frames", "2",
                 "--size", "32x64", "--seed", "3", "--quiet"]) == 0
    assert len(list((out / "leftImg8bit_sequence/train/synth").glob("*_leftImg8bit.png"))) == 2
    assert json.loads((out / "manifest_train.json").read_text())["seed"] == 3
    assert main(["synth", str(out), "--split", "train", "--sequences", "1", "--frames", "2",
                 "--size", "32x64", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "already has files" in err and "Traceback" not in err and err.count("\n") == 1
    assert main(["synth", str(out), "--default-benchmark", "--seed", "1"]) == 2


def test_same_seed_gives_byte_identical_trees_whatever_the_worker_count(tmp_path):
    one = write_dataset(tmp_path / "a", "train", sequences=2, frames=2, size=(32, 64), seed=5, progress=False)
    two = write_dataset(tmp_path / "b", "train", sequences=2, frames=2, size=(32, 64), seed=5, progress=False,
                        workers=2)
    files = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*") if p.is_file())
    assert len(files) == 2 * 2 * 6 + 2 + 1  # per frame: image, 2 labels, 2 flows, depth; cameras; manifest
    for rel in files:
        if rel.name != "manifest_train.json":
            assert (tmp_path / "a" / rel).read_bytes() == (tmp_path / "b" / rel).read_bytes(), rel
    timing = ("generation_seconds", "workers")
    assert ({k: v for k, v in one.items() if k not in timing}
            == {k: v for k, v in two.items() if k not in timing})
    other = write_dataset(tmp_path / "c", "train", sequences=1, frames=1, size=(32, 64), seed=6,
                          progress=False)
    assert other["sequence_params"][0]["seed"] != one["sequence_params"][0]["seed"]
    image = "leftImg8bit_sequence/train/synth/synth_000000_000000_leftImg8bit.png"
    assert (tmp_path / "c" / image).read_bytes() != (tmp_path / "a" / image).read_bytes()
