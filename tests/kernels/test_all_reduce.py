"""all_reduce variants on a real gloo group whose ranks are threads of this process."""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
import torch
import torch.distributed as dist

from bi_bench.kernels import get

WIDTH = 96


def run_ranks(size: int, fn) -> list:
    """fn(rank, group) on `size` gloo ranks at once; the results in rank order."""
    store = dist.HashStore()

    def rank_main(rank: int):
        return fn(rank, dist.ProcessGroupGloo(store, rank, size, timedelta(seconds=30)))

    with ThreadPoolExecutor(size) as pool:
        return list(pool.map(rank_main, range(size)))


def partials(rank: int, rows: int) -> torch.Tensor:
    """Rank `rank`'s partial sums; row 0 is the same whatever the row count."""
    gen = torch.Generator().manual_seed(rank)
    return torch.randn(64, WIDTH, generator=gen)[:rows] * 10 ** torch.randint(-3, 4, (WIDTH,), generator=gen)


def reduced(name: str, size: int, rows: int) -> list[torch.Tensor]:
    return run_ranks(size, lambda rank, group: get("all_reduce", name).fn(partials(rank, rows), group))


@pytest.mark.parametrize("name", ["backend", "rank_ordered", "size_dependent"])
def test_all_reduce_sums_and_agrees_across_ranks(name: str) -> None:
    outs = reduced(name, 4, 5)
    expected = sum(partials(rank, 5).double() for rank in range(4))
    assert torch.allclose(outs[0].double(), expected, rtol=1e-5, atol=1e-4)
    assert all(torch.equal(out, outs[0]) for out in outs)


def test_rank_ordered_is_row_stable() -> None:
    alone = reduced("rank_ordered", 4, 1)[0][0]
    assert all(torch.equal(reduced("rank_ordered", 4, rows)[0][0], alone) for rows in (2, 7, 33))


def test_size_dependent_changes_bits_with_batch_size() -> None:
    alone = reduced("size_dependent", 4, 1)[0][0]
    assert any(not torch.equal(reduced("size_dependent", 4, rows)[0][0], alone) for rows in (5, 33))


def test_gloo_backend_changes_bits_with_batch_size() -> None:
    # gloo's ring starts each segment of the message at another rank, and the segments follow its length.
    alone = reduced("backend", 4, 1)[0][0]
    assert any(not torch.equal(reduced("backend", 4, rows)[0][0], alone) for rows in (5, 33))
