"""Weights files: .safetensors with the architecture recorded in its metadata.

A weights file holds a module's state dict (shipped files in fp16, training checkpoints in fp32) and
string metadata such as {"arch": "fast", "num_classes": "19"}. Loading checks names and shapes against
the architecture and fails with one line (`DvsnetError`) naming the file, the architecture and what
did not match. Shipped files live in `dvsnet/weights/<name>.safetensors`.

Identity: a weights file is known by the hash of its bytes (`weights_digest`): what names a cached ONNX
graph (dvsnet.backends), what a calibrated decision network records of its segmenter
(`segmenter_identity`) and what marks a sweep row's networks (dvsnet.sweep.weights_id).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from safetensors import SafetensorError
from safetensors.torch import load_file, safe_open, save_file
from torch import nn

from dvsnet.atomic import atomic_path
from dvsnet.digest import file_digest
from dvsnet.errors import DvsnetError
from dvsnet.models.segnets import SEGMENTERS

SHIPPED_DIR = Path(__file__).resolve().parent.parent / "weights"


def shipped_path(name: str) -> Path:
    """Path of the shipped weights for `name` (may not exist yet)."""
    return SHIPPED_DIR / f"{name}.safetensors"


def weights_file(spec: str | Path) -> Path:
    """The .safetensors file of one of our segmenters: a shipped name ("fast", "accurate") or a path."""
    return shipped_path(str(spec)) if str(spec) in SEGMENTERS else Path(spec)


def weights_digest(spec: str | Path, digits: int) -> str:
    """The first `digits` hex digits of the sha256 of `weights_file(spec)`'s bytes ("none" for no file).
    Callers keep their own digits (16 for cached graphs, 12 for calibrated DNs, 10 for sweep rows): the
    values are recorded in caches and result files."""
    return file_digest(weights_file(spec), digits)


def segmenter_identity(spec: Any) -> str:
    """What a calibrated decision network records of its segmenter: a shipped name or a file with the hash
    of its contents ("fast:1a2b3c4d5e6f", "model.onnx:..."), or an object's class name."""
    if not isinstance(spec, (str, Path)):
        return type(spec).__name__
    path = weights_file(spec)
    if not path.is_file():
        return str(spec)
    name = str(spec) if str(spec) in SEGMENTERS else path.name
    return f"{name}:{weights_digest(spec, 12)}"


def same_segmenter(recorded: str, spec: Any) -> bool:
    """Whether a DN calibrated for `recorded` (segmenter_identity) suits the segmenter `spec`: the same
    weights (hash) when both are files; objects from the Python API are taken on trust."""
    if not isinstance(spec, (str, Path)):
        return True
    current = segmenter_identity(spec)
    if ":" in recorded and ":" in current:
        return recorded.rsplit(":", 1)[1] == current.rsplit(":", 1)[1]
    return recorded == current


def save_weights(module: nn.Module, path: str | Path, metadata: dict[str, str], *,
                 half: bool = False) -> Path:
    """Write `module`'s state dict to `path` atomically (temp file in the same folder, then os.replace).

    Floating tensors are stored as fp16 when `half` (BatchNorm counters stay int64).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {}
    for key, value in module.state_dict().items():
        value = value.detach().cpu()
        if half and value.is_floating_point():
            value = value.half()
        state[key] = value.contiguous()
    with atomic_path(path) as tmp:
        save_file(state, str(tmp), metadata={k: str(v) for k, v in metadata.items()})
    return path


def read_metadata(path: str | Path) -> dict[str, str]:
    """Metadata of a .safetensors file; DvsnetError if it is missing or not a safetensors file."""
    path = Path(path)
    if not path.is_file():
        raise DvsnetError(f"weights file not found: {path}")
    try:
        with safe_open(str(path), framework="pt") as f:
            return dict(f.metadata() or {})
    except (SafetensorError, OSError, ValueError) as exc:
        raise DvsnetError(f"{path} is not a readable .safetensors file ({exc})") from None


def read_tensors(path: str | Path) -> dict[str, Any]:
    """The tensors of a .safetensors file; DvsnetError if it cannot be read as one."""
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise DvsnetError(f"{path} is not a readable .safetensors file ({exc})") from None


def load_weights(module: nn.Module, path: str | Path, arch: str) -> nn.Module:
    """Load `path` into `module` (architecture `arch`), casting to the module's dtypes.

    Raises DvsnetError (one line) when the file's recorded arch differs, or names/shapes do not match.
    """
    path = Path(path)
    meta = read_metadata(path)
    if meta.get("arch") not in (None, arch):
        raise DvsnetError(f"{path}: weights are for architecture {meta['arch']!r}, expected {arch!r}")
    state = read_tensors(path)
    expected = module.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing (e.g. {missing[0]})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected (e.g. {unexpected[0]})")
        raise DvsnetError(f"{path} does not match architecture {arch!r}: tensors " + ", ".join(parts))
    for key, ref in expected.items():
        if tuple(state[key].shape) != tuple(ref.shape):
            raise DvsnetError(
                f"{path} does not match architecture {arch!r}: {key} has shape {tuple(state[key].shape)}, "
                f"expected {tuple(ref.shape)}"
            )
        state[key] = state[key].to(ref.dtype)
    module.load_state_dict(state)
    return module


def load_matching_weights(module: nn.Module, path: str | Path) -> tuple[int, int]:
    """Load the tensors of `path` whose names and shapes match `module`'s, whatever its recorded arch
    (e.g. `fast`'s backbone and head into `accurate`); the rest keep their values.

    Returns (tensors loaded, tensors in the module); DvsnetError when none match."""
    path = Path(path)
    read_metadata(path)  # one-line error for a missing or unreadable file
    state = read_tensors(path)
    expected = module.state_dict()
    matching = {key: state[key].to(ref.dtype) for key, ref in expected.items()
                if key in state and tuple(state[key].shape) == tuple(ref.shape)}
    if not matching:
        raise DvsnetError(f"{path}: no tensor matches the network's names and shapes")
    module.load_state_dict(matching, strict=False)
    return len(matching), len(expected)
