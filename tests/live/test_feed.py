"""dvsnet.live.feed: the newest frame only, drops counted, motion chained over the drops, reconnects."""
import threading
import time

import numpy as np
import pytest

from dvsnet import DvsnetError
from dvsnet.data.motion import BLOCK, encode_video
from dvsnet.live.feed import LiveFeed, live_frames
from tests.conftest import textured_pan
from tests.live.streams import Sender, free_port, live_clip, wait_for

DX, DY = 3, -2  # the pan's shift per frame: the flow current -> previous frame is (DX, DY) px everywhere


@pytest.fixture(scope="module")
def pan_video(tmp_path_factory):
    """40 frames of a steady pan at 20 fps (2 s), H.264 without B-frames."""
    pytest.importorskip("av")
    path = tmp_path_factory.mktemp("pan") / "pan.mp4"
    return encode_video(textured_pan(DX, DY, 40, 96, 160), path, fps=20, crf=18, keyint=100)


def test_a_slow_consumer_gets_the_newest_frame_and_the_rest_are_counted_as_dropped(av, pan_video):
    feed = LiveFeed(pan_video, realtime=True)
    feed.open()
    taken, ages = [], []
    with feed:
        for frame in feed:
            ages.append(time.time() - frame.captured)
            taken.append(frame.index)
            time.sleep(0.12)  # a pipeline slower than the 50 ms frame interval
    assert feed.end_reason == "stream ended"
    assert feed.received == 40 and feed.taken == len(taken) and feed.received == feed.taken + feed.dropped
    assert 8 < len(taken) < 30 and feed.dropped > 10  # ~2 s of frames, one taken per ~0.12 s
    assert taken == sorted(set(taken)) and taken[-1] >= 37  # newest first, in order, up to the file's end
    assert max(ages) < 0.35  # about one frame interval old when taken (a queue: over 1 s by the end)


def test_motion_of_a_taken_frame_is_chained_over_the_frames_dropped_before_it(av, pan_video):
    steps = []
    with live_frames(pan_video, realtime=True, motion=True) as feed:
        previous = None
        for frame in feed:
            if previous is not None:
                inner = frame.motion.flow[:, 3:-3, 3:-3] * BLOCK  # frame pixels, away from uncovered borders
                steps.append((frame.index - previous, float(np.median(inner[0])), float(np.median(inner[1]))))
            previous = frame.index
            time.sleep(0.13)
    skips = [gap for gap, _, _ in steps]
    assert max(skips) >= 2, skips  # frames were dropped between frames taken
    for gap, dx, dy in steps:
        assert dx == pytest.approx(gap * DX, abs=1.0) and dy == pytest.approx(gap * DY, abs=1.0), steps


def test_a_file_without_realtime_is_not_a_live_feed(pan_video):
    with pytest.raises(DvsnetError, match="pass realtime=True"):
        LiveFeed(pan_video)


@pytest.fixture(scope="module")
def camera_clip(sample_clips, tmp_path_factory):
    """carphone (176x144, 30 fps) as a camera streams it: H.264, no B-frames, an I-frame every 15 frames."""
    pytest.importorskip("av")
    return live_clip(
        sample_clips["carphone"], tmp_path_factory.mktemp("clip") / "carphone.ts", fps=30, keyint=15
    )


def test_a_udp_stream_that_stops_is_reopened_and_counted_then_lost_after_the_reconnect_window(
    av, camera_clip
):
    url = f"udp://127.0.0.1:{free_port()}"
    sender = Sender(camera_clip, url + "?pkt_size=1316").start()
    taken = []  # (index, restarted) of every frame a consumer thread took

    def consume(feed):
        for frame in feed:
            taken.append((frame.index, frame.restarted))

    try:
        with live_frames(url, timeout=1.0, reconnect=2.5) as feed:
            consumer = threading.Thread(target=consume, args=(feed,), daemon=True)
            consumer.start()
            assert wait_for(lambda: feed.received > 20, 10)
            sender.stop()  # the camera goes away ...
            assert wait_for(lambda: feed.state == "reconnecting", 3)
            sender.start()  # ... and comes back before the reconnect window closes
            assert wait_for(lambda: feed.reconnects == 1 and feed.state == "running", 6)
            assert wait_for(lambda: any(restarted for _, restarted in taken), 3)
            sender.stop()  # gone for good: lost after the timeout and the reconnect window
            assert wait_for(lambda: feed.ended, 6)
            consumer.join(timeout=2)
        assert feed.end_reason.startswith("stream lost") and "--reconnect" in feed.end_reason
        assert feed.received == feed.taken + feed.dropped and feed.reconnects == 1
        assert [index for index, _ in taken] == sorted({index for index, _ in taken})
        assert sum(restarted for _, restarted in taken) == 1  # the first frame after the reconnect says so
    finally:
        sender.stop()


def test_a_chain_over_dropped_p_frames_keeps_only_the_newest_frames_intra_cells_but_an_i_frame_stays_intra():
    from dvsnet.data.motion import MotionField, chain_fields
    from dvsnet.live.feed import _as_dropped

    rng = np.random.default_rng(0)
    h, w = 30, 40

    def p_frame() -> MotionField:  # a fifth of the cells intra (texture), the rest moving 0.5 cell right
        intra = rng.random((h, w)) < 0.2
        flow = np.zeros((2, h, w), np.float32)
        flow[0][~intra] = 0.5
        return MotionField(flow, intra, (h * BLOCK, w * BLOCK))

    chained = p_frame()
    for _ in range(8):  # eight frames dropped, each chained under the next
        newest = p_frame()
        chained = chain_fields(newest, _as_dropped(chained))
    assert chained.intra_share == pytest.approx(newest.intra_share, abs=0.02)  # not the union (~0.87)
    inner = chained.flow[0, 5:-5, 5:-10][~chained.intra[5:-5, 5:-10]]
    assert np.median(inner) == pytest.approx(4.5, abs=0.3)  # nine steps of 0.5 cell
    i_frame = MotionField(np.zeros((2, h, w), np.float32), np.ones((h, w), bool), (h * BLOCK, w * BLOCK))
    assert chain_fields(p_frame(), _as_dropped(i_frame)).intra_share == 1.0  # a cut stays a cut
