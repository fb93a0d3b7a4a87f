"""What a source path names, for every reader: video and image extensions, glob patterns, natural order.

A source is a video file, a folder of images, a glob pattern of images (`'clips/*/frame_*.png'`, `**`
allowed) or one image file: dvsnet.data.video reads their frames, dvsnet.data.motion a video's motion
vectors, dvsnet.batch lists many, the CLI names results after them.
"""
from __future__ import annotations

import os
import re
from pathlib import Path

VIDEO_EXTENSIONS: tuple[str, ...] = (".mp4", ".avi", ".mkv", ".webm", ".mov", ".m4v")
IMAGE_EXTENSIONS: tuple[str, ...] = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm",
                                     ".pgm")
GLOB_CHARS = re.compile(r"[*?\[]")


def natural_key(text: str) -> list:
    """Sort key that orders embedded numbers by value: 'f2.png' < 'f10.png'."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", text)]


def is_glob(source: str) -> bool:
    """Whether `source` is a glob pattern: it holds `*`, `?` or `[` and names no existing path (a file
    called `clip[1].mp4` is that file)."""
    return bool(GLOB_CHARS.search(source)) and not os.path.exists(source)


def is_image(path: str | os.PathLike) -> bool:
    """Whether `path` has an image file's extension (IMAGE_EXTENSIONS, any case)."""
    return Path(path).suffix.lower() in IMAGE_EXTENSIONS


def holds_images(source: str | os.PathLike) -> bool:
    """Whether `source` names images rather than a video: a glob, a folder or an image file."""
    text = os.fspath(source)
    return is_glob(text) or os.path.isdir(text) or is_image(text)
