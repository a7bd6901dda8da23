"""The interactive API documentation (Swagger UI at /docs, ReDoc at /redoc), served with
every script and style sheet from the service itself: on a government intranet (政务外网)
nothing may come from a public CDN. The files are those the ``fastapi-offline`` package
ships."""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from fastapi import FastAPI
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

ASSETS = "/static/api-docs"


def install_api_docs(app: FastAPI) -> None:
    """Serve /docs and /redoc from the package (create the app with ``docs_url=None,
    redoc_url=None``)."""
    directory = Path(str(files("fastapi_offline") / "static"))
    app.mount(ASSETS, StaticFiles(directory=directory), name="api-docs-assets")
    openapi_url = app.openapi_url or "/openapi.json"

    @app.get("/docs", include_in_schema=False)
    def swagger_ui() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=openapi_url,
            title=f"{app.title} — API",
            swagger_js_url=f"{ASSETS}/swagger-ui-bundle.js",
            swagger_css_url=f"{ASSETS}/swagger-ui.css",
            swagger_favicon_url=f"{ASSETS}/favicon.png",
        )

    @app.get("/redoc", include_in_schema=False)
    def redoc() -> HTMLResponse:
        return get_redoc_html(
            openapi_url=openapi_url,
            title=f"{app.title} — API",
            redoc_js_url=f"{ASSETS}/redoc.standalone.js",
            redoc_favicon_url=f"{ASSETS}/favicon.png",
            with_google_fonts=False,
        )
