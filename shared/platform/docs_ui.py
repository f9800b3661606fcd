"""``/docs`` (Swagger UI) and ``/redoc`` served with our own copies of their scripts and styles, not a CDN's: a
machine without internet access (an agency's network, a customs office) still reads the API's documentation.

The files come from the npm registry's ``swagger-ui-dist`` and ``redoc`` packages, unpacked by
``scripts/lib.sh ensure_docs_assets`` into ``tools/docs-ui/dist`` (``LEDGER_DOCS_ASSETS`` names another place).
"""

from __future__ import annotations

import os
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

ASSETS_PATH = "/docs-assets"
DEFAULT_ASSETS = Path(__file__).resolve().parents[2] / "tools" / "docs-ui" / "dist"
SWAGGER_JS, SWAGGER_CSS, REDOC_JS = "swagger-ui-bundle.js", "swagger-ui.css", "redoc.standalone.js"
FAVICON = "favicon-32x32.png"


def assets_dir() -> Path:
    return Path(os.environ.get("LEDGER_DOCS_ASSETS") or DEFAULT_ASSETS)


def serve_docs(app: FastAPI, title: str) -> None:
    """Add ``/docs``, ``/redoc`` and the assets they load to ``app`` (made with ``docs_url=None, redoc_url=None``)."""
    app.mount(ASSETS_PATH, StaticFiles(directory=assets_dir(), check_dir=False), name="docs-assets")

    # Plain routes, as FastAPI adds its own documentation pages: open, and outside the OpenAPI document.
    async def swagger_ui(_: Request) -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url="/openapi.json",
            title=f"{title} - API",
            swagger_js_url=f"{ASSETS_PATH}/{SWAGGER_JS}",
            swagger_css_url=f"{ASSETS_PATH}/{SWAGGER_CSS}",
            swagger_favicon_url=f"{ASSETS_PATH}/{FAVICON}",
        )

    async def redoc(_: Request) -> HTMLResponse:
        return get_redoc_html(
            openapi_url="/openapi.json",
            title=f"{title} - API",
            redoc_js_url=f"{ASSETS_PATH}/{REDOC_JS}",
            redoc_favicon_url=f"{ASSETS_PATH}/{FAVICON}",
            with_google_fonts=False,
        )

    app.add_route("/docs", swagger_ui, include_in_schema=False)
    app.add_route("/redoc", redoc, include_in_schema=False)
