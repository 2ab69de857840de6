"""An in-process stand-in for Telegram's Bot API servers, plus update builders and a chat driver.

Plug one :class:`BotAPI` into a real ``telegram.ext.Application`` as both ``request`` and
``get_updates_request``; simulate users with :class:`Chat`. Answers are shaped like Telegram's
(``{"ok": true, "result": ...}`` or ``{"ok": false, "error_code": ..., "description": ...}``), so PTB
raises its real exceptions (``BadRequest``, ``Forbidden``, ``RetryAfter``, ``InvalidToken`` for 404).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import math
import mimetypes
import re
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from html.parser import HTMLParser
from typing import Any, ClassVar
from urllib.parse import unquote

from telegram import Bot, Update
from telegram._utils.types import ODVInput
from telegram.ext import Application
from telegram.request import BaseRequest, RequestData

JSON = dict[str, Any]
Files = dict[str, tuple[str, bytes]]
App = Application[Any, Any, Any, Any, Any, Any]
MethodHandler = Callable[[JSON, Files], Any]
Media = tuple[Any, str | None, bytes | None]  # (Telegram's media JSON, uploaded file name, uploaded bytes)

BOT_ID = 7000000001
BOT_USERNAME = "liaison_test_bot"
BOT_USER: JSON = {"id": BOT_ID, "is_bot": True, "first_name": "Liaison Bot", "username": BOT_USERNAME}
GET_ME: JSON = {
    **BOT_USER,
    "can_join_groups": True,
    "can_read_all_group_messages": False,
    "supports_inline_queries": False,
    "can_connect_to_business": False,
    "has_main_web_app": False,
}
NOT_MODIFIED = (
    "Bad Request: message is not modified: specified new message content and reply markup are "
    "exactly the same as a current content and reply markup of the message"
)
DESCRIPTIONS = {
    400: "Bad Request: chat not found",
    403: "Forbidden: bot was blocked by the user",
    404: "Not Found",
    409: "Conflict: terminated by other getUpdates request",
    500: "Internal Server Error",
    502: "Bad Gateway",
}
_COUNTED = ("copyMessage", "forwardMessage")  # besides send* (but not sendChatAction)
_COMMAND = re.compile(r"(?<!\S)/[A-Za-z0-9_]{1,64}(?:@[A-Za-z0-9_]{3,32})?")
FAKE_JPEG = b"\xff\xd8\xff\xe0fake-jpeg"
_update_ids = itertools.count(1)
_query_ids = itertools.count(1)


def _u16(text: str) -> int:
    """Length in UTF-16 code units, the unit of Telegram's entity offsets."""
    return len(text.encode("utf-16-le")) // 2


class ApiError(Exception):
    """An error answer of the Bot API; raise it from a handler registered with :meth:`BotAPI.on`."""

    def __init__(self, status: int, description: str | None = None, retry_after: int | None = None) -> None:
        self.status, self.retry_after = status, retry_after
        self.description = description or DESCRIPTIONS.get(status, "Error")
        super().__init__(self.description)

    def payload(self) -> JSON:
        body: JSON = {"ok": False, "error_code": self.status, "description": self.description}
        if self.retry_after is not None:
            body["parameters"] = {"retry_after": self.retry_after}
        return body


def _bad(message: str) -> ApiError:
    return ApiError(400, f"Bad Request: {message}")


@dataclass
class Call:
    """One request the bot made: JSON-decoded parameters and uploaded files (name -> (filename, bytes))."""

    method: str
    params: JSON
    files: Files = field(default_factory=dict)
    ok: bool = True


@dataclass
class Sent:
    """A bot message as it currently is in a chat (``text`` holds the caption of media messages)."""

    message_id: int
    chat_id: int
    text: str  # "" for media without a caption
    reply_markup: JSON | None = None
    kind: str = "text"  # "text", "photo" or "document"
    file_name: str | None = None
    file_bytes: bytes | None = None
    entities: list[JSON] = field(default_factory=list)
    media: Any = None
    date: int = 0
    edit_date: int | None = None
    media_group_id: str | None = None
    chat: JSON = field(default_factory=dict, repr=False)

    @property
    def buttons(self) -> list[list[tuple[str, str | None]]]:
        """Rows of (text, callback_data or url) of the inline keyboard (or of a reply keyboard)."""
        markup = self.reply_markup or {}
        rows = markup.get("inline_keyboard") or markup.get("keyboard") or []
        return [[(b["text"], b.get("callback_data", b.get("url"))) for b in row] for row in rows]

    @property
    def inline_markup(self) -> JSON | None:
        """The reply markup if it is an inline keyboard (only those are part of the message)."""
        return self.reply_markup if self.reply_markup and "inline_keyboard" in self.reply_markup else None

    @property
    def data(self) -> JSON:
        """The message as Telegram would return it (``Message.de_json``-able)."""
        msg: JSON = {"message_id": self.message_id, "from": BOT_USER, "chat": self.chat, "date": self.date}
        for key, value in (
            ("edit_date", self.edit_date),
            ("media_group_id", self.media_group_id),
            ("reply_markup", self.inline_markup),
        ):
            if value:
                msg[key] = value
        if self.kind != "text":
            msg[self.kind] = self.media
        if self.text:
            msg["text" if self.kind == "text" else "caption"] = self.text
        if self.entities:
            msg["entities" if self.kind == "text" else "caption_entities"] = self.entities
        return msg


class RateLimiter:
    """Telegram's flood limits as sliding one-second windows: overall and per chat."""

    def __init__(
        self,
        global_per_second: int = 30,
        per_chat_per_second: int = 1,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.global_per_second, self.per_chat_per_second, self.clock = (
            global_per_second,
            per_chat_per_second,
            clock,
        )
        self._all: deque[float] = deque()
        self._chats: dict[int, deque[float]] = {}

    def check(self, chat_id: int | None) -> int | None:
        """Admit one send now (returns None) or refuse it, returning the whole seconds to wait."""
        now = self.clock()
        windows = [(self._all, self.global_per_second)]
        if chat_id is not None:
            windows.append((self._chats.setdefault(chat_id, deque()), self.per_chat_per_second))
        wait = 0.0
        for stamps, limit in windows:
            while stamps and stamps[0] <= now - 1.0:
                stamps.popleft()
            if len(stamps) >= limit:  # admitted again once the limit-th newest stamp leaves the window
                wait = max(wait, stamps[-limit] + 1.0 - now)
        if wait > 0:
            return max(1, math.ceil(wait))
        for stamps, _ in windows:
            stamps.append(now)
        return None


@dataclass
class _Failure:
    method: str
    chat_id: int | None
    error: ApiError
    times: int


class _HTML(HTMLParser):
    TAGS: ClassVar[dict[str, str]] = {  # supported tag -> entity type
        **dict.fromkeys(("b", "strong"), "bold"),
        **dict.fromkeys(("i", "em"), "italic"),
        **dict.fromkeys(("u", "ins"), "underline"),
        **dict.fromkeys(("s", "strike", "del"), "strikethrough"),
        **dict.fromkeys(("tg-spoiler", "span"), "spoiler"),
        **{
            "a": "text_link",
            "code": "code",
            "pre": "pre",
            "blockquote": "blockquote",
            "tg-emoji": "custom_emoji",
        },
    }

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.text, self.entities, self.open = "", list[JSON](), list[tuple[str, int, JSON]]()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in self.TAGS:
            raise _bad(f'can\'t parse entities: Unsupported start tag "{tag}"')
        attr, entity = dict(attrs), {"type": self.TAGS[tag]}
        if tag == "a":
            entity["url"] = attr.get("href") or ""
        elif tag == "blockquote" and "expandable" in attr:
            entity["type"] = "expandable_blockquote"
        elif tag == "tg-emoji":
            entity["custom_emoji_id"] = attr.get("emoji-id") or ""
        elif tag == "code" and self.open and self.open[-1][0] == "pre":  # <pre><code class="language-x">
            if language := (attr.get("class") or "").removeprefix("language-"):
                self.open[-1][2]["language"] = language
            entity["type"] = ""  # folded into the pre entity
        self.open.append((tag, _u16(self.text), entity))

    def handle_endtag(self, tag: str) -> None:
        if not self.open or self.open[-1][0] != tag:
            expected = f'"</{self.open[-1][0]}>"' if self.open else "no end tag"
            raise _bad(f'can\'t parse entities: Unmatched end tag "</{tag}>", expected {expected}')
        _, start, entity = self.open.pop()
        if _u16(self.text) > start and entity["type"]:
            self.entities.append({**entity, "offset": start, "length": _u16(self.text) - start})

    def handle_data(self, data: str) -> None:
        self.text += data


def parse_entities(text: str, parse_mode: str | None) -> tuple[str, list[JSON]]:
    """Turn HTML-formatted text into (plain text, entities) like Telegram, or raise a 400 ApiError."""
    if parse_mode == "HTML":
        parser = _HTML()
        parser.feed(text)
        parser.close()
        if parser.open:
            tag = parser.open[-1][0]
            raise _bad(f"can't parse entities: Can't find end tag corresponding to start tag \"{tag}\"")
        plain, entities = parser.text, parser.entities
    else:  # no parse mode, or a Markdown one (not emulated: the bot uses HTML)
        plain, entities = text, []
    return plain, sorted((e for e in entities if e["length"] > 0), key=lambda e: (e["offset"], -e["length"]))


def _check_markup(markup: JSON | None) -> None:
    for row in (markup or {}).get("inline_keyboard", []):
        for button in row:
            if "callback_data" in button and not 1 <= len(button["callback_data"].encode()) <= 64:
                raise _bad("BUTTON_DATA_INVALID")
            if set(button) <= {"text"}:
                raise _bad(
                    "can't parse inline keyboard button: Text buttons are unallowed in the inline keyboard"
                )


def _chat_id(params: JSON) -> int:
    try:
        return int(params.get("chat_id", ""))
    except ValueError:
        raise _bad("chat not found") from None


class BotAPI(BaseRequest):
    """Telegram's Bot API servers, in process. ``now`` is the wall clock used for message dates."""

    def __init__(self, *, now: Callable[[], float] = time.time) -> None:
        self.now = now
        self.calls: list[Call] = []
        self.users: dict[int, JSON] = {}  # user JSON per private chat id, filled by Chat
        self.files: dict[str, bytes] = {}  # file_id -> content that getFile + download can serve
        self.commands: dict[tuple[str, str], list[JSON]] = {}  # (scope JSON, language_code) -> commands
        self.updates: list[JSON] = []  # served by getUpdates; see queue_update
        self.webhook_url = ""
        self.limiter: RateLimiter | None = None
        self.initialized = False
        self._store: dict[int, dict[int, Sent]] = {}
        self._next_ids: dict[int, int] = {}
        self._user_messages: dict[int, set[int]] = {}
        self._failures: list[_Failure] = []
        self._file_seq = itertools.count(1)
        self._names: dict[str, str] = {}
        true: MethodHandler = lambda p, f: True  # noqa: E731
        self._methods: dict[str, MethodHandler] = {
            "getMe": lambda p, f: GET_ME,
            "sendMessage": self._send_message,
            "sendPhoto": lambda p, f: self._send_media("photo", p, f),
            "sendDocument": lambda p, f: self._send_media("document", p, f),
            "sendMediaGroup": self._send_media_group,
            "sendChatAction": true,
            "answerCallbackQuery": true,
            "editMessageText": self._edit_text,
            "editMessageCaption": self._edit_caption,
            "editMessageReplyMarkup": lambda p, f: self._edit(self._target(p), None, None, p),
            "deleteMessage": self._delete,
            "getFile": self._get_file,
            "setMyCommands": self._set_commands,
            "getMyCommands": lambda p, f: self.commands.get(_scope(p), []),
            "deleteMyCommands": lambda p, f: self._set_commands({**p, "commands": []}, f),
            "setWebhook": lambda p, f: self._set_webhook(str(p.get("url", ""))),
            "deleteWebhook": lambda p, f: self._set_webhook("", p.get("drop_pending_updates", False)),
            "getWebhookInfo": lambda p, f: {
                "url": self.webhook_url,
                "has_custom_certificate": False,
                "pending_update_count": len(self.updates),
            },
            "getUpdates": self._get_updates,
            "close": true,
            "logOut": true,
        }

    # -- BaseRequest --------------------------------------------------------------------------------------
    @property
    def read_timeout(self) -> float | None:
        return 5.0

    async def initialize(self) -> None:
        self.initialized = True

    async def shutdown(self) -> None:
        self.initialized = False

    async def do_request(
        self,
        url: str,
        method: str,
        request_data: RequestData | None = None,
        read_timeout: ODVInput[float] = BaseRequest.DEFAULT_NONE,
        write_timeout: ODVInput[float] = BaseRequest.DEFAULT_NONE,
        connect_timeout: ODVInput[float] = BaseRequest.DEFAULT_NONE,
        pool_timeout: ODVInput[float] = BaseRequest.DEFAULT_NONE,
    ) -> tuple[int, bytes]:
        if method == "GET":  # File.download_*: https://api.telegram.org/file/bot<token>/files/<file_id>
            blob = self.files.get(unquote(url).rpartition("/files/")[2])
            return (200, blob) if blob is not None else (404, _dump(ApiError(404).payload()))
        name = url.rpartition("/")[2]
        params: JSON = json.loads(json.dumps(request_data.parameters)) if request_data else {}
        files: Files = {}
        for part, (filename, content, _mime) in (request_data.multipart_data if request_data else {}).items():
            files[part] = (filename, content if isinstance(content, bytes) else content.read())
        call = Call(name, params, files)
        self.calls.append(call)
        try:
            self._refuse(name, params)
            if (handler := self._methods.get(name)) is None:
                raise ApiError(404, "Not Found")
            result = handler(params, files)
        except ApiError as exc:
            call.ok = False
            return exc.status, _dump(exc.payload())
        if name == "getUpdates" and not result:  # a short stand-in for long polling
            await asyncio.sleep(min(float(params.get("timeout", 0)), 0.05))
        return 200, _dump({"ok": True, "result": result})

    # -- configuration ------------------------------------------------------------------------------------
    def on(self, method: str, handler: MethodHandler) -> None:
        """Answer ``method`` with ``handler(params, files)`` (its return value is the result)."""
        self._methods[method] = handler

    def fail(
        self,
        method: str,
        *,
        status: int = 429,
        description: str | None = None,
        retry_after: int | None = None,
        times: int = 1,
        chat_id: int | None = None,
    ) -> None:
        """Make the next ``times`` calls of ``method`` (optionally only for ``chat_id``) answer an error."""
        if status == 429:
            retry_after = 5 if retry_after is None else retry_after
            description = description or f"Too Many Requests: retry after {retry_after}"
        self._failures.append(_Failure(method, chat_id, ApiError(status, description, retry_after), times))

    def limit_rate(
        self,
        global_per_second: int = 30,
        per_chat_per_second: int = 1,
        clock: Callable[[], float] = time.monotonic,
    ) -> RateLimiter:
        """Answer 429 (with a correct retry_after) to send* calls beyond Telegram's flood limits."""
        self.limiter = RateLimiter(global_per_second, per_chat_per_second, clock)
        return self.limiter

    def queue_update(self, update: Update | JSON) -> None:
        """Queue an update for getUpdates (polling)."""
        self.updates.append(update.to_dict() if isinstance(update, Update) else update)

    # -- inspection ---------------------------------------------------------------------------------------
    def calls_of(self, method: str) -> list[Call]:
        return [c for c in self.calls if c.method == method]

    def messages(self, chat_id: int) -> list[Sent]:
        """The bot's messages in the chat as they are now (edited, without deleted ones)."""
        return list(self._store.get(chat_id, {}).values())

    def find(self, chat_id: int, message_id: int) -> Sent | None:
        return self._store.get(chat_id, {}).get(message_id)

    def last(self, chat_id: int) -> Sent:
        if not (sent := self.messages(chat_id)):
            raise AssertionError(f"the bot has no messages in chat {chat_id}")
        return sent[-1]

    def texts(self, chat_id: int) -> list[str]:
        return [s.text or "" for s in self.messages(chat_id)]

    def answers(self) -> list[tuple[str | None, bool]]:
        """(text, show_alert) of each successful answerCallbackQuery."""
        return [
            (c.params.get("text"), bool(c.params.get("show_alert")))
            for c in self.calls_of("answerCallbackQuery")
            if c.ok
        ]

    def reset(self) -> None:
        self.calls.clear()

    def next_message_id(self, chat_id: int) -> int:
        """Allocate the next message id of a chat (ids are per chat, shared by user and bot)."""
        self._next_ids[chat_id] = self._next_ids.get(chat_id, 0) + 1
        return self._next_ids[chat_id]

    def new_user_message(self, chat_id: int) -> int:
        message_id = self.next_message_id(chat_id)
        self._user_messages.setdefault(chat_id, set()).add(message_id)
        return message_id

    # -- methods ------------------------------------------------------------------------------------------
    def _refuse(self, name: str, params: JSON) -> None:
        chat_id = params.get("chat_id")
        for failure in self._failures:
            same_chat = failure.chat_id is None or str(failure.chat_id) == str(chat_id)
            if failure.method == name and failure.times > 0 and same_chat:
                failure.times -= 1
                raise failure.error
        counted = (name.startswith("send") and name != "sendChatAction") or name in _COUNTED
        if self.limiter and counted and (wait := self.limiter.check(_chat_id(params))) is not None:
            raise ApiError(429, f"Too Many Requests: retry after {wait}", retry_after=wait)

    def _chat_json(self, chat_id: int) -> JSON:
        if chat_id < 0:
            return {
                "id": chat_id,
                "type": "supergroup" if str(chat_id).startswith("-100") else "group",
                "title": f"Group {chat_id}",
            }
        return private_chat(self.users.get(chat_id, {"id": chat_id, "first_name": f"User {chat_id}"}))

    def _formatted(self, params: JSON, key: str) -> tuple[str | None, list[JSON]]:
        if (raw := params.get(key)) is None:
            return None, []
        entities_key = "entities" if key == "text" else "caption_entities"
        if entities_key in params:
            text, entities = str(raw), list(params[entities_key])
        else:
            text, entities = parse_entities(str(raw), params.get("parse_mode"))
        if key == "text" and not text.strip():
            raise _bad("message text is empty")
        if len(text) > (4096 if key == "text" else 1024):
            raise _bad("message is too long" if key == "text" else "message caption is too long")
        return text, entities

    def _store_new(
        self,
        params: JSON,
        kind: str,
        text: str | None,
        entities: list[JSON],
        media: Media = (None, None, None),
        group: str | None = None,
    ) -> Sent:
        chat_id, markup = _chat_id(params), params.get("reply_markup")
        _check_markup(markup)
        message_id, (media_json, file_name, file_bytes) = self.next_message_id(chat_id), media
        sent = Sent(
            message_id, chat_id, text or "", markup, kind, file_name, file_bytes, entities, media_json
        )
        sent.date, sent.media_group_id, sent.chat = int(self.now()), group, self._chat_json(chat_id)
        self._store.setdefault(chat_id, {})[sent.message_id] = sent
        return sent

    def _send_message(self, params: JSON, files: Files) -> JSON:
        text, entities = self._formatted(params, "text")
        if text is None:
            raise _bad("message text is empty")
        return self._store_new(params, "text", text, entities).data

    def _media(self, kind: str, ref: Any, upload: tuple[str, bytes] | None) -> Media:
        """(Telegram's photo sizes / document JSON, uploaded file name, uploaded bytes)."""
        if upload:
            file_id = f"{kind}-{next(self._file_seq)}"
            self.files[file_id], self._names[file_id] = upload[1], upload[0]
        elif isinstance(ref, str) and ref and not ref.startswith("attach://"):
            file_id = ref
        else:
            raise _bad(f"there is no {kind} in the request")
        name, content = upload or (None, None)
        base: JSON = {
            "file_id": file_id,
            "file_unique_id": f"U{file_id}",
            "file_size": len(self.files.get(file_id, b"")) or 1024,
        }
        if kind == "photo":
            return [{**base, "width": 1280, "height": 960}], name, content
        file_name = self._names.get(file_id, "document")
        mime = mimetypes.guess_type(file_name)[0] or "application/octet-stream"
        return {**base, "file_name": file_name, "mime_type": mime}, name, content

    def _send_media(self, kind: str, params: JSON, files: Files) -> JSON:
        ref = params.get(kind)
        upload = files.get(kind) or files.get(str(ref).removeprefix("attach://"))
        media = self._media(kind, ref, upload)
        return self._store_new(params, kind, *self._formatted(params, "caption"), media).data

    def _send_media_group(self, params: JSON, files: Files) -> list[JSON]:
        items = [
            (
                m["type"],
                self._media(
                    m["type"], m.get("media"), files.get(str(m.get("media")).removeprefix("attach://"))
                ),
                self._formatted(m, "caption"),
            )
            for m in params.get("media", [])
        ]
        group = f"{next(self._file_seq)}{_chat_id(params)}"
        return [
            self._store_new({**params, "reply_markup": None}, kind, *text, media, group).data
            for kind, media, text in items
        ]

    def _target(self, params: JSON) -> Sent | None:
        """The message an edit addresses; None for inline messages."""
        if "inline_message_id" in params:
            return None
        if (sent := self.find(_chat_id(params), int(params.get("message_id", 0)))) is None:
            raise _bad("message to edit not found")
        return sent

    def _edit(self, sent: Sent | None, text: str | None, entities: list[JSON] | None, params: JSON) -> Any:
        markup = params.get("reply_markup")  # omitting it removes the inline keyboard, as on Telegram
        _check_markup(markup)
        if sent is None:
            return True
        text, entities = (sent.text, sent.entities) if entities is None else (text or "", entities)
        if (text, entities, markup) == (sent.text, sent.entities, sent.inline_markup):
            raise ApiError(400, NOT_MODIFIED)
        sent.text, sent.entities, sent.reply_markup, sent.edit_date = text, entities, markup, int(self.now())
        return sent.data

    def _edit_text(self, params: JSON, files: Files) -> Any:
        sent, (text, entities) = self._target(params), self._formatted(params, "text")
        if text is None:
            raise _bad("message text is empty")
        if sent and sent.kind != "text":
            raise _bad("there is no text in the message to edit")
        return self._edit(sent, text, entities, params)

    def _edit_caption(self, params: JSON, files: Files) -> Any:
        sent, (text, entities) = self._target(params), self._formatted(params, "caption")
        if sent and sent.kind == "text":
            raise _bad("there is no caption in the message to edit")
        return self._edit(sent, text, entities, params)

    def _delete(self, params: JSON, files: Files) -> bool:
        chat_id, message_id = _chat_id(params), int(params.get("message_id", 0))
        users = self._user_messages.get(chat_id, set())
        if self._store.get(chat_id, {}).pop(message_id, None) is None and message_id not in users:
            raise _bad("message to delete not found")
        users.discard(message_id)
        return True

    def _get_file(self, params: JSON, files: Files) -> JSON:
        file_id = str(params.get("file_id"))
        if file_id not in self.files:
            raise _bad("invalid file_id")
        return {
            "file_id": file_id,
            "file_unique_id": f"U{file_id}",
            "file_size": len(self.files[file_id]),
            "file_path": f"files/{file_id}",
        }

    def _set_commands(self, params: JSON, files: Files) -> bool:
        for command in params.get("commands", []):
            if not re.fullmatch(r"[a-z0-9_]{1,32}", command.get("command", "")):
                raise _bad("BOT_COMMAND_INVALID")
            if not 1 <= len(command.get("description", "")) <= 256:
                raise _bad("BOT_COMMAND_DESCRIPTION_INVALID")
        self.commands[_scope(params)] = params.get("commands", [])
        return True

    def _set_webhook(self, url: str, drop_pending: bool = False) -> bool:
        self.webhook_url = url
        if drop_pending:
            self.updates.clear()
        return True

    def _get_updates(self, params: JSON, files: Files) -> list[JSON]:
        if self.webhook_url:
            raise ApiError(
                409,
                "Conflict: can't use getUpdates method while webhook is active; "
                "use deleteWebhook to delete the webhook first",
            )
        if offset := int(params.get("offset", 0)):
            self.updates = [u for u in self.updates if u["update_id"] >= offset]
        return self.updates[: int(params.get("limit", 100))]


def _scope(params: JSON) -> tuple[str, str]:
    scope = json.dumps(params.get("scope", {"type": "default"}), sort_keys=True)
    return scope, params.get("language_code", "")


def _dump(payload: Any) -> bytes:
    return json.dumps(payload, ensure_ascii=False).encode()


# -- update builders ----------------------------------------------------------------------------------------
def make_user(
    user_id: int,
    *,
    first_name: str = "张三",
    username: str | None = None,
    language_code: str | None = "zh-hans",
) -> JSON:
    user: JSON = {"id": user_id, "is_bot": False, "first_name": first_name}
    user.update({k: v for k, v in (("username", username), ("language_code", language_code)) if v})
    return user


def private_chat(user: JSON) -> JSON:
    keys = ("id", "first_name", "last_name", "username")
    return {"type": "private", **{k: user[k] for k in keys if k in user}}


def text_fields(text: str) -> JSON:
    """``text`` plus the bot_command entities Telegram adds (e.g. for "/start x" or "/help@bot")."""
    entities = [
        {"type": "bot_command", "offset": _u16(text[: m.start()]), "length": _u16(m.group())}
        for m in _COMMAND.finditer(text)
    ]
    return {"text": text, "entities": entities} if entities else {"text": text}


def make_message(user: JSON, message_id: int, *, date: int | None = None, **fields: Any) -> JSON:
    """A message JSON from ``user`` in the private chat with the bot."""
    return {
        "message_id": message_id,
        "from": user,
        "chat": private_chat(user),
        "date": int(time.time()) if date is None else date,
        **fields,
    }


def make_update(bot: Bot, **payload: Any) -> Update:
    """``Update.de_json({"update_id": <next>, **payload})``, e.g. ``make_update(bot, message={...})``."""
    return Update.de_json({"update_id": next(_update_ids), **payload}, bot)


class Chat:
    """A private chat between one simulated Telegram user and the bot under test."""

    def __init__(
        self,
        app: App,
        api: BotAPI,
        user_id: int,
        *,
        first_name: str = "张三",
        username: str | None = None,
        language_code: str | None = "zh-hans",
    ) -> None:
        self.app, self.api, self.user_id = app, api, user_id
        self.user = make_user(user_id, first_name=first_name, username=username, language_code=language_code)
        api.users[user_id] = self.user

    @property
    def last(self) -> Sent:
        """The latest bot message in this chat."""
        return self.api.last(self.user_id)

    def texts(self) -> list[str]:
        return self.api.texts(self.user_id)

    def messages(self) -> list[Sent]:
        return self.api.messages(self.user_id)

    # -- building (no processing) ------------------------------------------------------------------------
    def message_update(self, **fields: Any) -> Update:
        """An update with a new message from the user carrying ``fields`` (e.g. ``text_fields("hi")``)."""
        message_id = self.api.new_user_message(self.user_id)
        message = make_message(self.user, message_id, date=int(self.api.now()), **fields)
        return make_update(self.app.bot, message=message)

    def callback_update(self, data: str, message: Sent | JSON) -> Update:
        """An update for the user pressing a button with ``data`` under ``message``."""
        return make_update(
            self.app.bot,
            callback_query={
                "id": f"{self.user_id}{next(_query_ids):08d}",
                "from": self.user,
                "chat_instance": f"ci{self.user_id}",
                "message": message.data if isinstance(message, Sent) else message,
                "data": data,
            },
        )

    # -- acting ------------------------------------------------------------------------------------------
    async def _process(self, update: Update) -> Update:
        await self.app.process_update(update)
        return update

    async def send(self, text: str) -> Update:
        return await self._process(self.message_update(**text_fields(text)))

    async def send_raw(self, **fields: Any) -> Update:
        """Send a message with arbitrary Telegram fields, e.g. ``document={...}`` or ``contact={...}``."""
        return await self._process(self.message_update(**fields))

    async def send_location(self, latitude: float, longitude: float) -> Update:
        return await self.send_raw(location={"latitude": latitude, "longitude": longitude})

    async def send_photo(
        self,
        file_id: str = "AgACAgUAAxkBAAIBZ2dphoto",
        file_unique_id: str = "AQADphoto",
        *,
        caption: str | None = None,
        content: bytes = FAKE_JPEG,
    ) -> Update:
        """Send a photo (two sizes; the largest has ``file_id``); ``content`` is what getFile serves."""
        sizes = [
            {"file_id": f"{file_id}-s", "file_unique_id": f"{file_unique_id}-s", "width": 90, "height": 67},
            {
                "file_id": file_id,
                "file_unique_id": file_unique_id,
                "width": 1280,
                "height": 960,
                "file_size": len(content),
            },
        ]
        self.api.files[file_id] = self.api.files[f"{file_id}-s"] = content
        return await self.send_raw(photo=sizes, **({"caption": caption} if caption else {}))

    async def send_sticker(self) -> Update:
        return await self._process(
            self.message_update(
                sticker={
                    "file_id": "CAACAgIAAxkBAAIsticker",
                    "file_unique_id": "AgADsticker",
                    "type": "regular",
                    "width": 512,
                    "height": 512,
                    "is_animated": False,
                    "is_video": False,
                    "emoji": "👍",
                }
            )
        )

    async def tap(self, label: str, *, message: Sent | None = None) -> Update:
        """Press the inline button labelled ``label`` (exact, else unique substring match)."""
        if message is None:
            keyboards = [s for s in self.messages() if s.inline_markup]
            if not keyboards:
                raise AssertionError(
                    f"no bot message with an inline keyboard in chat {self.user_id}; "
                    f"bot messages: {self.texts()!r}"
                )
            message = keyboards[-1]
        rows = (message.inline_markup or {}).get("inline_keyboard", [])
        buttons: list[JSON] = [b for row in rows for b in row]
        hits = [b for b in buttons if b["text"] == label] or [b for b in buttons if label in b["text"]]
        if len(hits) != 1 or "callback_data" not in hits[0]:
            problem = "no button" if not hits else "ambiguous" if len(hits) > 1 else "no callback_data on"
            raise AssertionError(
                f"{problem} {label!r} on message {message.message_id} ({message.text!r}); "
                f"buttons: {message.buttons!r}"
            )
        return await self._process(self.callback_update(hits[0]["callback_data"], message))

    async def press(self, callback_data: str, *, message_id: int | None = None) -> Update:
        """Send raw (possibly forged) callback data, under ``message_id`` or the latest keyboard message."""
        if message_id is None:
            candidates = [s for s in self.messages() if s.inline_markup] or self.messages()
            message_id = candidates[-1].message_id if candidates else 1
        found = self.api.find(self.user_id, message_id)
        inaccessible = {"chat": private_chat(self.user), "message_id": message_id, "date": 0}
        return await self._process(self.callback_update(callback_data, found or inaccessible))

    async def redeliver(self, update: Update) -> None:
        """Process the very same update (same update_id) again, as after a webhook retry."""
        await self.app.process_update(update)
