"""Builds the Application: THE one ordered list of handlers, the error handler and the command menus."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

from telegram import BotCommand, BotCommandScopeDefault, LinkPreviewOptions, Update
from telegram.constants import ParseMode
from telegram.ext import (
    Application,
    CallbackQueryHandler,
    CommandHandler,
    ContextTypes,
    Defaults,
    MessageHandler,
    TypeHandler,
    filters,
)
from telegram.request import BaseRequest

from bot.auth import Handler, identify, refuse, requires
from bot.commands import COMMANDS, EVERYONE, SUPERVISION, Command
from bot.config import LOCALES, Settings
from bot.context import BotContext, Runtime
from bot.flows.edit import FLOWS as EDIT_FLOWS
from bot.flows.engine import FlowEngine
from bot.flows.invite import InviteFlow
from bot.flows.problem import ProblemFlow
from bot.flows.review import ReviewFlow
from bot.flows.service import ServiceFlow
from bot.flows.service_review import ServiceReviewFlow
from bot.flows.visit import VisitFlow
from bot.handlers import admin, export, field, my, problems, reminders, reports, services, start
from bot.handlers.errors import on_error
from bot.i18n import gettext_for
from bot.keyboards import CallbackData, Prefix, parse
from bot.logs import HANDLER, TracedApplication
from bot.storage.db import create_engine, create_sessionmaker
from bot.storage.enums import STAFF, Role
from bot.storage.migrate import ensure_current

log = logging.getLogger(__name__)

CallbackHandler = Callable[[Update, BotContext, CallbackData], Awaitable[None]]


async def _cancel(update: Update, context: BotContext) -> None:
    await admin.engine(context).cancel(update, context)


async def _lang(update: Update, context: BotContext, data: CallbackData) -> None:
    await start.cb_lang(update, context, data.arg)


# Command name -> handler; roles and descriptions come from bot.commands.COMMANDS.
COMMAND_HANDLERS: dict[str, Handler] = {
    "help": start.cmd_help,
    "lang": start.cmd_lang,
    "cancel": _cancel,
    "visit": field.cmd_visit,
    "problem": field.cmd_problem,
    "service": field.cmd_service,
    "my": my.cmd_my,
    "stats": reports.cmd_stats,
    "pending": problems.cmd_pending,
    "overdue": problems.cmd_overdue,
    "services": services.cmd_services,
    "enterprise": reports.cmd_enterprise,
    "liaison": reports.cmd_liaison,
    "coverage": reports.cmd_coverage,
    "trends": reports.cmd_trends,
    "export": export.cmd_export,
    "settings": reminders.cmd_settings,
    "remind": reminders.cmd_remind,
    "invite": admin.cmd_invite,
    "users": admin.cmd_users,
}

# Callback prefix -> (roles allowed, handler). Flow buttons go to the flow engine.
CALLBACK_HANDLERS: dict[Prefix, tuple[tuple[Role, ...], CallbackHandler]] = {
    Prefix.lang: (EVERYONE, _lang),
    Prefix.user: ((Role.admin,), admin.cb_user),
    Prefix.enterprise: (STAFF, field.cb_enterprise),
    Prefix.my: (STAFF, my.cb_my),
    Prefix.my_problem: (STAFF, my.cb_my_problem),
    Prefix.visit: (STAFF, my.cb_visit),
    Prefix.service: (EVERYONE, my.cb_service),
    Prefix.stats: (EVERYONE, reports.cb_stats),
    Prefix.problem_list: (SUPERVISION, problems.cb_problem_list),
    Prefix.problem: (SUPERVISION, problems.cb_problem),
    Prefix.notify: (EVERYONE, reminders.cb_notify),
}


async def route_callback(update: Update, context: BotContext) -> None:
    """Parse callback data once; refuse what this bot could not have sent or this user may not do."""
    query = update.callback_query
    assert query is not None
    data = parse(query.data)
    HANDLER.set(f"callback:{data.prefix.name}" if data else "callback:invalid")
    if data is not None and data.prefix is Prefix.flow:
        await admin.engine(context).on_callback(update, context)
        return
    route = CALLBACK_HANDLERS.get(data.prefix) if data else None
    if data is None or route is None:
        log.warning(
            "update %s: unknown callback data %r from user %s", update.update_id, query.data, context.user.id
        )
        await query.answer(context._("This action has expired."), show_alert=True)
        return
    roles, handler = route
    if context.user.role not in roles:
        log.warning("update %s: callback %r denied to user %s", update.update_id, query.data, context.user.id)
        await refuse(update, context._("Sorry, this is not available to you."))
        return
    await handler(update, context, data)


async def unknown_command(update: Update, context: BotContext) -> None:
    assert update.effective_chat is not None
    await update.effective_chat.send_message(
        context._("I do not know that command. Send /help to see what I can do.")
    )


def _command_menu(locale: str, commands: list[Command]) -> list[BotCommand]:
    _ = gettext_for(locale)
    return [BotCommand(c.name, _(c.description)) for c in commands]


async def _post_init(app: Application[Any, Any, Any, Any, Any, Any]) -> None:
    runtime: Runtime = app.bot_data["runtime"]
    revision = await ensure_current(runtime.engine)
    log.info("database at schema revision %s", revision)
    strangers = [c for c in COMMANDS if c.name == "help"]
    await app.bot.set_my_commands(
        _command_menu(runtime.settings.default_locale, strangers), scope=BotCommandScopeDefault()
    )
    await app.bot.set_my_commands(
        _command_menu("en", strangers), scope=BotCommandScopeDefault(), language_code="en"
    )


async def _post_shutdown(app: Application[Any, Any, Any, Any, Any, Any]) -> None:
    runtime: Runtime = app.bot_data["runtime"]
    await runtime.engine.dispose()


def build_application(
    settings: Settings,
    *,
    request: BaseRequest | None = None,
    clock: Callable[[], datetime] | None = None,
) -> Application[Any, Any, Any, Any, Any, Any]:
    assert settings.telegram_bot_token is not None, "TELEGRAM_BOT_TOKEN is required"
    assert set(COMMAND_HANDLERS) == {c.name for c in COMMANDS}, (
        "every command in bot.commands needs a handler"
    )
    assert all(locale in LOCALES for locale in ("zh_CN", "en"))
    builder = (
        Application.builder()
        .token(settings.telegram_bot_token.get_secret_value())
        .base_url(settings.telegram_api_base_url)
        .base_file_url(settings.telegram_file_base_url)
        .context_types(ContextTypes(context=BotContext))
        .defaults(
            Defaults(
                parse_mode=ParseMode.HTML,
                tzinfo=settings.tz,
                link_preview_options=LinkPreviewOptions(is_disabled=True),
            )
        )
        .post_init(_post_init)
        .post_shutdown(_post_shutdown)
        .application_class(TracedApplication)
    )
    if request is not None:
        builder = builder.request(request).get_updates_request(request)
    app = builder.build()
    engine = create_engine(settings.database_url)
    runtime = Runtime(settings=settings, engine=engine, db=create_sessionmaker(engine))
    if clock is not None:
        runtime.clock = clock
    app.bot_data["runtime"] = runtime
    flows = FlowEngine(
        [
            InviteFlow(),
            ProblemFlow(),
            ServiceFlow(),
            VisitFlow(),
            *EDIT_FLOWS,
            ReviewFlow(),
            ServiceReviewFlow(),
        ],
        deliver=reminders.deliver_immediate,
    )
    app.bot_data["flows"] = flows

    private = filters.ChatType.PRIVATE
    app.add_handler(TypeHandler(Update, identify), group=-1)
    app.add_handler(CommandHandler("start", start.cmd_start, filters=private))
    for command in COMMANDS:
        app.add_handler(
            CommandHandler(
                command.name, requires(*command.roles)(COMMAND_HANDLERS[command.name]), filters=private
            )
        )
    app.add_handler(MessageHandler(filters.COMMAND & private, unknown_command))
    app.add_handler(CallbackQueryHandler(route_callback))
    app.add_handler(MessageHandler(private & ~filters.StatusUpdate.ALL, flows.on_message))
    app.add_error_handler(on_error)
    if app.job_queue is not None:
        app.job_queue.run_repeating(reminders.scan_job, interval=60, first=10, name="reminders")
    return app
