"""LiveView: the address parser, the server's endpoints on loopback with raw sockets (slow, stalled and
several clients), and the page in a real headless browser (Debian's chromium)."""
from __future__ import annotations

import contextlib
import json
import re
import socket
import threading
import time
import tracemalloc
import urllib.error
import urllib.request

import cv2
import numpy as np
import pytest

from dvsnet.errors import DvsnetError
from dvsnet.live import LiveView, parse_address
from dvsnet.live.view import BOUNDARY, _url_host
from tests.live.chromium import HeadlessChromium, find_chromium

STATUS = {"frame": 7, "fps": 12.5, "latency_ms": 81.25, "dropped": 3, "received": 120, "threshold": 0.92,
          "policy": "dn:0.92", "source": "bikes.mp4", "reconnects": 0, "state": "running",
          "regions": [{"box": [0, 0, 136, 320], "path": "seg", "score": None},
                      {"box": [0, 320, 136, 640], "path": "warp", "score": 0.95}]}


# -- helpers ----------------------------------------------------------------------------------------------

def clip_frames(path, count: int) -> list[np.ndarray]:
    """The first `count` frames of a video, H×W×3 uint8 RGB."""
    capture = cv2.VideoCapture(str(path))
    frames = []
    while len(frames) < count:
        ok, frame = capture.read()
        if not ok:
            break
        frames.append(np.ascontiguousarray(frame[:, :, ::-1]))
    assert frames, f"cannot read {path}"
    return frames


def smooth_frame(height: int = 360, width: int = 640, shift: int = 0) -> np.ndarray:
    y, x = np.mgrid[:height, :width]
    return np.stack([(x + shift) % 256, y % 256, (x + y) // 4 % 256], axis=-1).astype(np.uint8)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else 10 * np.log10(255.0 ** 2 / mse)


def decode_jpeg(data: bytes) -> np.ndarray:
    return cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)[:, :, ::-1]


def port_of(view: LiveView) -> int:
    return int(view.url.rsplit(":", 1)[1].strip("/"))


def request(view: LiveView, path: str, rcvbuf: int | None = None) -> socket.socket:
    """A raw client socket that has sent `GET path`."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if rcvbuf:  # before connect, so the advertised window is small too
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.settimeout(5)
    sock.connect(("127.0.0.1", port_of(view)))
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
    return sock


class StreamReader:
    """Reads an MJPEG response from a raw socket, part by part: (X-Frame number, JPEG bytes)."""

    def __init__(self, sock: socket.socket):
        self.sock, self.buffer = sock, b""
        head = self._until(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200"), head
        assert f"boundary={BOUNDARY}".encode() in head

    def _until(self, marker: bytes) -> bytes:
        while marker not in self.buffer:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError("stream ended")
            self.buffer += chunk
        head, self.buffer = self.buffer.split(marker, 1)
        return head

    def part(self) -> tuple[int, bytes]:
        head = self._until(b"\r\n\r\n").decode()
        assert head.startswith(f"--{BOUNDARY}"), head
        length = int(re.search(r"Content-Length: (\d+)", head)[1])
        number = int(re.search(r"X-Frame: (\d+)", head)[1])
        while len(self.buffer) < length + 2:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError("stream ended")
            self.buffer += chunk
        body, self.buffer = self.buffer[:length], self.buffer[length + 2:]
        return number, body


def get(view: LiveView, path: str, timeout: float = 5) -> tuple[int, dict, bytes]:
    try:
        with urllib.request.urlopen(view.url.rstrip("/") + path, timeout=timeout) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


def wait_until(condition, timeout: float = 3.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.01)
    return condition()


def ended(sock: socket.socket, timeout: float = 1.0) -> bool:
    """True when the server ended the connection within `timeout` s (whatever it had sent is drained)."""
    sock.settimeout(timeout)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            if not sock.recv(1 << 20):
                return True
    except ConnectionError:
        return True
    except TimeoutError:
        return False
    return False


@pytest.fixture
def view():
    live = LiveView("127.0.0.1", 0)
    live.start()
    yield live
    live.close()


# -- the address ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("text, expected", [
    ("8080", ("127.0.0.1", 8080)),
    (" 8080 ", ("127.0.0.1", 8080)),
    (":8080", ("127.0.0.1", 8080)),
    ("0", ("127.0.0.1", 0)),
    ("0.0.0.0:8080", ("0.0.0.0", 8080)),
    ("localhost:65535", ("localhost", 65535)),
    ("192.168.1.20:80", ("192.168.1.20", 80)),
    ("[::1]:8080", ("::1", 8080)),
    ("[::]:9000", ("::", 9000)),
])
def test_parse_address(text, expected):
    assert parse_address(text) == expected


@pytest.mark.parametrize("text, message", [
    ("", "expected [HOST:]PORT"),
    ("http", "expected [HOST:]PORT"),
    ("host:", "expected [HOST:]PORT"),
    ("8080:host", "expected [HOST:]PORT"),
    ("-1", "expected [HOST:]PORT"),
    ("70000", "not in 0-65535"),
    ("::1:8080", "in brackets"),
    ("[]:8080", "empty IPv6"),
    ("[::1]8080", "expected [HOST:]PORT"),
])
def test_parse_address_refuses_bad_input_in_one_line(text, message):
    with pytest.raises(DvsnetError, match=re.escape(message)) as error:
        parse_address(text)
    assert "\n" not in str(error.value)


@pytest.mark.parametrize("host, shown", [("127.0.0.1", "127.0.0.1"), ("0.0.0.0", "127.0.0.1"),
                                         ("::1", "[::1]"), ("::", "[::1]"), ("localhost", "localhost")])
def test_the_url_names_a_host_a_local_browser_can_open(host, shown):
    assert _url_host(host) == shown


def test_port_in_use_and_unknown_host_are_one_line_errors():
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    try:
        port = taken.getsockname()[1]
        with pytest.raises(DvsnetError, match=f"127.0.0.1:{port}: the port is in use"):
            LiveView("127.0.0.1", port).start()
    finally:
        taken.close()
    # an address that is not this machine's (TEST-NET-1, RFC 5737): the bind fails, nothing listens
    with pytest.raises(DvsnetError, match="cannot serve the live view on 192.0.2.1:0: Cannot assign"):
        LiveView("192.0.2.1", 0).start()


# -- the server -------------------------------------------------------------------------------------------

def test_url_page_and_unknown_paths(view):
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+/", view.url) and port_of(view) > 0
    status, headers, body = get(view, "/")
    assert status == 200 and headers["Content-Type"].startswith("text/html")
    page = body.decode()
    assert "<title>dvsnet live</title>" in page
    assert '"seg": "#ff3c3c"' in page and '"warp": "#3ce63c"' in page  # dvsnet.outputs.PATH_COLORS
    for path in ("/nope", "/frame.png", "/static/index.html"):
        assert get(view, path)[0] == 404
    assert get(view, "/frame.jpg?after=x")[0] == 400


def test_status_json_round_trips(view):
    status, _, body = get(view, "/status.json")
    assert status == 200 and json.loads(body) == {"published": 0, "viewers": 0, "status": {}}
    odd = {**STATUS, "latency_ms": float("nan"), "threshold": np.float32(0.5), "dropped": np.int64(3),
           "unknown_key": {"nested": (1, 2)}}
    view.publish(smooth_frame(), odd)
    body = json.loads(get(view, "/status.json")[2])
    assert body["published"] == 1
    assert body["status"] == {**STATUS, "latency_ms": None, "threshold": 0.5,
                              "unknown_key": {"nested": [1, 2]}}
    view.publish_status({**STATUS, "state": "ended"})  # the status alone: the frame stays
    body = json.loads(get(view, "/status.json")[2])
    assert body["published"] == 1 and body["status"] == {**STATUS, "state": "ended"}


def test_frame_jpg_is_the_published_image_and_waits_for_a_newer_one(view, sample_clips):
    frames = clip_frames(sample_clips["bikes"], 3)
    view.publish(frames[0], STATUS)
    status, headers, body = get(view, "/frame.jpg")
    assert status == 200 and headers["Content-Type"] == "image/jpeg" and headers["X-Frame"] == "1"
    assert psnr(decode_jpeg(body), frames[0]) > 30
    # the client has frame 1: the request waits until frame 2 is published, then gets it
    threading.Timer(0.2, view.publish, (frames[1], STATUS)).start()
    start = time.monotonic()
    status, headers, body = get(view, "/frame.jpg?after=1")
    assert status == 200 and headers["X-Frame"] == "2" and time.monotonic() - start >= 0.15
    assert psnr(decode_jpeg(body), frames[1]) > 30
    # an older (or a future) number gets the newest at once
    assert get(view, "/frame.jpg?after=0")[1]["X-Frame"] == "2"
    assert get(view, "/frame.jpg?after=99")[1]["X-Frame"] == "2"


def test_jpeg_encoded_only_when_watched_and_once_per_frame(view):
    for shift in range(50):
        view.publish(smooth_frame(90, 160, shift=shift), STATUS)
    assert view.encoded == 0  # nobody watching: nothing encoded
    first = get(view, "/frame.jpg")[2]
    second = get(view, "/frame.jpg")[2]
    assert first == second and view.encoded == 1  # two requests for frame 50, one encoding


def test_two_clients_at_once_both_get_frames(view, sample_clips):
    frames = clip_frames(sample_clips["bikes"], 8)
    published: dict[int, np.ndarray] = {}
    clients = [StreamReader(request(view, "/stream.mjpg")) for _ in range(2)]
    assert wait_until(lambda: view.viewers == 2)
    stop = threading.Event()

    def publisher():
        n = 0
        while not stop.is_set():
            published[n + 1] = frames[n % len(frames)]
            view.publish(frames[n % len(frames)], {**STATUS, "frame": n})
            n += 1
            time.sleep(0.01)

    thread = threading.Thread(target=publisher)
    thread.start()
    try:
        for client in clients:
            numbers = []
            for _ in range(4):
                number, jpeg = client.part()
                numbers.append(number)
                assert psnr(decode_jpeg(jpeg), published[number]) > 30
            assert numbers == sorted(set(numbers)), numbers  # each part a newer frame
    finally:
        stop.set()
        thread.join()
    assert view.encoded <= view.published
    for client in clients:
        client.sock.close()
    assert wait_until(lambda: view.viewers == 0)  # gone clients are dropped


def time_publishes(view: LiveView, frames: list[np.ndarray], count: int = 1000) -> float:
    """Best of three: seconds for `count` publishes (a blocking publish is slow in every try)."""
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        for i in range(count):
            view.publish(frames[i % 2], STATUS)
        best = min(best, time.perf_counter() - start)
    return best


def test_publish_is_o1_with_a_slow_client_and_memory_stays_flat(view):
    frames = [smooth_frame(), smooth_frame(shift=40)]
    alone = LiveView("127.0.0.1", 0)
    alone.start()
    try:
        without_client = time_publishes(alone, frames)
    finally:
        alone.close()
    view.publish(frames[0], STATUS)
    slow = request(view, "/stream.mjpg", rcvbuf=4096)
    received = bytearray()
    stop = threading.Event()

    def read_slowly():  # 1 KB every 5 ms: ~200 KB/s, a few frames a second
        while not stop.is_set():
            try:
                chunk = slow.recv(1024)
            except OSError:
                return
            if not chunk:
                return
            received.extend(chunk)
            time.sleep(0.005)

    reader = threading.Thread(target=read_slowly)
    reader.start()
    try:
        assert wait_until(lambda: b"X-Frame: 1\r\n" in received)
        with_client = time_publishes(view, frames)
        tracemalloc.start()
        before = tracemalloc.get_traced_memory()[0]
        for i in range(1000):  # a new array each time: a kept reference would keep ~690 KB
            view.publish(frames[i % 2].copy(), STATUS)
        grown = tracemalloc.get_traced_memory()[0] - before
        tracemalloc.stop()
        time.sleep(0.3)
    finally:
        stop.set()
        reader.join()
        slow.close()
    numbers = [int(n) for n in re.findall(rb"X-Frame: (\d+)", received)]
    print(f"1000 publishes: {without_client * 1e3:.2f} ms without a client, "
          f"{with_client * 1e3:.2f} ms with a slow one; memory grown {grown / 1e6:.2f} MB; "
          f"the slow client got {len(numbers)} of {view.published} frames")
    assert without_client < 0.05 and with_client < 0.05
    assert grown < 3e6  # the newest frame, its JPEG and status: not 1000 frames (690 MB)
    assert numbers[0] == 1 and numbers == sorted(set(numbers))
    assert len(numbers) < 100  # it skipped: 4001 frames were published while it read


def test_close_ends_every_client_promptly(view):
    view.publish(smooth_frame(), STATUS)
    stalled = request(view, "/stream.mjpg", rcvbuf=4096)  # never reads: the server blocks sending to it
    events = request(view, "/events")
    waiting = request(view, "/frame.jpg?after=1")  # long poll: waits for frame 2
    keep_alive = request(view, "/status.json")  # answered, then the connection idles
    assert wait_until(lambda: view.viewers == 2)
    for shift in range(20):  # fill the stalled client's buffers
        view.publish(smooth_frame(shift=shift), STATUS)
        time.sleep(0.01)
    port = port_of(view)
    start = time.monotonic()
    view.close()
    assert time.monotonic() - start < 1.0
    for sock in (stalled, events, waiting, keep_alive):
        assert ended(sock), sock
        sock.close()
    view.close()  # twice is fine
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=1)


def test_events_stream_sends_the_newest_status(view):
    sock = request(view, "/events")
    sock.settimeout(5)
    data = b""
    while b"data: " not in data:
        data += sock.recv(65536)
    assert b"text/event-stream" in data
    view.publish(smooth_frame(), {**STATUS, "frame": 41})
    while b'"frame":41' not in data:
        data += sock.recv(65536)
    message = json.loads(data.split(b"data: ")[-1].split(b"\n\n")[0])
    assert message["status"]["frame"] == 41 and message["published"] == 1 and message["viewers"] == 1
    sock.close()


def test_publish_refuses_what_is_not_an_rgb_image(view):
    for bad in (np.zeros((4, 4), np.uint8), np.zeros((4, 4, 3), np.float32), np.zeros((4, 4, 4), np.uint8)):
        with pytest.raises(ValueError, match="H×W×3 uint8"):
            view.publish(bad, STATUS)


# -- a real browser ---------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    """One headless chromium for the module's tests (installed with apt-get when missing and root)."""
    binary = find_chromium()
    if binary is None:
        pytest.skip("chromium is not installed and cannot be installed here (apt-get as root failed or "
                    "absent)")
    with contextlib.closing(HeadlessChromium(binary,
                                             tmp_path_factory.mktemp("chromium-profile"))) as chromium:
        yield chromium


def test_frames_arrive_in_a_real_browser(view, browser, sample_clips):
    frames = clip_frames(sample_clips["bikes"], 12)
    height, width = frames[0].shape[:2]
    regions = [{"box": [0, 0, height, width // 2], "path": "seg", "score": 0.71},
               {"box": [0, width // 2, height, width], "path": "warp", "score": 0.96}]
    stop = threading.Event()

    def publisher():
        n = 0
        while not stop.is_set():
            view.publish(frames[n % len(frames)], {**STATUS, "frame": n, "regions": regions, "gpu": "none"})
            n += 1
            time.sleep(0.02)

    thread = threading.Thread(target=publisher)
    thread.start()
    try:
        page = browser.open(view.url, 1280, 800)
        browser.wait_for(page, "Number(document.body.dataset.frames) >= 3")
        shown = browser.evaluate(page, "document.body.dataset.frame")
        text = browser.evaluate(page, "Object.fromEntries(['fps', 'threshold', 'drops', 'policy', 'source', "
                                      "'regions-sum', 'extra', 'regions-map', 'state', 'now-fps', "
                                      "'now-threshold'].map("
                                      "(id) => [id, document.getElementById(id).textContent]))")
        image = browser.evaluate(page, "[document.getElementById('frame').naturalWidth, "
                                       "document.getElementById('frame').naturalHeight]")
        assert browser.wait_for(page, f"Number(document.body.dataset.frame) > {shown}")  # still coming
        png = browser.screenshot(page)
    finally:
        stop.set()
        thread.join()
    assert image == [width, height]
    assert text["fps"] == "12.5 fps" and text["threshold"] == "0.920" and text["drops"] == "3 / 120 (2.5 %)"
    assert text["policy"] == "dn:0.92" and text["source"] == "bikes.mp4" and text["state"] == "running"
    assert (text["regions-map"] == "seg 0.71warp 0.96"
            and text["regions-sum"] == "2 regions: 1 segmented · 1 warped")
    assert text["extra"] == "gpunone"  # an unknown key, shown as it is
    assert text["now-fps"] == "12.5" and text["now-threshold"] == "0.920"  # the history charts' latest
    shot = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR)
    assert shot is not None and shot.shape[:2] == (800, 1280)
    # the frame is drawn large on the left: that area holds a picture, not the page's flat background
    assert shot[250:550, 100:800].std() > 20


@pytest.mark.parametrize("state, banner", [
    ("ended", "The run has ended. This is its last frame."),
    ("reconnecting", "Source lost: reconnecting (reconnect 3)… the last frame is shown."),
])
def test_the_page_says_when_the_run_ended_or_reconnects(view, browser, sample_clips, state, banner):
    view.publish(clip_frames(sample_clips["bikes"], 1)[0], {**STATUS, "state": state, "reconnects": 2})
    page = browser.open(view.url)
    browser.wait_for(page, f"document.body.dataset.state === '{state}' "
                           "&& document.body.dataset.frames === '1'")
    assert browser.evaluate(page, "document.getElementById('banner').textContent") == banner
    assert browser.evaluate(page, "document.getElementById('state').textContent") == state


def test_the_page_waits_for_the_first_frame_then_says_when_dvsnet_stops_serving(browser):
    view = LiveView("127.0.0.1", 0)
    view.start()
    page = browser.open(view.url)
    browser.wait_for(page, "document.body.dataset.state === 'waiting' && document.getElementById('viewers')"
                           ".textContent === '1'")
    assert browser.evaluate(page, "document.getElementById('waiting').hidden") is False
    view.publish(smooth_frame(), STATUS)
    browser.wait_for(page, "document.body.dataset.frames === '1' "
                           "&& document.body.dataset.state === 'running'")
    view.close()
    browser.wait_for(page, "document.body.dataset.state === 'lost'")
    assert "Lost the connection to dvsnet" in browser.evaluate(
        page, "document.getElementById('banner').textContent")
