"""Sealed documents round-trip at any size and fail on every kind of mutation."""

from __future__ import annotations

import io
import random

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from keys.envelope import CHUNK_BYTES, HEADER_BYTES, TAG_BYTES, open_document, seal_document
from keys.errors import TamperedDocument

MAX = 5 * 1024 * 1024
IDS = {"document_id": "doc-1", "resident_id": "res-1"}
KEY = bytes(range(32))

sizes = st.one_of(
    st.just(MAX),
    st.integers(0, MAX),
    st.integers(1, MAX // CHUNK_BYTES).flatmap(
        lambda n: st.integers(n * CHUNK_BYTES - 2, n * CHUNK_BYTES + 2)
    ),
)


def _plaintext(size: int, seed: int) -> bytes:
    return random.Random(seed).randbytes(size)


def _seal(data: bytes, piece: int) -> bytes:
    pieces = [data[i : i + piece] for i in range(0, len(data), piece)]
    return b"".join(seal_document(KEY, pieces, **IDS))


def _opens(sealed: bytes) -> bool:
    try:
        for _ in open_document(KEY, io.BytesIO(sealed), **IDS):
            pass
    except TamperedDocument:
        return False
    return True


@pytest.mark.slow
@settings(max_examples=40)
@given(size=sizes, seed=st.integers(0, 2**32), piece=st.integers(1, 3 * CHUNK_BYTES))
@example(size=MAX, seed=1, piece=1024 * 1024)
@example(size=3 * CHUNK_BYTES, seed=2, piece=CHUNK_BYTES)
def test_seal_then_open_gives_back_the_bytes(size: int, seed: int, piece: int) -> None:
    data = _plaintext(size, seed)
    sealed = _seal(data, piece)
    reads = [sealed[i : i + 4099] for i in range(0, len(sealed), 4099)]
    assert b"".join(open_document(KEY, reads, **IDS)) == data


@settings(max_examples=40)
@given(size=sizes, seed=st.integers(0, 2**32), data=st.data())
def test_every_mutation_is_detected(size: int, seed: int, data: st.DataObject) -> None:
    sealed = _seal(_plaintext(size, seed), CHUNK_BYTES)
    chunk = CHUNK_BYTES + TAG_BYTES
    chunks = [sealed[i : i + chunk] for i in range(HEADER_BYTES, len(sealed), chunk)]
    header = sealed[:HEADER_BYTES]

    position = data.draw(st.integers(0, len(sealed) - 1), label="flip at")
    bit = data.draw(st.integers(0, 7), label="bit")
    flipped = bytearray(sealed)
    flipped[position] ^= 1 << bit
    assert not _opens(bytes(flipped)), "a flipped bit went unnoticed"

    cut = data.draw(st.integers(0, len(sealed) - 1), label="truncate to")
    assert not _opens(sealed[:cut]), "truncation went unnoticed"

    extra = data.draw(st.binary(min_size=1, max_size=64), label="appended")
    assert not _opens(sealed + extra), "appended bytes went unnoticed"

    if len(chunks) >= 2:
        i, j = data.draw(
            st.lists(st.integers(0, len(chunks) - 1), min_size=2, max_size=2, unique=True),
            label="swap",
        )
        swapped = list(chunks)
        swapped[i], swapped[j] = swapped[j], swapped[i]
        assert not _opens(header + b"".join(swapped)), "reordered chunks went unnoticed"

    other = b"".join(
        seal_document(KEY, [_plaintext(size, seed + 1)], document_id="doc-2", resident_id="res-1")
    )
    assert not _opens(other), "a document opened under another document's id"
    if len(chunks) >= 2:
        other_chunks = [other[i : i + chunk] for i in range(HEADER_BYTES, len(other), chunk)]
        k = data.draw(st.integers(0, min(len(chunks), len(other_chunks)) - 1), label="splice")
        spliced = list(chunks)
        spliced[k] = other_chunks[k]
        assert not _opens(header + b"".join(spliced)), "a spliced chunk went unnoticed"
