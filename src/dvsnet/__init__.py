"""dvsnet: Dynamic Video Segmentation Network (Xu et al.), fast semantic segmentation of video.

Public API (docs/design.md §3): DVSNet, PipelineConfig, FrameResult, RunStats, load_segmenter, read_frames,
parse_policy, segment_video, DvsnetError.
"""
from dvsnet.config import PipelineConfig
from dvsnet.data.video import read_frames
from dvsnet.errors import DvsnetError
from dvsnet.models import load_segmenter
from dvsnet.pipeline import DVSNet, FrameResult
from dvsnet.policies import parse_policy
from dvsnet.run import segment_video
from dvsnet.stats import RunStats

__version__ = "0.1.0"

__all__ = ["DVSNet", "DvsnetError", "FrameResult", "PipelineConfig", "RunStats", "load_segmenter", "parse_policy",
           "read_frames", "segment_video"]
