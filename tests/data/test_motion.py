"""dvsnet.data.motion: codec motion vectors read with PyAV, on videos encoded here with known motion."""
from __future__ import annotations

import numpy as np
import pytest

from dvsnet.data.motion import (
    BLOCK,
    MotionField,
    chain_fields,
    dense_field,
    encode_video,
    read_motion_frames,
    why_no_vectors,
)
from dvsnet.data.video import read_named_frames
from dvsnet.errors import DvsnetError
from tests.conftest import textured_pan

# FFmpeg's AVMotionVector, as PyAV gives it
VECTOR_DTYPE = np.dtype([("source", "<i4"), ("w", "u1"), ("h", "u1"), ("src_x", "<i2"), ("src_y", "<i2"),
                         ("dst_x", "<i2"), ("dst_y", "<i2"), ("flags", "<u8"), ("motion_x", "<i4"),
                         ("motion_y", "<i4"), ("motion_scale", "<u2")])


def vectors(*rows) -> np.ndarray:
    """(source, w, h, dst_x, dst_y, motion_x, motion_y, motion_scale) rows -> FFmpeg's vector array."""
    out = np.zeros(len(rows), VECTOR_DTYPE)
    for i, (source, w, h, x, y, mx, my, scale) in enumerate(rows):
        out[i] = (source, w, h, x + mx // scale, y + my // scale, x, y, 0, mx, my, scale)
    return out


def median_px(field: MotionField) -> tuple[float, float]:
    """The median (dx, dy) of the cells with a vector, in frame pixels."""
    inter = ~field.intra
    return float(np.median(field.flow[0][inter])) * BLOCK, float(np.median(field.flow[1][inter])) * BLOCK


def test_a_vector_paints_its_block_in_grid_pixels_and_the_rest_is_intra():
    # a 16x16 block centred on (24, 8) moved from 1.5 px right, 0.75 px up (quarter-pel: scale 4)
    field = dense_field(vectors((-1, 16, 16, 24, 8, 6, -3, 4)), (32, 64))
    assert field.flow.shape == (2, 32 // BLOCK, 64 // BLOCK) and field.frame_size == (32, 64)
    # rows 0..15, columns 16..31 of the frame
    block = (slice(0, 16 // BLOCK), slice(16 // BLOCK, 32 // BLOCK))
    assert np.allclose(field.flow[0][block], 1.5 / BLOCK) and np.allclose(field.flow[1][block], -0.75 / BLOCK)
    assert not field.intra[block].any() and field.intra.sum() == (32 * 64 - 16 * 16) // BLOCK**2
    assert (field.flow[:, field.intra] == 0).all()


def test_vectors_are_divided_by_their_distance_and_future_ones_fill_only_cells_without_a_past_one():
    rows = [(-1, 8, 8, 4, 4, 8, 0, 4), (1, 8, 8, 4, 4, -4, 0, 4), (1, 8, 8, 12, 4, -6, 0, 2)]
    field = dense_field(vectors(*rows), (8, 16), frames_back=2, frames_ahead=3)
    # past: 2 px over 2 frames -> 1 px per frame; future only: 3 px ahead over 3 frames -> -(-1) px per frame
    assert (np.allclose(field.flow[0][:, : 8 // BLOCK] * BLOCK, 1.0)
            and np.allclose(field.flow[0][:, 8 // BLOCK:] * BLOCK, 1.0))
    assert not field.intra.any()
    assert dense_field(vectors(*rows[1:]), (8, 16)).intra.all()  # future vectors unused without frames_ahead
    assert dense_field(None, (8, 16)).intra.all()  # an I-frame


def test_chaining_two_uniform_fields_adds_them_and_carries_intra():
    one = dense_field(vectors((-1, 16, 16, 8, 8, 8, 4, 4)), (16, 16))  # (2, 1) px everywhere
    chained = chain_fields(one, one)
    assert np.allclose(chained.flow * BLOCK, np.array([4.0, 2.0])[:, None, None])
    hole = dense_field(vectors((-1, 8, 16, 4, 8, 0, 0, 4)), (16, 16))  # the right half is intra
    assert chain_fields(one, hole).intra[:, 8 // BLOCK:].all()


def test_a_stride_chains_the_newer_field_first(av, tmp_path):
    import cv2

    base = textured_pan(0, 0, 1, 256, 512)[0]
    frames = [cv2.warpAffine(base, cv2.getRotationMatrix2D((255.5, 127.5), 0, 1.05 ** t),
                             (512, 256))[64:192, 128:384]
              for t in range(5)]  # a zoom: the motion differs from place to place, so the order matters
    path = encode_video(frames, tmp_path / "zoom.mp4", crf=18)
    fields = [field for _, _, field in read_motion_frames(path)]
    strided = [field for _, _, field in read_motion_frames(path, stride=2)]
    expected = chain_fields(fields[2], fields[1])  # frame 2 back to frame 1, then frame 1 back to frame 0
    assert np.allclose(strided[1].flow, expected.flow) and (strided[1].intra == expected.intra).all()


@pytest.mark.parametrize("codec, bframes", [("libx264", 0), ("libx264", 2), ("mpeg4", 0)])
def test_a_pan_gives_its_shift_on_every_frame_in_sign_and_pixels(av, tmp_path, codec, bframes):
    path = encode_video(textured_pan(3, -2, 12), tmp_path / "pan.mp4", codec=codec, bframes=bframes, crf=18)
    fields = [field for _, _, field in read_motion_frames(path)]
    assert len(fields) == 12 and fields[0].intra.all()  # the first frame: an I-frame, no vectors
    for field in fields[1:]:
        assert field.intra_share < 0.05
        assert median_px(field) == pytest.approx((3.0, -2.0), abs=0.25)


def test_a_zoom_points_every_pixel_towards_the_centre_of_the_previous_frame(av, tmp_path):
    import cv2

    base = textured_pan(0, 0, 1, 256, 512)[0]
    frames = []
    # zoom in 4% per frame about the centre: previous position = centre + (p - centre) / 1.04
    for t in range(6):
        scale = 1.04 ** t
        matrix = cv2.getRotationMatrix2D((255.5, 127.5), 0, scale)
        frames.append(cv2.warpAffine(base, matrix, (512, 256))[64:192, 128:384])
    path = encode_video(frames, tmp_path / "zoom.mp4", crf=18)
    field = list(read_motion_frames(path))[3][2]
    flow, (h, w) = field.flow * BLOCK, field.flow.shape[1:]
    left, right = flow[0][:, : w // 4], flow[0][:, -w // 4:]
    top, bottom = flow[1][: h // 4], flow[1][-h // 4:]
    # 4% about the centre at 96 px (the outer quarters' mean distance) -> ~3.7 px inwards
    assert np.median(left) == pytest.approx(3.7, abs=1.0) and np.median(right) == pytest.approx(-3.7, abs=1.0)
    assert np.median(top) > 1.0 and np.median(bottom) < -1.0


def test_with_a_stride_the_fields_of_skipped_frames_are_chained_in(av, tmp_path):
    path = encode_video(textured_pan(2, 1, 10), tmp_path / "pan.mp4", crf=18)
    named = list(read_named_frames(path, stride=3, motion=True))
    assert [f.name for f in named] == ["pan_000000", "pan_000003", "pan_000006", "pan_000009"]
    for frame in named[1:]:
        assert median_px(frame.motion) == pytest.approx((6.0, 3.0), abs=0.5)
    plain = list(read_named_frames(path, stride=3))
    assert all(np.abs(a.image.astype(int) - b.image).max() <= 2 for a, b in zip(named, plain))  # same frames


def test_an_i_frame_in_the_stream_has_no_vectors(av, tmp_path):
    path = encode_video(textured_pan(2, 0, 9), tmp_path / "pan.mp4", keyint=4, crf=18)
    intra = [field.intra_share for _, _, field in read_motion_frames(path)]
    assert intra[0] == intra[4] == intra[8] == 1.0 and max(intra[1:4] + intra[5:8]) < 0.05


def test_sources_without_vectors_say_why(av, tmp_path):
    import cv2

    folder = tmp_path / "frames"
    folder.mkdir()
    cv2.imwrite(str(folder / "a.png"), np.zeros((16, 16, 3), np.uint8))
    assert "images" in why_no_vectors(folder)
    hevc = encode_video(textured_pan(1, 0, 3, 64, 64), tmp_path / "clip.mkv", codec="libx265")
    assert "hevc" in why_no_vectors(hevc)
    with pytest.raises(DvsnetError, match="hevc"):
        read_named_frames(hevc, motion=True)
    assert why_no_vectors(encode_video(textured_pan(1, 0, 3, 64, 64), tmp_path / "clip.mp4")) is None


def test_intra_holes_take_the_motion_of_their_neighbours_and_an_i_frame_keeps_none():
    import torch

    from dvsnet.data.motion import fill_intra

    flow = torch.zeros(1, 2, 16, 16)
    flow[:, 0], flow[:, 1] = 1.5, -0.5
    intra = torch.zeros(1, 1, 16, 16)
    intra[..., 4:10, 3:9] = 1  # a 6x6-cell intra block inside a uniform pan
    filled = fill_intra(flow * (1 - intra), intra)
    assert torch.allclose(filled, flow)
    assert (fill_intra(torch.zeros(1, 2, 16, 16), torch.ones(1, 1, 16, 16)) == 0).all()
