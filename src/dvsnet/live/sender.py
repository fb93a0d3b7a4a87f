"""Stream a video file to a URL in real time: a camera simulator for the live tests, the live benchmark and
for trying live input without a camera.

    python -m dvsnet.live.sender clip.mp4 'udp://127.0.0.1:5000?pkt_size=1316' --loop
    python -m dvsnet.live.sender clip.mp4 'tcp://127.0.0.1:5000?listen=1' --seconds 20

The file's packets are sent as they are (no re-encoding: an H.264 file stays H.264, so its motion vectors
reach the receiver), each when its presentation time comes due, in MPEG-TS (FLV for rtmp://). With
`loop` the file starts again at its end, its timestamps continued, so the receiver sees one stream. A
`tcp://...?listen=1` URL waits for the receiver to connect, as a camera's TCP server does. Needs PyAV.

Run it in a process of its own (the command line above): PyAV holds Python's lock while it waits for a
TCP receiver to connect or to read, so a sender thread would stall a receiver in the same process. The
file runs as a script too (`python path/to/sender.py ...`), without importing the rest of dvsnet (torch).
"""
from __future__ import annotations

import argparse
import signal
import sys
import threading
import time
from pathlib import Path


def _error(message: str) -> Exception:
    """A DvsnetError, imported only when one is raised: run as a script, the sender needs no torch."""
    from dvsnet.errors import DvsnetError

    return DvsnetError(message)


def container_format(url: str) -> str:
    """The muxer a URL gets: FLV for RTMP (what RTMP carries), MPEG-TS for everything else."""
    return "flv" if url.lower().startswith(("rtmp://", "rtmps://")) else "mpegts"


def send_video(path: str | Path, url: str, *, loop: bool = False, seconds: float | None = None,
               stop: threading.Event | None = None) -> int:
    """Send the video stream of the file `path` to `url` at its own pace; returns the packets sent.

    loop: start again at the end (until `seconds` or `stop`); seconds: stop after this much stream time;
    stop: an Event that ends the sending when set. Raises DvsnetError when the file or URL cannot be opened.
    """
    import av

    try:
        source = av.open(str(path))
    except av.FFmpegError as exc:
        raise _error(f"cannot read {path} ({exc})") from None
    with source:
        if not source.streams.video:
            raise _error(f"{path} has no video stream")
        video = source.streams.video[0]
        try:
            sink = av.open(url, "w", format=container_format(url))
        except av.FFmpegError as exc:
            raise _error(f"cannot send to {url} ({exc})") from None
        with sink:
            out = sink.add_stream_from_template(video)
            return _send(source, video, sink, out, loop=loop, seconds=seconds, stop=stop or threading.Event())


def _send(source, video, sink, out, *, loop: bool, seconds: float | None, stop: threading.Event) -> int:
    """The pacing loop of send_video: packet p is muxed at start + (pts(p) - pts(first)), in seconds."""
    base = video.time_base
    start = time.perf_counter()
    first: int | None = None
    offset = 0  # added to pts/dts on the file's later passes: one stream, its timestamps continued
    sent = 0
    while not stop.is_set():
        end = 0  # the pass's last timestamp + one frame: where the next pass starts
        for packet in source.demux(video):
            if packet.dts is None or packet.pts is None:  # the demuxer's flush packet
                continue
            if first is None:
                first = packet.pts
            duration = packet.duration or 0
            end = max(end, packet.pts + duration, packet.dts + duration)
            packet.pts += offset
            packet.dts += offset
            due = float((packet.pts - first) * base)
            if (seconds is not None and due >= seconds) or stop.is_set():
                return sent
            wait = start + due - time.perf_counter()
            if wait > 0:
                stop.wait(wait)
            packet.stream = out
            sink.mux(packet)
            sent += 1
        if not loop or not end:
            return sent
        offset += end - (first or 0)
        source.seek(0, stream=video)
    return sent


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m dvsnet.live.sender",
        description="Stream a video file to a URL in real time (a camera simulator).",
    )
    parser.add_argument("file", help="an H.264 (or any) video file; its packets are sent as they are")
    parser.add_argument("url", help="where to send: udp://127.0.0.1:PORT?pkt_size=1316, "
                                    "tcp://127.0.0.1:PORT?listen=1, ...")
    parser.add_argument("--loop", action="store_true", help="start the file again at its end")
    parser.add_argument("--seconds", type=float, default=None, help="stop after this much stream time")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # a clean stop: the muxer's last packets flushed
    import av

    print(f"sending {args.file} to {args.url}", file=sys.stderr, flush=True)
    try:
        send_video(args.file, args.url, loop=args.loop, seconds=args.seconds)
    except (av.FFmpegError, OSError) as exc:  # the receiver went away
        print(f"sender: stopped: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # noqa: BLE001 (DvsnetError, imported lazily: a file or URL that cannot open)
        print(f"sender: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
