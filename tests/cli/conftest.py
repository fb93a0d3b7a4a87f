"""Fixtures shared by the CLI tests."""
from pathlib import Path

import cv2
import pytest
import torch

from dvsnet.models import build_fast, save_weights
from tests.conftest import settle_auto_choice


@pytest.fixture(autouse=True)
def _restore_threads():
    """--threads changes process-wide settings; put them back for the tests that follow."""
    saved = torch.get_num_threads(), cv2.getNumThreads()
    yield
    torch.set_num_threads(saved[0])
    cv2.setNumThreads(saved[1])


@pytest.fixture(scope="session")
def weights(tmp_path_factory) -> Path:
    """A `fast` segmenter with seeded random weights, saved like a trained one (arch in the metadata)."""
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("weights") / "fast_random.safetensors"
    save_weights(build_fast().eval(), path, {"arch": "fast", "num_classes": "19"})
    settle_auto_choice(path)
    return path
