"""Video files with known defects, made by the tests (never committed)."""
from __future__ import annotations

import struct
from pathlib import Path


def lie_about_frame_count(avi: Path, announced: int) -> Path:
    """Rewrite an AVI's header so that it announces `announced` frames (the main header's dwTotalFrames and
    the video stream header's dwLength), its data untouched: a file that ends cleanly before its header's
    count, as some recorders leave them."""
    data = bytearray(avi.read_bytes())
    main = data.index(b"avih")
    struct.pack_into("<I", data, main + 8 + 16, announced)  # after the chunk id and size: 4th field
    stream = data.index(b"strh")
    struct.pack_into("<I", data, stream + 8 + 32, announced)  # fccType, fccHandler, flags, prio+lang, ...
    avi.write_bytes(bytes(data))
    return avi
