"""Shared pytest set-up: make the repository root importable (`import utils`, `data.loader`)
however pytest is started (`make test`, `pytest tests/...` from any folder); fixtures that
several test files use."""
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


@pytest.fixture
def one_torch_thread():
    """torch on one thread for the test (pytestmark = pytest.mark.usefixtures(...)): the
    networks of the HNN tests are far too small to share between threads; on a busy 2-core
    machine OpenMP's spinning threads made them 10-100x slower."""
    import torch

    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)
