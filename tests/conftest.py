import pytest
import torch


@pytest.fixture(autouse=True)
def _deterministic_threads():
    """Tiny models run faster and reproducibly on one intra-op thread."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
