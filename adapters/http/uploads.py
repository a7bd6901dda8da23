"""Multipart uploads parsed as they stream in: the file is spooled (memory stays small), the
size limit is enforced while receiving, and the declared type is checked against the bytes."""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import IO, TYPE_CHECKING, Any

if TYPE_CHECKING:
    from python_multipart.multipart import MultipartCallbacks

from fastapi import Request
from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header

from adapters.formats import ACCEPTED_TYPES, UnsupportedContent, identify
from adapters.http.fields import DOC_TYPE_SCHEMA, TITLE_SCHEMA
from adapters.http.problems import Problem
from adapters.http.strict_json import NotStrictJson, loads_strict
from vault.errors import InvalidInput
from vault.inputs import RFC3339_PATTERN, DocumentDetails, parse_rfc3339

SPOOL_IN_MEMORY = 1024 * 1024
FORM_FIELDS = ("file", "doc_type", "title", "expires_at", "attributes")
"""The parts an upload may have, each at most once: any other, or one again, is refused as
its headers end, so a flood of small parts stops at the second."""
MAX_BOUNDARY = 70
"""RFC 2046: a multipart boundary is 1 to 70 characters."""


@dataclass(frozen=True)
class UploadBounds:
    """How much an upload may hold: its file, and each form field and part header."""

    file_bytes: int
    field_bytes: int

    @property
    def part_bytes(self) -> int:
        """A text part: its header, its value and its boundary line, each at their bound."""
        return 2 * self.field_bytes + MAX_BOUNDARY + 8

    @property
    def body_bytes(self) -> int:
        """The whole multipart body: the file, and each part at its bound."""
        return self.file_bytes + len(FORM_FIELDS) * self.part_bytes


@dataclass(frozen=True)
class Gate:
    """A text part that must open an upload's body, checked as soon as it is read and
    before any part after it: a page's CSRF token (a browser sends a form's fields in the
    order the form lists them). Missing, late or refused, the upload is a 403."""

    field: str
    admits: Callable[[str], bool]


UPLOAD_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file", "doc_type", "title"],
                    "additionalProperties": False,
                    "properties": {
                        "file": {
                            "type": "string",
                            "format": "binary",
                            "description": f"one of {', '.join(ACCEPTED_TYPES)}",
                        },
                        "doc_type": {**DOC_TYPE_SCHEMA, "example": "id-card"},
                        "title": {**TITLE_SCHEMA, "example": "居民身份证"},
                        "attributes": {
                            "type": "string",
                            "description": "what the document says, for forms to be filled "
                            "from (反填): a JSON object of texts, each an attribute the "
                            "catalogue names for the type",
                            "example": '{"name": "张伟", "number": "110101199001011234"}',
                        },
                        "expires_at": {
                            "type": "string", "format": "date-time", "pattern": RFC3339_PATTERN,
                        },
                    },
                }
            }
        },
    }
}
"""The OpenAPI request body of a document upload (the route parses the body itself)."""


@dataclass
class Upload:
    """The form fields and the spooled file of one multipart request."""

    fields: dict[str, str] = field(default_factory=dict)
    file: IO[bytes] | None = None
    filename: str | None = None
    declared_type: str | None = None
    size: int = 0

    def stream(self) -> IO[bytes]:
        """The spooled file, rewound."""
        if self.file is None:
            raise Problem(422, "invalid-input", "Invalid input", "file: is required")
        self.file.seek(0)
        return self.file

    def content_type(self) -> str:
        """The file's media type: the declared one if a parser of that type reads the
        file through (see :mod:`adapters.formats`), else 415. Parsing is work: call it on a
        worker thread."""
        try:
            return identify(self.stream(), self.declared_type)
        except UnsupportedContent as e:
            raise _unsupported(str(e)) from None

    def close(self) -> None:
        if self.file is not None:
            self.file.close()

    def details(self) -> DocumentDetails:
        """The form fields (and the file's type, checked against its bytes) as document
        details."""
        expires = self.fields.get("expires_at")  # left out: none; sent, even empty: checked
        expires_at = parse_rfc3339("expires_at", expires) if expires is not None else None
        doc_type = self.fields.get("doc_type", "")
        title = self.fields.get("title", "")
        attributes = _attributes(self.fields.get("attributes"))
        DocumentDetails(doc_type=doc_type, title=title, filename=self.filename,
                        attributes=attributes)  # checked before the file is parsed
        return DocumentDetails(
            doc_type=doc_type,
            title=title,
            content_type=self.content_type(),
            filename=self.filename,
            expires_at=expires_at,
            attributes=attributes,
        )


def _attributes(text: str | None) -> dict[str, str]:
    """The ``attributes`` form field: a JSON object of texts (left out: none)."""
    if text is None:
        return {}
    try:
        found = loads_strict(text)
    except NotStrictJson as e:
        raise InvalidInput("attributes", str(e)) from None
    except ValueError:
        raise InvalidInput("attributes", "is not JSON") from None
    if not isinstance(found, dict) or not all(isinstance(v, str) for v in found.values()):
        raise InvalidInput("attributes", "must be a JSON object of texts")
    return found


def _unsupported(detail: str) -> Problem:
    return Problem(415, "unsupported-media-type", "Unsupported media type", detail)


def _too_large(limit: int) -> Problem:
    return Problem(413, "too-large", "Payload too large", f"the file is over {limit} bytes")


async def read_upload(
    request: Request, bounds: UploadBounds, gate: Gate | None = None
) -> Upload:
    """Parse a ``multipart/form-data`` body with one ``file`` part and small text fields
    (those of :data:`FORM_FIELDS`, each once), behind ``gate`` if given (a page's CSRF
    token). The whole body is at most :attr:`UploadBounds.body_bytes`, and a part more for
    the gate: the API's guard counts it too, but the pages' bodies pass it unread."""
    media_type, options = parse_options_header(request.headers.get("content-type", ""))
    boundary = options.get(b"boundary")
    if media_type != b"multipart/form-data" or not boundary:
        raise _unsupported("send the document as multipart/form-data")
    if len(boundary) > MAX_BOUNDARY:
        raise Problem(
            400, "malformed-body", "Malformed body",
            f"the multipart boundary is over {MAX_BOUNDARY} characters",
        )
    cap = bounds.body_bytes + (gate is not None) * bounds.part_bytes
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > cap:
        raise _body_too_large(cap)
    receiver = _Receiver(bounds, gate)
    parser = MultipartParser(boundary, receiver.callbacks(), max_header_size=bounds.field_bytes)
    received = 0
    try:
        async for chunk in request.stream():
            received += len(chunk)
            if received > cap:
                raise _body_too_large(cap)
            _parsed(parser.write, chunk, bounds=bounds)
        _parsed(parser.finalize, bounds=bounds)
        if not receiver.opened:
            raise _shut()
    except BaseException:
        receiver.upload.close()
        raise
    receiver.upload.stream()  # a body without a file part is refused here, before any work
    return receiver.upload


def _body_too_large(cap: int) -> Problem:
    return Problem(413, "too-large", "Payload too large",
                   f"the body is over the {cap}-byte limit for this route")


def _shut() -> Problem:
    return Problem(403, "csrf-refused", "Forbidden",
                   "the form does not open with its check token, or the token is wrong")


def _parsed(step: Any, *args: Any, bounds: UploadBounds) -> None:
    """Feed the parser; its own errors are a 400 (a malformed body), but for a header line
    over the bound it was given, which is a 413 like every other bound."""
    try:
        step(*args)
    except Problem:
        raise
    except Exception as e:
        if isinstance(e, MultipartParseError) and "header size" in str(e):
            raise _header_too_large(bounds.field_bytes) from None
        raise Problem(400, "malformed-body", "Malformed body", f"multipart body: {e}") from None


def _header_too_large(bound: int) -> Problem:
    return Problem(413, "too-large", "Payload too large", f"a part's header is over {bound} bytes")


class _Receiver:
    """Collects the parts of one multipart body as the parser finds them."""

    def __init__(self, bounds: UploadBounds, gate: Gate | None = None) -> None:
        self.bounds = bounds
        self.gate = gate
        self.opened = gate is None
        self.upload = Upload()
        self.headers: dict[bytes, bytes] = {}
        self.header_name = b""
        self.header_value = b""
        self.name = ""
        self.field = b""

    def callbacks(self) -> MultipartCallbacks:
        return {
            "on_part_begin": self.part_begin,
            "on_header_field": self.header_field,
            "on_header_value": self.header_value_data,
            "on_header_end": self.header_end,
            "on_headers_finished": self.headers_finished,
            "on_part_data": self.part_data,
            "on_part_end": self.part_end,
        }

    def part_begin(self) -> None:
        self.headers, self.name, self.field = {}, "", b""

    def header_field(self, data: bytes, start: int, end: int) -> None:
        self.header_name += data[start:end]
        self._bound_headers()

    def header_value_data(self, data: bytes, start: int, end: int) -> None:
        self.header_value += data[start:end]
        self._bound_headers()

    def _bound_headers(self) -> None:
        if len(self.header_name) + len(self.header_value) > self.bounds.field_bytes:
            raise _header_too_large(self.bounds.field_bytes)

    def header_end(self) -> None:
        self.headers[self.header_name.lower()] = self.header_value
        self.header_name = self.header_value = b""

    def headers_finished(self) -> None:
        _, disposition = parse_options_header(self.headers.get(b"content-disposition", b""))
        self.name = disposition.get(b"name", b"").decode(errors="replace")
        if self.gate is not None and not self.opened:
            if self.name != self.gate.field:
                raise _shut()
            return
        if self.name not in FORM_FIELDS:
            raise Problem(
                422, "invalid-input", "Invalid input",
                f"form field {self.name[:64]!r} is not one of {', '.join(FORM_FIELDS)}",
            )
        if self.name in self.upload.fields:
            raise Problem(
                422, "invalid-input", "Invalid input", f"form field {self.name!r} is sent twice"
            )
        if self.name != "file":
            return
        upload = self.upload
        if upload.file is not None:
            raise Problem(422, "invalid-input", "Invalid input", "send exactly one file")
        filename = disposition.get(b"filename", b"").decode(errors="replace")
        upload.filename = filename.rsplit("/", 1)[-1].rsplit("\\", 1)[-1] or None
        declared = self.headers.get(b"content-type", b"").decode(errors="replace")
        upload.declared_type = declared.split(";")[0].strip() or None
        upload.file = tempfile.SpooledTemporaryFile(max_size=SPOOL_IN_MEMORY)  # noqa: SIM115

    def part_data(self, data: bytes, start: int, end: int) -> None:
        piece = data[start:end]
        upload = self.upload
        if self.name == "file" and upload.file is not None:
            upload.size += len(piece)
            if upload.size > self.bounds.file_bytes:
                raise _too_large(self.bounds.file_bytes)
            upload.file.write(piece)
            return
        self.field += piece
        if len(self.field) > self.bounds.field_bytes:
            raise Problem(
                413, "too-large", "Payload too large",
                f"form field {self.name!r} is over {self.bounds.field_bytes} bytes",
            )

    def part_end(self) -> None:
        if not self.name or self.name == "file":
            return
        try:
            value = self.field.decode()
        except UnicodeDecodeError:
            raise Problem(
                422, "invalid-input", "Invalid input", f"form field {self.name!r} is not UTF-8"
            ) from None
        if self.gate is not None and not self.opened:
            if not self.gate.admits(value):
                raise _shut()
            self.opened = True
            return
        self.upload.fields[self.name] = value
