"""Command line: ``python -m bot run | db upgrade | enterprises import | users invite|list|deactivate``."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import signal
import sqlite3
import sys
from collections.abc import Iterator, Sequence
from contextlib import closing
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import uvicorn
from telegram import Bot
from telegram.request import BaseRequest

from bot import logs
from bot.app import build_application
from bot.config import Settings, SettingsError, load_settings
from bot.context import Runtime
from bot.flows.invite import invite_link
from bot.services.enterprise_file import EnterpriseFileError, read_enterprise_file
from bot.services.enterprise_import import import_enterprises
from bot.storage.db import create_engine, create_sessionmaker
from bot.storage.enums import Role
from bot.storage.migrate import SchemaOutdated, ensure_current, upgrade
from bot.storage.users import create_invite, deactivate_user, list_users
from bot.web import create_web_app, health

log = logging.getLogger(__name__)

EXIT_USAGE = 2
NO_TOKEN = (
    "TELEGRAM_BOT_TOKEN is not set. Copy .env.example to .env and put the token from @BotFather in it "
    "(or export TELEGRAM_BOT_TOKEN)."
)


class CliError(Exception):
    """A problem the user can fix; printed as one line, exit code 2."""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bot", description="The district liaison bot.")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser(
        "run", help="start the bot (long polling)", description="Start the bot (long polling)."
    )
    run.add_argument("--migrate", action="store_true", help="apply pending migrations first")
    sub.add_parser(
        "health",
        help="database reachability and schema revision (exit 1 if unhealthy)",
        description="Print database reachability and schema revision as JSON; exit 1 if unhealthy.",
    )
    backup = sub.add_parser(
        "backup",
        help="consistent copy of the SQLite database",
        description="Copy the SQLite database consistently, even while the bot runs.",
    )
    backup.add_argument("file", type=Path)
    db = sub.add_parser("db", help="database schema", description="Database schema.")
    db_sub = db.add_subparsers(dest="action", required=True)
    db_sub.add_parser("upgrade", help="apply all migrations", description="Apply all migrations.")
    ent = sub.add_parser(
        "enterprises", help="the enterprise register", description="The enterprise register."
    )
    ent_sub = ent.add_subparsers(dest="action", required=True)
    imp = ent_sub.add_parser(
        "import",
        help="import a CSV (UTF-8 or GBK) or XLSX register",
        description="Import enterprises from CSV (UTF-8 or GBK) or XLSX; see the README for the columns. "
        "Rows are matched by credit code, so importing again updates instead of duplicating.",
    )
    imp.add_argument("file", type=Path)
    imp.add_argument(
        "--skip-invalid", action="store_true", help="import the valid rows even if others are invalid"
    )
    users = sub.add_parser("users", help="users and invites", description="Users and invites.")
    users_sub = users.add_subparsers(dest="action", required=True)
    inv = users_sub.add_parser(
        "invite", help="create an invite link", description="Create a single-use invite link."
    )
    inv.add_argument("--role", required=True, choices=[r.value for r in Role])
    inv.add_argument("--name", required=True)
    unit = inv.add_mutually_exclusive_group()
    unit.add_argument("--department", help="the liaison's department (职能部门)")
    unit.add_argument("--community", help="the instructor's community (社区)")
    users_sub.add_parser("list", help="list users", description="List users.")
    deact = users_sub.add_parser(
        "deactivate", help="deactivate a user", description="Deactivate a user by id."
    )
    deact.add_argument("user_id", type=int)
    return parser


async def _db_upgrade(settings: Settings) -> str:
    engine = create_engine(settings.database_url)
    try:
        await upgrade(engine)
        return await ensure_current(engine)
    finally:
        await engine.dispose()


async def _check_schema(settings: Settings) -> str:
    engine = create_engine(settings.database_url)
    try:
        return await ensure_current(engine)
    finally:
        await engine.dispose()


async def _import(settings: Settings, path: Path, skip_invalid: bool) -> int:
    try:
        parsed = read_enterprise_file(path)
    except (EnterpriseFileError, OSError) as exc:
        raise CliError(f"Cannot import {path}: {exc}") from None
    engine = create_engine(settings.database_url)
    try:
        await ensure_current(engine)
        now = datetime.now(UTC)
        async with create_sessionmaker(engine).begin() as session:
            report = await import_enterprises(
                session,
                parsed=parsed,
                skip_invalid=skip_invalid,
                now=now,
                today=now.astimezone(settings.tz).date(),
            )
    finally:
        await engine.dispose()
    for error in report.errors:
        print(f"row {error.row}, column {error.column}: {error.reason}", file=sys.stderr)
    for column in parsed.ignored_columns:
        print(f"note: column {column!r} is not known and was ignored", file=sys.stderr)
    if not report.applied:
        print(
            f"{len(report.errors)} problem(s) found; nothing was imported. "
            "Fix the file, or use --skip-invalid to import the valid rows.",
            file=sys.stderr,
        )
        return 1
    print(
        f"created {report.created}, updated {report.updated}, unchanged {report.unchanged}, "
        f"assignments changed {report.assignments}, skipped rows {len({e.row for e in report.errors})}"
    )
    for name in report.new_staff:
        print(f"new staff member without an invite yet: {name}")
    return 0


async def _bot_username(settings: Settings, request: BaseRequest | None) -> str:
    if settings.telegram_bot_token is None:
        raise CliError(NO_TOKEN)
    bot = Bot(
        settings.telegram_bot_token.get_secret_value(),
        base_url=settings.telegram_api_base_url,
        request=request,
    )
    async with bot:
        return bot.username


async def _users(settings: Settings, args: argparse.Namespace, request: BaseRequest | None) -> int:
    engine = create_engine(settings.database_url)
    now = datetime.now(UTC)
    try:
        await ensure_current(engine)
        sessions = create_sessionmaker(engine)
        if args.action == "invite":
            if args.role == Role.liaison and not args.department:
                raise CliError("A liaison is sent by a department: add --department NAME.")
            if args.role == Role.instructor and not args.community:
                raise CliError("An instructor is sent by a community: add --community NAME.")
            name = args.name.strip()
            if not 0 < len(name) <= 50:
                raise CliError("--name must have 1 to 50 characters.")
            username = await _bot_username(settings, request)
            async with sessions.begin() as session:
                invite = await create_invite(
                    session,
                    role=Role(args.role),
                    name=name,
                    department=args.department,
                    community=args.community,
                    now=now,
                    ttl=timedelta(days=settings.invite_ttl_days),
                )
            expires = invite.expires_at.astimezone(settings.tz).strftime("%Y-%m-%d %H:%M %Z")
            print(invite_link(username, invite.token))
            print(f"single use, expires {expires}")
        elif args.action == "list":
            async with sessions() as session:
                for user in await list_users(session):
                    state = "deactivated" if not user.active else "joined" if user.telegram_id else "invited"
                    unit = user.department or user.community or ""
                    print(f"{user.id}\t{user.role.value}\t{user.name}\t{unit}\t{state}")
        else:
            async with sessions.begin() as session:
                if await deactivate_user(session, user_id=args.user_id, actor_id=None, now=now) is None:
                    raise CliError(f"There is no active user with id {args.user_id}.")
            print(f"user {args.user_id} deactivated")
    finally:
        await engine.dispose()
    return 0


ALLOWED_UPDATES = ["message", "callback_query"]


def _run(settings: Settings, migrate: bool) -> int:
    if settings.telegram_bot_token is None:
        raise CliError(NO_TOKEN)
    asyncio.run(_db_upgrade(settings) if migrate else _check_schema(settings))
    app = build_application(settings)
    if settings.webhook_url:
        try:
            asyncio.run(_serve_webhook(app, settings))
        except asyncio.CancelledError:  # a second SIGTERM/SIGINT: stopped at once
            return 1
    else:  # PTB removes any webhook before it starts polling
        app.run_polling(allowed_updates=ALLOWED_UPDATES, drop_pending_updates=False)
    return 0


class _WebhookServer(uvicorn.Server):
    """uvicorn without its own signal handling: Server.capture_signals re-raises a caught SIGTERM/SIGINT once
    serve() returns, which kills the process (SIGTERM) or cancels the main task (SIGINT) before the
    Application is stopped. _serve_webhook handles the signals instead."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


async def _serve_webhook(app: Any, settings: Settings) -> None:
    """Register the webhook and serve it; SIGTERM/SIGINT let in-flight updates finish, a second one stops."""
    assert settings.webhook_url and settings.webhook_secret
    secret = settings.webhook_secret.get_secret_value()
    path = urlsplit(settings.webhook_url).path or "/"
    config = uvicorn.Config(
        create_web_app(app, secret, path=path),
        host=settings.webhook_listen,
        port=settings.webhook_port,
        log_config=None,
        lifespan="off",
    )
    server = _WebhookServer(config)
    loop, main = asyncio.get_running_loop(), asyncio.current_task()
    assert main is not None

    def on_signal(sig: signal.Signals) -> None:
        if not server.should_exit:
            log.info("%s: finishing the updates in flight, then stopping (again to stop at once)", sig.name)
            server.should_exit = True
        else:
            log.warning("%s again: stopping at once", sig.name)
            server.force_exit = True
            main.cancel()

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, on_signal, sig)
    async with app:
        await app.post_init(app)
        # One connection: Telegram then delivers updates in order, which the conversations rely on.
        await app.bot.set_webhook(
            settings.webhook_url, secret_token=secret, allowed_updates=ALLOWED_UPDATES, max_connections=1
        )
        await app.start()
        try:
            await server.serve()
        finally:
            await app.stop()
            await app.post_shutdown(app)


async def _health(settings: Settings) -> int:
    engine = create_engine(settings.database_url)
    runtime = Runtime(settings=settings, engine=engine, db=create_sessionmaker(engine))
    try:
        ok, details = await health(runtime)
    finally:
        await engine.dispose()
    print(json.dumps({"status": "ok" if ok else "unhealthy", **details}, ensure_ascii=False))
    return 0 if ok else 1


def _backup(settings: Settings, target: Path) -> int:
    """A consistent copy of the SQLite database, taken with SQLite's online backup API while the bot runs."""
    source = settings.sqlite_path()
    if source is None:
        raise CliError(
            "backup copies SQLite databases; for PostgreSQL use pg_dump (see the README, "
            '"Deploying with PostgreSQL")'
        )
    if not source.exists():
        raise CliError(f"There is no database at {source}.")
    if target.exists():
        raise CliError(f"{target} exists already; choose a new file name.")
    target.parent.mkdir(parents=True, exist_ok=True)
    with closing(sqlite3.connect(source)) as src, closing(sqlite3.connect(target)) as dst:
        src.backup(dst)
    print(f"backed up {source} to {target} ({target.stat().st_size:,} bytes)")
    return 0


def main(argv: Sequence[str] | None = None, *, request: BaseRequest | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        settings = load_settings()
        logs.configure(settings.log_level, settings.log_format)
        if args.command == "run":
            return _run(settings, args.migrate)
        if args.command == "health":
            return asyncio.run(_health(settings))
        if args.command == "backup":
            return _backup(settings, args.file)
        if args.command == "db":
            revision = asyncio.run(_db_upgrade(settings))
            print(f"database is at revision {revision}")
            return 0
        if args.command == "enterprises":
            return asyncio.run(_import(settings, args.file, args.skip_invalid))
        return asyncio.run(_users(settings, args, request))
    except SettingsError as exc:
        for line in exc.lines:
            print(line, file=sys.stderr)
        return EXIT_USAGE
    except (CliError, SchemaOutdated) as exc:
        print(exc, file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
