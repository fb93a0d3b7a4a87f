"""Procedural street-scene video with exact labels, flow, occlusion and depth (issue #3).

`render_sequence` yields frames with their ground truth, `render_clip` just the images, and
`write_dataset` writes a Cityscapes-layout tree (see writer.py for the files).
"""
from dvsnet.data.synthetic.render import SynthFrame, render_clip, render_sequence
from dvsnet.data.synthetic.writer import write_dataset

__all__ = ["SynthFrame", "render_clip", "render_sequence", "write_dataset"]
