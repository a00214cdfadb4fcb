from __future__ import annotations

from bi_bench.engine.block_manager import BlockManager
from bi_bench.engine.sampling_params import SamplingParams
from bi_bench.engine.sequence import Sequence


def make_seq(seq_id: int, tokens: list[int]) -> Sequence:
    return Sequence(seq_id, tokens, SamplingParams(), seed=0)


def compute_all(manager: BlockManager, seq: Sequence) -> None:
    manager.grow(seq, seq.num_uncomputed_tokens)
    seq.num_computed_tokens = len(seq)
    manager.register_computed_blocks(seq)


def test_grow_and_release_return_every_block() -> None:
    manager = BlockManager(num_blocks=8, block_size=4, enable_prefix_caching=True)
    seq = make_seq(0, list(range(10)))
    assert manager.can_grow(seq, 10)
    manager.grow(seq, 10)
    assert len(seq.block_table) == 3 and manager.num_free_blocks == 5
    manager.release(seq)
    assert manager.num_free_blocks == 8 and seq.block_table == []


def test_cached_prefix_is_shared_and_leaves_a_token_to_compute() -> None:
    manager = BlockManager(num_blocks=8, block_size=4, enable_prefix_caching=True)
    first = make_seq(0, list(range(12)))
    compute_all(manager, first)
    second = make_seq(1, list(range(12)))
    manager.reuse_cached_prefix(second)
    assert second.block_table == first.block_table[:2]  # the block holding the last token is recomputed
    assert second.num_computed_tokens == 8
    assert manager.blocks[first.block_table[0]].ref_count == 2


def test_released_blocks_stay_cached_until_reused() -> None:
    manager = BlockManager(num_blocks=4, block_size=4, enable_prefix_caching=True)
    first = make_seq(0, list(range(9)))
    compute_all(manager, first)
    manager.release(first)
    again = make_seq(1, list(range(9)))
    manager.reuse_cached_prefix(again)
    assert again.num_cached_tokens == 8
    manager.release(again)
    filler = make_seq(2, [99] * 16)
    manager.grow(filler, 16)  # takes every block, evicting the cached ones
    manager.release(filler)
    late = make_seq(3, list(range(9)))
    manager.reuse_cached_prefix(late)
    assert late.num_cached_tokens == 0


def test_weight_version_salts_the_cache() -> None:
    manager = BlockManager(num_blocks=8, block_size=4, enable_prefix_caching=True)
    compute_all(manager, make_seq(0, list(range(9))))
    manager.set_weight_version(1)
    fresh = make_seq(1, list(range(9)))
    manager.reuse_cached_prefix(fresh)
    assert fresh.num_cached_tokens == 0


def test_prefix_caching_off_never_reuses() -> None:
    manager = BlockManager(num_blocks=8, block_size=4, enable_prefix_caching=False)
    compute_all(manager, make_seq(0, list(range(9))))
    again = make_seq(1, list(range(9)))
    manager.reuse_cached_prefix(again)
    assert again.num_cached_tokens == 0
