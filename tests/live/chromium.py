"""Debian's chromium, headless, driven over the DevTools protocol on a pipe (`--remote-debugging-pipe`).

Real time, not `--virtual-time-budget`: a page that keeps a request open (a long poll, an event stream)
stalls the virtual clock, so `--dump-dom` would wait forever on the live view's page. Used by
tests/live/test_view.py and benchmarks/live_view_screenshot.py.

    with contextlib.closing(HeadlessChromium(find_chromium(), profile_dir)) as browser:
        page = browser.open("http://127.0.0.1:8080/", width=1280, height=800)
        browser.wait_for(page, "document.body.dataset.frames >= 2")
        png = browser.screenshot(page)
"""
from __future__ import annotations

import base64
import json
import os
import select
import shutil
import subprocess
import sys
import time
from pathlib import Path

# fds 3 and 4 are where chromium reads commands and writes replies; the parent's pipe ends are moved there
# through a high number, so neither can overwrite the other whatever numbers os.pipe gave them
_EXEC_WITH_PIPES = (
    "import fcntl, os, sys\n"
    "read, write = (fcntl.fcntl(int(fd), fcntl.F_DUPFD, 10) for fd in sys.argv[1:3])\n"
    "os.dup2(read, 3); os.dup2(write, 4)\n"
    "os.execv(sys.argv[3], sys.argv[3:])\n"
)


def find_chromium(install: bool = True) -> str | None:
    """The chromium binary; with `install`, `apt-get install -y chromium` when missing and running as root
    (then `apt-get update` and once more if the first try fails). None when there is none."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found or not install or os.name != "posix" or os.geteuid() != 0 or not shutil.which("apt-get"):
        return found
    for step in (["apt-get", "install", "-y", "chromium"], ["apt-get", "update"],
                 ["apt-get", "install", "-y", "chromium"]):
        subprocess.run(step, capture_output=True, timeout=900, check=False)
        if shutil.which("chromium"):
            return shutil.which("chromium")
    return None


class HeadlessChromium:
    """One headless chromium process; `open` pages in it, read them with `evaluate`, `screenshot` them."""

    def __init__(self, binary: str, profile: str | os.PathLike, timeout: float = 30.0):
        self.timeout = timeout
        self._next_id = 0
        self._buffer = b""
        to_browser, self._to = os.pipe()
        self._from, from_browser = os.pipe()
        Path(profile).mkdir(parents=True, exist_ok=True)
        self._log = open(Path(profile) / "chromium.log", "wb")  # noqa: SIM115 (its output for the run)
        command = [binary, "--headless", "--no-sandbox", "--disable-gpu", "--remote-debugging-pipe",
                   f"--user-data-dir={profile}", "--no-first-run", "--no-default-browser-check",
                   "--hide-scrollbars", "--mute-audio", "--disable-extensions", "about:blank"]
        self.process = subprocess.Popen(
            [sys.executable, "-c", _EXEC_WITH_PIPES, str(to_browser), str(from_browser), *command],
            pass_fds=(to_browser, from_browser), stdin=subprocess.DEVNULL, stdout=self._log, stderr=self._log)
        os.close(to_browser)
        os.close(from_browser)

    def send(self, method: str, params: dict | None = None, session: str | None = None) -> dict:
        """Send one DevTools command and return its result (events in between are skipped)."""
        self._next_id += 1
        message = {"id": self._next_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        os.write(self._to, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + self.timeout
        while True:
            reply = self._read(deadline)
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise RuntimeError(f"chromium: {method}: {reply['error']}")
                return reply.get("result", {})

    def _read(self, deadline: float) -> dict:
        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self._from], [], [], left)[0]:
                raise TimeoutError(f"chromium did not answer within {self.timeout} s")
            chunk = os.read(self._from, 1 << 20)
            if not chunk:
                raise RuntimeError(f"chromium exited (code {self.process.poll()}); see its log in the "
                                   "profile")
            self._buffer += chunk
        message, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(message)

    def open(self, url: str, width: int = 1280, height: int = 800) -> str:
        """A new tab of width×height CSS px showing `url`; returns its session id."""
        target = self.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = self.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        self.send("Emulation.setDeviceMetricsOverride",
                  {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False}, session)
        self.send("Page.navigate", {"url": url}, session)
        return session

    def evaluate(self, session: str, expression: str) -> object:
        """The value of a JavaScript expression in the page (JSON-able values only)."""
        result = self.send("Runtime.evaluate", {"expression": expression, "returnByValue": True}, session)
        if "exceptionDetails" in result:
            raise RuntimeError(f"chromium: {expression}: {result['exceptionDetails'].get('text')}")
        return result["result"].get("value")

    def wait_for(self, session: str, expression: str, timeout: float = 10.0) -> object:
        """Evaluate `expression` every 50 ms until it is truthy; returns that value (TimeoutError after
        `timeout` s, naming the expression and its last value)."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                value = self.evaluate(session, expression)
            except RuntimeError:  # the page is still loading: its names do not exist yet
                value = None
            if value:
                return value
            if time.monotonic() > deadline:
                raise TimeoutError(f"{expression!r} still {value!r} after {timeout} s")
            time.sleep(0.05)

    def screenshot(self, session: str) -> bytes:
        """A PNG of the tab's viewport."""
        return base64.b64decode(self.send("Page.captureScreenshot", {"format": "png"}, session)["data"])

    def close(self) -> None:
        if self.process.poll() is None:
            try:
                self.send("Browser.close")
            except (OSError, RuntimeError, TimeoutError):
                pass
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        for fd in (self._to, self._from):
            try:
                os.close(fd)
            except OSError:
                pass
        self._log.close()
