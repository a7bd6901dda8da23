"""Document bytes out: streamed, with Content-Length, an ETag and single byte ranges."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Annotated, Literal
from urllib.parse import quote
from weakref import WeakKeyDictionary

from anyio import CapacityLimiter, to_thread
from fastapi import Query, Request
from fastapi.responses import Response, StreamingResponse
from starlette.concurrency import iterate_in_threadpool

from adapters.http.problems import Problem
from vault.document import Document
from vault.errors import InvalidInput
from vault.inputs import ByteRange
from vault.markers import Erased

_RANGE = re.compile(r"bytes=(\d{0,19})-(\d{0,19})")
Disposition = Annotated[
    Literal["attachment", "inline"],
    Query(description="attachment (the default) saves the document; inline shows it"),
]
# A document is the resident's bytes, not the vault's page: a browser must not guess
# another type for it, run what it holds, or keep it in a shared cache.
DOCUMENT_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "sandbox; default-src 'none'",
    "Cache-Control": "private, no-store",
}


def requested_range(request: Request) -> ByteRange | None:
    """The single byte range the request asks for (``Range: bytes=first-last``), checked as
    far as it can be without the document: a malformed one is a 416 before anything is done
    (a fetch is not even judged)."""
    wanted = request.headers.get("range")
    if wanted is None:
        return None
    match = _RANGE.fullmatch(wanted.strip())
    try:
        if match is None:
            raise InvalidInput("range", "is not of the form bytes=start-end")
        first, last = (int(g) if g else None for g in match.groups())
        return ByteRange(first, last)
    except InvalidInput:
        raise Problem(
            416, "range-not-satisfiable", "Range not satisfiable",
            "only one range of the form bytes=start-end is supported",
        ) from None


async def content_response(
    request: Request,
    document: Document,
    open_content: Callable[[], Iterator[bytes]],
    headers: dict[str, str],
    wanted: ByteRange | None = None,
    disposition: str = "attachment",
) -> Response:
    """The whole document (200) or the single range ``wanted`` (206); 416 if the document
    has none of its bytes.

    ``open_content`` (key unwrap, blob open, decryption) runs on a worker thread together
    with reading the first piece, so that an error in either is still a problem response.
    A document (or range) of up to :data:`SEND_BYTES` is then sent as it is, in one hop to
    a worker thread in all; a larger one streams, a piece at a time."""
    status, framing, piece = _framing(document, headers, wanted, disposition)
    first, rest = await to_thread.run_sync(_opened, open_content, piece, limiter=_opening())
    return _response(document, status, framing, first, rest)


def read_response(
    document: Document,
    read: FirstPieces,
    headers: dict[str, str],
    wanted: ByteRange | None = None,
    disposition: str = "attachment",
) -> Response:
    """:func:`content_response` for content already read with :func:`first_pieces`."""
    status, framing, _ = _framing(document, headers, wanted, disposition)
    return _response(document, status, framing, *read)


FirstPieces = tuple[bytes, Iterator[bytes] | None]
"""The first piece of a document's bytes (or of the range asked for), and the rest, unless
they ended within the first."""


def first_pieces(wanted: ByteRange | None) -> Callable[[Document, Iterator[bytes]], FirstPieces]:
    """A reader of the first piece of a document's content (or of the range ``wanted``)."""

    def read(document: Document, content: Iterator[bytes]) -> FirstPieces:
        return _first(content, wanted.span(document.size) if wanted is not None else None)

    return read


def _framing(
    document: Document, headers: dict[str, str], wanted: ByteRange | None, disposition: str
) -> tuple[int, dict[str, str], tuple[int, int] | None]:
    """The status, the headers and the span of the response (416 if there is none)."""
    size = document.size
    base = {**headers, **DOCUMENT_HEADERS, "Accept-Ranges": "bytes"}
    if not isinstance(document.content_sha256, Erased):
        base["ETag"] = f'"{document.content_sha256}"'
    base["Content-Disposition"] = (
        f"{disposition}; filename*=UTF-8''{quote(document.filename)}"
        if isinstance(document.filename, str)
        else disposition
    )
    status = 200
    piece: tuple[int, int] | None = None
    if wanted is not None:
        piece = wanted.span(size)
        if piece is None:
            raise Problem(
                416, "range-not-satisfiable", "Range not satisfiable",
                f"the document has {size} bytes", headers={"Content-Range": f"bytes */{size}"},
            )
        base["Content-Range"] = f"bytes {piece[0]}-{piece[1] - 1}/{size}"
        status = 206
    base["Content-Length"] = str(piece[1] - piece[0] if piece else size)
    return status, base, piece


def _response(
    document: Document,
    status: int,
    headers: dict[str, str],
    first: bytes,
    rest: Iterator[bytes] | None,
) -> Response:
    if rest is None:  # it was all in the first piece: nothing left to stream
        return Response(
            first, status_code=status, media_type=document.content_type, headers=headers
        )
    return StreamingResponse(
        _body(first, rest), status_code=status, media_type=document.content_type,
        headers=headers,
    )


OPENING_THREADS = 4
"""At most this many documents are opened (key unwrapped, blob read, first piece decrypted)
at once. The reads and the decryption let go of the interpreter, so a few threads keep two
cores busy; forty (AnyIO's default), under load, mostly queue for the interpreter lock
behind the event loop and the thread that records the fetches."""


_LIMITERS: WeakKeyDictionary[asyncio.AbstractEventLoop, CapacityLimiter] = WeakKeyDictionary()


def _opening() -> CapacityLimiter:
    """The running event loop's limiter (a limiter belongs to one loop)."""
    loop = asyncio.get_running_loop()
    limiter = _LIMITERS.get(loop)
    if limiter is None:
        limiter = _LIMITERS[loop] = CapacityLimiter(OPENING_THREADS)
    return limiter


def _opened(
    open_content: Callable[[], Iterator[bytes]], piece: tuple[int, int] | None
) -> FirstPieces:
    return _first(open_content(), piece)


def _first(content: Iterator[bytes], piece: tuple[int, int] | None) -> FirstPieces:
    """Read up to the second piece: the first, and the rest unless the content ended within
    the first (then it was read to its end, checks included)."""
    pieces = _regrouped(content if piece is None else _slice(content, *piece))
    first = next(pieces, b"")
    second = next(pieces, None)
    if second is None:
        return first, None
    return first, _prepended(second, pieces)


def _prepended(head: bytes, tail: Iterator[bytes]) -> Iterator[bytes]:
    yield head
    yield from tail


async def _body(first: bytes, rest: Iterator[bytes]) -> AsyncIterator[bytes]:
    yield first
    async for piece in iterate_in_threadpool(rest):
        yield piece


SEND_BYTES = 1024 * 1024
"""Decrypted chunks are sent in pieces of about this size: each piece costs the server a
hop to a worker thread, so 64 KiB pieces would cost sixteen hops a MiB."""


def _regrouped(content: Iterator[bytes]) -> Iterator[bytes]:
    pending: list[bytes] = []
    pending_bytes = 0
    for chunk in content:
        pending.append(chunk)
        pending_bytes += len(chunk)
        if pending_bytes >= SEND_BYTES:
            yield b"".join(pending)
            pending, pending_bytes = [], 0
    if pending:
        yield b"".join(pending)


def _slice(content: Iterator[bytes], start: int, stop: int) -> Iterator[bytes]:
    """Bytes [start, stop) of a stream that must be decrypted from its beginning."""
    position = 0
    try:
        for chunk in content:
            chunk_end = position + len(chunk)
            if chunk_end > start and position < stop:
                yield chunk[max(start - position, 0) : min(stop - position, len(chunk))]
            position = chunk_end
            if position >= stop:
                break
    finally:
        close = getattr(content, "close", None)
        if close is not None:
            close()
