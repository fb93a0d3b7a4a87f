"""dvsnet.live.sources: which SOURCE is live, and the one-line errors of sources that do not open."""
import socket
import time

import pytest

from dvsnet import DvsnetError
from dvsnet.live.sources import StreamOptions, connect, ffmpeg_options, is_live, live_kind, redact
from tests.live.streams import free_port


@pytest.mark.parametrize(
    ("source", "kind"),
    [
        ("0", "camera"),
        ("12", "camera"),
        ("/dev/video0", "camera"),
        ("/dev/video17", "camera"),
        ("rtsp://10.0.0.5:554/stream1", "stream"),
        ("RTSP://cam/1", "stream"),
        ("rtsps://cam/1", "stream"),
        ("rtmp://server/live/key", "stream"),
        ("udp://127.0.0.1:5000?pkt_size=1316", "stream"),
        ("rtp://127.0.0.1:5004", "stream"),
        ("tcp://127.0.0.1:5000", "stream"),
        ("srt://127.0.0.1:9000", "stream"),
        ("http://cam.local/video.mjpg", "stream"),
        ("https://example.org/live/index.m3u8", "stream"),
        ("clip.mp4", None),
        ("frames/", None),
        ("'frames/*.png'", None),
        ("foo://bar", None),
        ("file://x.mp4", None),
        ("-1", None),
        ("0.5", None),
        ("/dev/video", None),
        ("/dev/videoX", None),
        ("", None),
    ],
)
def test_live_sources_are_cameras_and_stream_urls(source, kind, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert live_kind(source) == kind
    assert is_live(source) == (kind is not None)


def test_an_existing_file_or_folder_is_never_live_whatever_its_name(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "0").write_bytes(b"a file named like a camera index")
    (tmp_path / "udp:").mkdir()
    (tmp_path / "udp:" / "host").mkdir()
    assert live_kind("0") is None and live_kind("udp://host") is None
    assert live_kind("1") == "camera"


def test_passwords_in_urls_are_hidden_from_messages_and_records():
    assert redact("rtsp://admin:s3cret@10.0.0.5:554/stream") == "rtsp://admin:***@10.0.0.5:554/stream"
    assert redact("rtsp://10.0.0.5/stream") == "rtsp://10.0.0.5/stream"
    assert redact("udp://127.0.0.1:5000") == "udp://127.0.0.1:5000"


def test_rtsp_goes_over_tcp_unless_told_and_ffmpeg_options_pass_through():
    assert ffmpeg_options("rtsp://cam/1", StreamOptions()) == {"rtsp_transport": "tcp"}
    options = StreamOptions(rtsp_transport="udp", ffmpeg=(("stimeout", "5000000"),))
    assert ffmpeg_options("rtsp://cam/1", options) == {"rtsp_transport": "udp", "stimeout": "5000000"}
    assert ffmpeg_options("udp://127.0.0.1:5000", options) == {"stimeout": "5000000"}


@pytest.mark.parametrize(("field", "value", "message"), [
    ("timeout", 0, "timeout must be"), ("timeout", float("inf"), "timeout must be"),
    ("reconnect", -1, "reconnect must be"), ("rtsp_transport", "quic", "unknown RTSP transport"),
])
def test_bad_stream_options_are_one_line_errors(field, value, message):
    with pytest.raises(DvsnetError, match=message):
        StreamOptions(**{field: value})


def test_a_missing_camera_is_one_line_at_once(av):
    start = time.monotonic()
    with pytest.raises(DvsnetError, match=r"no camera at /dev/video63"):
        connect("/dev/video63", StreamOptions(timeout=5))
    with pytest.raises(DvsnetError, match=r"no camera at /dev/video61 \(camera 61"):
        connect("61", StreamOptions(timeout=5))
    assert time.monotonic() - start < 1.0


def test_a_udp_stream_that_never_starts_fails_within_the_timeout(av):
    url = f"udp://127.0.0.1:{free_port()}"
    start = time.monotonic()
    with pytest.raises(DvsnetError, match=rf"no stream arrived from {url} within 1 s \(--timeout\)"):
        connect(url, StreamOptions(timeout=1.0))
    assert 0.9 < time.monotonic() - start < 3.0


@pytest.mark.parametrize("scheme", ["tcp", "rtsp", "http"])
def test_a_refused_connection_is_retried_until_the_timeout_then_one_line(av, scheme):
    url = f"{scheme}://127.0.0.1:{free_port(socket.SOCK_STREAM)}/stream"
    start = time.monotonic()
    with pytest.raises(
        DvsnetError, match=r"cannot open .*: connection refused \(tried for 1.5 s, --timeout\)"
    ):
        connect(url, StreamOptions(timeout=1.5))
    assert 1.0 < time.monotonic() - start < 3.5


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("rtsp://", "rtsp:// names no host"),
        ("http:///live.m3u8", "names no host"),
        ("udp://", "udp:// names no port"),
        ("udp://127.0.0.1", "names no port"),
        ("tcp://127.0.0.1", "names no port"),
        ("udp://127.0.0.1:99999", "the port is not a number in 1-65535"),
        ("rtsp://cam:0/x", "not a number in 1-65535"),
        ("rtsp://user:secret@:554/x", r"rtsp://user:\*\*\*@:554/x names no host"),
    ],
)
def test_urls_ffmpeg_would_only_time_out_on_are_refused_at_once(av, source, message):
    start = time.monotonic()
    with pytest.raises(DvsnetError, match=message):
        connect(source, StreamOptions(timeout=5))
    assert time.monotonic() - start < 0.5


def test_urls_that_name_what_they_need_pass_the_check():
    from dvsnet.live.sources import check_url

    for source in ("udp://@:5000", "udp://127.0.0.1:5000?pkt_size=1316", "tcp://:5000?listen=1", "rtsp://cam/1",
                   "rtsp://user:pass@10.0.0.5:554/stream1", "https://example.org/live/index.m3u8", "srt://:9000"):
        check_url(source)
