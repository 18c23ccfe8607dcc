"""The review service: `create_app(settings)` wires pages, API, docs and the live scorer."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

from fastapi import Depends, FastAPI, Request, status
from fastapi.exception_handlers import http_exception_handler, request_validation_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from knockoff_serve import api, listing_pages, pages
from knockoff_serve.auth import service_secret
from knockoff_serve.live import LiveScorer
from knockoff_serve.queue import Viewer
from knockoff_serve.references import working_gallery
from knockoff_serve.settings import Settings
from knockoff_serve.store import initialize, is_busy
from knockoff_serve.web import LoginRequired, api_viewer, web_url
from starlette.exceptions import HTTPException as StarletteHTTPException

import knockoff.wording as wording
from knockoff.listings.sellers import risk_level

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
    app.state.templates.env.globals.update(image_url=pages.image_url, risk_level=risk_level)
    app.state.templates.env.filters.update(similarity=wording.similarity, distance=wording.distance,
                                          probability=wording.probability, status_words=wording.status,
                                          chance=wording.chance)
    app.include_router(pages.router)
    app.include_router(listing_pages.router)
    app.include_router(api.router)

    @app.exception_handler(LoginRequired)
    def to_login(request: Request, error: LoginRequired) -> Response:
        return RedirectResponse(f"/login?next={error.next_url}", status.HTTP_303_SEE_OTHER)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, error: StarletteHTTPException) -> Response:
        return _error_page(request, error.status_code, error.detail, getattr(error, "headers", None)) \
            or await http_exception_handler(request, error)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, error: RequestValidationError) -> Response:
        problems = "; ".join(f"{'.'.join(str(part) for part in e.get('loc', ())[1:])}: {e.get('msg')}" for e in error.errors())
        return _error_page(request, 422, f"this address has a value the page cannot take ({problems})", None) \
            or await request_validation_exception_handler(request, error)

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


ERROR_TITLES = {400: "That request cannot be answered", 401: "Log in first", 403: "Not allowed",
                404: "Not found", 409: "Someone else holds it", 413: "Too large", 422: "That address is not valid",
                429: "Too many attempts"}


def _error_page(request: Request, status_code: int, detail: object, headers: dict | None) -> Response | None:
    """An HTML page for a browser's page request; None for the API and for clients that do not
    ask for HTML (they get FastAPI's JSON)."""
    if request.url.path.startswith("/api/") or "text/html" not in request.headers.get("accept", ""):
        return None
    from knockoff_serve.auth import SESSION_COOKIE, session_for
    from knockoff_serve.store import closing, connect

    settings = request.app.state.settings
    with closing(connect(settings.database, settings.store_busy_timeout_s)) as connection:
        session = session_for(connection, request.cookies.get(SESSION_COOKIE))
    response = request.app.state.templates.TemplateResponse(
        request, "error.html", {"session": session, "status_code": status_code, "detail": str(detail),
                                "title": ERROR_TITLES.get(status_code, "Something went wrong")}, status_code=status_code)
    response.headers.update({**(headers or {}), "Cache-Control": "no-store"})
    return response


def _add_docs(app: FastAPI) -> None:
    """OpenAPI schema and Swagger UI, behind the login, with Swagger UI's files served locally
    (Swagger UI 5, from the fastapi-swagger package: it reads the OpenAPI 3.1 FastAPI writes)."""
    from importlib.resources import files

    assets = Path(str(files("fastapi_swagger") / "resources"))

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
