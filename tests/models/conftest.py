import pytest
import torch


@pytest.fixture(autouse=True)
def _one_thread():
    """Single-threaded: on a shared 2-core machine one OpenMP thread beats two fighting other processes."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
