"""Edited footage from real clips (dvsnet.data.edited): stop-and-go and montages, reproducible per seed."""
import itertools

import numpy as np
import pytest

from dvsnet.data.edited import fit_frame, montage, stop_and_go


def numbered_clip(frames: int, value_offset: int = 0, size=(8, 12)) -> list[np.ndarray]:
    """Frames whose every pixel holds the frame's index (plus an offset): an edit can be read back from
    them."""
    return [np.full((*size, 3), (i + value_offset) % 256, np.uint8) for i in range(frames)]


def test_stop_and_go_plays_holds_and_skips_as_its_runs_say():
    clip = numbered_clip(100)
    out, runs = stop_and_go(clip, seed=3, length=120, noise=0.0)
    assert len(out) == 120 and sum(r.length for r in runs) == 120
    assert {r.kind for r in runs} >= {"play", "still", "fast"}
    assert all(a.kind != b.kind for a, b in itertools.pairwise(runs))
    position = 0
    for run in runs:
        for i in range(run.length):
            expected = (run.start + i * run.step) % len(clip)
            assert out[position][0, 0, 0] == expected
            position += 1
        assert (run.step == {"play": 1, "still": 0}.get(run.kind, run.step)
                and (run.kind != "fast" or 2 <= run.step <= 4))


def test_a_still_gets_fresh_sensor_noise_on_every_copy():
    clip = [np.full((32, 32, 3), 128, np.uint8)] * 60
    out, runs = stop_and_go(clip, seed=1, length=60, noise=2.0)
    start = 0
    for run in runs:
        if run.kind == "still":
            copies = out[start:start + run.length]
            break
        start += run.length
    difference = np.abs(copies[0].astype(int) - 128)
    assert 1.0 < difference.mean() < 2.5  # E|N(0, 2)| = 1.6 grey levels
    assert not np.array_equal(copies[0], copies[1])


def test_the_same_seed_gives_the_same_footage():
    clip = numbered_clip(50)
    a, runs_a = stop_and_go(clip, seed=7, length=80)
    b, runs_b = stop_and_go(clip, seed=7, length=80)
    assert runs_a == runs_b and all(np.array_equal(x, y) for x, y in zip(a, b))
    _c, runs_c = stop_and_go(clip, seed=8, length=80)
    assert runs_c != runs_a


def test_a_montage_cuts_between_clips_at_irregular_times():
    clips = [numbered_clip(60), numbered_clip(60, value_offset=100)]
    out, runs = montage(clips, seed=2, length=150, run_lengths=(3, 40))
    assert len(out) == 150 and sum(r.length for r in runs) == 150
    assert all(a.clip != b.clip for a, b in itertools.pairwise(runs))
    assert all(3 <= r.length <= 40 for r in runs[:-1]) and len({r.length for r in runs}) > 1
    position = 0
    for run in runs:
        assert out[position][0, 0, 0] == (run.start + 100 * run.clip) % 256
        position += run.length


def test_a_montage_needs_one_frame_size():
    with pytest.raises(ValueError, match="one frame size"):
        montage([numbered_clip(10, size=(8, 12)), numbered_clip(10, size=(8, 16))], seed=0, length=10)


@pytest.mark.parametrize("shape", [(272, 640), (144, 176), (720, 1280)])
def test_fit_frame_gives_one_size_whatever_the_aspect_ratio(shape):
    frame = np.random.default_rng(0).integers(0, 256, (*shape, 3), np.uint8)
    assert fit_frame(frame, (216, 512)).shape == (216, 512, 3)
