"""Operations: webhook requests and their secret, health, backup, the per-update log line."""

from __future__ import annotations

import json
import logging
import sqlite3
from pathlib import Path
from typing import Any

import httpx
import pytest
from telegram.ext import Application

from bot.__main__ import main
from bot.config import Settings
from bot.logs import JsonFormatter
from bot.storage.db import SessionMaker
from bot.storage.enums import Role
from bot.storage.migrate import head_revision
from bot.web import SECRET_HEADER, create_web_app
from tests.botapi import BotAPI, Chat
from tests.conftest import chat_with, make_user

App = Application[Any, Any, Any, Any, Any, Any]
SECRET = "s3cret-token-for-tests_0123"


def client(app: App) -> httpx.AsyncClient:
    web = create_web_app(app, SECRET, path="/telegram")
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=web), base_url="http://bot")


async def test_webhook_accepts_only_requests_with_the_secret(app: App, api: BotAPI, db: SessionMaker) -> None:
    async with db.begin() as session:
        user = await make_user(session, role=Role.liaison)
    chat = chat_with(app, api, user)
    update = chat.message_update(text="/help", entities=[{"type": "bot_command", "offset": 0, "length": 5}])
    payload = update.to_dict()
    async with client(app) as http:
        for headers in ({}, {SECRET_HEADER: "wrong-secret-000000"}, {SECRET_HEADER: SECRET[:-1]}):
            response = await http.post("/telegram", json=payload, headers=headers)
            assert response.status_code == 403
        assert api.calls_of("sendMessage") == []
        response = await http.post("/telegram", json=payload, headers={SECRET_HEADER: SECRET})
        assert response.status_code == 200
        assert "我可以为您做这些" in chat.last.text
        bad = await http.post("/telegram", content=b"not json", headers={SECRET_HEADER: SECRET})
        assert bad.status_code == 400


async def test_healthz_reports_database_and_revision(app: App) -> None:
    async with client(app) as http:
        response = await http.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {
        "database": "ok",
        "revision": head_revision(),
        "head": head_revision(),
        "schema": "current",
    }


def test_health_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], settings: Settings
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DATABASE_URL", settings.database_url)
    assert main(["health"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["status"] == "ok" and report["revision"] == head_revision()
    monkeypatch.setenv("DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path}/empty.db")
    assert main(["health"]) == 1
    assert json.loads(capsys.readouterr().out)["schema"] == "behind"
    monkeypatch.setenv("DATABASE_URL", "postgresql+asyncpg://nobody@127.0.0.1:1/none")
    assert main(["health"]) == 1
    assert json.loads(capsys.readouterr().out)["database"] == "unreachable"


async def test_backup_is_a_consistent_copy_taken_while_running(
    app: App,
    api: BotAPI,
    db: SessionMaker,
    settings: Settings,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    source = settings.sqlite_path()
    if source is None:
        pytest.skip("backup is for SQLite; PostgreSQL uses pg_dump")
    async with db.begin() as session:
        await make_user(session, role=Role.admin, name="备份测试")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DATABASE_URL", settings.database_url)
    target = tmp_path / "backups" / "bot-2026-11-25.db"
    assert main(["backup", str(target)]) == 0  # while the app holds the database open
    with sqlite3.connect(target) as copy:
        assert copy.execute("select name from users").fetchall() == [("备份测试",)]
        assert copy.execute("select version_num from alembic_version").fetchone() == (head_revision(),)
    assert main(["backup", str(target)]) == 2  # never overwrites


def test_backup_explains_pg_dump_for_postgresql(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DATABASE_URL", "postgresql+asyncpg://u@localhost/db")
    assert main(["backup", "x.db"]) == 2
    assert "pg_dump" in capsys.readouterr().err


async def test_one_log_line_per_update_with_role_not_name(
    app: App, api: BotAPI, db: SessionMaker, caplog: pytest.LogCaptureFixture
) -> None:
    async with db.begin() as session:
        user = await make_user(session, role=Role.supervisor, name="保密姓名")
    caplog.set_level(logging.INFO, logger="bot.updates")
    update = await chat_with(app, api, user).send("/help")
    await Chat(app, api, 99999).send("hello")
    lines = [r for r in caplog.records if r.name == "bot.updates"]
    assert len(lines) == 2
    assert lines[0].getMessage().startswith(f"update {update.update_id} role=supervisor handler=cmd_help ")
    assert lines[1].getMessage().split()[2] == "role=stranger"
    assert all("保密姓名" not in r.getMessage() for r in caplog.records)
    entry = json.loads(JsonFormatter().format(lines[0]))
    assert (
        entry["update_id"] == update.update_id and entry["role"] == "supervisor" and entry["duration_ms"] >= 0
    )


def test_webhook_settings_require_https_and_a_secret(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TELEGRAM_BOT_TOKEN", "1:x")
    monkeypatch.setenv("WEBHOOK_URL", "http://bot.example.org/telegram")
    assert main(["health"]) == 2
    assert "Invalid setting WEBHOOK_URL" in capsys.readouterr().err
    monkeypatch.setenv("WEBHOOK_URL", "https://bot.example.org/telegram")
    monkeypatch.setenv("WEBHOOK_SECRET", "short")
    assert main(["health"]) == 2
    err = capsys.readouterr().err
    assert "WEBHOOK_SECRET is required" in err and "short" not in err
