"""RFC 6962 / RFC 9162 hashing and proofs against published test vectors.

The leaf inputs, roots, inclusion and consistency proofs below are copied from
transparency-dev/merkle (the certificate-transparency Merkle library):
``testonly/constants.go`` (``LeafInputs``, ``RootHashes``) and
``proof/verify_test.go`` (``inclusionProofs``, ``consistencyProofs``; their
leaf numbers there are 1-based). They were not computed with this code.
"""

from __future__ import annotations

import hashlib

import pytest

from evidence.ledger import (
    EMPTY_ROOT,
    consistency_path,
    inclusion_path,
    leaf_hash,
    merkle_root,
    node_hash,
    verify_consistency,
    verify_inclusion,
)
from evidence.ledger.merkle import list_range_hash, size_for_count, stored_count, stored_index

LEAVES = [
    bytes.fromhex(h)
    for h in (
        "",
        "00",
        "10",
        "2021",
        "3031",
        "40414243",
        "5051525354555657",
        "606162636465666768696a6b6c6d6e6f",
    )
]
# RootHashes() for sizes 0..8.
ROOTS = [
    bytes.fromhex(h)
    for h in (
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
        "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
        "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
        "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
        "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
    )
]


def h(x: str) -> bytes:
    return bytes.fromhex(x)


# (0-based leaf index, tree size, proof) from verify_test.go's inclusionProofs.
INCLUSION = [
    (
        0,
        8,
        [
            h("96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7"),
            h("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"),
            h("6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"),
        ],
    ),
    (
        5,
        8,
        [
            h("bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"),
            h("ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0"),
            h("d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"),
        ],
    ),
    (2, 3, [h("fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125")]),
    (
        1,
        5,
        [
            h("6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"),
            h("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"),
            h("bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"),
        ],
    ),
    (0, 1, []),
]

# (size1, size2, proof) from verify_test.go's consistencyProofs.
CONSISTENCY = [
    (1, 1, []),
    (
        1,
        8,
        [
            h("96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7"),
            h("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"),
            h("6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"),
        ],
    ),
    (
        6,
        8,
        [
            h("0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a"),
            h("ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0"),
            h("d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"),
        ],
    ),
    (
        2,
        5,
        [
            h("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"),
            h("bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"),
        ],
    ),
    (
        6,
        7,
        [
            h("0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a"),
            h("b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f"),
            h("d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"),
        ],
    ),
]

HASHES = [leaf_hash(x) for x in LEAVES]


def test_hashing_is_rfc6962():
    assert leaf_hash(b"") == hashlib.sha256(b"\x00").digest()
    assert (
        node_hash(b"a" * 32, b"b" * 32) == hashlib.sha256(b"\x01" + b"a" * 32 + b"b" * 32).digest()
    )
    assert EMPTY_ROOT == ROOTS[0]


@pytest.mark.parametrize("size", range(9))
def test_roots_match_published_vectors(size):
    assert merkle_root(HASHES[:size]) == ROOTS[size]


@pytest.mark.parametrize(("index", "size", "proof"), INCLUSION)
def test_inclusion_proofs_match_published_vectors(index, size, proof):
    assert inclusion_path(index, size, list_range_hash(HASHES)) == proof
    assert verify_inclusion(HASHES[index], index, size, proof, ROOTS[size])


@pytest.mark.parametrize(("size1", "size2", "proof"), CONSISTENCY)
def test_consistency_proofs_match_published_vectors(size1, size2, proof):
    assert consistency_path(size1, size2, list_range_hash(HASHES)) == proof
    assert verify_consistency(size1, size2, proof, ROOTS[size1], ROOTS[size2])


@pytest.mark.parametrize(("index", "size", "proof"), INCLUSION[:4])
def test_corrupted_inclusion_proofs_fail(index, size, proof):
    root, leaf = ROOTS[size], HASHES[index]
    some = bytes.fromhex("abacaba000000000000000000000000000000000000000000060061e00123456")
    bad = [
        (index - 1, size, leaf, proof, root),
        (index + 1, size, leaf, proof, root),
        (index ^ 2, size, leaf, proof, root),
        (index, size * 2, leaf, proof, root),
        (index, size // 2, leaf, proof, root),
        (index, size, leaf_hash(b"WrongLeaf"), proof, root),
        (index, size, leaf, proof, EMPTY_ROOT),
        (index, size, leaf, proof, some),
        (index, size, leaf, [*proof, b""], root),
        (index, size, leaf, [*proof, root], root),
        (index, size, leaf, [b"", *proof], root),
        (index, size, leaf, [root, *proof], root),
        (index, size, leaf, proof[:-1], root),
        (index, size, leaf, [proof[0], some, *proof[1:]], root),
    ]
    for i in range(len(proof)):
        flipped = list(proof)
        flipped[i] = bytes([flipped[i][0] ^ 8]) + flipped[i][1:]
        bad.append((index, size, leaf, flipped, root))
    for args in bad:
        assert not verify_inclusion(args[2], args[0], args[1], args[3], args[4]), args[:2]


@pytest.mark.parametrize(("size1", "size2", "proof"), CONSISTENCY[1:])
def test_corrupted_consistency_proofs_fail(size1, size2, proof):
    r1, r2 = ROOTS[size1], ROOTS[size2]
    bad = [
        (size1 - 1, size2, proof, r1, r2),
        (size1 + 1, size2, proof, r1, r2),
        (size1 ^ 2, size2, proof, r1, r2),
        (size1, size2 * 2, proof, r1, r2),
        (size1, size2 // 2, proof, r1, r2),
        (size1, size2, proof, leaf_hash(b"WrongRoot"), r2),
        (size1, size2, proof, r1, leaf_hash(b"WrongRoot")),
        (size1, size2, proof, r2, r1),
        (size1, size2, [], r1, r2),
        (size1, size2, [*proof, r1], r1, r2),
        (size1, size2, [*proof, r2], r1, r2),
        (size1, size2, [r1, *proof], r1, r2),
        (size1, size2, [r2, *proof], r1, r2),
        (size1, size2, [proof[0], *proof], r1, r2),
        (size1, size2, proof[:-1], r1, r2),
    ]
    for i in range(len(proof)):
        flipped = list(proof)
        flipped[i] = bytes([flipped[i][0] ^ 16]) + flipped[i][1:]
        bad.append((size1, size2, flipped, r1, r2))
    for args in bad:
        assert not verify_consistency(*args), args[:2]


def test_consistency_edge_cases():
    r1, r2 = ROOTS[1], ROOTS[2]
    assert verify_consistency(0, 0, [], EMPTY_ROOT, EMPTY_ROOT)
    assert verify_consistency(0, 5, [], EMPTY_ROOT, ROOTS[5])
    assert verify_consistency(3, 3, [], ROOTS[3], ROOTS[3])
    assert not verify_consistency(3, 3, [], ROOTS[3], ROOTS[4])
    assert not verify_consistency(1, 1, [EMPTY_ROOT], r1, r1)
    assert not verify_consistency(2, 1, [], r2, r1)
    assert not verify_consistency(1, 2, [], r1, r2)


def test_inclusion_edge_cases():
    assert not verify_inclusion(HASHES[0], 0, 0, [], EMPTY_ROOT)
    assert not verify_inclusion(HASHES[0], 1, 1, [], HASHES[0])
    assert not verify_inclusion(HASHES[0], -1, 1, [], HASHES[0])
    assert not verify_inclusion(b"short", 0, 1, [], b"short")
    with pytest.raises(ValueError):
        inclusion_path(3, 3, list_range_hash(HASHES))


def test_stored_hash_layout_matches_go_tlog():
    # Worked out by hand from the layout (leaf 0, leaf 1, node(0-1), leaf 2,
    # leaf 3, node(2-3), node(0-3), leaf 4, ...), which is Go's sumdb/tlog one.
    assert [stored_index(0, n) for n in range(8)] == [0, 1, 3, 4, 7, 8, 10, 11]
    assert [stored_index(1, n) for n in range(4)] == [2, 5, 9, 12]
    assert stored_index(2, 0) == 6
    assert stored_index(3, 0) == 14
    assert [stored_count(n) for n in range(9)] == [0, 1, 3, 4, 7, 8, 10, 11, 15]
    for count in range(40):
        n = size_for_count(count)
        assert stored_count(n) <= count < stored_count(n + 1)
