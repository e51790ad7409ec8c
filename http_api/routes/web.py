"""The browser client: one page (plain HTML, CSS and JavaScript modules) and its static files."""

from __future__ import annotations

from pathlib import Path

from starlette.requests import Request
from starlette.responses import FileResponse
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

WEB_DIR = Path(__file__).resolve().parent.parent / "web"

# Paths the page handles itself (links in emails and share links land on them).
PAGE_PATHS = ("/", "/verify-email", "/reset-password", "/forgot-password", "/shared/{token}")


async def page(request: Request) -> FileResponse:
    return FileResponse(WEB_DIR / "index.html", headers={"Cache-Control": "no-cache"})


routes: list[BaseRoute] = [
    *(Route(path, page, methods=["GET"]) for path in PAGE_PATHS),
    Mount("/static", StaticFiles(directory=WEB_DIR / "static"), name="static"),
]
