"""RFC 6962 / RFC 9162 Merkle tree hashing and proofs: pure, bytes in, values out."""

from __future__ import annotations

import hashlib
import hmac
import typing

from evidence.ledger._base import EMPTY_ROOT, HASH_SIZE, MAX_PROOF_HASHES, MAX_TREE_SIZE

# ---------------------------------------------------------------------------
# RFC 6962 / RFC 9162 hashing and proofs (pure: bytes in, values out)
# ---------------------------------------------------------------------------


def leaf_hash(data: bytes) -> bytes:
    """RFC 6962 leaf hash: SHA-256(0x00 ‖ data)."""
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """RFC 6962 interior node hash: SHA-256(0x01 ‖ left ‖ right)."""
    return hashlib.sha256(b"\x01" + left + right).digest()


def split(n: int) -> int:
    """The largest power of two smaller than ``n`` (n >= 2)."""
    return 1 << ((n - 1).bit_length() - 1)


def is_power_of_two(n: int) -> bool:
    return n > 0 and n & (n - 1) == 0


RangeHash = typing.Callable[[int, int], bytes]


def merkle_root(leaf_hashes: typing.Sequence[bytes]) -> bytes:
    """MTH of a list of leaf hashes (RFC 6962 §2.1); SHA-256("") for none."""

    def mth(lo: int, hi: int) -> bytes:
        if hi - lo == 1:
            return leaf_hashes[lo]
        k = split(hi - lo)
        return node_hash(mth(lo, lo + k), mth(lo + k, hi))

    return mth(0, len(leaf_hashes)) if leaf_hashes else EMPTY_ROOT


def list_range_hash(leaf_hashes: typing.Sequence[bytes]) -> RangeHash:
    def range_hash(lo: int, hi: int) -> bytes:
        return merkle_root(leaf_hashes[lo:hi])

    return range_hash


def inclusion_path(index: int, size: int, range_hash: RangeHash) -> list[bytes]:
    """The audit path PATH(index, D[size]) of RFC 6962 §2.1.1, leaf level first.

    ``range_hash(lo, hi)`` gives MTH(D[lo:hi]).
    """
    if not 0 <= index < size:
        raise ValueError(f"leaf index {index} is not in a tree of size {size}")
    path: list[bytes] = []
    lo, hi = 0, size
    while hi - lo > 1:
        k = split(hi - lo)
        if index < lo + k:
            path.append(range_hash(lo + k, hi))
            hi = lo + k
        else:
            path.append(range_hash(lo, lo + k))
            lo += k
    path.reverse()
    return path


def consistency_path(size1: int, size2: int, range_hash: RangeHash) -> list[bytes]:
    """PROOF(size1, D[size2]) of RFC 6962 §2.1.2 (empty when size1 is 0 or equals size2)."""
    if not 0 <= size1 <= size2:
        raise ValueError(f"no consistency proof from size {size1} to size {size2}")
    if size1 in (0, size2):
        return []
    proof: list[bytes] = []
    lo, hi, m, whole = 0, size2, size1, True
    while True:
        if m == hi - lo:
            if not whole:
                proof.append(range_hash(lo, hi))
            break
        k = split(hi - lo)
        if m <= k:
            proof.append(range_hash(lo + k, hi))
            hi = lo + k
        else:
            proof.append(range_hash(lo, lo + k))
            lo += k
            m -= k
            whole = False
    proof.reverse()
    return proof


def _all_hashes(*values: bytes) -> bool:
    return all(isinstance(v, bytes) and len(v) == HASH_SIZE for v in values)


def verify_inclusion(
    leaf: bytes, index: int, size: int, path: typing.Sequence[bytes], root: bytes
) -> bool:
    """RFC 9162 §2.1.3.2: does ``path`` prove leaf hash ``leaf`` at ``index`` under ``root``?"""
    if not (0 <= index < size <= MAX_TREE_SIZE) or len(path) > MAX_PROOF_HASHES:
        return False
    if not _all_hashes(leaf, root, *path):
        return False
    fn, sn = index, size - 1
    r = leaf
    for p in path:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    return sn == 0 and hmac.compare_digest(r, root)


def verify_consistency(
    size1: int, size2: int, path: typing.Sequence[bytes], root1: bytes, root2: bytes
) -> bool:
    """RFC 9162 §2.1.4.2: does ``path`` prove the tree (size2, root2) extends (size1, root1)?"""
    if not (0 <= size1 <= size2 <= MAX_TREE_SIZE) or len(path) > MAX_PROOF_HASHES:
        return False
    if not _all_hashes(root1, root2, *path):
        return False
    if size1 == size2:
        return not path and hmac.compare_digest(root1, root2)
    if size1 == 0:
        # The empty tree is a prefix of every tree; the proof is empty.
        return not path and hmac.compare_digest(root1, EMPTY_ROOT)
    if not path:
        return False
    nodes = list(path)
    if is_power_of_two(size1):
        nodes.insert(0, root1)
    fn, sn = size1 - 1, size2 - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = nodes[0]
    for c in nodes[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    return sn == 0 and hmac.compare_digest(fr, root1) and hmac.compare_digest(sr, root2)


# Stored-hash layout (as Go's golang.org/x/mod/sumdb/tlog): leaf i is preceded
# by the hashes of leaves 0..i-1 and the subtrees they completed, which number
# 2i - popcount(i); a subtree at `level` with index n is the level-th hash
# stored after its last leaf (n + 1) * 2**level - 1.


def stored_index(level: int, n: int) -> int:
    last = ((n + 1) << level) - 1
    return 2 * last - last.bit_count() + level


def stored_count(size: int) -> int:
    return 2 * size - size.bit_count()


def size_for_count(count: int) -> int:
    """The largest tree size whose stored hashes fit in ``count`` hashes."""
    lo, hi = 0, count
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if stored_count(mid) <= count:
            lo = mid
        else:
            hi = mid - 1
    return lo


def trailing_ones(n: int) -> int:
    return ((n ^ (n + 1)) >> 1).bit_length()


class RightEdge:
    """The compact range of a growing tree: perfect subtrees on the right edge.

    ``push`` returns the hashes a leaf completes, in stored order, so the
    verifier can recompute ``hashes.bin`` while streaming the leaves.
    """

    def __init__(self) -> None:
        self.stack: list[tuple[int, bytes]] = []

    def push(self, leaf: bytes) -> list[bytes]:
        h, level, out = leaf, 0, [leaf]
        while self.stack and self.stack[-1][0] == level:
            h = node_hash(self.stack.pop()[1], h)
            level += 1
            out.append(h)
        self.stack.append((level, h))
        return out

    def root(self) -> bytes:
        if not self.stack:
            return EMPTY_ROOT
        r = self.stack[-1][1]
        for _, h in reversed(self.stack[:-1]):
            r = node_hash(h, r)
        return r
