"""Proves the Bot API test double (tests/botapi.py) against a real PTB Application."""

from __future__ import annotations

import asyncio
import datetime as dtm
from collections.abc import AsyncIterator
from typing import Any

import pytest
from telegram import (
    BotCommand,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    InputMediaPhoto,
    Update,
)
from telegram.error import BadRequest, EndPointNotFound, Forbidden, NetworkError, RetryAfter
from telegram.ext import (
    Application,
    CallbackQueryHandler,
    CommandHandler,
    ContextTypes,
    MessageHandler,
    filters,
)

from tests.botapi import (
    BOT_ID,
    BOT_USERNAME,
    NOT_MODIFIED,
    BotAPI,
    Chat,
    make_message,
    make_update,
    make_user,
    text_fields,
)

pytestmark = pytest.mark.asyncio

App = Application[Any, Any, Any, Any, Any, Any]
Ctx = ContextTypes.DEFAULT_TYPE
KEYBOARD = InlineKeyboardMarkup(
    [
        [
            InlineKeyboardButton("Yes 是", callback_data="yes"),
            InlineKeyboardButton("No 否", callback_data="no"),
        ],
        [InlineKeyboardButton("Docs", url="https://example.com/docs")],
    ]
)


def build_app(api: BotAPI, seen: list[Update]) -> App:
    """A tiny echo/keyboard bot; every handled update is appended to ``seen``."""

    async def start(update: Update, context: Ctx) -> None:
        seen.append(update)
        assert update.effective_message
        await update.effective_message.reply_text(
            f"hello {' '.join(context.args or [])}".strip(), reply_markup=KEYBOARD
        )

    async def upload(update: Update, context: Ctx) -> None:
        chat_id = update.effective_chat.id if update.effective_chat else 0
        await context.bot.send_document(chat_id, b"PK\x03\x04xlsx", filename="报表.xlsx", caption="report")
        await context.bot.send_photo(chat_id, b"\x89PNGchart", filename="chart.png")
        await context.bot.send_media_group(chat_id, [InputMediaPhoto(b"one"), InputMediaPhoto(b"two")])

    async def echo(update: Update, context: Ctx) -> None:
        seen.append(update)
        assert update.message and update.message.text
        await update.message.reply_text(f"echo: {update.message.text}")

    async def location(update: Update, context: Ctx) -> None:
        assert update.message and update.message.location
        where = update.message.location
        await update.message.reply_text(f"at {where.latitude},{where.longitude}")

    async def photo(update: Update, context: Ctx) -> None:
        assert update.message
        file = await update.message.photo[-1].get_file()
        content = await file.download_as_bytearray()
        await update.message.reply_text(f"photo {bytes(content)!r}")

    async def sticker(update: Update, context: Ctx) -> None:
        assert update.message and update.message.sticker
        await update.message.reply_text(f"sticker {update.message.sticker.emoji}")

    async def button(update: Update, context: Ctx) -> None:
        seen.append(update)
        query = update.callback_query
        assert query
        await query.answer(f"got {query.data}", show_alert=query.data == "no")
        if not query.message or not query.message.is_accessible:
            return
        await query.edit_message_text(f"chose {query.data}")

    app = Application.builder().token("123:TEST").request(api).get_updates_request(api).build()
    app.add_handlers(
        [
            CommandHandler("start", start),
            CommandHandler("upload", upload),
            MessageHandler(filters.TEXT & ~filters.COMMAND, echo),
            MessageHandler(filters.LOCATION, location),
            MessageHandler(filters.PHOTO, photo),
            MessageHandler(filters.Sticker.ALL, sticker),
            CallbackQueryHandler(button),
        ]
    )
    return app


@pytest.fixture
def api() -> BotAPI:
    return BotAPI()


@pytest.fixture
def seen() -> list[Update]:
    return []


@pytest.fixture
async def app(api: BotAPI, seen: list[Update]) -> AsyncIterator[App]:
    application = build_app(api, seen)
    async with application:
        yield application


@pytest.fixture
def chat(app: App, api: BotAPI) -> Chat:
    return Chat(app, api, 1001, username="zhangsan")


@pytest.fixture
def timedelta_retry_after(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without PTB_TIMEDELTA, merely constructing RetryAfter emits a PTBDeprecationWarning (an error here)."""
    monkeypatch.setenv("PTB_TIMEDELTA", "true")


async def test_get_me_on_initialize(api: BotAPI, seen: list[Update]) -> None:
    app = build_app(api, seen)
    async with app:
        assert api.initialized
        assert (app.bot.id, app.bot.username, app.bot.first_name) == (BOT_ID, BOT_USERNAME, "Liaison Bot")
        assert app.bot.bot.can_join_groups is True
        assert [c.method for c in api.calls] == ["getMe"]
    assert not api.initialized


async def test_command_with_args(chat: Chat, api: BotAPI, seen: list[Update]) -> None:
    update = await chat.send("/start foo bar")
    assert update.message and update.message.entities[0].type == "bot_command"
    assert chat.last.text == "hello foo bar"
    assert (update.message.message_id, chat.last.message_id) == (1, 2)
    await chat.send("/start@liaison_test_bot x")
    assert chat.texts()[-1] == "hello x"
    assert api.calls_of("sendMessage")[0].params["chat_id"] == 1001
    assert chat.last.buttons == [[("Yes 是", "yes"), ("No 否", "no")], [("Docs", "https://example.com/docs")]]
    assert len(seen) == 2


async def test_text_echo(chat: Chat, api: BotAPI) -> None:
    await chat.send("你好")
    await chat.send("再见")
    assert chat.texts() == ["echo: 你好", "echo: 再见"]
    sent = chat.last
    assert (sent.chat_id, sent.kind, sent.message_id) == (1001, "text", 4)
    assert sent.data["from"]["id"] == BOT_ID and sent.data["chat"]["username"] == "zhangsan"


async def test_tap_inline_button_answers_and_edits(chat: Chat, api: BotAPI, seen: list[Update]) -> None:
    await chat.send("/start")
    keyboard_id = chat.last.message_id
    update = await chat.tap("Yes")  # substring match of "Yes 是"
    assert update.callback_query and update.callback_query.data == "yes"
    assert seen[-1] is update
    assert api.answers() == [("got yes", False)]
    assert (chat.last.message_id, chat.last.text, chat.last.reply_markup) == (keyboard_id, "chose yes", None)
    assert chat.last.edit_date is not None
    with pytest.raises(AssertionError, match="no bot message with an inline keyboard"):
        await chat.tap("No")


async def test_tap_failures_list_buttons(chat: Chat) -> None:
    await chat.send("/start")
    with pytest.raises(AssertionError, match=r"no button 'Maybe'.*Yes 是"):
        await chat.tap("Maybe")
    with pytest.raises(AssertionError, match="no callback_data on 'Docs'"):
        await chat.tap("Docs")
    with pytest.raises(AssertionError, match="ambiguous"):
        await chat.tap("o")  # "No 否" and "Docs"


async def test_not_modified_and_missing_edits_are_bad_requests(app: App, chat: Chat) -> None:
    await chat.send("/start")
    sent = chat.last
    with pytest.raises(BadRequest, match=r"(?i)message is not modified") as info:
        await app.bot.edit_message_text(sent.text or "", 1001, sent.message_id, reply_markup=KEYBOARD)
    # PTB strips "Bad Request: " and capitalize()s the rest (which lower-cases everything else)
    assert info.value.message == NOT_MODIFIED.removeprefix("Bad Request: ").capitalize()
    await app.bot.edit_message_reply_markup(1001, sent.message_id)  # removing the keyboard is a change
    assert chat.last.reply_markup is None and chat.last.text == "hello"
    with pytest.raises(BadRequest, match=r"(?i)message to edit not found"):
        await app.bot.edit_message_text("x", 1001, 99)
    assert await app.bot.delete_message(1001, sent.message_id)
    assert chat.messages() == []
    with pytest.raises(BadRequest, match=r"(?i)message to delete not found"):
        await app.bot.delete_message(1001, sent.message_id)


@pytest.mark.usefixtures("timedelta_retry_after")
async def test_injected_429(app: App, api: BotAPI) -> None:
    api.fail("sendMessage", retry_after=7)
    with pytest.raises(RetryAfter) as info:
        await app.bot.send_message(1001, "hi")
    assert info.value.retry_after == dtm.timedelta(seconds=7)
    assert not api.calls[-1].ok and api.messages(1001) == []
    await app.bot.send_message(1001, "hi")  # times=1: the next call goes through
    assert api.texts(1001) == ["hi"]


async def test_injected_403_500_and_unknown_method(app: App, api: BotAPI) -> None:
    api.fail("sendMessage", status=403, chat_id=1001, times=2)
    await app.bot.send_message(2002, "other chats are unaffected")
    for _ in range(2):
        with pytest.raises(Forbidden, match="bot was blocked by the user"):
            await app.bot.send_message(1001, "hi")
    api.fail("sendMessage", status=500)
    with pytest.raises(NetworkError, match="Internal Server Error"):
        await app.bot.send_message(1001, "hi")
    with pytest.raises(EndPointNotFound):
        await app.bot.do_api_request("send_something_new")
    assert [c.ok for c in api.calls_of("sendMessage")] == [True, False, False, False]


async def test_uploads_are_recorded(chat: Chat, api: BotAPI) -> None:
    await chat.send("/upload")
    document, photo, one, two = chat.messages()
    assert (document.kind, document.file_name, document.file_bytes, document.text) == (
        "document",
        "报表.xlsx",
        b"PK\x03\x04xlsx",
        "report",
    )
    assert api.calls_of("sendDocument")[0].files["document"] == ("报表.xlsx", b"PK\x03\x04xlsx")
    assert (photo.kind, photo.file_name, photo.file_bytes) == ("photo", "chart.png", b"\x89PNGchart")
    assert document.data["document"]["mime_type"].startswith("application/vnd.openxmlformats")
    assert [one.file_bytes, two.file_bytes] == [b"one", b"two"]
    assert one.media_group_id and one.media_group_id == two.media_group_id
    media = api.calls_of("sendMediaGroup")[0]
    assert sorted(content for _, content in media.files.values()) == [b"one", b"two"]


async def test_location_photo_and_sticker_reach_handlers(chat: Chat, api: BotAPI) -> None:
    await chat.send_location(31.23, 121.47)
    assert chat.last.text == "at 31.23,121.47"
    update = await chat.send_photo("AgACphoto1", content=b"jpeg-bytes")
    assert update.message and update.message.photo[-1].file_id == "AgACphoto1"
    assert chat.last.text == "photo b'jpeg-bytes'"
    assert api.calls_of("getFile")[0].params == {"file_id": "AgACphoto1"}
    await chat.send_sticker()
    assert chat.last.text == "sticker 👍"


async def test_redeliver_passes_the_same_update(chat: Chat, seen: list[Update]) -> None:
    update = await chat.send("once")
    await chat.redeliver(update)
    assert [u.update_id for u in seen] == [update.update_id, update.update_id]
    assert chat.texts() == ["echo: once", "echo: once"]


async def test_forged_callback_on_unknown_message(chat: Chat, api: BotAPI) -> None:
    update = await chat.press("admin:delete_all", message_id=42)
    # Telegram sends date=0 for such messages; PTB 22.8 still builds a Message (not InaccessibleMessage)
    assert update.callback_query and update.callback_query.message
    assert not update.callback_query.message.is_accessible
    assert api.answers() == [("got admin:delete_all", False)]


@pytest.mark.usefixtures("timedelta_retry_after")
async def test_rate_limiter_with_fake_clock(app: App, api: BotAPI) -> None:
    now = [100.0]
    api.limit_rate(global_per_second=3, per_chat_per_second=1, clock=lambda: now[0])
    await app.bot.send_message(1, "a")
    with pytest.raises(RetryAfter) as info:
        await app.bot.send_message(1, "b")
    assert info.value.retry_after == dtm.timedelta(seconds=1)
    now[0] += 0.5
    await app.bot.send_message(2, "c")
    await app.bot.send_message(3, "d")
    with pytest.raises(RetryAfter):  # 3 sends within the last second: the global limit
        await app.bot.send_message(4, "e")
    await app.bot.send_chat_action(1, "typing")  # not a message: never limited
    now[0] += 0.5  # "a" leaves the window
    await app.bot.send_message(1, "b")
    assert [c.params["text"] for c in api.calls_of("sendMessage") if c.ok] == ["a", "c", "d", "b"]


async def test_parse_modes_become_entities(app: App, api: BotAPI) -> None:
    html = "<b>粗</b> &amp; <a href='https://x.org'>link</a>"
    message = await app.bot.send_message(1, html, parse_mode="HTML")
    assert message.text == "粗 & link"
    assert [(e.type, e.offset, e.length) for e in message.entities] == [("bold", 0, 1), ("text_link", 4, 4)]
    message = await app.bot.send_message(
        1, '😀<pre><code class="language-py">x = 1</code></pre>', parse_mode="HTML"
    )
    assert message.text == "😀x = 1" and message.entities[0].to_dict() == {
        "type": "pre",
        "offset": 2,
        "length": 5,
        "language": "py",
    }  # UTF-16 offsets
    with pytest.raises(BadRequest, match=r"(?i)can't find end tag corresponding to start tag \"b\""):
        await app.bot.send_message(1, "<b>unclosed", parse_mode="HTML")
    with pytest.raises(BadRequest, match=r"(?i)unsupported start tag"):
        await app.bot.send_message(1, "<div>x</div>", parse_mode="HTML")
    with pytest.raises(BadRequest, match=r"(?i)button_data_invalid"):
        await app.bot.send_message(
            1,
            "x",
            reply_markup=InlineKeyboardMarkup.from_button(
                InlineKeyboardButton("long", callback_data="x" * 65)
            ),
        )


async def test_commands_and_webhook(app: App, api: BotAPI) -> None:
    await app.bot.set_my_commands([BotCommand("start", "开始"), BotCommand("help", "帮助")])
    assert [c.command for c in await app.bot.get_my_commands()] == ["start", "help"]
    assert await app.bot.get_my_commands(language_code="en") == ()
    with pytest.raises(BadRequest, match=r"(?i)bot_command_invalid"):
        await app.bot.set_my_commands([BotCommand("Start", "x")])
    await app.bot.delete_my_commands()
    assert await app.bot.get_my_commands() == ()
    await app.bot.set_webhook("https://example.com/hook")
    assert (await app.bot.get_webhook_info()).url == "https://example.com/hook"
    await app.bot.delete_webhook()
    assert (await app.bot.get_webhook_info()).url == ""


async def test_polling_serves_queued_updates(app: App, api: BotAPI, chat: Chat, seen: list[Update]) -> None:
    api.queue_update(chat.message_update(**text_fields("polled")))
    api.queue_update(make_update(app.bot, message=make_message(make_user(1001), 77, **text_fields("/start"))))
    assert app.updater
    await app.start()
    await app.updater.start_polling()
    for _ in range(100):
        if len(seen) == 2:
            break
        await asyncio.sleep(0.01)
    await app.updater.stop()
    await app.stop()
    assert [u.effective_message.text for u in seen if u.effective_message] == ["polled", "/start"]
    assert chat.texts() == ["echo: polled", "hello"]
    assert api.updates == [] and api.calls_of("deleteWebhook")
