"""dvsnet: Dynamic Video Segmentation Network (Xu et al.), fast semantic segmentation of video.

Public API (docs/design.md §3): DVSNet, PipelineConfig, FrameResult, RunStats, load_segmenter, read_frames,
live_frames, parse_policy, segment_video, DvsnetError.
"""
import os

# OpenMP threads (torch's) spin 300 000 times at every barrier before they sleep: on a machine busy with
# other work they then steal the cores the other threads need, and `dvsnet segment` ran 1.8-3.4x slower
# with 2 threads than with 1. Spinning 1 000 times costs nothing on an idle machine and keeps 2 threads
# within ~15 % of the best --threads on a loaded one (benchmarks/bench_threads.py, docs/speed.md). Set
# before torch loads its OpenMP runtime; a value the user set is kept.
os.environ.setdefault("GOMP_SPINCOUNT", "1000")

from dvsnet.auto_precision import load_segmenter
from dvsnet.config import PipelineConfig
from dvsnet.data.video import read_frames
from dvsnet.errors import DvsnetError
from dvsnet.live.feed import live_frames
from dvsnet.pipeline import DVSNet, FrameResult
from dvsnet.policy_strings import parse_policy
from dvsnet.provenance import __version__ as __version__
from dvsnet.run import segment_video
from dvsnet.stats import RunStats

__all__ = ["DVSNet", "DvsnetError", "FrameResult", "PipelineConfig", "RunStats", "live_frames",
           "load_segmenter", "parse_policy", "read_frames", "segment_video"]
