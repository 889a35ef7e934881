"""/docs served from files installed with the package, not from a CDN.

FastAPI's default Swagger UI page pulls its JavaScript and CSS from a CDN, which leaves the
page blank on an offline machine — the embedded default's whole point. The assets come from
the `swagger-ui-bundle-v2` wheel (Swagger UI 5, which reads OpenAPI 3.1) instead.
"""

from __future__ import annotations

import swagger_ui_bundle
from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

ASSETS = "/docs-assets"


def mount_offline_docs(app: FastAPI, *, path: str = "/docs") -> None:
    """Serve Swagger UI at `path` (the app must be built with `docs_url=None`)."""
    app.mount(ASSETS, StaticFiles(directory=swagger_ui_bundle.swagger_ui_path), name="docs-assets")
    redirect = f"{path}/oauth2-redirect"

    @app.get(path, include_in_schema=False)
    def swagger_ui() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=app.openapi_url or "/openapi.json",
            title=f"{app.title} · API",
            swagger_js_url=f"{ASSETS}/swagger-ui-bundle.js",
            swagger_css_url=f"{ASSETS}/swagger-ui.css",
            swagger_favicon_url=f"{ASSETS}/favicon-32x32.png",
            oauth2_redirect_url=redirect,
        )

    @app.get(redirect, include_in_schema=False)
    def oauth2_redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()
