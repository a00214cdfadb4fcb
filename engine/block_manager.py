"""Paged KV-cache blocks with reference counts and prefix caching by chained block hashes."""
from __future__ import annotations

import hashlib
from dataclasses import dataclass

from bi_bench.engine.sequence import Sequence


@dataclass
class Block:
    block_id: int
    ref_count: int = 0
    hash: bytes | None = None
    token_ids: tuple[int, ...] = ()


def chain_hash(previous: bytes, token_ids: tuple[int, ...], salt: bytes) -> bytes:
    payload = previous + salt + b",".join(str(t).encode() for t in token_ids)
    return hashlib.blake2b(payload, digest_size=16).digest()


class BlockManager:
    """Hands out blocks; full blocks stay findable by hash after release until they are reused.

    The hash chain is salted with the weight version, so a prefix computed under old weights never matches.
    """

    def __init__(self, num_blocks: int, block_size: int, enable_prefix_caching: bool) -> None:
        self.block_size = block_size
        self.enable_prefix_caching = enable_prefix_caching
        self.blocks = [Block(i) for i in range(num_blocks)]
        self.free: dict[int, None] = dict.fromkeys(range(num_blocks))  # insertion order = least recently freed
        self.by_hash: dict[bytes, int] = {}
        self.salt = b"0"
        self.hashes: dict[int, list[bytes]] = {}  # seq_id -> hashes of its full blocks, in order

    @property
    def num_free_blocks(self) -> int:
        return len(self.free)

    def blocks_needed(self, num_tokens: int) -> int:
        return -(-num_tokens // self.block_size)

    def set_weight_version(self, version: int) -> None:
        self.salt = str(version).encode()

    def reuse_cached_prefix(self, seq: Sequence) -> None:
        """Points a new sequence at cached blocks for its longest cached prefix that needs no logits."""
        if not self.enable_prefix_caching:
            return
        previous = b""
        for start in range(0, seq.num_reusable_tokens - self.block_size + 1, self.block_size):
            tokens = tuple(seq.token_ids[start:start + self.block_size])
            digest = chain_hash(previous, tokens, self.salt)
            block_id = self.by_hash.get(digest)
            if block_id is None or self.blocks[block_id].token_ids != tokens:
                break
            self._take(block_id)
            seq.block_table.append(block_id)
            self.hashes.setdefault(seq.seq_id, []).append(digest)
            previous = digest
        seq.num_cached_tokens = seq.num_computed_tokens = len(seq.block_table) * self.block_size

    def can_grow(self, seq: Sequence, num_new_tokens: int) -> bool:
        needed = self.blocks_needed(seq.num_computed_tokens + num_new_tokens) - len(seq.block_table)
        return needed <= len(self.free)

    def grow(self, seq: Sequence, num_new_tokens: int) -> None:
        while len(seq.block_table) < self.blocks_needed(seq.num_computed_tokens + num_new_tokens):
            block_id = next(iter(self.free))
            block = self.blocks[block_id]
            if block.hash is not None and self.by_hash.get(block.hash) == block_id:
                del self.by_hash[block.hash]
            block.hash, block.token_ids = None, ()
            self._take(block_id)
            seq.block_table.append(block_id)

    def register_computed_blocks(self, seq: Sequence) -> None:
        """Makes the sequence's newly completed full blocks findable by later prefixes."""
        if not self.enable_prefix_caching:
            return
        hashes = self.hashes.setdefault(seq.seq_id, [])
        for index in range(len(hashes), seq.num_computed_tokens // self.block_size):
            tokens = tuple(seq.token_ids[index * self.block_size:(index + 1) * self.block_size])
            digest = chain_hash(hashes[-1] if hashes else b"", tokens, self.salt)
            block = self.blocks[seq.block_table[index]]
            block.hash, block.token_ids = digest, tokens
            self.by_hash.setdefault(digest, block.block_id)
            hashes.append(digest)

    def release(self, seq: Sequence) -> None:
        for block_id in reversed(seq.block_table):
            block = self.blocks[block_id]
            block.ref_count -= 1
            if block.ref_count == 0:
                self.free[block_id] = None
        seq.block_table = []
        self.hashes.pop(seq.seq_id, None)

    def reset_prefix_cache(self) -> None:
        self.by_hash.clear()
        for block in self.blocks:
            block.hash, block.token_ids = None, ()

    def _take(self, block_id: int) -> None:
        self.free.pop(block_id, None)
        self.blocks[block_id].ref_count += 1
