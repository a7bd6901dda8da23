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
    if not 16 <= chunk_bytes <= 16 * 1024 * 1024:
        raise ValueError("chunk size must be between 16 B and 16 MiB")
    header = _HEADER.pack(_MAGIC, chunk_bytes, os.urandom(_PREFIX_BYTES))
    aead = AESGCM(key)
    binding = _binding(header, document_id, resident_id)
    prefix = header[-_PREFIX_BYTES:]
    yield header
    for index, (chunk, final) in enumerate(_with_final_flag(_fixed_chunks(source, chunk_bytes))):
        if index >= _MAX_CHUNKS:
            raise ValueError("document too large for one sealed stream")
        yield aead.encrypt(_nonce(prefix, index, final), chunk, _aad(binding, index, final))


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
    reader = _ChunkReader(sealed)
    header = reader.take(HEADER_BYTES)
    if len(header) != HEADER_BYTES:
        raise TamperedDocument("sealed document is shorter than its header")
    magic, chunk_bytes, prefix = _HEADER.unpack(header)
    if magic != _MAGIC:
        raise TamperedDocument("not a civicvault sealed document")
    if not 16 <= chunk_bytes <= 16 * 1024 * 1024:
        raise TamperedDocument("sealed document header is corrupt")
    aead = AESGCM(key)
    binding = _binding(header, document_id, resident_id)
    sealed_chunks = _with_final_flag(reader.chunks(chunk_bytes + TAG_BYTES))
    saw_final = False
    for index, (chunk, final) in enumerate(sealed_chunks):
        if len(chunk) < TAG_BYTES:
            raise TamperedDocument(f"chunk {index} is truncated")
        try:
            yield aead.decrypt(_nonce(prefix, index, final), chunk, _aad(binding, index, final))
        except InvalidTag:
            raise TamperedDocument(f"chunk {index} failed authentication") from None
        saw_final = final
    if not saw_final:
        raise TamperedDocument("sealed document has no chunks")


def _check_key(key: bytes) -> None:
    if len(key) != KEY_BYTES:
        raise ValueError("document keys are 32 bytes (AES-256)")


def _binding(header: bytes, document_id: str, resident_id: str) -> bytes:
    parts = (_AAD_LABEL, header, document_id.encode(), resident_id.encode())
    return b"".join(struct.pack(">I", len(p)) + p for p in parts)


def _nonce(prefix: bytes, index: int, final: bool) -> bytes:
    return prefix + struct.pack(">I?", index, final)


def _aad(binding: bytes, index: int, final: bool) -> bytes:
    return binding + struct.pack(">Q?", index, final)


def _with_final_flag(chunks: Iterator[bytes]) -> Iterator[tuple[bytes, bool]]:
    """Pair each chunk with whether it is the last; an empty input gives one empty final chunk."""
    previous = next(chunks, None)
    if previous is None:
        yield b"", True
        return
    for chunk in chunks:
        yield previous, False
        previous = chunk
    yield previous, True


def _fixed_chunks(source: Source, size: int) -> Iterator[bytes]:
    """Re-cut any source into chunks of exactly ``size`` bytes (the last may be shorter)."""
    return _ChunkReader(source).chunks(size)


class _ChunkReader:
    """Reads exact byte counts from a file-like object or an iterable of pieces."""

    def __init__(self, source: Source) -> None:
        self._read = getattr(source, "read", None)
        self._pieces: Iterator[bytes] | None = (
            None if self._read is not None else iter(source)  # type: ignore[arg-type]
        )
        self._buffer = bytearray()

    def take(self, size: int) -> bytes:
        """Up to ``size`` bytes; fewer only at the end of the input."""
        if not self._buffer:
            if self._read is not None:
                return self._read_fully(size)
            piece = self._next_piece(size)
            if len(piece) == size or not piece:
                return piece
            self._buffer += piece
        while len(self._buffer) < size:
            piece = self._next_piece(size - len(self._buffer))
            if not piece:
                break
            self._buffer += piece
        out = bytes(self._buffer[:size])
        del self._buffer[:size]
        return out

    def chunks(self, size: int) -> Iterator[bytes]:
        while chunk := self.take(size):
            yield chunk

    def _read_fully(self, size: int) -> bytes:
        assert self._read is not None
        first = self._read(size)
        if len(first) == size or not first:
            return bytes(first)
        parts = [first]
        missing = size - len(first)
        while missing:
            more = self._read(missing)
            if not more:
                break
            parts.append(more)
            missing -= len(more)
        return b"".join(parts)

    def _next_piece(self, wanted: int) -> bytes:
        if self._read is not None:
            return bytes(self._read(wanted))
        assert self._pieces is not None
        for piece in self._pieces:
            if piece:
                return bytes(piece)
        return b""
