"""Webhook mode: a small ASGI app (Starlette, served by uvicorn) in front of the PTB Application.

Each update is processed before Telegram gets its 200, so an update in flight when the process is told to
stop is either finished (uvicorn lets running requests end) or answered with an error and redelivered by
Telegram: none is lost. Requests without the secret token are refused with 403.
"""

from __future__ import annotations

import hmac
import logging
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from telegram import Update
from telegram.ext import Application

from bot.context import Runtime
from bot.storage.migrate import current_revision, head_revision

log = logging.getLogger(__name__)

WEBHOOK_PATH = "/telegram"
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"


async def health(runtime: Runtime) -> tuple[bool, dict[str, Any]]:
    """Database reachability and migration revision, for `GET /healthz` and `python -m bot health`."""
    head = head_revision()
    try:
        revision = await current_revision(runtime.engine)
    except Exception as exc:  # any failure to reach the database is "unhealthy", with the reason
        return False, {"database": "unreachable", "error": f"{type(exc).__name__}: {exc}"[:300], "head": head}
    ok = revision == head
    return ok, {"database": "ok", "revision": revision, "head": head, "schema": "current" if ok else "behind"}


def create_web_app(
    application: Application[Any, Any, Any, Any, Any, Any], secret: str, *, path: str = WEBHOOK_PATH
) -> Starlette:
    runtime: Runtime = application.bot_data["runtime"]

    async def telegram(request: Request) -> Response:
        given = request.headers.get(SECRET_HEADER, "")
        if not hmac.compare_digest(given.encode(), secret.encode()):
            log.warning("webhook request without the right secret token from %s refused", request.client)
            return Response(status_code=403)
        try:
            update = Update.de_json(await request.json(), application.bot)
        except ValueError:
            return Response(status_code=400)
        await application.process_update(update)
        return Response(status_code=200)

    async def healthz(request: Request) -> Response:
        ok, details = await health(runtime)
        return JSONResponse(details, status_code=200 if ok else 503)

    return Starlette(routes=[Route(path, telegram, methods=["POST"]), Route("/healthz", healthz)])
