"""Merkle tree hashing, proofs and their verification, after RFC 9162 (Certificate
Transparency v2), section 2.1.

The tree over leaves ``d[0..n)``::

    MTH({})    = SHA-256()
    MTH({d0})  = SHA-256(0x00 || d0)
    MTH(D[n])  = SHA-256(0x01 || MTH(D[0:k]) || MTH(D[k:n])),  k the largest power of 2 < n

Every left subtree on the way down is *perfect*: its size is a power of two and its
start a multiple of it. So a store that keeps the hash of each perfect subtree — node
``(level, index)`` covers leaves ``[index * 2**level, (index + 1) * 2**level)`` — can
answer any proof with about ``log2(n)`` lookups, and a tree grows by appending leaves
without rereading old ones (:class:`Frontier`).

The two ``verify_*`` functions need nothing but :mod:`hashlib`: a resident or auditor
can copy them out and check a proof offline.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

Node = tuple[int, int]
"""(level, index): the perfect subtree over leaves [index * 2**level, (index + 1) * 2**level)."""


def leaf_hash(data: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


EMPTY_ROOT = hashlib.sha256(b"").digest()


class ProofError(ValueError):
    """A proof was asked for sizes or an index the tree cannot have."""


def _split(size: int) -> int:
    """The largest power of two smaller than ``size`` (size >= 2)."""
    return 1 << ((size - 1).bit_length() - 1)


def perfect_parts(start: int, end: int) -> list[Node]:
    """The perfect subtrees that make up the subtree over leaves ``[start, end)``, left to
    right (largest first), for a range met on the way down the tree: ``start`` is a
    multiple of the largest power of two not above ``end - start``."""
    parts: list[Node] = []
    while start < end:
        level = (end - start).bit_length() - 1
        parts.append((level, start >> level))
        start += 1 << level
    return parts


def range_hash(parts: Iterable[bytes]) -> bytes:
    """MTH of a range from the hashes of its :func:`perfect_parts`, in order."""
    hashes = list(parts)
    if not hashes:
        return EMPTY_ROOT
    result = hashes[-1]
    for part in reversed(hashes[:-1]):
        result = node_hash(part, result)
    return result


def inclusion_ranges(index: int, size: int) -> list[tuple[int, int]]:
    """The leaf ranges whose hashes form the inclusion path of leaf ``index`` in a tree
    of ``size`` leaves, from the leaf upward (RFC 9162 PATH(m, D[n]))."""
    if not 0 <= index < size:
        raise ProofError(f"leaf {index} is not in a tree of {size} leaves")
    ranges: list[tuple[int, int]] = []
    start, end = 0, size
    while end - start > 1:
        k = _split(end - start)
        if index - start < k:
            ranges.append((start + k, end))
            end = start + k
        else:
            ranges.append((start, start + k))
            start += k
    ranges.reverse()
    return ranges


def consistency_ranges(first: int, second: int) -> list[tuple[int, int]]:
    """The leaf ranges whose hashes form the consistency proof from a tree of ``first``
    leaves to one of ``second`` (RFC 9162 PROOF(m, D[n])); empty when the sizes are equal
    or the first tree is empty."""
    if not 0 <= first <= second:
        raise ProofError(f"no consistency proof from {first} leaves to {second}")
    if first in (0, second):
        return []
    ranges: list[tuple[int, int]] = []
    start, end, whole = 0, second, True
    m = first
    while True:
        if m == end - start:
            if not whole:
                ranges.append((start, end))
            break
        k = _split(end - start)
        if m <= k:
            ranges.append((start + k, end))
            end = start + k
        else:
            ranges.append((start, start + k))
            start += k
            m -= k
            whole = False
    ranges.reverse()
    return ranges


def hashes_of(
    ranges: list[tuple[int, int]], nodes: Callable[[list[Node]], dict[Node, bytes]]
) -> list[bytes]:
    """The hash of each range, reading every perfect node it needs in one call to ``nodes``."""
    parts = [perfect_parts(start, end) for start, end in ranges]
    found = nodes(sorted({node for nodes_of in parts for node in nodes_of}))
    return [range_hash(found[node] for node in nodes_of) for nodes_of in parts]


@dataclass
class Frontier:
    """The right edge of a growing tree: the roots of its perfect subtrees, largest first.

    :meth:`append` returns the perfect nodes the new leaf completes, for a store to keep.
    """

    size: int = 0
    roots: list[tuple[Node, bytes]] = field(default_factory=list)

    def append(self, data: bytes) -> list[tuple[Node, bytes]]:
        return self.append_hash(leaf_hash(data))

    def append_hash(self, digest: bytes) -> list[tuple[Node, bytes]]:
        """Append a leaf by its hash (``leaf_hash(data)``)."""
        index = self.size
        made: list[tuple[Node, bytes]] = [((0, index), digest)]
        level = 0
        while self.roots and self.roots[-1][0][0] == level:
            _, left = self.roots.pop()
            level += 1
            index >>= 1
            digest = node_hash(left, digest)
            made.append(((level, index), digest))
        self.roots.append(((level, index), digest))
        self.size += 1
        return made

    def root(self) -> bytes:
        return range_hash(digest for _, digest in self.roots)

    @classmethod
    def at(cls, size: int, nodes: Callable[[list[Node]], dict[Node, bytes]]) -> Frontier:
        """The frontier of a stored tree of ``size`` leaves, read back from its nodes."""
        wanted = perfect_parts(0, size)
        found = nodes(wanted)
        return cls(size, [(node, found[node]) for node in wanted])


def verify_inclusion(
    leaf: bytes, index: int, size: int, path: list[bytes], root: bytes
) -> bool:
    """Whether ``path`` proves that a leaf whose hash is ``leaf`` sits at ``index`` in the
    tree of ``size`` leaves with ``root`` (RFC 9162, 2.1.3.2). Uses only hashlib, through
    :func:`node_hash`."""
    if not 0 <= index < size:
        return False
    fn, sn, r = index, size - 1, leaf
    for p in path:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    return sn == 0 and r == root


def verify_consistency(
    first: int, second: int, first_root: bytes, second_root: bytes, path: list[bytes]
) -> bool:
    """Whether ``path`` proves that the tree of ``second`` leaves with ``second_root``
    extends the tree of ``first`` leaves with ``first_root`` (RFC 9162, 2.1.4.2).
    Uses only hashlib, through :func:`node_hash`."""

    if not 0 <= first <= second:
        return False
    if first == second:
        return not path and first_root == second_root
    if first == 0:
        return not path  # the empty tree is a prefix of every tree
    if not path:
        return False
    if first & (first - 1) == 0:  # a power of two: the first root is its own subtree
        path = [first_root, *path]
    fn, sn = first - 1, second - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    return fr == first_root and sr == second_root and sn == 0
