"""Property tests: for random trees up to 1,000 leaves every proof verifies, and any
changed byte, index or size makes it fail.

"Size" needs care: RFC 9162 verification binds a proof to (size, root) as a
pair. Two sizes can share the shape of one leaf's path (a leaf 0 path in trees
of 257 and 258 leaves both end with the hash of "everything after leaf 255"),
so the same path and the *same root* may verify under both. That is why a
size is only ever taken together with its root from a signed checkpoint. The
properties below therefore change the size together with the root that size
really has, or double or halve it (as transparency-dev/merkle's tests do).
"""

from __future__ import annotations

import functools

from hypothesis import given, settings
from hypothesis import strategies as st

from evidence.ledger import (
    consistency_path,
    inclusion_path,
    leaf_hash,
    merkle_root,
    node_hash,
    verify_consistency,
    verify_inclusion,
)
from evidence.ledger.merkle import RightEdge, split


def tree(n: int) -> tuple[list[bytes], functools._lru_cache_wrapper[bytes]]:
    leaves = [leaf_hash(i.to_bytes(4, "big")) for i in range(n)]

    @functools.cache
    def range_hash(lo: int, hi: int) -> bytes:
        if hi - lo == 1:
            return leaves[lo]
        k = split(hi - lo)
        return node_hash(range_hash(lo, lo + k), range_hash(lo + k, hi))

    return leaves, range_hash


sizes = st.integers(min_value=1, max_value=1000)


@settings(max_examples=12)
@given(n=sizes)
def test_every_inclusion_and_consistency_proof_verifies(n):
    leaves, rh = tree(n)
    root = rh(0, n)
    for i in range(n):
        assert verify_inclusion(leaves[i], i, n, inclusion_path(i, n, rh), root)
    for m in range(1, n + 1):
        assert verify_consistency(m, n, consistency_path(m, n, rh), rh(0, m), root)


@settings(max_examples=60)
@given(n=sizes, data=st.data())
def test_changed_inclusion_proofs_fail(n, data):
    leaves, rh = tree(n)
    root = rh(0, n)
    i = data.draw(st.integers(0, n - 1))
    path = inclusion_path(i, n, rh)
    assert verify_inclusion(leaves[i], i, n, path, root)
    if path:
        k = data.draw(st.integers(0, len(path) - 1))
        byte = data.draw(st.integers(0, 31))
        bit = data.draw(st.integers(0, 7))
        bad = list(path)
        bad[k] = bad[k][:byte] + bytes([bad[k][byte] ^ (1 << bit)]) + bad[k][byte + 1 :]
        assert not verify_inclusion(leaves[i], i, n, bad, root)
        assert not verify_inclusion(leaves[i], i, n, path[:-1], root)
    other = data.draw(st.integers(0, 2 * n).filter(lambda j: j != i))
    assert not verify_inclusion(leaves[i], other, n, path, root)
    if i + 1 < n:
        size = data.draw(st.integers(i + 1, n - 1))
        assert not verify_inclusion(leaves[i], i, size, path, rh(0, size))
    assert not verify_inclusion(leaves[i], i, 2 * n, path, root)
    assert not verify_inclusion(leaves[i], i, n // 2, path, root)
    assert not verify_inclusion(leaf_hash(b"other"), i, n, path, root)
    assert not verify_inclusion(leaves[i], i, n, [*path, root], root)


@settings(max_examples=60)
@given(n=st.integers(2, 1000), data=st.data())
def test_changed_consistency_proofs_fail(n, data):
    _, rh = tree(n)
    m = data.draw(st.integers(1, n - 1))
    root1, root2 = rh(0, m), rh(0, n)
    proof = consistency_path(m, n, rh)
    assert verify_consistency(m, n, proof, root1, root2)
    k = data.draw(st.integers(0, len(proof) - 1))
    byte = data.draw(st.integers(0, 31))
    bad = list(proof)
    bad[k] = bad[k][:byte] + bytes([bad[k][byte] ^ 1]) + bad[k][byte + 1 :]
    assert not verify_consistency(m, n, bad, root1, root2)
    assert not verify_consistency(m, n, proof[:-1], root1, root2)
    other_m = data.draw(st.integers(1, n).filter(lambda x: x != m))
    assert not verify_consistency(other_m, n, proof, rh(0, other_m), root2)
    assert not verify_consistency(other_m, n, proof, root1, root2)
    if m + 1 < n:
        other_n = data.draw(st.integers(m + 1, n - 1))
        assert not verify_consistency(m, other_n, proof, root1, rh(0, other_n))
    assert not verify_consistency(m, 2 * n, proof, root1, root2)
    assert not verify_consistency(m, n // 2, proof, root1, root2)
    assert not verify_consistency(m, n, proof, root2, root1) or root1 == root2


@settings(max_examples=30)
@given(n=st.integers(0, 1000))
def test_right_edge_and_recursive_root_agree(n):
    leaves, _ = tree(n)
    edge = RightEdge()
    for leaf in leaves:
        edge.push(leaf)
    assert edge.root() == merkle_root(leaves)
