"""Document bytes out: streamed, with Content-Length, an ETag and single byte ranges."""

from __future__ import annotations

import re
from collections.abc import Iterator
from urllib.parse import quote

from fastapi import Request
from fastapi.responses import StreamingResponse

from adapters.http.problems import Problem
from vault.document import Document
from vault.personal import Erased

_RANGE = re.compile(r"bytes=(\d*)-(\d*)")


def content_response(
    request: Request, document: Document, content: Iterator[bytes], headers: dict[str, str]
) -> StreamingResponse:
    """The whole document (200) or the single range asked for (206); 416 if out of bounds."""
    size = document.size
    base = dict(headers)
    base["Accept-Ranges"] = "bytes"
    if not isinstance(document.content_sha256, Erased):
        base["ETag"] = f'"{document.content_sha256}"'
    if isinstance(document.filename, str):
        base["Content-Disposition"] = f"inline; filename*=UTF-8''{quote(document.filename)}"
    wanted = request.headers.get("range")
    if wanted is None:
        base["Content-Length"] = str(size)
        return StreamingResponse(
            _regrouped(content), media_type=document.content_type, headers=base
        )
    start, end = _parse_range(wanted, size)
    base["Content-Length"] = str(end - start + 1)
    base["Content-Range"] = f"bytes {start}-{end}/{size}"
    return StreamingResponse(
        _regrouped(_slice(content, start, end + 1)),
        status_code=206,
        media_type=document.content_type,
        headers=base,
    )


def _parse_range(header: str, size: int) -> tuple[int, int]:
    match = _RANGE.fullmatch(header.strip())
    if match is None or match.group(1) == match.group(2) == "":
        raise Problem(
            416, "range-not-satisfiable", "Range not satisfiable",
            "only one range of the form bytes=start-end is supported",
            headers={"Content-Range": f"bytes */{size}"},
        )
    first, last = match.groups()
    if first == "":  # a suffix: the last N bytes
        start, end = max(size - int(last), 0), size - 1
    else:
        start = int(first)
        end = min(int(last), size - 1) if last else size - 1
    if start >= size or start > end:
        raise Problem(
            416, "range-not-satisfiable", "Range not satisfiable",
            f"the document has {size} bytes",
            headers={"Content-Range": f"bytes */{size}"},
        )
    return start, end


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
