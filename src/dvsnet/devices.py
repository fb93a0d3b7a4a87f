"""Where the networks run: "auto" (a CUDA GPU when torch sees one, else the CPU), "cpu" or "cuda"."""
from __future__ import annotations

import time
from collections.abc import Callable

import torch

from dvsnet.errors import DvsnetError

DEVICES = ("auto", "cpu", "cuda")


def pick_device(name: str | torch.device) -> torch.device:
    """'auto' -> cuda when available else cpu; 'cpu' / 'cuda' / 'cuda:N' as given, a CUDA one checked to
    exist. A torch.device is taken as it is (any type), its GPU checked the same way."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if isinstance(name, torch.device):
        device = name
    else:
        try:
            device = torch.device(name)
        except RuntimeError:
            device = None
        if device is None or device.type not in ("cpu", "cuda"):
            raise DvsnetError(f"unknown device {name!r}; choose auto, cpu or cuda")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise DvsnetError(f"device {name!r}: no CUDA GPU is visible to this torch ({torch.__version__}); "
                          "use --device cpu or auto")
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise DvsnetError(f"device {name!r}: only {torch.cuda.device_count()} CUDA GPU(s) here")
    return device


def same_device(held: torch.device, wanted: torch.device) -> bool:
    """Whether tensors on `held` are on `wanted` ('cuda' means the current GPU, whichever index)."""
    if held.type != wanted.type:
        return False
    if wanted.type != "cuda" or wanted.index is None:
        return True
    return (held.index if held.index is not None else torch.cuda.current_device()) == wanted.index


def clock(device: torch.device) -> Callable[[], float]:
    """time.perf_counter, after waiting for the GPU's queued work on CUDA (kernels run asynchronously, so
    without the wait a stage's time would land on whichever later stage copies a result to the host).
    The waits keep the CPU from queueing the next stage early: a DVSNet frame, with more stages, pays
    more of that than a per-frame one, so GPU speed-ups measured with it are, if anything, low."""
    if device.type != "cuda":
        return time.perf_counter

    def synchronized() -> float:
        torch.cuda.synchronize(device)
        return time.perf_counter()

    return synchronized


def describe_device(device: torch.device) -> str:
    """'cpu', or 'cuda:N (<GPU name>)'."""
    if device.type != "cuda":
        return device.type
    index = device.index if device.index is not None else torch.cuda.current_device()
    return f"cuda:{index} ({torch.cuda.get_device_name(index)})"
