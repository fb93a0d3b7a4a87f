"""Real streams on loopback for the live tests: a clip encoded as a live camera would send it, a sender
thread that streams it in real time (dvsnet.live.sender), free ports. Servers bind, and senders send to,
127.0.0.1 only."""
from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import cv2

from dvsnet.data.motion import encode_video
from dvsnet.data.video import read_frames
from dvsnet.live import sender as sender_module
from dvsnet.live.sender import send_video


def free_port(kind: int = socket.SOCK_DGRAM) -> int:
    """A port nothing listens on at 127.0.0.1 now (UDP by default; socket.SOCK_STREAM for TCP)."""
    with socket.socket(socket.AF_INET, kind) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def live_clip(source: str | Path, path: Path, *, width: int | None = None, fps: int = 25, keyint: int = 25,
              max_frames: int | None = None) -> Path:
    """`source`'s frames (resized to `width`, even sizes) as H.264 the way a camera streams it: no B-frames,
    an I-frame every `keyint` frames (so a receiver that joins late starts within a second), at `fps`."""
    def frames():
        for image in read_frames(source, resize=width, max_frames=max_frames):
            height, wide = image.shape[:2]
            yield (
                cv2.resize(image, (wide - wide % 2, height - height % 2)) if height % 2 or wide % 2 else image
            )

    return encode_video(frames(), path, fps=fps, keyint=keyint, bframes=0, crf=23, preset="ultrafast")


class SenderProcess:
    """dvsnet.live.sender in a process of its own (run as a script: no torch to import), for TCP, where a
    sender thread would stall the receiver in the same process (see dvsnet.live.sender)."""

    def __init__(self, path: Path, url: str, *, loop: bool = True):
        self.path, self.url, self.loop = path, url, loop
        self.process: subprocess.Popen | None = None

    def start(self) -> SenderProcess:
        command = [sys.executable, sender_module.__file__, str(self.path), self.url] + (
            ["--loop"] if self.loop else []
        )
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        self.process.stderr.readline()  # "sending ...": started
        return self

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)

    def __enter__(self) -> SenderProcess:  # noqa: PYI034 (typing.Self needs Python 3.11)
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class Sender:
    """dvsnet.live.sender.send_video on a thread (UDP: sending never waits for the receiver): `start()`
    streams `path` to `url` (looping) until `stop()`; it can be started again, as a camera that went away
    and came back."""

    def __init__(self, path: Path, url: str, *, loop: bool = True):
        self.path, self.url, self.loop = path, url, loop
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.sent = 0
        self.error: BaseException | None = None

    def start(self, seconds: float | None = None) -> Sender:
        self._stop = threading.Event()

        def send() -> None:
            try:
                self.sent += send_video(self.path, self.url, loop=self.loop, seconds=seconds, stop=self._stop)
            except BaseException as exc:  # noqa: BLE001 (seen by the test through .error)
                self.error = exc

        self._thread = threading.Thread(target=send, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def __enter__(self) -> Sender:  # noqa: PYI034 (typing.Self needs Python 3.11)
        return self.start() if self._thread is None else self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def wait_for(condition, timeout: float, every: float = 0.05) -> bool:
    """Poll `condition()` until it holds (True) or `timeout` seconds pass (False)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(every)
    return bool(condition())
