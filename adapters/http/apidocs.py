"""The interactive API documentation (Swagger UI at /docs, ReDoc at /redoc), served with
every script and style sheet from the service itself: on a government intranet (政务外网)
nothing may come from a public CDN. The files are those the ``fastapi-offline`` package
ships."""

from __future__ import annotations

import base64
import hashlib
import re
from importlib.resources import files
from pathlib import Path

from fastapi import FastAPI
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

ASSETS = "/static/api-docs"

_INLINE_SCRIPT = re.compile(r"<script>(.*?)</script>", re.DOTALL)


def _policy(page: HTMLResponse) -> HTMLResponse:
    """The page with a Content-Security-Policy: scripts, styles, fonts and images from the
    service alone (its own inline script by hash), the spec read from the service, never
    framed. Styles may be inline: Swagger UI and ReDoc set them from their scripts."""
    inline = _INLINE_SCRIPT.findall(bytes(page.body).decode())
    hashes = " ".join(
        f"'sha256-{base64.b64encode(hashlib.sha256(s.encode()).digest()).decode()}'"
        for s in inline
    )
    page.headers["Content-Security-Policy"] = (
        f"default-src 'none'; script-src 'self' {hashes}".rstrip()
        + "; style-src 'self' 'unsafe-inline'; img-src 'self' data:; font-src 'self' data:; "
        "connect-src 'self'; worker-src 'self' blob:; frame-ancestors 'none'; "
        "base-uri 'none'; form-action 'none'"
    )
    page.headers["X-Content-Type-Options"] = "nosniff"
    return page


def install_api_docs(app: FastAPI) -> None:
    """Serve /docs and /redoc from the package (create the app with ``docs_url=None,
    redoc_url=None``)."""
    directory = Path(str(files("fastapi_offline") / "static"))
    app.mount(ASSETS, StaticFiles(directory=directory), name="api-docs-assets")
    openapi_url = app.openapi_url or "/openapi.json"

    @app.get("/docs", include_in_schema=False)
    def swagger_ui() -> HTMLResponse:
        return _policy(get_swagger_ui_html(
            openapi_url=openapi_url,
            title=f"{app.title} — API",
            swagger_js_url=f"{ASSETS}/swagger-ui-bundle.js",
            swagger_css_url=f"{ASSETS}/swagger-ui.css",
            swagger_favicon_url=f"{ASSETS}/favicon.png",
        ))

    @app.get("/redoc", include_in_schema=False)
    def redoc() -> HTMLResponse:
        return _policy(get_redoc_html(
            openapi_url=openapi_url,
            title=f"{app.title} — API",
            redoc_js_url=f"{ASSETS}/redoc.standalone.js",
            redoc_favicon_url=f"{ASSETS}/favicon.png",
            with_google_fonts=False,
        ))
