import json

import cv2
import numpy as np
import pytest
import torch

from dvsnet.data.cityscapes import (
    CityscapesFrames,
    CityscapesSequences,
    SnippetFiles,
    labelled_frames,
    load_labels,
)
from dvsnet.data.flowio import write_png_atomic
from dvsnet.data.labels import LABEL_TO_TRAIN
from dvsnet.data.synthetic import write_dataset
from dvsnet.errors import DvsnetError

H, W = 16, 32


def _real_tree(root, cities=(("aachen", 3, (119, 219)),), split="val"):
    """Real Cityscapes naming: frame numbers not 0-based, only the 20th frame of a snippet labelled
    (label ids), plus the colour/instance/polygon files the real gtFine has and the loader must skip."""
    for city, seq, annotated in cities:
        img_dir = root / "leftImg8bit_sequence" / split / city
        gt_dir = root / "gtFine" / split / city
        img_dir.mkdir(parents=True, exist_ok=True)
        gt_dir.mkdir(parents=True, exist_ok=True)
        for f in annotated:
            for frame in range(f - 19, f + 11):
                image = np.full((H, W, 3), frame % 256, np.uint8)
                image[..., 0] = seq
                write_png_atomic(img_dir / f"{city}_{seq:06d}_{frame:06d}_leftImg8bit.png", image)
            label_ids = np.zeros((H, W), np.uint8)      # 0 unlabeled -> 255
            label_ids[:8] = 7                           # road -> 0
            label_ids[8:, :16] = 26                     # car -> 13
            label_ids[8:, 16:20] = 33                   # bicycle -> 18
            write_png_atomic(gt_dir / f"{city}_{seq:06d}_{f:06d}_gtFine_labelIds.png", label_ids)
            write_png_atomic(gt_dir / f"{city}_{seq:06d}_{f:06d}_gtFine_color.png",
                             np.zeros((H, W, 3), np.uint8))
            write_png_atomic(gt_dir / f"{city}_{seq:06d}_{f:06d}_gtFine_instanceIds.png", label_ids)
            (gt_dir / f"{city}_{seq:06d}_{f:06d}_gtFine_polygons.json").write_text("{}")
    return root


@pytest.fixture(scope="module")
def synth_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("synth")
    write_dataset(root, "val", sequences=2, frames=30, size=(H, W), seed=9, progress=False)
    return root


@pytest.fixture
def real_root(tmp_path):
    return _real_tree(tmp_path / "cityscapes")


def test_real_naming_groups_snippets_by_their_annotated_frame(real_root):
    ds = CityscapesSequences(real_root, "val")
    assert len(ds) == 2  # two annotated frames in one sequence -> two snippets
    first, second = ds[0], ds.snippet(1)
    assert isinstance(first, SnippetFiles)
    assert (first.city, first.sequence, first.first_frame, first.annotated_offset) == ("aachen", 3, 100, 19)
    assert [p.name for p in first.frame_paths[:2]] == ["aachen_000003_000100_leftImg8bit.png",
                                                       "aachen_000003_000101_leftImg8bit.png"]
    assert (len(first.frame_paths) == 30
            and first.annotated_frame.name == "aachen_000003_000119_leftImg8bit.png")
    assert (list(first.label_paths) == [19]
            and first.annotated_labels.name.endswith("000119_gtFine_labelIds.png"))
    assert second.first_frame == 200
    image = ds.load_image(first.frame_paths[5])
    assert image.shape == (H, W, 3) and image.dtype == np.uint8
    assert image[0, 0].tolist() == [3, 105, 105]  # RGB order: red channel holds the sequence number


def test_label_ids_map_to_train_ids(real_root):
    ds = CityscapesSequences(real_root, "val")
    labels = ds.load_labels(ds[0].annotated_labels)
    assert labels.dtype == np.uint8 and labels.shape == (H, W)
    assert labels[0, 0] == 0 and labels[10, 0] == 13 and labels[10, 17] == 18 and labels[10, 25] == 255


def test_synthetic_tree_gives_the_same_structures_with_every_frame_labelled(synth_root, real_root):
    ds = CityscapesSequences(synth_root, "val", with_flow=True)
    real = CityscapesSequences(real_root, "val")
    assert len(ds) == 2
    snip = ds[1]
    assert type(snip) is type(real[0])
    assert (snip.city, snip.sequence, snip.first_frame, snip.annotated_offset) == ("synth", 1, 0, 19)
    assert len(snip.frame_paths) == 30 and sorted(snip.label_paths) == list(range(30))
    assert snip.annotated_frame.name == "synth_000001_000019_leftImg8bit.png"
    image, labels = ds.load_image(snip.annotated_frame), ds.load_labels(snip.annotated_labels)
    assert image.shape == (H, W, 3) and labels.shape == (H, W) and labels.max() < 19
    # the labelIds file and its labelTrainIds twin agree
    raw = cv2.imread(str(snip.annotated_labels), cv2.IMREAD_UNCHANGED)
    np.testing.assert_array_equal(LABEL_TO_TRAIN[raw], labels)
    flow, valid = ds.load_flow(1, 19, "backward")
    assert flow.shape == (H, W, 2) and valid.shape == (H, W) and valid.dtype == bool
    assert ds.key_pairs((1, 5)) == [(0, 18, 19), (0, 14, 19), (1, 18, 19), (1, 14, 19)]


def test_frames_dataset_over_labelled_frames(synth_root, real_root):
    real = CityscapesFrames(real_root, "val")
    assert len(real) == 2
    image, labels = real[0]
    assert image.shape == (3, H, W) and image.dtype == torch.float32 and 0 <= image.min() and image.max() <= 1
    assert labels.dtype == torch.int64 and labels[10, 0].item() == 13 and labels[10, 25].item() == 255
    synth = CityscapesFrames(synth_root, "val", size=(8, 16))
    assert len(synth) == 60
    image, labels = synth[59]
    assert image.shape == (3, 8, 16) and labels.shape == (8, 16)
    assert set(labels.unique().tolist()) <= set(range(19))


def test_missing_frame_names_the_file(real_root):
    (real_root / "leftImg8bit_sequence/val/aachen/aachen_000003_000105_leftImg8bit.png").unlink()
    with pytest.raises(DvsnetError, match=r"aachen_000003_000105_leftImg8bit.png: missing.*000100\.\.000129"):
        CityscapesSequences(real_root, "val")


def test_malformed_label_name_and_missing_folders_are_clear(real_root, tmp_path):
    with pytest.raises(DvsnetError, match="no such folder"):
        CityscapesSequences(tmp_path / "nowhere", "val")
    with pytest.raises(DvsnetError, match=r"gtFine/train.*expected gtFine/train/<city>"):
        CityscapesSequences(real_root, "train")
    bad = real_root / "gtFine/val/aachen/aachen_3_119_gtFine_labelIds.png"
    bad.write_bytes(b"")
    with pytest.raises(DvsnetError, match=r"aachen_3_119_gtFine_labelIds.png: unexpected name"):
        CityscapesSequences(real_root, "val")


def test_missing_flow_is_reported_only_when_asked_for(real_root):
    assert len(CityscapesSequences(real_root, "val")) == 2
    with pytest.raises(DvsnetError, match="flow_forward.png: missing"):
        CityscapesSequences(real_root, "val", with_flow=True)


def test_unreadable_label_file(tmp_path):
    path = tmp_path / "x_000000_000000_gtFine_labelIds.png"
    path.write_bytes(b"not a png")
    with pytest.raises(DvsnetError, match="cannot read label map"):
        load_labels(path)


def test_middlebury_flow_tree_reads_with_its_occlusion_masks(tmp_path):
    from dvsnet.data.synthetic import render_sequence

    write_dataset(tmp_path, "train", sequences=1, frames=30, size=(H, W), seed=2, progress=False,
                  flow_format="flo")
    ds = CityscapesSequences(tmp_path, "train", with_flow=True)
    assert ds[0].flow_forward_paths[3].suffix == ".flo"
    flow, valid = ds.load_flow(0, 3, "forward")
    frame = list(render_sequence(_seed_of(tmp_path), 30, (H, W)))[3]
    np.testing.assert_array_equal(flow, frame.flow_forward)
    np.testing.assert_array_equal(valid, ~frame.occlusion_forward)
    with pytest.raises(DvsnetError, match="forward or backward"):
        ds.load_flow(0, 3, "sideways")


def _seed_of(root):
    return json.loads((root / "manifest_train.json").read_text())["sequence_params"][0]["seed"]


def test_train_id_twins_are_read_by_either_name(synth_root, tmp_path):
    """The writer names train-id twins _gtFine_labelTrainIds.png (as the Cityscapes scripts do); trees written
    before keep _gtFine_trainIds.png, and the loader reads the twin under either name instead of mapping."""
    city = synth_root / "gtFine/val/synth"
    assert (city / "synth_000000_000019_gtFine_labelTrainIds.png").is_file()
    assert not list(city.glob("*_gtFine_trainIds.png"))
    labels = load_labels(city / "synth_000000_000019_gtFine_labelIds.png")
    # a twin that differs from the mapped label ids is the one read
    for name in ("labelTrainIds", "trainIds"):
        folder = tmp_path / name
        folder.mkdir()
        label_ids = folder / "x_000000_000000_gtFine_labelIds.png"
        write_png_atomic(label_ids, np.full((H, W), 7, np.uint8))  # road -> 0 when mapped
        write_png_atomic(folder / f"x_000000_000000_gtFine_{name}.png", labels)
        np.testing.assert_array_equal(load_labels(label_ids), labels)
        np.testing.assert_array_equal(load_labels(folder / f"x_000000_000000_gtFine_{name}.png"), labels)
    (tmp_path / "trainIds" / "x_000000_000000_gtFine_trainIds.png").unlink()
    assert (load_labels(tmp_path / "trainIds" / "x_000000_000000_gtFine_labelIds.png") == 0).all()


def test_labelled_frames_are_the_snippets_labelled_frames_in_order(synth_root, real_root):
    pairs = labelled_frames(synth_root, "val")
    assert len(pairs) == 60 and [p.name for p, _ in pairs[29:31]] == ["synth_000000_000029_leftImg8bit.png",
                                                                      "synth_000001_000000_leftImg8bit.png"]
    assert all(label.name == image.name.replace("leftImg8bit", "gtFine_labelIds") for image, label in pairs)
    assert [p.name for p, _ in labelled_frames(real_root, "val")] == ["aachen_000003_000119_leftImg8bit.png",
                                                                      "aachen_000003_000219_leftImg8bit.png"]


def test_a_long_sequence_is_cut_into_30_frame_snippets(tmp_path):
    """Every frame labelled, 65 frames: two snippets (0..29, 30..59); the last 5 frames belong to none."""
    write_dataset(tmp_path, "train", sequences=1, frames=65, size=(H, W), seed=3, progress=False)
    ds = CityscapesSequences(tmp_path, "train")
    assert [(s.sequence, s.first_frame, len(s.frame_paths)) for s in ds] == [(0, 0, 30), (0, 30, 30)]
    assert ds[1].annotated_frame.name == "synth_000000_000049_leftImg8bit.png"
