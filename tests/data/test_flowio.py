import cv2
import numpy as np
import pytest

from dvsnet.data.flowio import (
    read_flo,
    read_flow,
    read_kitti_flow,
    write_flo,
    write_kitti_flow,
    write_png_atomic,
)
from dvsnet.errors import DvsnetError


def _flow(h=5, w=7, seed=0):
    return np.random.default_rng(seed).uniform(-40, 40, (h, w, 2)).astype(np.float32)


def test_flo_round_trip_is_exact_and_has_the_middlebury_header(tmp_path):
    flow = _flow()
    path = tmp_path / "a.flo"
    write_flo(path, flow)
    data = path.read_bytes()
    assert data[:4] == b"PIEH"
    assert np.frombuffer(data[4:12], "<i4").tolist() == [7, 5]  # width, height
    assert len(data) == 12 + 5 * 7 * 2 * 4
    np.testing.assert_array_equal(read_flo(path), flow)
    # dx, dy interleaved per pixel, row-major
    assert np.frombuffer(data[12:20], "<f4").tolist() == flow[0, 0].tolist()


def test_flo_rejects_wrong_magic_and_truncation(tmp_path):
    bad = tmp_path / "bad.flo"
    bad.write_bytes(b"XXXX" + bytes(8))
    with pytest.raises(DvsnetError, match="not a Middlebury"):
        read_flo(bad)
    write_flo(tmp_path / "ok.flo", _flow())
    short = tmp_path / "short.flo"
    short.write_bytes((tmp_path / "ok.flo").read_bytes()[:-4])
    with pytest.raises(DvsnetError, match="does not match"):
        read_flo(short)
    with pytest.raises(DvsnetError, match="cannot read"):
        read_flo(tmp_path / "missing.flo")


def test_kitti_png_round_trip_within_quantisation_and_keeps_the_mask(tmp_path):
    flow = _flow(9, 11)
    valid = np.random.default_rng(1).random((9, 11)) > 0.3
    path = tmp_path / "f.png"
    write_kitti_flow(path, flow, valid)
    back, back_valid = read_kitti_flow(path)
    np.testing.assert_array_equal(back_valid, valid)
    assert np.abs(back - flow).max() <= 1 / 128 + 1e-6  # 1/64 px steps, rounded; kept where invalid too
    same, same_valid = read_flow(path)
    np.testing.assert_array_equal(same, back)
    np.testing.assert_array_equal(same_valid, valid)
    write_flo(tmp_path / "f.flo", flow)
    flo, all_valid = read_flow(tmp_path / "f.flo")
    assert all_valid.all() and np.array_equal(flo, flow)


def test_kitti_reader_rejects_an_8bit_png(tmp_path):
    write_png_atomic(tmp_path / "rgb.png", np.zeros((4, 4, 3), np.uint8))
    with pytest.raises(DvsnetError, match="16-bit"):
        read_kitti_flow(tmp_path / "rgb.png")


def test_atomic_png_leaves_no_temporary_files(tmp_path):
    image = np.arange(48, dtype=np.uint8).reshape(4, 4, 3)
    write_png_atomic(tmp_path / "x.png", image)
    write_png_atomic(tmp_path / "x.png", image[::-1].copy())  # replace in place
    assert [p.name for p in tmp_path.iterdir()] == ["x.png"]
    np.testing.assert_array_equal(cv2.imread(str(tmp_path / "x.png"))[..., ::-1], image[::-1])
