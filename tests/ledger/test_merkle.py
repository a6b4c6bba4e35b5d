"""RFC 6962 / RFC 9162 Merkle trees: reference vectors, a naive recomputation, tampering, large trees."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from controlplane.ledger import merkle
from controlplane.ledger.merkle import (
    EMPTY_ROOT,
    MerkleTree,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    node_hash,
    tree_root,
    verify_consistency,
    verify_inclusion,
)


def h(text: str) -> bytes:
    return bytes.fromhex(text)


# --- Reference vectors ------------------------------------------------------------------------------
# Verbatim from the certificate-transparency reference implementation's tests,
# github.com/google/certificate-transparency cpp/merkletree/merkle_tree_test.cc (kSHA256EmptyTreeHash,
# kInputs, kSHA256Roots), and from its Go successor github.com/transparency-dev/merkle
# proof/verify_test.go (inclusionProofs, consistencyProofs; `leaf` there is 1-based).

SHA256_EMPTY_TREE_HASH = h("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")

INPUTS = [
    h(""),
    h("00"),
    h("10"),
    h("2021"),
    h("3031"),
    h("40414243"),
    h("5051525354555657"),
    h("606162636465666768696a6b6c6d6e6f"),
]

# Roots of the trees of the first 1..8 inputs.
SHA256_ROOTS = [
    h("6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"),
    h("fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"),
    h("aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77"),
    h("d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"),
    h("4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4"),
    h("76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef"),
    h("ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c"),
    h("5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328"),
]

# (leaf, 1-based; tree size; audit path)
INCLUSION_PROOFS = [
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
            h("bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"),
            h("ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0"),
            h("d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"),
        ],
    ),
    (3, 3, [h("fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125")]),
    (
        2,
        5,
        [
            h("6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"),
            h("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"),
            h("bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"),
        ],
    ),
]

# (size1, size2, proof)
CONSISTENCY_PROOFS = [
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

SOME_HASH = h("abacaba000000000000000000000000000000000000000000060061e00123456")


def reference_tree() -> MerkleTree:
    return MerkleTree(leaf_hash(data) for data in INPUTS)


# --- A naive recomputation, written straight from RFC 9162 2.1 ---------------------------------------


def _k(n: int) -> int:
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def naive_root(data: list[bytes]) -> bytes:
    if not data:
        return hashlib.sha256(b"").digest()
    if len(data) == 1:
        return hashlib.sha256(b"\x00" + data[0]).digest()
    k = _k(len(data))
    return hashlib.sha256(b"\x01" + naive_root(data[:k]) + naive_root(data[k:])).digest()


def naive_path(m: int, data: list[bytes]) -> list[bytes]:
    if len(data) == 1:
        return []
    k = _k(len(data))
    if m < k:
        return [*naive_path(m, data[:k]), naive_root(data[k:])]
    return [*naive_path(m - k, data[k:]), naive_root(data[:k])]


def naive_subproof(m: int, data: list[bytes], complete: bool) -> list[bytes]:
    n = len(data)
    if m == n:
        return [] if complete else [naive_root(data)]
    k = _k(n)
    if m <= k:
        return [*naive_subproof(m, data[:k], complete), naive_root(data[k:])]
    return [*naive_subproof(m - k, data[k:], False), naive_root(data[:k])]


def naive_proof(m: int, data: list[bytes]) -> list[bytes]:
    return naive_subproof(m, data, True) if 0 < m < len(data) else []


# --- The vectors -------------------------------------------------------------------------------------


def test_empty_tree_root_is_the_hash_of_nothing():
    assert EMPTY_ROOT == SHA256_EMPTY_TREE_HASH
    assert tree_root([]) == SHA256_EMPTY_TREE_HASH
    assert MerkleTree().root() == SHA256_EMPTY_TREE_HASH
    assert reference_tree().root(0) == SHA256_EMPTY_TREE_HASH


def test_roots_of_the_reference_tree_for_every_size():
    tree = reference_tree()
    for size in range(1, 9):
        assert tree.root(size) == SHA256_ROOTS[size - 1], size
        assert tree_root([leaf_hash(d) for d in INPUTS[:size]]) == SHA256_ROOTS[size - 1]


def test_roots_when_the_tree_is_built_leaf_by_leaf_or_in_chunks():
    one_by_one = MerkleTree()
    for size, data in enumerate(INPUTS, start=1):
        one_by_one.extend([leaf_hash(data)])
        assert one_by_one.size == size
        assert one_by_one.root() == SHA256_ROOTS[size - 1]
    chunks = MerkleTree(leaf_hash(d) for d in INPUTS[:3])
    assert chunks.root() == SHA256_ROOTS[2]
    chunks.extend(leaf_hash(d) for d in INPUTS[3:])
    assert chunks.root() == SHA256_ROOTS[7]


@pytest.mark.parametrize(("leaf", "size", "proof"), INCLUSION_PROOFS)
def test_reference_inclusion_proofs_are_generated_and_verify(leaf, size, proof):
    tree = reference_tree()
    assert tree.inclusion_proof(leaf - 1, size) == proof
    assert inclusion_proof(tree, leaf - 1, size) == proof
    leaf_h = leaf_hash(INPUTS[leaf - 1])
    assert verify_inclusion(leaf_h, leaf - 1, size, proof, SHA256_ROOTS[size - 1])


@pytest.mark.parametrize(("size1", "size2", "proof"), CONSISTENCY_PROOFS)
def test_reference_consistency_proofs_are_generated_and_verify(size1, size2, proof):
    tree = reference_tree()
    assert tree.consistency_proof(size1, size2) == proof
    assert consistency_proof(size1, size2, tree) == proof
    assert verify_consistency(size1, size2, SHA256_ROOTS[size1 - 1], SHA256_ROOTS[size2 - 1], proof)


def test_every_proof_of_the_reference_tree_verifies():
    tree = reference_tree()
    for size in range(1, 9):
        root = tree.root(size)
        for index in range(size):
            assert verify_inclusion(tree.leaf(index), index, size, tree.inclusion_proof(index, size), root)
        for old in range(0, size + 1):
            old_root = tree.root(old)
            assert verify_consistency(old, size, old_root, root, tree.consistency_proof(old, size))


# --- Tampering (the probes of the reference implementation's verifier tests) -------------------------


def _flip(node: bytes, mask: int) -> bytes:
    return bytes([node[0] ^ mask]) + node[1:]


@pytest.mark.parametrize(("leaf", "size", "proof"), INCLUSION_PROOFS[1:])
def test_a_changed_leaf_index_size_root_or_proof_fails_inclusion(leaf, size, proof):
    index, root, leaf_h = leaf - 1, SHA256_ROOTS[size - 1], leaf_hash(INPUTS[leaf - 1])
    probes = [
        (leaf_h, index - 1, size, proof, root),
        (leaf_h, index + 1, size, proof, root),
        (leaf_h, index ^ 2, size, proof, root),
        (leaf_h, index, size * 2, proof, root),
        (leaf_h, index, size // 2, proof, root),
        (leaf_hash(b"WrongLeaf"), index, size, proof, root),
        (b"WrongLeaf", index, size, proof, root),
        (leaf_h, index, size, proof, SHA256_EMPTY_TREE_HASH),
        (leaf_h, index, size, proof, SOME_HASH),
        (leaf_h, index, size, [*proof, b""], root),
        (leaf_h, index, size, [*proof, root], root),
        (leaf_h, index, size, [b"", *proof], root),
        (leaf_h, index, size, [root, *proof], root),
    ]
    for position in range(len(proof)):
        changed = list(proof)
        changed[position] = _flip(changed[position], 8)
        probes.append((leaf_h, index, size, changed, root))
    if proof:
        probes.append((leaf_h, index, size, proof[:-1], root))
    if len(proof) > 1:
        probes.append((leaf_h, index, size, [proof[0], SOME_HASH, *proof[1:]], root))
    for probe in probes:
        assert not verify_inclusion(*probe), probe


@pytest.mark.parametrize(("size1", "size2", "proof"), [p for p in CONSISTENCY_PROOFS if p[2]])
def test_a_changed_size_root_or_proof_fails_consistency(size1, size2, proof):
    root1, root2 = SHA256_ROOTS[size1 - 1], SHA256_ROOTS[size2 - 1]
    probes = [
        (size1 - 1, size2, root1, root2, proof),
        (size1 + 1, size2, root1, root2, proof),
        (size1 ^ 2, size2, root1, root2, proof),
        (size1, size2 * 2, root1, root2, proof),
        (size1, size2 // 2, root1, root2, proof),
        (size1, size2, b"WrongRoot", root2, proof),
        (size1, size2, root1, b"WrongRoot", proof),
        (size1, size2, SOME_HASH, root2, proof),
        (size1, size2, root2, root1, proof),
        (size1, size2, root1, root2, []),
        (size1, size2, root1, root2, [*proof, b""]),
        (size1, size2, root1, root2, [*proof, root1]),
        (size1, size2, root1, root2, [*proof, root2]),
        (size1, size2, root1, root2, [b"", *proof]),
        (size1, size2, root1, root2, [root1, *proof]),
        (size1, size2, root1, root2, [root2, *proof]),
        (size1, size2, root1, root2, [proof[0], *proof]),
        (size1, size2, root1, root2, proof[:-1]),
    ]
    for position in range(len(proof)):
        changed = list(proof)
        changed[position] = _flip(changed[position], 16)
        probes.append((size1, size2, root1, root2, changed))
    for probe in probes:
        assert not verify_consistency(*probe), probe


def test_degenerate_consistency_cases():
    root1, root2 = SHA256_ROOTS[0], SHA256_ROOTS[1]
    assert verify_consistency(0, 0, root1, root1, [])
    assert verify_consistency(0, 1, root1, root2, [])
    assert verify_consistency(1, 1, root2, root2, [])
    assert not verify_consistency(0, 0, root1, root2, [])
    assert not verify_consistency(1, 1, root1, root2, [])
    assert not verify_consistency(1, 0, root1, root2, [])
    assert not verify_consistency(2, 1, root1, root2, [])
    assert not verify_consistency(1, 2, root1, root2, [])
    assert not verify_consistency(0, 0, EMPTY_ROOT, EMPTY_ROOT, [EMPTY_ROOT])
    assert not verify_consistency(0, 1, EMPTY_ROOT, EMPTY_ROOT, [EMPTY_ROOT])
    assert not verify_consistency(1, 1, EMPTY_ROOT, EMPTY_ROOT, [EMPTY_ROOT])


def test_degenerate_inclusion_cases():
    for index, size in ((0, 0), (1, 0), (2, 1), (-1, 4)):
        assert not verify_inclusion(SOME_HASH, index, size, [], EMPTY_ROOT)
    single = leaf_hash(b"data")
    assert verify_inclusion(single, 0, 1, [], single)
    assert not verify_inclusion(single, 0, 1, [], b"")
    assert not verify_inclusion(b"", 0, 1, [], single)


def test_out_of_range_requests_are_refused():
    tree = reference_tree()
    with pytest.raises(IndexError):
        tree.inclusion_proof(8, 8)
    with pytest.raises(IndexError):
        tree.inclusion_proof(0, 9)
    with pytest.raises(IndexError):
        tree.consistency_proof(5, 4)
    with pytest.raises(IndexError):
        tree.root(9)
    with pytest.raises(ValueError, match="32 bytes"):
        tree.extend([b"short"])


# --- Against the naive recomputation -----------------------------------------------------------------


def test_every_index_and_every_consistency_pair_up_to_64_leaves_match_the_naive_definition():
    data = [i.to_bytes(2, "big") for i in range(64)]
    tree = MerkleTree(leaf_hash(d) for d in data)
    for size in range(1, 65):
        prefix = data[:size]
        root = naive_root(prefix)
        assert tree.root(size) == root
        for index in range(size):
            proof = tree.inclusion_proof(index, size)
            assert proof == naive_path(index, prefix)
            assert verify_inclusion(leaf_hash(data[index]), index, size, proof, root)
        for old in range(0, size + 1):
            proof = tree.consistency_proof(old, size)
            assert proof == naive_proof(old, prefix)
            assert verify_consistency(old, size, naive_root(data[:old]), root, proof)


@settings(max_examples=150, deadline=None)
@given(data=st.lists(st.binary(max_size=40), min_size=1, max_size=70), picks=st.data())
def test_property_proofs_match_the_naive_definition_and_verify(data, picks):
    tree = MerkleTree(leaf_hash(d) for d in data)
    size = picks.draw(st.integers(min_value=1, max_value=len(data)))
    index = picks.draw(st.integers(min_value=0, max_value=size - 1))
    old = picks.draw(st.integers(min_value=0, max_value=size))
    prefix = data[:size]
    root = naive_root(prefix)
    assert tree.root(size) == root
    path = tree.inclusion_proof(index, size)
    assert path == naive_path(index, prefix)
    assert verify_inclusion(leaf_hash(data[index]), index, size, path, root)
    proof = tree.consistency_proof(old, size)
    assert proof == naive_proof(old, prefix)
    assert verify_consistency(old, size, naive_root(data[:old]), root, proof)
    # Any single changed leaf changes the root, and the old proof no longer verifies.
    changed_leaf = leaf_hash(data[index] + b"!")
    assert not verify_inclusion(changed_leaf, index, size, path, root)
    if 0 < old < size:
        assert not verify_consistency(
            old, size, naive_root([*data[: old - 1], b"x" + data[old - 1]]), root, proof
        )


@settings(max_examples=60, deadline=None)
@given(sizes=st.lists(st.integers(min_value=0, max_value=9), min_size=1, max_size=12))
def test_property_extending_in_any_chunks_gives_the_same_levels(sizes):
    total = sum(sizes)
    leaves = [leaf_hash(i.to_bytes(4, "big")) for i in range(total)]
    grown = MerkleTree()
    done = 0
    for chunk in sizes:
        grown.extend(leaves[done : done + chunk])
        done += chunk
        assert grown.root() == tree_root(leaves[:done])
    assert grown._levels == MerkleTree(leaves)._levels


# --- Event leaves and helpers ------------------------------------------------------------------------


def test_event_leaf_is_the_leaf_hash_of_the_32_byte_chain_hash():
    chain_hash = hashlib.sha256(b"event").hexdigest()
    assert merkle.event_leaf_hash(chain_hash) == hashlib.sha256(b"\x00" + bytes.fromhex(chain_hash)).digest()
    tree = MerkleTree.from_event_hashes([chain_hash])
    assert tree.root() == merkle.event_leaf_hash(chain_hash)
    with pytest.raises(ValueError, match="32 bytes"):
        merkle.event_leaf_hash("abcd")


def test_node_hash_and_hex_round_trip():
    left, right = leaf_hash(b"a"), leaf_hash(b"b")
    assert node_hash(left, right) == hashlib.sha256(b"\x01" + left + right).digest()
    proof = [left, right]
    assert merkle.proof_from_hex(merkle.proof_hex(proof)) == proof
    with pytest.raises(ValueError, match="32 bytes"):
        merkle.proof_from_hex(["abcd"])


def test_a_large_tree_answers_proofs_for_old_and_new_sizes():
    leaves = [hashlib.sha256(i.to_bytes(4, "big")).digest() for i in range(5000)]
    tree = MerkleTree(leaves)
    for size in (1, 1000, 4096, 4097, 4999, 5000):
        root = tree.root(size)
        assert root == naive_root_of_leaf_hashes(leaves[:size])
        for index in (0, size // 3, size - 1):
            assert verify_inclusion(leaves[index], index, size, tree.inclusion_proof(index, size), root)
    for old, new in ((1, 5000), (1000, 4097), (4096, 5000), (3333, 4444)):
        proof = tree.consistency_proof(old, new)
        assert verify_consistency(old, new, tree.root(old), tree.root(new), proof)


def naive_root_of_leaf_hashes(leaves: list[bytes]) -> bytes:
    level = list(leaves)
    # Right-edge promotion (a lone node moves up unchanged) gives exactly RFC 9162's split tree.
    while len(level) > 1:
        paired = [node_hash(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
        if len(level) % 2:
            paired.append(level[-1])
        level = paired
    return level[0]


def test_a_full_edge_cache_is_emptied_and_answers_stay_the_same():
    class TinyCache(MerkleTree):
        _EDGE_CACHE = 2

    leaves = [leaf_hash(i.to_bytes(2, "big")) for i in range(100)]
    small, plain = TinyCache(leaves), MerkleTree(leaves)
    for size in range(1, 101):
        assert small.root(size) == plain.root(size) == naive_root_of_leaf_hashes(leaves[:size])
        assert small.inclusion_proof(size // 2, size) == plain.inclusion_proof(size // 2, size)
    assert len(small._edges) <= 2
