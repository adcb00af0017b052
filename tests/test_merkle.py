"""The chunk Merkle tree (since protocol version 3), written out independently: SHA-256, labelled
leaves (index bound) and nodes, RFC 6962's split; audit paths verify only where they belong."""

from __future__ import annotations

import hashlib
import struct

import pytest

from fhe_agg.protocol._merkle import leaf_hash, merkle_path, merkle_root, verify_path


def _leaf(i: int, chunk: bytes) -> bytes:
    return hashlib.sha256(b"fhe_agg/merkle-leaf/v2|" + struct.pack("<I", i) + chunk).digest()


def _node(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"fhe_agg/merkle-node/v2|" + left + right).digest()


CHUNKS = [bytes([i]) * (100 + i) for i in range(5)]


def test_leaves_and_root_known_answer() -> None:
    leaves = [leaf_hash(i, c) for i, c in enumerate(CHUNKS)]
    assert leaves == [_leaf(i, c) for i, c in enumerate(CHUNKS)]
    # five leaves split 4 + 1 (largest power of two below the count)
    left = _node(_node(leaves[0], leaves[1]), _node(leaves[2], leaves[3]))
    assert merkle_root(leaves) == _node(left, leaves[4])
    assert merkle_root(leaves[:1]) == leaves[0]
    assert (
        merkle_root(leaves).hex()
        == "a0938140f0efe2b40cdf0a1bac37b36beae18dfc5d9259bfa915ab270024fe45"
    )


def test_the_index_is_bound_and_paths_verify_only_in_place() -> None:
    leaves = [leaf_hash(i, c) for i, c in enumerate(CHUNKS)]
    root = merkle_root(leaves)
    assert leaf_hash(0, CHUNKS[1]) != leaves[1]  # a chunk at another index is another leaf
    for i in range(len(leaves)):
        path = merkle_path(leaves, i)
        assert verify_path(leaves[i], i, len(leaves), path, root)
        assert not verify_path(leaves[i], (i + 1) % len(leaves), len(leaves), path, root)
        assert not verify_path(leaves[(i + 1) % 5], i, len(leaves), path, root)


@pytest.mark.parametrize("count", [1, 2, 3, 7, 8, 9])
def test_every_count_has_verifying_paths(count: int) -> None:
    leaves = [leaf_hash(i, bytes([i])) for i in range(count)]
    root = merkle_root(leaves)
    assert all(verify_path(leaves[i], i, count, merkle_path(leaves, i), root) for i in range(count))
