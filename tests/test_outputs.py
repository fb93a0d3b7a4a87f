"""Run folders, atomic writers, label PNG naming, overlay drawing, and the recorder's files and figures."""
from __future__ import annotations

import csv
import json
import os
import threading

import cv2
import numpy as np
import pytest

from dvsnet.data.labels import TRAIN_CLASSES
from dvsnet.errors import DvsnetError
from dvsnet.outputs import (
    PATH_COLORS,
    CsvOutput,
    RunRecorder,
    VideoOutput,
    create_run_folder,
    draw_overlay,
    label_file_name,
    label_image,
    write_bytes_atomic,
    write_png_atomic,
)
from dvsnet.pipeline import FrameResult
from dvsnet.regions import region_grid


def count_frames(path) -> tuple[int, tuple[int, int]]:
    capture = cv2.VideoCapture(str(path))
    n, size = 0, (0, 0)
    while True:
        ok, frame = capture.read()
        if not ok:
            return n, size
        n, size = n + 1, frame.shape[:2]


def test_run_folders_are_numbered_and_never_reused(tmp_path):
    root = tmp_path / "runs"
    assert create_run_folder(root, "segment").name == "segment-0001"
    assert create_run_folder(root, "segment").name == "segment-0002"
    (root / "segment-0007").mkdir()
    (root / "segment-0007" / "keep.txt").write_text("mine")
    assert create_run_folder(root, "segment").name == "segment-0008"
    assert create_run_folder(root, "demo").name == "demo-0001"
    assert (root / "segment-0007" / "keep.txt").read_text() == "mine"


def test_concurrent_run_folders_are_distinct(tmp_path):
    got: list[str] = []
    threads = [threading.Thread(target=lambda: got.append(create_run_folder(tmp_path, "x").name))
               for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(got) == [f"x-{i:04d}" for i in range(1, 9)]


def test_run_folder_under_a_file_is_a_user_error(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(DvsnetError, match="exists and is not a folder"):
        create_run_folder(tmp_path / "file", "segment")
    with pytest.raises(DvsnetError, match="cannot create output folder"):
        create_run_folder(tmp_path / "file" / "runs", "segment")


def test_atomic_write_replaces_whole_and_leaves_no_temp(tmp_path):
    target = tmp_path / "a.json"
    target.write_text("old")
    write_bytes_atomic(target, b"new content")
    assert target.read_bytes() == b"new content"
    assert os.listdir(tmp_path) == ["a.json"]
    with pytest.raises(DvsnetError, match="cannot write"):
        write_bytes_atomic(tmp_path / "missing" / "a.json", b"x")


def test_label_file_names():
    assert (label_file_name("aachen_000000_000019_leftImg8bit", "label-ids")
            == "aachen_000000_000019_pred_labelIds.png")
    assert label_file_name("clip_000004", "labels") == "clip_000004_pred_trainIds.png"
    assert label_file_name("clip_000004", "color") == "clip_000004_pred_color.png"
    with pytest.raises(DvsnetError, match="valid: labels, label-ids, color"):
        label_file_name("x", "ids")


def test_label_images_and_png_roundtrip(tmp_path):
    train = np.array([[0, 13], [18, 255]], np.uint8)
    assert label_image(train, "label-ids").tolist() == [[7, 26], [33, 0]]
    assert label_image(train, "labels") is train
    color = label_image(train, "color")
    assert color[0, 1].tolist() == [0, 0, 142] and color[1, 1].tolist() == [0, 0, 0]
    write_png_atomic(tmp_path / "ids.png", train)
    write_png_atomic(tmp_path / "rgb.png", color)
    assert (cv2.imread(str(tmp_path / "ids.png"), cv2.IMREAD_UNCHANGED) == train).all()
    assert (cv2.imread(str(tmp_path / "rgb.png"))[:, :, ::-1] == color).all()


def test_overlay_blends_labels_and_colours_region_borders():
    height, width = 64, 128
    regions = region_grid(height, width, 1, 2, 8)
    frame = np.zeros((height, width, 3), np.uint8)
    labels = np.zeros((height, width), np.uint8)  # all road: (128, 64, 128)
    out = draw_overlay(frame, labels, regions, ["seg", "warp"], [None, 0.95], alpha=0.5)
    assert out.shape == frame.shape and out.dtype == np.uint8
    assert out[height // 2 - 10, width // 4].tolist() == [64, 32, 64]  # 0.5 * frame + 0.5 * road
    assert out[height // 2, 0].tolist() == list(PATH_COLORS["seg"])  # left cell border
    assert out[height // 2, width - 1].tolist() == list(PATH_COLORS["warp"])  # right cell border
    assert frame.max() == 0  # input untouched


def test_video_output_partial_until_closed_even_size(tmp_path):
    video = VideoOutput(tmp_path / "overlay.mp4", fps=10)
    for i in range(5):
        video.write(np.full((37, 51, 3), 40 * i, np.uint8))
    video.write(np.zeros((20, 20, 3), np.uint8))  # another size: resized, not dropped
    assert video.partial.exists() and not (tmp_path / "overlay.mp4").exists()
    assert video.close() == tmp_path / "overlay.mp4"
    assert not video.partial.exists()
    assert count_frames(tmp_path / "overlay.mp4") == (6, (38, 52))


def test_video_output_without_frames_leaves_nothing(tmp_path):
    assert VideoOutput(tmp_path / "overlay.mp4", fps=10).close() is None
    assert os.listdir(tmp_path) == []


def test_csv_flushed_per_frame_and_renamed_on_close(tmp_path):
    out = CsvOutput(tmp_path / "frames.csv", ["a", "b"])
    out.write_rows([(1, 2), (3, 4)])
    assert out.partial.read_text().splitlines() == ["a,b", "1,2", "3,4"]  # readable before close
    assert not (tmp_path / "frames.csv").exists()
    out.close()
    assert (tmp_path / "frames.csv").read_text().splitlines() == ["a,b", "1,2", "3,4"]
    assert not out.partial.exists()


def make_result(index: int, paths: list[str], height: int = 32, width: int = 64,
                     restarted: bool = False) -> FrameResult:
    """A FrameResult as the pipeline returns it, with labels that depend on the index."""
    regions = region_grid(height, width, 2, 2, 4)
    labels = np.full((height, width), index % 19, np.uint8)
    labels[0, 0] = 255
    scores = [None if p == "seg" else 0.9 for p in paths]
    timings = {"flow": 0.001, "decision": 0.002, "segmentation": 0.01 * paths.count("seg"), "warp": 0.001,
               "stitch": 0.001}
    timings["total"] = sum(timings.values())
    return FrameResult(labels=labels, paths=paths, scores=scores, timings=timings, regions=regions,
                       index=index, restarted=restarted, key_ages=[0, 1, 2, 3])


def test_recorder_writes_every_output_and_exact_figures(tmp_path):
    recorder = RunRecorder(tmp_path, ["overlay", "labels", "label-ids", "color", "csv"], fps=5)
    all_paths = [["seg"] * 4, ["seg", "warp", "warp", "warp"], ["warp"] * 4]
    for i, paths in enumerate(all_paths):
        frame = np.full((32, 64, 3), 100, np.uint8)
        recorder.record(f"city_000000_{i:06d}_leftImg8bit", frame, make_result(i, paths, restarted=i == 0),
                        wall_seconds=0.1)
    summary = recorder.close(complete=True, extra={"config": {"policy": "fixed:3"}})
    assert summary["complete"] is True and summary["config"] == {"policy": "fixed:3"}
    assert summary["frames"] == 3
    assert (summary["regions_seg"], summary["regions_warp"]) == (5, 7)
    assert summary["workload_saved"] == pytest.approx(7 / 12)
    assert summary["fps_end_to_end"] == pytest.approx(3 / 0.3)
    expected_pipeline = sum(make_result(i, p).timings["total"] for i, p in enumerate(all_paths))
    assert summary["fps"] == pytest.approx(3 / expected_pipeline)
    first = make_result(0, all_paths[0]).timings["total"]
    assert summary["fps_warm"] == pytest.approx(2 / (expected_pipeline - first))
    assert summary["restarts"] == [{"frame": 0, "name": "city_000000_000000_leftImg8bit", "height": 32,
                                    "width": 64}]
    assert json.loads((tmp_path / "summary.json").read_text()) == summary
    assert count_frames(tmp_path / "overlay.mp4") == (3, (32, 64))
    ids = cv2.imread(str(tmp_path / "label_ids" / "city_000000_000002_pred_labelIds.png"),
                     cv2.IMREAD_UNCHANGED)
    assert ids[5, 5] == TRAIN_CLASSES[2][1] and ids[0, 0] == 0  # train id 2 -> label id 11; ignore -> 0
    train = cv2.imread(str(tmp_path / "labels" / "city_000000_000001_pred_trainIds.png"),
                       cv2.IMREAD_UNCHANGED)
    assert train[5, 5] == 1 and train[0, 0] == 255
    assert len(os.listdir(tmp_path / "color")) == 3
    with open(tmp_path / "frames.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 3 * 4
    assert [r["path"] for r in rows[4:8]] == ["seg", "warp", "warp", "warp"]
    assert rows[5]["score"] == "0.9000" and rows[4]["score"] == ""
    assert rows[0]["restarted"] == "1" and rows[4]["restarted"] == "0"
    assert float(rows[4]["segmentation_ms"]) == pytest.approx(10.0)
    assert sorted(os.listdir(tmp_path)) == ["color", "frames.csv", "label_ids", "labels", "overlay.mp4",
                                            "summary.json"]


def test_recorder_stopped_early_keeps_finished_frames(tmp_path):
    recorder = RunRecorder(tmp_path, ["overlay", "csv"], fps=5)
    for i in range(2):
        recorder.record(f"f{i}", np.zeros((32, 64, 3), np.uint8), make_result(i, ["seg"] * 4), 0.05)
    summary = recorder.close(complete=False, reason="interrupted")
    assert (summary["complete"], summary["stopped"], summary["frames"]) == (False, "interrupted", 2)
    assert count_frames(tmp_path / "overlay.mp4")[0] == 2
    assert len((tmp_path / "frames.csv").read_text().splitlines()) == 1 + 2 * 4
    assert not any(".partial" in name for name in os.listdir(tmp_path))


def test_recorder_numbers_repeated_frame_names_instead_of_overwriting(tmp_path):
    recorder = RunRecorder(tmp_path, ["labels"])
    for i in range(2):
        recorder.record("same_name", np.zeros((32, 64, 3), np.uint8), make_result(i, ["seg"] * 4), 0.01)
    recorder.close(complete=True)
    names = sorted(os.listdir(tmp_path / "labels"))
    assert names == ["same_name_000001_pred_trainIds.png", "same_name_pred_trainIds.png"]
    second = cv2.imread(str(tmp_path / "labels" / names[0]), cv2.IMREAD_UNCHANGED)
    assert second[5, 5] == 1  # the second frame's labels (index 1), the first file untouched
    assert cv2.imread(str(tmp_path / "labels" / names[1]), cv2.IMREAD_UNCHANGED)[5, 5] == 0


def test_recorder_rejects_unknown_output(tmp_path):
    with pytest.raises(DvsnetError, match="unknown output 'png'"):
        RunRecorder(tmp_path, ["png"])


def test_overlay_legend_names_the_classes_in_the_frame():
    from dvsnet.data.labels import class_set

    classes = class_set(3, names=["sky", "grass", "road"], palette=[[0, 0, 255], [0, 255, 0], [255, 0, 0]])
    labels = np.zeros((120, 240), np.uint8)
    labels[60:] = 2  # sky and road present, grass absent
    frame = np.full((120, 240, 3), 128, np.uint8)
    with_legend = draw_overlay(frame, labels, [], [], classes=classes)
    without = draw_overlay(frame, labels, [], [], classes=classes, legend=False)
    changed = np.argwhere((with_legend != without).any(-1))
    assert changed[:, 1].min() > 240 // 2 and changed[:, 0].max() < 60  # top-right corner only
    corner = with_legend[: changed[:, 0].max() + 1, changed[:, 1].min():]
    colours = {tuple(c) for c in corner.reshape(-1, 3).tolist()}
    assert (0, 0, 255) in colours and (255, 0, 0) in colours and (0, 255, 0) not in colours


def test_running_fps_is_drawn_only_after_warm_up_frames(tmp_path):
    from dvsnet.outputs import FPS_SHOWN_AFTER

    recorder = RunRecorder(tmp_path, ["csv"])
    recorder.record("f0", np.zeros((32, 64, 3), np.uint8), make_result(0, ["seg"]), 5.0)  # warm-up: left out
    for i in range(1, FPS_SHOWN_AFTER):
        recorder.record(f"f{i}", np.zeros((32, 64, 3), np.uint8), make_result(i, ["seg"]), 0.1)
        assert recorder.running_fps() is None
    recorder.record("last", np.zeros((32, 64, 3), np.uint8), make_result(FPS_SHOWN_AFTER, ["seg"]), 0.1)
    assert recorder.running_fps() == pytest.approx(10.0)


def test_label_ids_are_refused_for_classes_that_are_not_cityscapes(tmp_path):
    from dvsnet.data.labels import class_set
    from dvsnet.outputs import check_writes

    check_writes(["label-ids"])  # Cityscapes: fine
    with pytest.raises(DvsnetError, match="label-ids are Cityscapes label ids; this segmenter predicts 2"):
        check_writes(["labels", "label-ids"], class_set(2))
