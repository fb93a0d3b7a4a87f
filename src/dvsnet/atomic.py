"""Atomic file writes: nothing half-written is ever visible under a file's real name.

Every writer in the package goes through `atomic_path`: it hands out a temporary path in the target's own
folder (same file system, so the final os.replace is atomic), renames it over the target when the block
succeeds, and removes it on any failure. Files get the usual permissions (0666 less the umask), not
mkstemp's 0600.
"""
from __future__ import annotations

import json
import os
import re
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from dvsnet.errors import DvsnetError


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside `path`, hidden and ending in .tmp so that a write cut short by a
    kill never looks like a finished file; on success it replaces `path`, on failure it is deleted."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        # after the writer, not before: some (safetensors' save_file) replace the file with a 0600 one
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> None:
    """Write `data` to `path` atomically; a failure (no such folder, no space, no permission) is one
    DvsnetError line naming the file, and the old file, if any, is left as it was."""
    try:
        with atomic_path(path) as tmp:
            tmp.write_bytes(data)
    except OSError as exc:
        raise DvsnetError(f"cannot write {path}: {exc.strerror or exc}") from None


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    """Write `text` (UTF-8) to `path` atomically (errors as write_bytes_atomic)."""
    write_bytes_atomic(path, text.encode())


def write_json_atomic(path: str | os.PathLike, obj: object) -> None:
    """Write `obj` as indented JSON (UTF-8, trailing newline) to `path` atomically (errors as
    write_bytes_atomic): the one JSON writer of the package."""
    write_text_atomic(path, json.dumps(obj, indent=2) + "\n")


def write_json_new(folder: str | os.PathLike, stem: str, obj: object) -> Path:
    """Write `obj` as JSON to folder/stem.json, or stem-2.json, ...: never replaces an existing file.

    Written to a temporary file in the same folder first, then linked to the first free name (atomic, and
    a name taken meanwhile by another process is not overwritten). Returns the path written.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{stem}.", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(json.dumps(obj, indent=2) + "\n")
        os.chmod(tmp, 0o666 & ~_umask())
        for n in range(1, 10_000):
            target = folder / (f"{stem}.json" if n == 1 else f"{stem}-{n}.json")
            try:
                os.link(tmp, target)
                return target
            except FileExistsError:
                continue
        raise OSError(f"no free file name for {stem} in {folder}")
    finally:
        os.unlink(tmp)


def slug(text: str) -> str:
    """A file-name-safe form of `text`: runs of anything but letters, digits and '.' become one '-'."""
    return re.sub(r"[^A-Za-z0-9.]+", "-", text).strip("-")
