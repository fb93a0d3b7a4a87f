"""What identifies a file by its contents: the cache keys of exported graphs and confidence scores, the
weights id of a sweep row and the segmenter a calibrated decision network records all come from here."""
from __future__ import annotations

import hashlib
from pathlib import Path


def file_digest(path: str | Path, digits: int, algorithm: str = "sha256") -> str:
    """The first `digits` hex digits of the hash of the file's bytes; "none" for a path that is no file.
    Callers keep their own digits and algorithm: the values are recorded in caches and result files."""
    path = Path(path)
    if not path.is_file():
        return "none"
    return hashlib.new(algorithm, path.read_bytes()).hexdigest()[:digits]
