"""dvsnet: Dynamic Video Segmentation Network (Xu et al.), fast semantic segmentation of video.

Public API (DESIGN.md §3): DVSNet, FrameResult, load_segmenter, read_frames, parse_policy.
"""
from dvsnet.errors import DvsnetError
from dvsnet.pipeline import DVSNet, FrameResult
from dvsnet.policies import parse_policy

__version__ = "0.1.0"


def load_segmenter(spec, device="cpu"):
    """A segmentation network by name ("fast", "accurate"), weights file, or callable; see dvsnet.models."""
    from dvsnet.models import load_segmenter as _load

    return _load(spec, device=device)


def read_frames(source, **kwargs):
    """Yield H×W×3 uint8 RGB frames from a video file, a folder of frames or a glob; see dvsnet.data.video."""
    from dvsnet.data.video import read_frames as _read

    return _read(source, **kwargs)


__all__ = ["DVSNet", "DvsnetError", "FrameResult", "load_segmenter", "parse_policy", "read_frames"]
