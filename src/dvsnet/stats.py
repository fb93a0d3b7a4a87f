"""One run's bookkeeping: frames, time per stage, regions on each path. The one place that counts them, for
`dvsnet segment` / `demo` (summary.json), `dvsnet evaluate` (its JSON), the sweep's rows and benchmarks.

Figures (`RunStats.figures()`), the names every result file uses:
    frames             frames counted
    fps, ms_per_frame  frames / pipeline time (the `total` of FrameResult.timings; decoding and file I/O
                       are outside it)
    fps_warm           the same without the first frame (its allocations and first kernel calls)
    fps_end_to_end     frames / wall time given to `add` (reading, pipeline and writing), when given
    stage_ms           mean ms per frame of each stage (dvsnet.pipeline.STAGES) and "total"
    regions_seg, regions_warp, region_frames   region-frames on each path, and in all
    seg_share, warp_share                       their shares of the region-frames
    workload_saved     share of segmentation-network region passes avoided against per-frame segmentation
                       of every region (the first frame's key regions count as passes) = warp_share
    warp_seg_ratio     warped / segmented region-frames (paper Table 3), None when none was segmented
    restarts           frames where key frames started over (first frame, new frame size)
    online             the online self-calibration's state after the last frame (dvsnet.online: samples
                       learnt, mean error of the predicted agreement on them, weights); only for runs of a
                       dn policy that calibrates online

A live run (dvsnet.live) adds `LiveStats.figures()`, summary.json's `live`:
    frames_received, frames_processed, frames_dropped   frames the source delivered, the pipeline segmented,
                       and that were replaced by a newer one before the pipeline was free (received =
                       processed + dropped); processed_share = processed / received
    latency_ms         {p50, p95, max, mean} from a frame's capture (its arrival, decoded) to its labels
    reconnects         times a broken stream was reopened
    source_fps         the frame rate the source states; received_fps, processed_fps: frames per second
                       of the run's wall time; seconds: the run's length; ended: why it ended
"""
from __future__ import annotations

from array import array
from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class RunStats:
    frames: int = 0
    pipeline_seconds: float = 0.0
    first_frame_seconds: float = 0.0
    wall_seconds: float = 0.0
    stage_seconds: dict[str, float] = field(default_factory=dict)
    regions_seg: int = 0
    regions_warp: int = 0
    restarts: list[dict[str, Any]] = field(default_factory=list)
    online: dict[str, Any] | None = None

    def add(self, result: Any, wall_seconds: float | None = None, name: str | None = None) -> None:
        """Count one FrameResult; `wall_seconds`: the frame's time end to end, when the caller measures it;
        `name`: the frame's name, recorded with a restart."""
        total = float(result.timings["total"])
        if self.frames == 0:
            self.first_frame_seconds = total
        self.frames += 1
        self.pipeline_seconds += total
        self.wall_seconds += wall_seconds or 0.0
        for stage, seconds in result.timings.items():
            self.stage_seconds[stage] = self.stage_seconds.get(stage, 0.0) + float(seconds)
        seg = sum(path == "seg" for path in result.paths)
        self.regions_seg += seg
        self.regions_warp += len(result.paths) - seg
        if getattr(result, "online", None) is not None:
            self.online = result.online
        if result.restarted:
            height, width = result.labels.shape[:2]
            self.restarts.append({"frame": result.index, "name": name, "height": height, "width": width})

    def figures(self) -> dict[str, Any]:
        """The figures so far (see the module docstring); None where nothing was counted yet."""
        regions = self.regions_seg + self.regions_warp
        warm_seconds = self.pipeline_seconds - self.first_frame_seconds
        frames = self.frames
        online = {} if self.online is None else {"online": self.online}
        return {
            "frames": frames,
            "fps": frames / self.pipeline_seconds if self.pipeline_seconds > 0 else None,
            "ms_per_frame": 1000 * self.pipeline_seconds / frames if frames else None,
            "fps_warm": (frames - 1) / warm_seconds if frames > 1 and warm_seconds > 0 else None,
            "fps_end_to_end": frames / self.wall_seconds if self.wall_seconds > 0 else None,
            "seconds_pipeline": self.pipeline_seconds,
            "seconds_end_to_end": self.wall_seconds,
            "stage_ms": {k: 1000 * v / frames for k, v in self.stage_seconds.items()} if frames else {},
            "regions_seg": self.regions_seg,
            "regions_warp": self.regions_warp,
            "region_frames": regions,
            "seg_share": self.regions_seg / regions if regions else None,
            "warp_share": self.regions_warp / regions if regions else None,
            "workload_saved": self.regions_warp / regions if regions else None,
            "warp_seg_ratio": self.regions_warp / self.regions_seg if self.regions_seg else None,
            "restarts": self.restarts,
            **online,
        }


@dataclass
class LiveStats:
    """A live run's frames and latencies (module docstring). `add` one latency per processed frame; the
    counts of received and dropped frames come from the feed when the figures are asked for."""

    source_fps: float | None = None
    latencies: array = field(default_factory=lambda: array("f"))  # seconds per processed frame (4 bytes each)

    def add(self, latency_seconds: float) -> None:
        self.latencies.append(latency_seconds)

    def latency_ms(self) -> dict[str, float | None]:
        """{p50, p95, max, mean} of the latencies so far, in ms (None before the first frame)."""
        if not self.latencies:
            return {"p50": None, "p95": None, "max": None, "mean": None}
        ms = np.frombuffer(self.latencies, dtype=np.float32).astype(np.float64) * 1000
        p50, p95 = np.percentile(ms, [50, 95])
        return {"p50": float(p50), "p95": float(p95), "max": float(ms.max()), "mean": float(ms.mean())}

    def figures(self, *, received: int, dropped: int, reconnects: int, seconds: float,
                ended: str | None) -> dict[str, Any]:
        processed = len(self.latencies)
        return {
            "frames_received": received,
            "frames_processed": processed,
            "frames_dropped": dropped,
            "processed_share": processed / received if received else None,
            "latency_ms": self.latency_ms(),
            "reconnects": reconnects,
            "source_fps": self.source_fps,
            "received_fps": received / seconds if seconds > 0 else None,
            "processed_fps": processed / seconds if seconds > 0 else None,
            "seconds": seconds,
            "ended": ended,
        }
