"""read_frames / read_named_frames / probe on tiny videos and image folders written by the tests."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import cv2
import numpy as np
import pytest

from dvsnet.data.video import (
    ShortVideo,
    count_video_frames,
    expected_frames,
    natural_key,
    probe,
    read_frames,
    read_named_frames,
    stream_damage,
    to_rgb_uint8,
)
from dvsnet.errors import DvsnetError
from tests.videos import lie_about_frame_count

H, W = 64, 128


def solid_rgb(i: int) -> tuple[int, int, int]:
    """A distinct, well-separated RGB colour per frame index (survives lossy codecs)."""
    return (40 + 50 * (i % 4), 200 - 40 * (i % 5), 30 + 60 * (i % 3))


def write_video(path: Path, n: int, fourcc: str = "mp4v", size: tuple[int, int] = (H, W)) -> Path:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), 10.0, (size[1], size[0]))
    assert writer.isOpened()
    for i in range(n):
        rgb = np.empty((*size, 3), np.uint8)
        rgb[:] = solid_rgb(i)
        writer.write(rgb[:, :, ::-1].copy())  # VideoWriter takes BGR
    writer.release()
    return path


def write_png(path: Path, image: np.ndarray) -> Path:
    assert cv2.imwrite(str(path), image)
    return path


def test_video_frames_are_rgb_in_order(tmp_path):
    video = write_video(tmp_path / "clip.mp4", 6)
    frames = list(read_frames(video))
    assert len(frames) == 6
    for i, frame in enumerate(frames):
        assert frame.shape == (H, W, 3) and frame.dtype == np.uint8
        # mp4v is lossy: the mean colour is within a few levels of what was written, in RGB order
        np.testing.assert_allclose(frame.reshape(-1, 3).mean(0), solid_rgb(i), atol=6)


def test_stride_max_frames_and_names(tmp_path):
    video = write_video(tmp_path / "clip.avi", 10, "MJPG")
    named = list(read_named_frames(video, stride=3))
    assert [f.name for f in named] == ["clip_000000", "clip_000003", "clip_000006", "clip_000009"]
    np.testing.assert_allclose(named[1].image.reshape(-1, 3).mean(0), solid_rgb(3), atol=6)
    assert len(list(read_frames(video, max_frames=4))) == 4
    assert ([f.name for f in read_named_frames(video, stride=4, max_frames=2)]
            == ["clip_000000", "clip_000004"])
    info = probe(video)
    assert (info.kind, info.frames, info.fps, info.height, info.width) == ("video", 10, 10.0, H, W)
    assert expected_frames(info, stride=3) == 4 and expected_frames(info, stride=3, max_frames=2) == 2
    unknown = dataclasses.replace(info, frames=None)  # a stream whose header has no frame count
    assert expected_frames(unknown) is None and expected_frames(unknown, max_frames=7) == 7


@pytest.mark.parametrize("ext,fourcc", [(".mkv", "mp4v"), (".webm", "VP80")])
def test_other_containers(tmp_path, ext, fourcc):
    video = write_video(tmp_path / f"clip{ext}", 5, fourcc)
    frames = list(read_frames(video))
    assert len(frames) == 5 and frames[0].shape == (H, W, 3)


def test_resize_to_size_and_to_width(tmp_path):
    video = write_video(tmp_path / "clip.mp4", 2)
    assert next(read_frames(video, resize=(32, 48))).shape == (32, 48, 3)
    assert next(read_frames(video, resize=256)).shape == (128, 256, 3)  # aspect 1:2 kept


def test_folder_sorted_naturally_with_odd_sizes(tmp_path):
    for i in (10, 2, 1):  # written out of order; 'f10' sorts after 'f2' by value
        write_png(tmp_path / f"f{i}.png", np.full((37, 51, 3), i, np.uint8))
    (tmp_path / "notes.txt").write_text("not an image")
    named = list(read_named_frames(tmp_path))
    assert [f.name for f in named] == ["f1", "f2", "f10"]
    assert [int(f.image[0, 0, 0]) for f in named] == [1, 2, 10]
    assert named[0].image.shape == (37, 51, 3)  # odd sizes pass through unchanged
    assert probe(tmp_path).frames == 3


def test_glob_source(tmp_path):
    for city in ("a", "b"):
        (tmp_path / city).mkdir()
        write_png(tmp_path / city / f"{city}_000000_000019_leftImg8bit.png", np.zeros((16, 32, 3), np.uint8))
    names = [f.name for f in read_named_frames(str(tmp_path / "*" / "*_leftImg8bit.png"))]
    assert names == ["a_000000_000019_leftImg8bit", "b_000000_000019_leftImg8bit"]
    with pytest.raises(DvsnetError, match="matches no image files"):
        read_frames(str(tmp_path / "*.jpg"))


def test_gray_rgba_16bit_converted(tmp_path):
    write_png(tmp_path / "0_gray.png", np.full((20, 30), 77, np.uint8))
    bgra = np.zeros((20, 30, 4), np.uint8)
    bgra[..., 0], bgra[..., 1], bgra[..., 2], bgra[..., 3] = 10, 20, 30, 128  # B, G, R, alpha
    write_png(tmp_path / "1_rgba.png", bgra)
    write_png(tmp_path / "2_deep.png", np.full((20, 30, 3), 65535, np.uint16))
    gray, rgba, deep = read_frames(tmp_path)
    assert gray.shape == rgba.shape == deep.shape == (20, 30, 3)
    assert gray.dtype == rgba.dtype == deep.dtype == np.uint8
    assert (gray == 77).all()
    assert rgba[0, 0].tolist() == [30, 20, 10]  # RGB order, alpha dropped
    assert (deep == 255).all()


def test_to_rgb_uint8_known_values():
    assert to_rgb_uint8(np.full((2, 2, 1), 5, np.uint8)).tolist() == [[[5] * 3] * 2] * 2
    assert to_rgb_uint8(np.full((1, 1, 3), 0.5, np.float32))[0, 0].tolist() == [128, 128, 128]
    assert to_rgb_uint8(np.array([[[1, 2, 3]]], np.uint8), bgr=False)[0, 0].tolist() == [1, 2, 3]
    with pytest.raises(DvsnetError, match="unsupported image shape"):
        to_rgb_uint8(np.zeros((2, 2, 2), np.uint8))


def test_natural_key():
    assert sorted(["f10", "f2", "F1"], key=natural_key) == ["F1", "f2", "f10"]


def test_missing_source_fails_at_call(tmp_path):
    with pytest.raises(DvsnetError, match="no such file or folder"):
        read_frames(tmp_path / "nope.mp4")  # no next(): the check is eager


@pytest.mark.parametrize("content", [b"", bytes(np.random.default_rng(0).integers(0, 256, 4000, np.uint8))])
def test_corrupt_or_empty_video(tmp_path, content):
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(content)
    with pytest.raises(DvsnetError, match="bad.mp4"):
        read_frames(bad)


def test_truncated_mp4_cannot_open(tmp_path):
    data = write_video(tmp_path / "full.mp4", 10).read_bytes()
    (tmp_path / "cut.mp4").write_bytes(data[: len(data) // 2])
    with pytest.raises(DvsnetError, match="cannot decode video"):
        read_frames(tmp_path / "cut.mp4")


def test_truncated_avi_yields_good_frames_then_fails(tmp_path):
    data = write_video(tmp_path / "full.avi", 20, "MJPG").read_bytes()
    (tmp_path / "cut.avi").write_bytes(data[: int(len(data) * 0.8)])
    frames = read_frames(tmp_path / "cut.avi")
    got = []
    with pytest.raises(DvsnetError, match=r"ended after \d+ of the 20 frames"):
        got.extend(frames)
    assert 0 < len(got) < 20
    for i, frame in enumerate(got):  # what was yielded is intact
        np.testing.assert_allclose(frame.reshape(-1, 3).mean(0), solid_rgb(i), atol=6)


def test_a_video_shorter_than_its_header_is_read_to_its_end_and_reported_once(tmp_path):
    avi = lie_about_frame_count(write_video(tmp_path / "short.avi", 12, "MJPG"), 444)
    assert probe(avi).frames == 444  # what the header says
    short: list[ShortVideo] = []
    frames = list(read_named_frames(avi, on_short=short.append))
    assert len(frames) == 12 and short == [ShortVideo(str(avi), 444, 12)]
    for i, frame in enumerate(frames):
        np.testing.assert_allclose(frame.image.reshape(-1, 3).mean(0), solid_rgb(i), atol=6)
    assert count_video_frames(avi) == 12 and stream_damage(avi) is None
    assert len(list(read_frames(avi))) == 12  # no callback: no error either


def test_damage_is_told_apart_from_a_short_header(tmp_path):
    data = write_video(tmp_path / "full.avi", 20, "MJPG").read_bytes()
    (tmp_path / "cut.avi").write_bytes(data[: int(len(data) * 0.8)])
    assert "partial or corrupt packet" in stream_damage(tmp_path / "cut.avi")
    assert stream_damage(tmp_path / "full.avi") is None


def test_empty_folder_and_folder_of_videos(tmp_path):
    with pytest.raises(DvsnetError, match="holds no image files"):
        read_frames(tmp_path)
    write_video(tmp_path / "clip.mp4", 2)
    with pytest.raises(DvsnetError, match="pass the file itself"):
        read_frames(tmp_path)


def test_corrupt_image_in_folder_names_it(tmp_path):
    write_png(tmp_path / "a.png", np.zeros((8, 8, 3), np.uint8))
    (tmp_path / "b.png").write_bytes(b"\x89PNG garbage")
    frames = read_frames(tmp_path)
    assert next(frames).shape == (8, 8, 3)
    with pytest.raises(DvsnetError, match="b.png"):
        next(frames)


def test_single_image_is_one_frame(tmp_path):
    image = write_png(tmp_path / "one.jpg", np.full((16, 24, 3), 100, np.uint8))
    assert [f.image.shape for f in read_named_frames(image)] == [(16, 24, 3)]


@pytest.mark.parametrize("kwargs,match", [
    ({"stride": 0}, "stride"), ({"max_frames": 0}, "max_frames"),
    ({"resize": 8}, "resize"), ({"resize": (10, 100)}, "resize"),
])
def test_bad_options(tmp_path, kwargs, match):
    video = write_video(tmp_path / "clip.mp4", 2)
    with pytest.raises(DvsnetError, match=match):
        read_frames(video, **kwargs)

