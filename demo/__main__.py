"""Chat with the real bot in a terminal: the real Application and handlers, a seeded demo database, and
an in-process stand-in for Telegram. No token, no network.

    make demo            (or: .venv/bin/python -m demo [--fresh])

Type messages as you would in Telegram. Buttons are numbered: type the number to press one. Other
commands: /as liaison|instructor|supervisor|admin (switch persona), /photo, /location, /quit.
Charts and exports the bot sends are saved under demo/out/.
"""

from __future__ import annotations

import argparse
import asyncio
import html
import re
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bot.app import build_application
from bot.config import Settings
from bot.storage.db import create_engine, create_sessionmaker
from bot.storage.migrate import upgrade
from demo.seed import PERSONAS, seed
from tests.botapi import BotAPI, Chat, Sent

OUT = Path(__file__).parent / "out"
TAG = re.compile(r"<[^>]+>")


def plain(text: str) -> str:
    return html.unescape(TAG.sub("", text))


class Terminal:
    def __init__(self, app: Any, api: BotAPI) -> None:
        self.app, self.api = app, api
        self.chats = {
            name: Chat(app, api, telegram_id, first_name=name) for name, telegram_id in PERSONAS.items()
        }
        self.persona = "liaison"
        self.seen: dict[tuple[int, int], tuple[str, Any]] = {}
        self.answers_seen = 0

    @property
    def chat(self) -> Chat:
        return self.chats[self.persona]

    def show_new(self) -> None:
        """Print the bot's messages that are new or changed since the last input."""
        for sent in self.api.messages(self.chat.user_id):
            key, state = (sent.chat_id, sent.message_id), (sent.text, sent.reply_markup)
            if self.seen.get(key) == state:
                continue
            edited = key in self.seen
            self.seen[key] = state
            self.print_message(sent, edited)
        for text, alert in self.api.answers()[self._answers_seen :]:
            if text:
                print(f"  [{'!' if alert else 'i'}] {text}")
        self._answers_seen = len(self.api.answers())

    _answers_seen = 0

    def print_message(self, sent: Sent, edited: bool) -> None:
        marker = "✎" if edited else "🤖"
        if sent.kind != "text" and sent.file_bytes is not None:
            OUT.mkdir(exist_ok=True)
            path = OUT / (sent.file_name or f"file-{sent.message_id}")
            path.write_bytes(sent.file_bytes)
            print(f"{marker} [{sent.kind} saved to {path}]")
        if sent.text:
            print(f"{marker} " + plain(sent.text).replace("\n", "\n   "))
        for number, (label, _data) in enumerate((b for row in sent.buttons for b in row), start=1):
            print(f"   [{number}] {label}")

    def last_keyboard(self) -> Sent | None:
        keyboards = [m for m in self.api.messages(self.chat.user_id) if m.inline_markup]
        return keyboards[-1] if keyboards else None

    async def handle(self, line: str) -> bool:
        line = line.strip()
        if not line:
            return True
        if line in ("/quit", "/exit"):
            return False
        if line.startswith("/as"):
            who = line[3:].strip()
            if who not in self.chats:
                print(f"   personas: {', '.join(self.chats)}")
            else:
                self.persona = who
                print(f"--- you are now the {who} ---")
            return True
        if line == "/photo":
            await self.chat.send_photo()
        elif line == "/location":
            await self.chat.send_location(30.66, 104.07)
        elif line.isdigit() and (keyboard := self.last_keyboard()) is not None:
            buttons = [b for row in keyboard.buttons for b in row]
            number = int(line)
            if not 1 <= number <= len(buttons):
                print(f"   there are {len(buttons)} buttons")
                return True
            await self.chat.press(str(buttons[number - 1][1]), message_id=keyboard.message_id)
        else:
            await self.chat.send(line)
        self.show_new()
        return True


async def run(fresh: bool) -> None:
    OUT.mkdir(exist_ok=True)
    path = OUT / "demo.db"
    if fresh:
        path.unlink(missing_ok=True)
    url = f"sqlite+aiosqlite:///{path}"
    new = not path.exists()
    engine = create_engine(url)
    await upgrade(engine)
    if new:
        async with create_sessionmaker(engine).begin() as session:
            await seed(session, now=datetime.now(UTC))
    await engine.dispose()
    settings = Settings(_env_file=None, telegram_bot_token="1:DEMO", database_url=url)
    api = BotAPI()
    app = build_application(settings, request=api)
    async with app:
        await app.post_init(app)  # type: ignore[misc]
        terminal = Terminal(app, api)
        print(__doc__.split("\n\n", 1)[0])
        print("You are the liaison 李明. Try /help, /visit, /my — or /as supervisor, then /stats.\n")
        interactive = sys.stdin.isatty()
        while True:
            if interactive:
                print(f"{terminal.persona}> ", end="", flush=True)
            line = await asyncio.to_thread(sys.stdin.readline)
            if not line:
                break
            if not interactive:
                print(f"{terminal.persona}> {line.rstrip()}")
            if not await terminal.handle(line):
                break
        await app.post_shutdown(app)  # type: ignore[misc]
    print("bye")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--fresh", action="store_true", help="start again from a newly seeded database")
    asyncio.run(run(parser.parse_args().fresh))


if __name__ == "__main__":
    main()
