"""The review service: `create_app(settings)` wires pages, API, docs and the live scorer."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

from fastapi import Depends, FastAPI, Request, status
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from knockoff_serve import api, pages
from knockoff_serve.auth import service_secret
from knockoff_serve.live import LiveScorer
from knockoff_serve.queue import Viewer
from knockoff_serve.references import working_gallery
from knockoff_serve.settings import Settings
from knockoff_serve.store import initialize, is_busy
from knockoff_serve.web import LoginRequired, api_viewer, web_url

TEMPLATES = Path(__file__).parent / "templates"
_MULTIPART_OVERHEAD = 64 * 1024


def create_app(settings: Settings) -> FastAPI:
    initialize(settings.database)
    app = FastAPI(title="Knockoff review API", version="1", docs_url=None, redoc_url=None, openapi_url=None,
                  description=api.__doc__)
    app.state.settings = settings
    app.state.scorer = LiveScorer(settings.model, working_gallery(settings), sync=lambda: working_gallery(settings))
    app.state.secret = service_secret(settings.home / "secret.key")  # signs the login form's CSRF token
    # uploads decoded and scored at once, off the event loop (each up to the pixel ceiling)
    app.state.scoring_slots = asyncio.Semaphore(2)
    app.state.templates = Jinja2Templates(directory=str(TEMPLATES))
    app.state.templates.env.filters["web_url"] = web_url
    app.include_router(pages.router)
    app.include_router(api.router)

    @app.exception_handler(LoginRequired)
    def to_login(request: Request, error: LoginRequired) -> Response:
        return RedirectResponse(f"/login?next={error.next_url}", status.HTTP_303_SEE_OTHER)

    @app.exception_handler(sqlite3.OperationalError)
    def store_busy(request: Request, error: sqlite3.OperationalError) -> Response:
        # Another process held the store's write lock past the busy timeout: nothing was
        # written; say so and when to retry, never a bare 500.
        if not is_busy(error):
            raise error
        message = "The store is busy: your decision was not saved. Retry in a few seconds."
        headers = {"Retry-After": "5", "Cache-Control": "no-store"}
        if request.url.path.startswith("/api/"):
            return JSONResponse({"detail": message}, status.HTTP_503_SERVICE_UNAVAILABLE, headers=headers)
        return HTMLResponse(f"<!doctype html><title>Store busy</title><p id='store-busy'>{message}</p>"
                            f"<p><a href='/queue'>Back to the queue</a></p>", status.HTTP_503_SERVICE_UNAVAILABLE,
                            headers=headers)

    @app.middleware("http")
    async def limit_uploads(request: Request, call_next):
        # Refuse oversized uploads before the multipart body is read at all.
        if request.url.path == "/api/score" and request.method == "POST":
            length = request.headers.get("content-length")
            if length is None or not length.isdigit() or int(length) > settings.max_upload_bytes + _MULTIPART_OVERHEAD:
                return JSONResponse({"detail": f"images up to {settings.max_upload_bytes} bytes, with a Content-Length"},
                                    413)
        return await call_next(request)

    @app.middleware("http")
    async def refuse_framing(request: Request, call_next):
        # No page of the service may be framed by another site (clickjacking a decision).
        response = await call_next(request)
        response.headers.setdefault("X-Frame-Options", "DENY")
        response.headers.setdefault("Content-Security-Policy", "frame-ancestors 'none'")
        return response

    _add_docs(app)
    return app


def _add_docs(app: FastAPI) -> None:
    """OpenAPI schema and Swagger UI, behind the login, with Swagger UI's files served locally."""
    import swagger_ui_bundle

    assets = Path(swagger_ui_bundle.swagger_ui_path)

    @app.get("/api/openapi.json", include_in_schema=False)
    def openapi(viewer: Viewer = Depends(api_viewer)) -> JSONResponse:
        return JSONResponse(app.openapi())

    @app.get("/api/docs", include_in_schema=False)
    def docs(viewer: Viewer = Depends(api_viewer)) -> HTMLResponse:
        return get_swagger_ui_html(openapi_url="/api/openapi.json", title="Knockoff review API",
                                   swagger_js_url="/api/docs/assets/swagger-ui-bundle.js",
                                   swagger_css_url="/api/docs/assets/swagger-ui.css", swagger_favicon_url="")

    @app.get("/api/docs/assets/{name}", include_in_schema=False)
    def docs_asset(name: str, viewer: Viewer = Depends(api_viewer)) -> FileResponse:
        if name not in ("swagger-ui-bundle.js", "swagger-ui.css"):
            return Response(status_code=status.HTTP_404_NOT_FOUND)
        return FileResponse(assets / name)
