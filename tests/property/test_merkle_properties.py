"""The ledger's Merkle tree against RFC 9162's own definitions: roots, inclusion and
consistency proofs agree with a direct transcription of the RFC; every proof verifies;
any changed byte, index, size or rewritten prefix breaks it."""

from __future__ import annotations

import hashlib
import random
from functools import cache

from hypothesis import given, settings
from hypothesis import strategies as st

from projections.merkle import (
    EMPTY_ROOT,
    Frontier,
    Node,
    ProofError,
    consistency_ranges,
    hashes_of,
    inclusion_ranges,
    leaf_hash,
    verify_consistency,
    verify_inclusion,
)

# RFC 9162, 2.1.1-2.1.4, transcribed as written (slow, for small trees).


def _k(n: int) -> int:
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def rfc_mth(leaves: tuple[bytes, ...]) -> bytes:
    n = len(leaves)
    if n == 0:
        return hashlib.sha256(b"").digest()
    if n == 1:
        return hashlib.sha256(b"\x00" + leaves[0]).digest()
    k = _k(n)
    return hashlib.sha256(b"\x01" + rfc_mth(leaves[:k]) + rfc_mth(leaves[k:])).digest()


def rfc_path(m: int, leaves: tuple[bytes, ...]) -> list[bytes]:
    n = len(leaves)
    if n == 1:
        return []
    k = _k(n)
    if m < k:
        return [*rfc_path(m, leaves[:k]), rfc_mth(leaves[k:])]
    return [*rfc_path(m - k, leaves[k:]), rfc_mth(leaves[:k])]


def rfc_proof(m: int, leaves: tuple[bytes, ...]) -> list[bytes]:
    def subproof(m: int, d: tuple[bytes, ...], b: bool) -> list[bytes]:
        n = len(d)
        if m == n:
            return [] if b else [rfc_mth(d)]
        k = _k(n)
        if m <= k:
            return [*subproof(m, d[:k], b), rfc_mth(d[k:])]
        return [*subproof(m - k, d[k:], False), rfc_mth(d[:k])]

    return subproof(m, leaves, True)


# The tree as the ledger keeps it: every perfect node in a store.


class Tree:
    def __init__(self, leaves: list[bytes]) -> None:
        self.leaves = leaves
        self.store: dict[Node, bytes] = {}
        self.roots: list[bytes] = [EMPTY_ROOT]  # roots[s]: the root of the first s leaves
        frontier = Frontier()
        for data in leaves:
            self.store.update(frontier.append(data))
            self.roots.append(frontier.root())

    def nodes(self, wanted: list[Node]) -> dict[Node, bytes]:
        return {node: self.store[node] for node in wanted}

    def inclusion(self, index: int, size: int) -> list[bytes]:
        return hashes_of(inclusion_ranges(index, size), self.nodes)

    def consistency(self, first: int, second: int) -> list[bytes]:
        return hashes_of(consistency_ranges(first, second), self.nodes)


@st.composite
def leaves_strategy(draw: st.DrawFn) -> list[bytes]:
    """1 to 5,000 leaves of 0-24 random bytes (sizes drawn evenly, not mostly small)."""
    size = draw(st.integers(min_value=1, max_value=5000), label="size")
    rng = random.Random(draw(st.integers(min_value=0, max_value=2**32), label="seed"))
    leaves = [rng.randbytes(rng.randint(0, 24)) for _ in range(size)]
    repeat = draw(st.booleans(), label="a repeated leaf")
    if repeat and size > 1:  # equal leaves at different places must not confuse proofs
        leaves[rng.randrange(size)] = leaves[rng.randrange(size)]
    return leaves



@cache
def _small_tree(size: int) -> Tree:
    return Tree([i.to_bytes(4, "big") for i in range(size)])


@given(st.integers(min_value=1, max_value=70), st.data())
def test_roots_and_proofs_equal_the_rfcs_definitions(size: int, data: st.DataObject) -> None:
    tree = _small_tree(size)
    leaves = tuple(tree.leaves)
    assert tree.roots[size] == rfc_mth(leaves)
    index = data.draw(st.integers(min_value=0, max_value=size - 1))
    assert tree.inclusion(index, size) == rfc_path(index, leaves)
    first = data.draw(st.integers(min_value=1, max_value=size))
    if first < size:
        assert tree.consistency(first, size) == rfc_proof(first, leaves)
    assert tree.roots[first] == rfc_mth(leaves[:first])


@settings(max_examples=25, deadline=None)
@given(leaves_strategy())
def test_every_inclusion_proof_verifies(leaves: list[bytes]) -> None:
    tree = Tree(leaves)
    size = len(leaves)
    root = tree.roots[size]
    for index, data in enumerate(leaves):
        path = tree.inclusion(index, size)
        assert verify_inclusion(leaf_hash(data), index, size, path, root)


@settings(max_examples=60, deadline=None)
@given(leaves_strategy(), st.data())
def test_any_change_breaks_an_inclusion_proof(leaves: list[bytes], data: st.DataObject) -> None:
    tree = Tree(leaves)
    size = len(leaves)
    index = data.draw(st.integers(min_value=0, max_value=size - 1), label="index")
    path = tree.inclusion(index, size)
    root = tree.roots[size]
    leaf = leaf_hash(leaves[index])
    assert verify_inclusion(leaf, index, size, path, root)

    changed = bytearray(leaves[index] + b"\x00" * (leaves[index] == b""))
    at = data.draw(st.integers(min_value=0, max_value=len(changed) - 1), label="byte")
    changed[at] ^= data.draw(st.integers(min_value=1, max_value=255), label="flip")
    assert not verify_inclusion(leaf_hash(bytes(changed)), index, size, path, root)

    other = data.draw(st.integers(min_value=0, max_value=size), label="other index")
    if other != index and leaves[other % size] != leaves[index]:
        assert not verify_inclusion(leaf, other, size, path, root)

    if path:
        step = data.draw(st.integers(min_value=0, max_value=len(path) - 1), label="step")
        bent = [*path]
        bent[step] = bytes([bent[step][0] ^ 1]) + bent[step][1:]
        assert not verify_inclusion(leaf, index, size, bent, root)
        assert not verify_inclusion(leaf, index, size, path[:-1], root)
    assert not verify_inclusion(leaf, index, size, [*path, root], root)

    # Another size, checked against the root of that size (a checkpoint signs the two
    # together), never verifies with this path.
    resized = data.draw(st.integers(min_value=index + 1, max_value=size + 3), label="size")
    if resized != size:
        other_root = tree.roots[resized] if resized <= size else Tree(
            [*leaves, *(b"more" for _ in range(resized - size))]
        ).roots[resized]
        assert not verify_inclusion(leaf, index, resized, path, other_root)


@settings(max_examples=40, deadline=None)
@given(leaves_strategy(), st.data())
def test_consistency_proofs_verify_and_a_rewritten_prefix_breaks_them(
    leaves: list[bytes], data: st.DataObject
) -> None:
    tree = Tree(leaves)
    second = len(leaves)
    first = data.draw(st.integers(min_value=0, max_value=second), label="first")
    path = tree.consistency(first, second)
    first_root, second_root = tree.roots[first], tree.roots[second]
    assert verify_consistency(first, second, first_root, second_root, path)

    if 0 < first < second:
        rewritten = [*leaves]
        at = data.draw(st.integers(min_value=0, max_value=first - 1), label="rewritten leaf")
        rewritten[at] = rewritten[at] + b"!"
        forged_root = Tree(rewritten[:first]).roots[first]
        assert not verify_consistency(first, second, forged_root, second_root, path)
        step = data.draw(st.integers(min_value=0, max_value=len(path) - 1), label="step")
        bent = [*path]
        bent[step] = bytes([bent[step][0] ^ 1]) + bent[step][1:]
        assert not verify_consistency(first, second, first_root, second_root, bent)
        assert not verify_consistency(first, second, first_root, second_root, [])
        if first + 1 < second:
            assert not verify_consistency(
                first + 1, second, tree.roots[first + 1], second_root, path
            )


def test_impossible_proofs_are_refused() -> None:
    for index, size in ((0, 0), (3, 3), (-1, 2)):
        try:
            inclusion_ranges(index, size)
        except ProofError:
            continue
        raise AssertionError(f"inclusion of {index} in {size} was not refused")
    for first, second in ((3, 2), (-1, 4)):
        try:
            consistency_ranges(first, second)
        except ProofError:
            continue
        raise AssertionError(f"consistency {first} -> {second} was not refused")
    assert not verify_inclusion(leaf_hash(b"x"), 0, 0, [], EMPTY_ROOT)
    assert not verify_consistency(2, 1, EMPTY_ROOT, EMPTY_ROOT, [])


def test_a_path_too_short_for_the_claimed_size_is_refused() -> None:
    tree = _small_tree(8)
    leaf = leaf_hash(tree.leaves[0])
    path = tree.inclusion(0, 3)
    assert verify_inclusion(leaf, 0, 3, path, tree.roots[3])
    assert not verify_inclusion(leaf, 0, 5, path, tree.roots[3])
    proof = tree.consistency(2, 3)
    assert verify_consistency(2, 3, tree.roots[2], tree.roots[3], proof)
    assert not verify_consistency(2, 5, tree.roots[2], tree.roots[3], proof)


def test_a_frontier_read_back_from_the_store_grows_the_same_tree() -> None:
    leaves = [i.to_bytes(3, "big") for i in range(1000)]
    whole = Tree(leaves)
    for size in (1, 2, 3, 7, 8, 9, 500, 999):
        resumed = Frontier.at(size, Tree(leaves[:size]).nodes)
        for data in leaves[size:]:
            resumed.append(data)
        assert resumed.root() == whole.roots[1000]
