"""LiveView: a local web page that shows a live run as it is made, to any number of browsers at once.

The run loop calls `publish(image, status)` once per frame; the page shows the newest overlay, the run's
figures (fps, latency, drops, the threshold in force, policy, source, state) and each region's path and
score. Standard library server (http.server, one thread per connection), OpenCV for the JPEGs.

Endpoints (GET; anything else is 404):

    /              the page (static/index.html)
    /frame.jpg     the newest frame as JPEG, its publish number in the `X-Frame` header; `?after=N` waits
                   up to LONG_POLL_S for a frame newer than N (204 No Content when none came)
    /stream.mjpg   every frame as it comes, multipart/x-mixed-replace (MJPEG: ffplay, VLC, an <img> tag)
    /status.json   {"published": N, "viewers": V, "status": <the newest status as published>}
    /events        Server-Sent Events: that JSON each time a status is published

Why it never slows the pipeline: `publish` only stores a reference to the newest (image, status) and
wakes the waiting connections. Each connection has its own thread which, whenever its client is ready
for more, takes the NEWEST frame: a slow client gets fewer frames, nothing queues per client, and a
client that accepts nothing for SEND_TIMEOUT_S (or has gone) is dropped. A frame's JPEG is encoded on a
connection thread, only when a client asks for it, at most once per published frame (the first thread
that wants it encodes, the others reuse it).
"""
from __future__ import annotations

import errno
import html
import json
import math
import re
import select
import socket
import socketserver
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import cv2
import numpy as np

from dvsnet.errors import DvsnetError
from dvsnet.outputs import PATH_COLORS

DEFAULT_HOST = "127.0.0.1"  # loopback unless the user names a host: the page has no authentication
JPEG_QUALITY = 80
LONG_POLL_S = 10.0  # longest a /frame.jpg?after=N request waits for a newer frame
SEND_TIMEOUT_S = 10.0  # a client that accepts no bytes for this long is dropped
HEARTBEAT_S = 5.0  # an idle /events stream sends a comment this often (keeps it alive, finds dead clients)
CHECK_S = 0.5  # how often a waiting connection checks that its client is still there
CLOSE_S = 1.0  # close() waits at most this long for the connection threads
BOUNDARY = "dvsnet-frame"
PAGE = Path(__file__).with_name("static") / "index.html"

_ADDRESS = re.compile(r"(?:\[(?P<ipv6>[^\]]*)\]:|(?P<host>[^:\[\]]*):)?(?P<port>\d{1,5})")


def parse_address(text: str) -> tuple[str, int]:
    """`--serve`'s `[HOST:]PORT` -> (host, port): "8080" -> ("127.0.0.1", 8080), "0.0.0.0:8080",
    "localhost:8080", "[::1]:8080" -> ("::1", 8080). Port 0 asks for any free port. No host (or an empty
    one, ":8080") means 127.0.0.1. DvsnetError (one line) for anything else."""
    text = text.strip()
    match = _ADDRESS.fullmatch(text)
    usage = "expected [HOST:]PORT, e.g. 8080, 0.0.0.0:8080 or [::1]:8080"
    if match is None:
        hint = " (write an IPv6 address in brackets: [::1]:8080)" if text.count(":") > 1 else ""
        raise DvsnetError(f"bad address to serve on {text!r}: {usage}{hint}")
    port = int(match["port"])
    if port > 65535:
        raise DvsnetError(f"bad address to serve on {text!r}: port {port} is not in 0-65535")
    if match["ipv6"] is not None:
        if not match["ipv6"]:
            raise DvsnetError(f"bad address to serve on {text!r}: empty IPv6 address in brackets")
        return match["ipv6"], port
    return match["host"] or DEFAULT_HOST, port


def _url_host(host: str) -> str:
    """The host a local browser opens for a server bound to `host` (the wildcards are reached on loopback)."""
    host = {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(host, host)
    return f"[{host}]" if ":" in host else host


def _jsonable(value: object) -> object:
    """`value` with numpy scalars and arrays made plain and non-finite floats made None (JSON has no NaN)."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return _jsonable(value.tolist())
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(value)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    view: LiveView

    def server_bind(self) -> None:
        # HTTPServer.server_bind looks the host's name up in DNS (getfqdn), which can stall; nothing needs it
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = str(self.server_address[0]), int(self.server_address[1])

    def handle_error(self, request: object, client_address: object) -> None:
        pass  # a client that went away mid-response is the normal end of a stream, not worth a traceback


class _Server6(_Server):
    address_family = socket.AF_INET6


class LiveView:
    """A local web page showing a live run as it is made.

    host, port: where to serve (port 0: any free port; `url` then names it). title: the page's title.
    grid: draw the region grid over the image in the page (for a publisher that sends the plain frame;
    the overlay of dvsnet.outputs.draw_overlay has it drawn already). Use: `start()`, then `publish` per
    frame, then `close()`.
    """

    def __init__(self, host: str = DEFAULT_HOST, port: int = 0, *, title: str = "dvsnet live",
                 grid: bool = False, jpeg_quality: int = JPEG_QUALITY) -> None:
        self.host, self.port, self.title, self.grid = host, int(port), title, grid
        self.jpeg_quality = int(jpeg_quality)
        # each waiting connection's doorbell: a held Lock that publish() releases (never blocks, unlike a
        # Condition, whose lock a connection thread may hold when the publisher wants it)
        self._doorbells: set[threading.Lock] = set()
        self._publish_lock = threading.Lock()  # only publishers take it: numbering stays exact if several
        self._frame: tuple[int, np.ndarray] | None = None  # (publish number, H×W×3 uint8 RGB)
        self._status: tuple[int, object] = (0, {})  # (status number, status as published)
        self._published = 0
        self._status_number = 0
        self._closing = False
        self._encode_lock = threading.Lock()
        self._jpeg: tuple[int, bytes] = (0, b"")  # the newest encoded frame: (publish number, JPEG)
        self._json_lock = threading.Lock()
        self._json: tuple[int, bytes] = (0, b"{}")  # the newest encoded status: (status number, JSON)
        self._connections: dict[threading.Thread, socket.socket] = {}
        self._connections_lock = threading.Lock()
        self._viewers = 0
        self.encoded = 0  # JPEGs encoded so far (at most one per published frame)
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._page: bytes = b""

    # -- the run loop's side --------------------------------------------------------------------------

    def start(self) -> str:
        """Bind and serve in daemon threads; returns the page's URL. DvsnetError (one line) when the host
        is not an address of this machine or the port is taken."""
        if self._server is not None:
            return self.url
        where = f"{_url_host(self.host)}:{self.port}"
        try:
            family = socket.getaddrinfo(self.host, self.port, type=socket.SOCK_STREAM,
                                        flags=socket.AI_PASSIVE)[0][0]
        except (socket.gaierror, UnicodeError, OverflowError) as exc:
            raise DvsnetError(f"cannot serve the live view on {where}: unknown host ({exc})") from None
        server_class = _Server6 if family == socket.AF_INET6 else _Server
        try:
            server = server_class((self.host, self.port), _Handler)
        except OSError as exc:
            in_use = exc.errno == errno.EADDRINUSE
            reason = "the port is in use (pick another port)" if in_use else (exc.strerror or str(exc))
            raise DvsnetError(f"cannot serve the live view on {where}: {reason}") from None
        server.view = self
        self._page = self._render_page()
        self._closing = False
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="dvsnet-live-view", daemon=True)
        self._thread.start()
        return self.url

    def publish(self, image: np.ndarray, status: dict) -> None:
        """Show `image` (H×W×3 uint8 RGB, the overlay frame) and `status` (JSON-able: frame, fps,
        latency_ms, dropped, received, threshold, policy, source, regions [{"box": [y0, x0, y1, x1],
        "path": "seg" | "warp", "score"}], reconnects, state "running" | "reconnecting" | "ended"; unknown
        keys are shown as they are). Constant time whatever the frame size, and never waits for a client: it
        keeps a reference to both (do not write into `image` afterwards) and wakes the waiting connections;
        encoding happens on their threads."""
        if getattr(image, "ndim", 0) != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ValueError(f"publish takes an H×W×3 uint8 image, got "
                             f"{getattr(image, 'shape', type(image))} {getattr(image, 'dtype', '')}")
        with self._publish_lock:
            self._published += 1
            self._status_number += 1
            self._frame = (self._published, image)
            self._status = (self._status_number, status)
        self._ring()

    def publish_status(self, status: dict) -> None:
        """Update the status only, keeping the frame shown (e.g. "reconnecting" while no frames come).
        O(1)."""
        with self._publish_lock:
            self._status_number += 1
            self._status = (self._status_number, status)
        self._ring()

    def close(self) -> None:
        """Stop serving and end every connection (each client sees its stream end); returns within about
        CLOSE_S. Safe to call twice."""
        server = self._server
        if server is None:
            return
        self._server = None
        self._closing = True
        self._ring()
        server.shutdown()  # the accept loop ends within its poll interval
        server.server_close()
        with self._connections_lock:
            connections = dict(self._connections)
        for connection in connections.values():
            try:  # wakes a thread blocked sending to (or reading from) its client
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        deadline = time.monotonic() + CLOSE_S
        for thread in [*connections, self._thread]:
            if thread is not None:
                thread.join(max(0.0, deadline - time.monotonic()))

    @property
    def url(self) -> str:
        """The page's URL, e.g. "http://127.0.0.1:8080/" (after start)."""
        if self._server is None:
            raise RuntimeError("the live view is not serving (call start())")
        return f"http://{_url_host(self.host)}:{self._server.server_address[1]}/"

    @property
    def viewers(self) -> int:
        """Clients watching now: open /events streams (one per open page) and /stream.mjpg streams."""
        return self._viewers

    @property
    def published(self) -> int:
        """Frames published so far."""
        return self._published

    # -- the connections' side ------------------------------------------------------------------------

    def _render_page(self) -> bytes:
        colors = {path: "#{:02x}{:02x}{:02x}".format(*rgb) for path, rgb in PATH_COLORS.items()}
        page = PAGE.read_text(encoding="utf-8")
        page = page.replace("__TITLE__", html.escape(self.title))
        page = page.replace("__PATH_COLORS__", json.dumps(colors))
        page = page.replace("__GRID__", json.dumps(bool(self.grid)))
        return page.encode("utf-8")

    def _newest_jpeg(self) -> tuple[int, bytes]:
        """(publish number, JPEG) of the newest frame, encoding it if no thread has yet."""
        with self._encode_lock:  # one encoder at a time: a frame several clients want is encoded once
            number, image = self._frame  # type: ignore[misc]  (callers wait for a frame first)
            if self._jpeg[0] != number:
                bgr = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
                ok, data = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, self.jpeg_quality])
                if not ok:
                    raise RuntimeError("OpenCV could not encode the frame as JPEG")
                self._jpeg = (number, data.tobytes())
                self.encoded += 1
            return self._jpeg

    def _newest_status(self) -> tuple[int, bytes]:
        """(status number, the /status.json body) of the newest status; the status part encoded once."""
        with self._json_lock:
            number, status = self._status
            if self._json[0] != number:
                self._json = (number, json.dumps(_jsonable(status), separators=(",", ":")).encode())
            encoded = self._json[1]
        published = self._frame[0] if self._frame else 0
        head = b'{"published":%d,"viewers":%d,"status":' % (published, self._viewers)
        return number, head + encoded + b"}"

    def _frame_number(self) -> int:
        return self._frame[0] if self._frame else 0

    def _ring(self) -> None:
        """Wake every waiting connection; never blocks."""
        for bell in tuple(self._doorbells):
            try:
                bell.release()
            except RuntimeError:
                pass  # rung already: its connection has not looked yet

    def _wait(self, ready: Callable[[], bool], timeout: float, client_gone: Callable[[], bool]) -> bool:
        """Wait until `ready()` (True), the view closes, `timeout` s pass or the client goes (False)."""
        bell = threading.Lock()
        bell.acquire()
        self._doorbells.add(bell)  # before looking at ready(): a publish from now on rings it
        try:
            deadline = time.monotonic() + timeout
            while not self._closing:
                if ready():
                    return True
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                if not bell.acquire(timeout=min(CHECK_S, left)) and client_gone():
                    return False
            return False
        finally:
            self._doorbells.discard(bell)

    @contextmanager
    def _watching(self) -> Iterator[None]:
        with self._connections_lock:
            self._viewers += 1
        try:
            yield
        finally:
            with self._connections_lock:
                self._viewers -= 1

    def _register(self, connection: socket.socket) -> bool:
        """Track a connection so close() can end it; False when closing (the connection is then dropped)."""
        with self._connections_lock:
            if self._closing:
                return False
            self._connections[threading.current_thread()] = connection
            return True

    def _unregister(self) -> None:
        with self._connections_lock:
            self._connections.pop(threading.current_thread(), None)


class _Handler(BaseHTTPRequestHandler):
    """One client connection, on its own thread (HTTP/1.1 keep-alive for the page's frame requests)."""

    protocol_version = "HTTP/1.1"
    server_version = "dvsnet-live"
    timeout = SEND_TIMEOUT_S  # socket timeout for every read and write of this connection
    server: _Server

    def setup(self) -> None:
        super().setup()
        self.view = self.server.view
        if not self.view._register(self.connection):
            self.close_connection = True
            self.connection.close()

    def finish(self) -> None:
        try:
            super().finish()
        except OSError:
            pass
        finally:
            self.view._unregister()

    def log_message(self, format: str, *args: object) -> None:
        pass  # a request log per frame would flood the run's terminal

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        routes = {"/": self._page, "/index.html": self._page, "/frame.jpg": self._frame,
                  "/stream.mjpg": self._stream, "/status.json": self._status, "/events": self._events}
        route = routes.get(url.path)
        try:
            if route is None:
                self._send(HTTPStatus.NOT_FOUND, "text/plain; charset=utf-8", b"not found\n")
            else:
                route(parse_qs(url.query))
        except OSError:  # the client went away or stalled past SEND_TIMEOUT_S: drop it
            self.close_connection = True

    def _client_gone(self) -> bool:
        """True when the client closed its side (a readable socket with nothing to read)."""
        try:
            readable, _, _ = select.select([self.connection], [], [], 0)
            return bool(readable) and self.connection.recv(1, socket.MSG_PEEK) == b""
        except (OSError, ValueError):
            return True

    def _send(self, status: HTTPStatus, content_type: str, body: bytes,
              headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def _start_stream(self, content_type: str) -> None:
        self.send_response(HTTPStatus.OK)
        self.send_header("Content-Type", content_type)
        self.send_header("Cache-Control", "no-store")
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True

    def _page(self, query: dict) -> None:
        self._send(HTTPStatus.OK, "text/html; charset=utf-8", self.view._page)

    def _status(self, query: dict) -> None:
        self._send(HTTPStatus.OK, "application/json", self.view._newest_status()[1])

    def _frame(self, query: dict) -> None:
        try:
            after = int(query.get("after", ["-1"])[0])
        except ValueError:
            self._send(HTTPStatus.BAD_REQUEST, "text/plain; charset=utf-8", b"after: a frame number\n")
            return
        view = self.view
        newest = view._frame_number()
        # wait only when the client has the newest frame already (or there is none yet): any other number,
        # older or from the future (a page left open across a restart of the run), gets the newest at once
        waits = newest == 0 or after == newest
        if waits and not view._wait(lambda: view._frame_number() > newest, LONG_POLL_S, self._client_gone):
            if view._closing:
                self.close_connection = True
            else:
                self._send(HTTPStatus.NO_CONTENT, "image/jpeg", b"")
            return
        number, jpeg = view._newest_jpeg()
        self._send(HTTPStatus.OK, "image/jpeg", jpeg, {"X-Frame": str(number)})

    def _stream(self, query: dict) -> None:
        view = self.view
        self._start_stream(f"multipart/x-mixed-replace; boundary={BOUNDARY}")
        sent = 0
        with view._watching():
            while True:
                if not view._wait(lambda sent=sent: view._frame_number() > sent, HEARTBEAT_S,
                                  self._client_gone):
                    if view._closing or self._client_gone():
                        return
                    continue
                sent, jpeg = view._newest_jpeg()
                head = b"--%s\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\nX-Frame: %d\r\n\r\n" % (
                    BOUNDARY.encode(), len(jpeg), sent)
                self.wfile.write(b"".join((head, jpeg, b"\r\n")))  # one send: fewer trips for the GIL

    def _events(self, query: dict) -> None:
        view = self.view
        self._start_stream("text/event-stream")
        self.wfile.write(b"retry: 2000\n\n")
        sent = -1
        with view._watching():
            while True:
                if view._wait(lambda sent=sent: view._status[0] != sent, HEARTBEAT_S, self._client_gone):
                    sent, body = view._newest_status()
                    self.wfile.write(b"data: " + body + b"\n\n")
                elif view._closing or self._client_gone():
                    return
                else:
                    self.wfile.write(b": idle\n\n")
