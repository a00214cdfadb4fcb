"""torch's intra-op thread count for a block of work, restored afterwards."""
from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import torch


@contextmanager
def torch_threads(count: int) -> Iterator[None]:
    """torch's intra-op thread count is `count` inside; the previous count comes back afterwards, even on error."""
    previous = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(previous)
