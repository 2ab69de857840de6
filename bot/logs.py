"""Logging: plain text or one JSON object per line (LOG_FORMAT=json), and one line per update."""

from __future__ import annotations

import json
import logging
import time
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any, ClassVar

from telegram import Update
from telegram.ext import Application

log = logging.getLogger("bot.updates")


class JsonFormatter(logging.Formatter):
    """One JSON object per line for log collectors; extra fields given with `extra=` are included."""

    STANDARD: ClassVar[frozenset[str]] = frozenset(vars(logging.makeLogRecord({})))

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update({k: v for k, v in vars(record).items() if k not in self.STANDARD and k != "message"})
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


def configure(level: str, fmt: str) -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(
        JsonFormatter()
        if fmt == "json"
        else logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    )
    logging.basicConfig(level=level, handlers=[handler], force=True)
    for noisy in ("httpx", "httpcore", "apscheduler", "uvicorn.access"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


ROLE: ContextVar[str] = ContextVar("role", default="stranger")
HANDLER: ContextVar[str] = ContextVar("handler", default="-")


class TracedApplication(Application[Any, Any, Any, Any, Any, Any]):
    """Logs one line per update: its id, the user's role (never their name), the handler and the duration."""

    async def process_update(self, update: object) -> None:
        role, handler = ROLE.set("stranger"), HANDLER.set("-")
        started = time.perf_counter()
        try:
            await super().process_update(update)
        finally:
            duration_ms = round((time.perf_counter() - started) * 1000, 1)
            update_id = update.update_id if isinstance(update, Update) else None
            log.info(
                "update %s role=%s handler=%s %.1f ms",
                update_id,
                ROLE.get(),
                HANDLER.get(),
                duration_ms,
                extra={
                    "update_id": update_id,
                    "role": ROLE.get(),
                    "handler": HANDLER.get(),
                    "duration_ms": duration_ms,
                },
            )
            ROLE.reset(role)
            HANDLER.reset(handler)
