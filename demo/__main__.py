"""Chat with the real bot in a terminal: the real Application and handlers, a seeded demo database, and
an in-process stand-in for Telegram. No token, no network.

    make demo            (or: .venv/bin/python -m demo [--fresh] [--out DIR])

Type messages as you would in Telegram. Buttons are numbered: type the number to press one (on the
latest message that has buttons). Demo commands: /as liaison|instructor|supervisor|admin (switch
persona), /photo, /location [LAT LON], /quit (or Ctrl+D). Charts and exports the bot sends are saved
as files in the output folder (demo/out/ unless --out is given), next to the demo database.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import logging
import signal
import sys
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from bot.app import build_application
from bot.config import Settings
from bot.storage.db import create_engine, create_sessionmaker
from bot.storage.migrate import upgrade
from bot.storage.models import Draft, User
from demo.seed import PERSONAS, seed
from tests import botapi
from tests.botapi import BotAPI, Chat, Sent

OUT = Path(__file__).parent / "out"
DEFAULT_LOCATION = (30.66, 104.07)  # near the seeded enterprises
USAGE = (
    "Buttons are numbered: type a number to press one. /as liaison|instructor|supervisor|admin switches "
    "persona;\n/photo and /location send one; /quit ends. Files the bot sends are saved in {out}/."
)
MAGIC = {b"\x89PNG": ".png", b"\xff\xd8\xff": ".jpg", b"PK\x03\x04": ".xlsx", b"%PDF": ".pdf"}


def shown_path(path: Path) -> str:
    """``path`` relative to the working directory when it is below it (shorter to read)."""
    with contextlib.suppress(ValueError):
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    return str(path)


def extension(content: bytes) -> str:
    return next((ext for magic, ext in MAGIC.items() if content.startswith(magic)), ".bin")


def indent(text: str) -> str:
    return text.replace("\n", "\n   ")


class Terminal:
    """What the person at the keyboard sees of one persona's chat: new messages, edits, deletions, toasts.

    The Bot API double stores messages as Telegram shows them (HTML already turned into plain text and
    entities), so the text is printed as it is."""

    def __init__(self, app: Any, api: BotAPI, out: Path, names: dict[str, str]) -> None:
        self.app, self.api, self.out, self.names = app, api, out, names
        self.chats = {
            persona: Chat(app, api, telegram_id, first_name=names.get(persona, persona))
            for persona, telegram_id in PERSONAS.items()
        }
        self.persona = "liaison"
        self.seen: dict[tuple[int, int], tuple[str, Any]] = {}
        self.answers_seen = 0

    @property
    def chat(self) -> Chat:
        return self.chats[self.persona]

    def show_new(self) -> int:
        """Print the bot's messages in this persona's chat that are new, changed or gone since last time,
        and the answers to button presses; how many things were printed."""
        shown = 0
        chat_id = self.chat.user_id
        current = {(sent.chat_id, sent.message_id): sent for sent in self.api.messages(chat_id)}
        for key in [k for k in self.seen if k[0] == chat_id and k not in current]:
            text, _markup = self.seen.pop(key)
            print(f"🗑 (deleted) {text.splitlines()[0] if text else ''}")
            shown += 1
        for key, sent in current.items():
            state = (sent.text, sent.reply_markup)
            if self.seen.get(key) == state:
                continue
            edited = key in self.seen
            self.seen[key] = state
            self.print_message(sent, edited)
            shown += 1
        answers = self.api.answers()
        for toast, alert in answers[self.answers_seen :]:
            if toast:
                print(f"   {'⚠' if alert else 'ℹ'} {toast}")
                shown += 1
        self.answers_seen = len(answers)
        return shown

    def save(self, sent: Sent) -> Path:
        assert sent.file_bytes is not None
        name = Path(sent.file_name or "").name
        if sent.kind == "photo" or not Path(name).suffix:  # Telegram photos have no file name
            name = f"{sent.kind}-{self.persona}-{sent.message_id}{extension(sent.file_bytes)}"
        path, n = self.out / name, 1
        while path.exists():  # keep what earlier runs saved
            n += 1
            path = self.out / f"{Path(name).stem}-{n}{Path(name).suffix}"
        path.write_bytes(sent.file_bytes)
        return path

    def print_message(self, sent: Sent, edited: bool) -> None:
        lines = []
        if sent.kind != "text":
            saved = f"saved to {shown_path(self.save(sent))}" if sent.file_bytes is not None else "sent"
            lines.append(f"[{sent.kind} {saved}]")
        if sent.text:
            lines.append(sent.text)
        print(("🤖 (edited) " if edited else "🤖 ") + indent("\n".join(lines)))
        for number, (label, data) in enumerate((b for row in sent.buttons for b in row), start=1):
            link = f"  → {data}" if data and "://" in data else ""
            print(f"   [{number}] {label}{link}")

    def last_keyboard(self) -> Sent | None:
        keyboards = [m for m in self.api.messages(self.chat.user_id) if m.inline_markup]
        return keyboards[-1] if keyboards else None

    def switch(self, who: str) -> None:
        if who not in self.chats:
            print(f"   personas: {', '.join(self.chats)}")
            return
        self.persona = who
        print(f"--- you are now {self.names.get(who, who)}, the {who} ---")
        self.show_new()  # what reached this persona meanwhile

    async def press(self, number: int) -> bool:
        """Press button ``number`` of the latest keyboard; False if there is no such (pressable) button."""
        keyboard = self.last_keyboard()
        buttons = [b for row in keyboard.buttons for b in row] if keyboard else []
        if keyboard is None or not 1 <= number <= len(buttons):
            print(f"   there {'is no button' if not buttons else f'are {len(buttons)} buttons'} to press")
            return False
        label, data = buttons[number - 1]
        if data is None or "://" in data:
            print(f"   [{number}] {label} is a link: {data}")
            return False
        await self.chat.press(data, message_id=keyboard.message_id)
        return True

    async def handle(self, line: str) -> bool:
        """Act on one line of input; False when the person wants to stop."""
        line = line.strip()
        command, _, rest = line.partition(" ")
        if not line:
            return True
        if command in ("/quit", "/exit"):
            return False
        if command == "/as":
            self.switch(rest.strip())
            return True
        if command == "/photo":
            await self.chat.send_photo()
        elif command == "/location":
            try:
                latitude, longitude = (float(x) for x in rest.split()) if rest else DEFAULT_LOCATION
            except ValueError:
                print("   usage: /location [LATITUDE LONGITUDE], e.g. /location 30.66 104.07")
                return True
            await self.chat.send_location(latitude, longitude)
        elif line.isdigit() and self.last_keyboard() is not None:
            if not await self.press(int(line)):
                return True
        else:
            await self.chat.send(line)
        if not self.show_new():
            print("   (no answer, nothing changed)")
        return True


class Lines:
    """Lines typed (or piped) in, read by a daemon thread so that Ctrl+C and the end never wait on stdin.

    The next line is read only once the previous one has been answered, so the prompt comes after the
    bot's messages."""

    def __init__(self, interactive: bool) -> None:
        self.interactive = interactive
        self.loop = asyncio.get_running_loop()
        self.queue: asyncio.Queue[str | None] = asyncio.Queue()
        self.wanted = threading.Event()
        self.prompt = ""
        if interactive:
            with contextlib.suppress(ImportError):
                import readline  # noqa: F401  (line editing and history for input())
        threading.Thread(target=self._read, name="stdin", daemon=True).start()

    def _read(self) -> None:
        while True:
            self.wanted.wait()
            self.wanted.clear()
            line: str | None
            if self.interactive:
                try:
                    line = input(self.prompt)
                except EOFError:
                    line = None
            else:
                line = sys.stdin.readline() or None
            try:
                self.loop.call_soon_threadsafe(self.queue.put_nowait, line)
            except RuntimeError:  # the loop is gone: the demo ended
                return
            if line is None:
                return

    def stop(self) -> None:
        """Ctrl+C: end as if the input had ended."""
        print()
        self.queue.put_nowait(None)

    async def next(self, prompt: str) -> str | None:
        self.prompt = prompt
        self.wanted.set()
        line = await self.queue.get()
        if line is not None and not self.interactive:
            print(f"{prompt}{line.rstrip()}")  # echo piped input, so the transcript reads like a chat
        return line


class ErrorNotice(logging.Handler):
    """Says in the chat transcript that the bot logged an error (the details are in the log file)."""

    def __init__(self, log_file: Path) -> None:
        super().__init__(logging.ERROR)
        self.log_file = log_file

    def emit(self, record: logging.LogRecord) -> None:
        print(f"   ⚠ the bot logged an error: {record.getMessage()} (details in {shown_path(self.log_file)})")


def _log_to(out: Path) -> None:
    """The bot's log goes to DIR/demo.log, not between the chat messages."""
    log_file = out / "demo.log"
    handler = logging.FileHandler(log_file, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=logging.INFO, handlers=[handler, ErrorNotice(log_file)], force=True)
    for noisy in ("httpx", "httpcore", "apscheduler", "alembic"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


async def _prepare(path: Path, fresh: bool) -> dict[str, str]:
    """Migrate (and on first use, seed) the demo database; the personas' names."""
    if fresh:
        for stale in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
            stale.unlink(missing_ok=True)
    new = not path.exists()
    engine = create_engine(f"sqlite+aiosqlite:///{path}")
    try:
        await upgrade(engine)
        sessions = create_sessionmaker(engine)
        if new:
            async with sessions.begin() as session:
                await seed(session, now=datetime.now(UTC))
        async with sessions() as session:
            rows = await session.execute(
                select(User.telegram_id, User.name).where(User.telegram_id.in_(PERSONAS.values()))
            )
            by_id = {telegram_id: name for telegram_id, name in rows}
            # Telegram's update ids only grow, and a flow ignores an update id it has seen (a redelivery):
            # carry on after the last one this database saw, as Telegram would after a restart.
            last = await session.scalar(select(func.max(Draft.last_update_id))) or 0
            botapi._update_ids = itertools.count(last + 1)
    finally:
        await engine.dispose()
    return {persona: by_id[telegram_id] for persona, telegram_id in PERSONAS.items() if telegram_id in by_id}


async def run(out: Path, fresh: bool) -> None:
    out.mkdir(parents=True, exist_ok=True)
    if out == OUT:
        (out / ".gitignore").write_text("*\n")  # the default folder is inside the repository
    _log_to(out)
    path = out / "demo.db"
    names = await _prepare(path, fresh)
    settings = Settings(
        _env_file=None, telegram_bot_token="1:DEMO", database_url=f"sqlite+aiosqlite:///{path}"
    )
    api = BotAPI()
    app = build_application(settings, request=api)
    lines = Lines(sys.stdin.isatty())
    with contextlib.suppress(NotImplementedError):  # no signal handlers on Windows: Ctrl+C then raises
        asyncio.get_running_loop().add_signal_handler(signal.SIGINT, lines.stop)
    async with app:
        await app.post_init(app)  # type: ignore[misc]
        try:
            terminal = Terminal(app, api, out, names)
            print(__doc__.split("\n\n", 1)[0])
            print(USAGE.format(out=shown_path(out)))
            liaison = names.get("liaison", "the liaison")
            print(
                f"\nYou are {liaison}, a liaison. Try /help, /visit, /my — or /as supervisor, then /stats.\n"
            )
            while (line := await lines.next(f"{terminal.persona}> ")) is not None:
                if not await terminal.handle(line):
                    break
        finally:
            await app.post_shutdown(app)  # type: ignore[misc]
    print("bye")


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m demo", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--fresh", action="store_true", help="start again from a newly seeded database")
    parser.add_argument(
        "--out",
        type=Path,
        default=OUT,
        metavar="DIR",
        help="folder for the demo database and the files the bot sends (default: demo/out)",
    )
    args = parser.parse_args()
    asyncio.run(run(args.out, args.fresh))


if __name__ == "__main__":
    main()
