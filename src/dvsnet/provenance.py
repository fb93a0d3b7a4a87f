"""Where a figure came from: software versions, the machine and its load, the threads used. Every result
file (summary.json, the evaluate JSON, the sweep's rows) records these beside its timings."""
from __future__ import annotations

import os
import platform
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch

from dvsnet.devices import describe_device

__version__ = "0.1.0"  # dvsnet's, as pyproject.toml has it; dvsnet.__version__ re-exports it


def set_threads(threads: int | None) -> None:
    """Use `threads` CPU threads in torch and in OpenCV (DIS flow) in this process; None leaves their
    defaults."""
    import cv2

    if threads:
        torch.set_num_threads(threads)
        cv2.setNumThreads(threads)


def versions() -> dict[str, str]:
    """dvsnet, Python, torch, numpy and OpenCV versions."""
    import cv2

    return {"dvsnet": __version__, "python": sys.version.split()[0], "torch": torch.__version__,
            "numpy": np.__version__, "opencv": cv2.__version__}


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def describe_machine(device: torch.device | None = None) -> dict[str, Any]:
    """CPU model, cores usable by this process, torch/OpenCV threads, load average and the device the
    networks ran on (with the GPU's name): a timing's conditions."""
    import cv2

    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count()
    return {
        "cpu": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "usable_cores": usable,
        "torch_threads": torch.get_num_threads(),
        "opencv_threads": cv2.getNumThreads(),
        "load_average_1m": round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None,
        "platform": platform.platform(),
        "device": describe_device(device or torch.device("cpu")),
    }
