"""dvsnet: Dynamic Video Segmentation Network (Xu et al.), fast semantic segmentation of video.

Public API (DESIGN.md §3): DVSNet, FrameResult, load_segmenter, read_frames, parse_policy, DvsnetError.
"""
from dvsnet.data.video import read_frames
from dvsnet.errors import DvsnetError
from dvsnet.models import load_segmenter
from dvsnet.pipeline import DVSNet, FrameResult
from dvsnet.policies import parse_policy

__version__ = "0.1.0"

__all__ = ["DVSNet", "DvsnetError", "FrameResult", "load_segmenter", "parse_policy", "read_frames"]
