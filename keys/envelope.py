"""Streaming envelope encryption for document bytes.

A sealed document is a short header followed by AES-256-GCM chunks, after the
STREAM construction (Hoang, Reyhanitabar, Rogaway, Vizár 2015). Each chunk's
nonce is ``prefix(7) ‖ index(4) ‖ final(1)`` and its associated data binds the
header, the document id, the resident id, the chunk index and the final flag,
so truncation, reordering, splicing between documents and flipped bytes all
fail authentication. Memory stays at about two chunks for any document size.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Iterable, Iterator
from itertools import chain
from typing import Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from keys.errors import TamperedDocument

KEY_BYTES = 32
CHUNK_BYTES = 64 * 1024
TAG_BYTES = 16
_MAGIC = b"CVD1"
_PREFIX_BYTES = 7
_HEADER = struct.Struct(">4sI7s")
HEADER_BYTES = _HEADER.size
_MAX_CHUNKS = 2**32
_AAD_LABEL = b"civicvault/document/v1"


Chunk = bytes | bytearray | memoryview


class Readable(Protocol):
    """Anything with a ``read(n)`` method, such as an open binary file."""

    def read(self, size: int, /) -> bytes: ...


Source = Readable | Iterable[bytes]


def new_document_key() -> bytes:
    """A fresh random 256-bit key for one document."""
    return AESGCM.generate_key(bit_length=256)


def sealed_size(plaintext_size: int, chunk_bytes: int = CHUNK_BYTES) -> int:
    """The exact size of a sealed document holding ``plaintext_size`` bytes."""
    chunks = max(1, -(-plaintext_size // chunk_bytes))
    return HEADER_BYTES + plaintext_size + chunks * TAG_BYTES


def seal_document(
    key: bytes,
    source: Source,
    *,
    document_id: str,
    resident_id: str,
    chunk_bytes: int = CHUNK_BYTES,
) -> Iterator[bytes]:
    """Encrypt ``source`` chunk by chunk, yielding the header then each sealed chunk."""
    _check_key(key)
    if not _MIN_CHUNK <= chunk_bytes <= _MAX_CHUNK:
        raise ValueError("chunk size must be between 16 B and 16 MiB")
    header = _HEADER.pack(_MAGIC, chunk_bytes, os.urandom(_PREFIX_BYTES))
    encrypt = AESGCM(key).encrypt
    binding = _binding(header, document_id, resident_id)
    prefix = header[-_PREFIX_BYTES:]
    yield header
    for index, chunk, final in _numbered(_cut(read_pieces(source, chunk_bytes), chunk_bytes)):
        tail = _TAIL.pack(index, final)
        yield encrypt(prefix + tail, chunk, binding + tail)


def open_document(
    key: bytes,
    sealed: Source,
    *,
    document_id: str,
    resident_id: str,
) -> Iterator[bytes]:
    """Decrypt a sealed document chunk by chunk.

    Each yielded chunk is authentic; a stream that was cut short, reordered,
    spliced or altered raises :class:`TamperedDocument` at the first bad chunk
    (a missing end is only known once the input ends).
    """
    _check_key(key)
    pieces = read_pieces(sealed, CHUNK_BYTES + TAG_BYTES)
    header, rest = _split_header(pieces)
    magic, chunk_bytes, prefix = _HEADER.unpack(header)
    if magic != _MAGIC:
        raise TamperedDocument("not a civicvault sealed document")
    if not _MIN_CHUNK <= chunk_bytes <= _MAX_CHUNK:
        raise TamperedDocument("sealed document header is corrupt")
    decrypt = AESGCM(key).decrypt
    binding = _binding(header, document_id, resident_id)
    sealed_chunks = _cut(chain((rest,), pieces), chunk_bytes + TAG_BYTES)
    for index, chunk, final in _numbered(sealed_chunks):
        if final and not chunk and index == 0:
            raise TamperedDocument("sealed document has no chunks")
        if len(chunk) < TAG_BYTES:
            raise TamperedDocument(f"chunk {index} is truncated")
        try:
            tail = _TAIL.pack(index, final)
            yield decrypt(prefix + tail, chunk, binding + tail)
        except InvalidTag:
            raise TamperedDocument(f"chunk {index} failed authentication") from None


_MIN_CHUNK = 16
_MAX_CHUNK = 16 * 1024 * 1024
_LENGTH = struct.Struct(">I")
# Nonce tail and associated-data tail: the chunk index and the final-chunk flag.
_TAIL = struct.Struct(">I?")


def _check_key(key: bytes) -> None:
    if len(key) != KEY_BYTES:
        raise ValueError("document keys are 32 bytes (AES-256)")


def _binding(header: bytes, document_id: str, resident_id: str) -> bytes:
    parts = (_AAD_LABEL, header, document_id.encode(), resident_id.encode())
    return b"".join(_LENGTH.pack(len(p)) + p for p in parts)


def _numbered(chunks: Iterator[Chunk]) -> Iterator[tuple[int, Chunk, bool]]:
    """Each chunk with its index and whether it is the last; no input gives one empty last chunk."""
    previous: Chunk = next(chunks, b"")
    index = 0
    for chunk in chunks:
        yield index, previous, False
        previous = chunk
        index += 1
        if index >= _MAX_CHUNKS:
            raise ValueError("document too large for one sealed stream")
    yield index, previous, True


def read_pieces(source: Source, read_size: int) -> Iterator[bytes]:
    """The source as an iterator of byte pieces (a file-like one read ``read_size`` at a time)."""
    read = getattr(source, "read", None)
    if read is not None:
        return iter(lambda: read(read_size), b"")
    return iter(source)  # type: ignore[arg-type]


def _split_header(pieces: Iterator[bytes]) -> tuple[bytes, memoryview]:
    """The header bytes, and what is left of the piece that completed it."""
    header = bytearray()
    for piece in pieces:
        missing = HEADER_BYTES - len(header)
        header += piece[:missing]
        if len(header) == HEADER_BYTES:
            return bytes(header), _frozen(piece)[missing:]
    raise TamperedDocument("sealed document is shorter than its header")


def _cut(pieces: Iterable[bytes | memoryview], size: int) -> Iterator[Chunk]:
    """Re-cut pieces into chunks of exactly ``size`` bytes (the last may be shorter).

    A chunk inside one piece is a zero-copy view; a chunk spanning pieces is
    copied once, into a buffer of its own.
    """
    carry = bytearray()  # the start of a chunk that spans pieces
    for piece in pieces:
        view = _frozen(piece)
        start, end = 0, len(view)
        if carry:
            start = min(size - len(carry), end)
            carry += view[:start]
            if len(carry) < size:
                continue
            yield carry  # handed over whole: the next carry is a new buffer
            carry = bytearray()
        while end - start >= size:
            yield view[start : start + size]
            start += size
        carry += view[start:]
    if carry:
        yield carry


def _frozen(piece: bytes | memoryview | bytearray) -> memoryview:
    """A view that cannot change under us: mutable buffers are copied once."""
    if type(piece) is bytes or (isinstance(piece, memoryview) and type(piece.obj) is bytes):
        return memoryview(piece)
    return memoryview(bytes(piece))
