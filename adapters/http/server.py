"""The HTTP server: uvicorn on httptools, with the request line and headers bounded.

httptools gathers a header's bytes until the header ends, so a header of 85 MiB would be
read whole before any of our code saw it. Here the bytes a request sends before its
headers end are counted as they arrive, and past ``max_header_bytes`` the connection is
answered 431 and closed.
"""

from __future__ import annotations

import json
from typing import Any, ClassVar

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

DEFAULT_MAX_HEADER_BYTES = 32 * 1024


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, refusing a request line and headers over a bound."""

    max_header_bytes: ClassVar[int] = DEFAULT_MAX_HEADER_BYTES
    """Set once per process, by the app that is served (``create_app``)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._header_bytes = 0
        self._in_headers = True  # a connection begins with a request's head
        self._headers_ended = False

    def data_received(self, data: bytes) -> None:
        # Counted after each read that began in a request's head and ended none: a read
        # that ends one (bringing body bytes along, or a whole request and the start of
        # the next) passes, as does one that began in a body; the parser never holds more
        # than the bound and one read of head.
        counting = self._in_headers
        self._headers_ended = False
        super().data_received(data)
        if counting and self._in_headers and not self._headers_ended:
            self._header_bytes += len(data)
            if self._header_bytes > self.max_header_bytes and not self.transport.is_closing():
                self._send_431()

    def on_headers_complete(self) -> None:
        self._in_headers = False
        self._headers_ended = True
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._in_headers, self._header_bytes = True, 0  # the next request on the connection

    def _send_431(self) -> None:
        body = json.dumps(
            {
                "type": "urn:civicvault:problem:headers-too-large",
                "title": "Request header fields too large",
                "status": 431,
                "detail": f"the request line and headers are over {self.max_header_bytes} bytes",
                "code": "headers-too-large",
            }
        ).encode()
        self.transport.write(
            b"HTTP/1.1 431 Request Header Fields Too Large\r\n"
            b"content-type: application/problem+json\r\n"
            b"content-length: " + str(len(body)).encode() + b"\r\n"
            b"connection: close\r\n\r\n" + body
        )
        self.transport.close()


SERVER_OPTIONS: dict[str, Any] = {
    "http": BoundedHttpToolsProtocol,
    "access_log": False,  # the app logs each request itself, without personal data
    "log_level": "warning",
}
"""How civicvault runs uvicorn (``uvicorn.run(app, **SERVER_OPTIONS, …)``)."""


def server_config(app: Any, **kwargs: Any) -> uvicorn.Config:
    """uvicorn's configuration for serving ``app`` as civicvault does."""
    return uvicorn.Config(app, **SERVER_OPTIONS, **kwargs)
