"""Runs the conversations: restart-safe, exactly-once, with Back and Cancel at every step.

A flow is a small state machine (`Flow`). Its state lives in a `Draft` row that is read, changed and
written in one transaction per update, before anything is sent to Telegram:

* a redelivered update (same `update_id`) is recognised by `Draft.last_update_id` and ignored;
* buttons carry ``f:<draft id>:<version>.<choice>``: a button from a finished, replaced or earlier
  screen no longer matches and is answered "this action has expired", so a double-tapped Confirm
  creates one record;
* a draft untouched for `flow_ttl_hours` expires and the user is told when they come back.
"""

from __future__ import annotations

import copy
import logging
import re
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, ClassVar

from sqlalchemy.ext.asyncio import AsyncSession
from telegram import InlineKeyboardButton, InlineKeyboardMarkup, Update

from bot.config import Settings
from bot.context import BotContext
from bot.i18n import Translator
from bot.keyboards import Prefix, encode, parse
from bot.replies import redraw
from bot.storage import outbox
from bot.storage.drafts import DraftState, draft_for_update, drop_draft, replace_draft, save_draft
from bot.storage.models import User
from bot.storage.outbox import Push

log = logging.getLogger(__name__)

_CHOICE = re.compile(r"(\d{1,6})\.([A-Za-z0-9_.\-]{1,30})")
BACK, CANCEL, RESUME, REPLACE = "back", "cancel", "resume", "replace"


@dataclass(frozen=True)
class Text:
    value: str


@dataclass(frozen=True)
class Choice:
    value: str


@dataclass(frozen=True)
class Location:
    latitude: float
    longitude: float


@dataclass(frozen=True)
class Photo:
    file_id: str
    file_unique_id: str
    media_group_id: str | None = None  # set when the photo is one of an album (several updates)


@dataclass(frozen=True)
class Other:
    """Anything else: a sticker, a voice message, a document where none is expected."""


Input = Text | Choice | Location | Photo | Other


@dataclass
class Screen:
    """What a step shows: text (HTML, user text already escaped) and flow buttons as (label, choice)."""

    text: str
    buttons: list[list[tuple[str, str]]] = field(default_factory=list)
    back: bool = True


@dataclass(frozen=True)
class Goto:
    step: str
    remember: bool = True  # push the current step so Back returns to it
    # Accept a message silently: no new prompt, and the buttons already on screen stay valid (e.g. the
    # 2nd…nth photo of an album, which arrive as separate updates). Ignored for button presses.
    quiet: bool = False


@dataclass(frozen=True)
class Invalid:
    """Stay on this step and say why (e.g. text too long); the step's prompt is shown again."""

    message: str


@dataclass(frozen=True)
class Finish:
    """The flow is over; `buttons` are ordinary (non-flow) buttons such as follow-up actions."""

    text: str
    buttons: list[list[InlineKeyboardButton]] = field(default_factory=list)


@dataclass(frozen=True)
class StartFlow:
    """Hand over to another flow (e.g. report a problem for the enterprise just visited)."""

    flow: str
    args: dict[str, Any]


Outcome = Goto | Invalid | Finish | StartFlow


@dataclass
class Step:
    """What a flow step gets: the open transaction, the user, their language and the flow's data."""

    session: AsyncSession
    user: User
    _: Translator
    locale: str
    now: datetime
    settings: Settings
    data: dict[str, Any]
    chat_id: int
    message_id: int
    bot_username: str
    notify: list[Push] = field(default_factory=list)  # pushes to write to the outbox with this step


class Flow(ABC):
    name: ClassVar[str]
    title: ClassVar[str]  # N_() marked, e.g. "visit log"

    @abstractmethod
    async def begin(self, step: Step, args: dict[str, Any]) -> str | Finish:
        """Fill `step.data` from the arguments; return the first step, or Finish to refuse."""

    @abstractmethod
    async def screen(self, step: Step, name: str) -> Screen:
        """The prompt of step `name`."""

    @abstractmethod
    async def handle(self, step: Step, name: str, given: Input) -> Outcome:
        """React to the user's input at step `name`."""


@dataclass
class _Reply:
    text: str
    markup: InlineKeyboardMarkup | None
    edit: bool  # edit the message the button was on, instead of sending a new one
    alert: str | None = None  # for callbacks: a toast or alert text


Deliver = Callable[[BotContext], Awaitable[object]]


class FlowEngine:
    """`deliver` sends what a step put in the outbox (`Step.notify`), once its transaction has committed."""

    def __init__(self, flows: list[Flow], *, deliver: Deliver | None = None) -> None:
        self.flows = {flow.name: flow for flow in flows}
        self.deliver = deliver

    # -- entry points -------------------------------------------------------------------------
    async def start(self, update: Update, context: BotContext, flow_name: str, args: dict[str, Any]) -> None:
        """Start `flow_name`, unless another flow is in progress: then ask whether to continue it."""
        user, now = context.user, context.runtime.now()
        async with context.db.begin() as session:
            current = await draft_for_update(session, user_id=user.id)
            if current is not None and not self._expired(current, context.settings, now):
                current.data = {**current.data, "_pending": {"flow": flow_name, "args": args}}
                current.version += 1
                current.updated_at = now
                await save_draft(session, draft=current)
                reply = self._ask_resume(current, context._)
            else:
                step = self._step(session, context, {}, update)
                reply = await self._begin(step, flow_name, args, update.update_id)
        await self._send(update, context, reply)

    async def on_callback(self, update: Update, context: BotContext) -> None:
        query = update.callback_query
        assert query is not None
        data = parse(query.data)
        match = _CHOICE.fullmatch(data.arg) if data else None
        if data is None or match is None:
            log.warning(
                "update %s: malformed flow callback %r from user %s",
                update.update_id,
                query.data,
                context.user.id,
            )
            await query.answer(context._("This action has expired."), show_alert=True)
            return
        await self._advance(update, context, Choice(match.group(2)), (data.id, int(match.group(1))))

    async def on_message(self, update: Update, context: BotContext) -> None:
        message = update.message
        if message is None:
            return
        given: Input
        if message.text is not None:
            given = Text(message.text)
        elif message.location is not None:
            given = Location(message.location.latitude, message.location.longitude)
        elif message.photo:
            biggest = message.photo[-1]
            given = Photo(biggest.file_id, biggest.file_unique_id, message.media_group_id)
        else:
            given = Other()
        await self._advance(update, context, given, None)

    async def cancel(self, update: Update, context: BotContext) -> None:
        async with context.db.begin() as session:
            draft = await draft_for_update(session, user_id=context.user.id)
            if draft is not None:
                await drop_draft(session, draft=draft)
        _ = context._
        text = _("Cancelled. Nothing was saved.") if draft else _("There is nothing to cancel.")
        await self._send(update, context, _Reply(text, None, edit=update.callback_query is not None))

    # -- the transition -----------------------------------------------------------------------
    async def _advance(
        self, update: Update, context: BotContext, given: Input, button: tuple[int, int] | None
    ) -> None:
        _, now = context._, context.runtime.now()
        pushes: list[Push] = []
        async with context.db.begin() as session:
            draft = await draft_for_update(session, user_id=context.user.id)
            before = draft.saved_as() if draft is not None else None
            reply = await self._transition(session, context, update, draft, given, button, now, pushes)
            if draft is not None and not draft.dropped and draft.saved_as() != before:
                await save_draft(session, draft=draft)
            await outbox.enqueue(session, pushes)
        if reply is not None:
            await self._send(update, context, reply)
        elif update.callback_query is not None:
            await update.callback_query.answer()
        if pushes and self.deliver is not None:
            await self.deliver(context)

    async def _transition(
        self,
        session: AsyncSession,
        context: BotContext,
        update: Update,
        draft: DraftState | None,
        given: Input,
        button: tuple[int, int] | None,
        now: datetime,
        pushes: list[Push],
    ) -> _Reply | None:
        _ = context._
        if draft is None:
            if button is not None:
                return _Reply("", None, edit=False, alert=_("This action has expired."))
            return _Reply(_("I did not understand that. Send /help to see what I can do."), None, edit=False)
        if update.update_id <= draft.last_update_id:
            log.info("update %s redelivered; ignored", update.update_id)
            return None
        if button is not None and button != (draft.id, draft.version):
            return _Reply("", None, edit=False, alert=_("This action has expired."))
        if self._expired(draft, context.settings, now):
            flow = self.flows.get(draft.flow)
            await drop_draft(session, draft=draft)
            title = _(flow.title) if flow else ""
            return _Reply(
                _(
                    "Your unfinished {title} expired after {hours} hours without activity. "
                    "Nothing was saved; please start again."
                ).format(title=title, hours=context.settings.flow_ttl_hours),
                None,
                edit=False,
            )
        flow = self.flows.get(draft.flow)
        if flow is None:  # a flow that no longer exists after an upgrade
            await drop_draft(session, draft=draft)
            return _Reply(_("This action has expired."), None, edit=False)
        # A deep copy: the loaded JSON must stay untouched, or `_advance` compares the changed data with
        # itself and skips the UPDATE (e.g. Back only pops the shared `_trail` list).
        step = self._step(session, context, copy.deepcopy(draft.data), update)
        step.notify = pushes
        if given == Choice(CANCEL):
            await drop_draft(session, draft=draft)
            return _Reply(_("Cancelled. Nothing was saved."), None, edit=True)
        pending = step.data.pop("_pending", None)
        if pending is not None and given == Choice(REPLACE):  # the old flow's data must not leak into the new
            await drop_draft(session, draft=draft)
            fresh = Step(**{**step.__dict__, "data": {}})
            return await self._begin(fresh, pending["flow"], pending["args"], update.update_id)
        if given == Choice(BACK) and step.data.get("_trail"):
            self._touch(draft, update, step)
            draft.step = step.data["_trail"].pop()
            draft.data = step.data
            return await self._screen(flow, step, draft, notice=None, edit=button is not None)
        if pending is not None or given in (Choice(RESUME), Choice(BACK)):
            self._touch(draft, update, step)
            draft.data = step.data
            return await self._screen(flow, step, draft, notice=None, edit=button is not None)
        outcome = await flow.handle(step, draft.step, given)
        return await self._apply(flow, step, draft, outcome, update, edit=button is not None)

    async def _apply(
        self, flow: Flow, step: Step, draft: DraftState, outcome: Outcome, update: Update, *, edit: bool
    ) -> _Reply | None:
        if isinstance(outcome, Finish):
            await drop_draft(step.session, draft=draft)
            markup = InlineKeyboardMarkup(outcome.buttons) if outcome.buttons else None
            return _Reply(outcome.text, markup, edit=edit)
        if isinstance(outcome, StartFlow):
            await drop_draft(step.session, draft=draft)
            fresh = Step(**{**step.__dict__, "data": {}})
            return await self._begin(fresh, outcome.flow, outcome.args, update.update_id)
        if isinstance(outcome, Goto) and outcome.quiet and update.callback_query is None:
            self._touch(draft, update, step, new_screen=False)  # the screen shown last stays the current one
            draft.step = outcome.step
            draft.data = step.data
            return None
        self._touch(draft, update, step)
        if isinstance(outcome, Goto):
            if outcome.remember and outcome.step != draft.step:
                step.data.setdefault("_trail", []).append(draft.step)
            draft.step = outcome.step
            draft.data = step.data
            return await self._screen(flow, step, draft, notice=None, edit=edit)
        draft.data = step.data
        return await self._screen(flow, step, draft, notice=outcome.message, edit=False)

    @staticmethod
    def _touch(draft: DraftState, update: Update, step: Step, *, new_screen: bool = True) -> None:
        """The draft lives on: remember this update (redeliveries are ignored) and, when a new screen is
        shown, expire the buttons of the previous one. Done only now, after the step, so a step that
        finishes the flow never writes a draft it is about to delete."""
        draft.last_update_id = update.update_id
        draft.updated_at = step.now
        if new_screen:
            draft.version += 1

    async def _begin(self, step: Step, flow_name: str, args: dict[str, Any], update_id: int) -> _Reply:
        flow = self.flows[flow_name]
        first = await flow.begin(step, args)
        if isinstance(first, Finish):
            return _Reply(
                first.text, InlineKeyboardMarkup(first.buttons) if first.buttons else None, edit=False
            )
        draft = await replace_draft(
            step.session,
            user_id=step.user.id,
            flow=flow.name,
            step=first,
            data=step.data,
            update_id=update_id,
            now=step.now,
        )
        return await self._screen(flow, step, draft, notice=None, edit=False)

    async def _screen(
        self, flow: Flow, step: Step, draft: DraftState, *, notice: str | None, edit: bool
    ) -> _Reply:
        screen = await flow.screen(step, draft.step)
        _ = step._
        rows = [[self._button(draft, label, choice) for label, choice in row] for row in screen.buttons]
        nav = [self._button(draft, _("« Back"), BACK)] if screen.back and draft.data.get("_trail") else []
        nav.append(self._button(draft, _("✖ Cancel"), CANCEL))
        text = f"{notice}\n\n{screen.text}" if notice else screen.text
        return _Reply(text, InlineKeyboardMarkup([*rows, nav]), edit=edit)

    def _ask_resume(self, draft: DraftState, _: Translator) -> _Reply:
        flow = self.flows.get(draft.flow)
        title = _(flow.title) if flow else draft.flow
        text = _("You have an unfinished {title}. Continue it, or discard it and start the new one?").format(
            title=title
        )
        markup = InlineKeyboardMarkup(
            [
                [self._button(draft, _("Continue the unfinished one"), RESUME)],
                [self._button(draft, _("Discard it and start anew"), REPLACE)],
            ]
        )
        return _Reply(text, markup, edit=False)

    # -- helpers ------------------------------------------------------------------------------
    @staticmethod
    def _button(draft: DraftState, label: str, choice: str) -> InlineKeyboardButton:
        return InlineKeyboardButton(
            label, callback_data=encode(Prefix.flow, draft.id, f"{draft.version}.{choice}")
        )

    @staticmethod
    def _expired(draft: DraftState, settings: Settings, now: datetime) -> bool:
        return now - draft.updated_at > timedelta(hours=settings.flow_ttl_hours)

    @staticmethod
    def _step(session: AsyncSession, context: BotContext, data: dict[str, Any], update: Update) -> Step:
        message = update.effective_message
        return Step(
            session=session,
            user=context.user,
            _=context._,
            locale=context.locale,
            now=context.runtime.now(),
            settings=context.settings,
            data=data,
            chat_id=update.effective_chat.id if update.effective_chat else 0,
            message_id=message.message_id if message else 0,
            bot_username=context.bot.username,
        )

    @staticmethod
    async def _send(update: Update, context: BotContext, reply: _Reply) -> None:
        query = update.callback_query
        if query is not None:
            await query.answer(reply.alert, show_alert=bool(reply.alert))
            if reply.alert:
                return
            if reply.edit:
                await redraw(update, reply.text, reply.markup)
                return
        if update.effective_chat is not None and reply.text:
            await update.effective_chat.send_message(reply.text, reply_markup=reply.markup)
