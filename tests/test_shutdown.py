"""Webhook mode as deployed: ``python -m bot run --migrate`` as a process behind a fake Telegram served over
HTTP; SIGTERM in the middle of a /visit, a restart, and the visit goes on where it was."""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from bot.storage.db import create_engine, create_sessionmaker
from bot.storage.enums import Role, Stage
from bot.web import SECRET_HEADER
from tests.botapi import Sent, make_message, make_user, text_fields
from tests.conftest import make_enterprise, run_sync
from tests.conftest import make_user as make_user_row
from tests.fake_telegram import FakeTelegram, free_port

ROOT = Path(__file__).resolve().parent.parent
TOKEN = "123456:SHUTDOWN-TEST-TOKEN"
SECRET = "shutdown-test-secret_0123456789"
WEBHOOK_URL = "https://example.invalid/telegram"
LIAISON = 424242  # the liaison's Telegram id (and private chat id)
ENTERPRISE = "晨光精密制造有限公司"
START_TIMEOUT = 20.0
STOP_TIMEOUT = 5.0

JSON = dict[str, Any]


async def _seed(database_url: str) -> None:
    engine = create_engine(database_url)
    try:
        async with create_sessionmaker(engine).begin() as session:
            liaison = await make_user_row(session, role=Role.liaison, name="李明", telegram_id=LIAISON)
            await make_enterprise(session, name=ENTERPRISE, stage=Stage.growth, liaison=liaison)
    finally:
        await engine.dispose()


@dataclass
class BotProcess:
    process: subprocess.Popen[bytes]
    log_path: Path
    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def records(self) -> list[JSON]:
        """The JSON log lines (LOG_FORMAT=json); anything else is returned as {"raw": line}."""
        records = []
        for line in self.log().splitlines():
            try:
                record = json.loads(line)
            except ValueError:
                record = {"raw": line}
            records.append(record if isinstance(record, dict) else {"raw": line})
        return records

    def wait(self) -> int:
        """The exit code; fails (after killing the process) if it does not stop within STOP_TIMEOUT."""
        try:
            return self.process.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise AssertionError(f"the bot did not stop within {STOP_TIMEOUT} s:\n{self.log()}") from None


class Webhook:
    """Telegram's side of the webhook: builds updates from one private chat and POSTs them."""

    def __init__(self, telegram: FakeTelegram) -> None:
        self.telegram, self.api = telegram, telegram.api
        self.user = make_user(LIAISON, first_name="李明")
        self.api.users[LIAISON] = self.user
        self.update_ids = itertools.count(5000)

    def message(self, text: str) -> JSON:
        message_id = self.api.new_user_message(LIAISON)
        return {
            "update_id": next(self.update_ids),
            "message": make_message(self.user, message_id, **text_fields(text)),
        }

    def tap(self, label: str, sent: Sent | None = None) -> JSON:
        """Pressing the button whose label contains ``label`` under ``sent`` (default: latest keyboard)."""
        if sent is None:
            sent = [m for m in self.api.messages(LIAISON) if m.inline_markup][-1]
        data = [d for row in sent.buttons for text, d in row if label in text]
        assert len(data) == 1, f"no single button {label!r} in {sent.buttons!r}"
        return {
            "update_id": next(self.update_ids),
            "callback_query": {
                "id": f"q{next(self.update_ids)}",
                "from": self.user,
                "chat_instance": f"ci{LIAISON}",
                "message": sent.data,
                "data": data[0],
            },
        }

    def post(self, bot: BotProcess, update: JSON, *, secret: str | None = SECRET) -> int:
        headers = {SECRET_HEADER: secret} if secret is not None else {}
        response = httpx.post(f"{bot.url}/telegram", json=update, headers=headers, timeout=10)
        return response.status_code

    def last(self) -> Sent:
        return self.api.last(LIAISON)


@pytest.fixture
def telegram() -> Iterator[FakeTelegram]:
    with FakeTelegram() as server:
        yield server


@pytest.fixture
def bot_env(database_url: str, telegram: FakeTelegram) -> dict[str, str]:
    run_sync(_seed(database_url))
    clean = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("TELEGRAM_", "DATABASE_", "WEBHOOK_", "LOG_", "TIMEZONE", "DEFAULT_LOCALE"))
    }
    return {
        **clean,
        "PYTHONPATH": str(ROOT),
        "TELEGRAM_BOT_TOKEN": TOKEN,
        "TELEGRAM_API_BASE_URL": telegram.base_url,
        "TELEGRAM_FILE_BASE_URL": telegram.file_base_url,
        "DATABASE_URL": database_url,
        "WEBHOOK_URL": WEBHOOK_URL,
        "WEBHOOK_SECRET": SECRET,
        "WEBHOOK_LISTEN": "127.0.0.1",
        "WEBHOOK_PORT": str(free_port()),
        "LOG_FORMAT": "json",
    }


@contextmanager
def running_bot(env: dict[str, str], cwd: Path, name: str) -> Iterator[BotProcess]:
    """``python -m bot run --migrate`` until /healthz answers 200; killed on the way out if still running."""
    log_path = cwd / f"{name}.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "bot", "run", "--migrate"],
            env=env,
            cwd=cwd,  # no .env of the developer's is read
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    bot = BotProcess(process, log_path, int(env["WEBHOOK_PORT"]))
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if process.poll() is not None:
                raise AssertionError(f"the bot exited with {process.returncode} on start:\n{bot.log()}")
            if time.monotonic() > deadline:
                raise AssertionError(f"/healthz did not answer 200 within {START_TIMEOUT} s:\n{bot.log()}")
            try:
                if httpx.get(f"{bot.url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        yield bot
    finally:
        if process.poll() is None:
            process.kill()
        process.wait()


def assert_clean_stop(bot: BotProcess, code: int) -> None:
    """Exit code 0, the Application stopped (and its post_shutdown ran), nothing logged at ERROR."""
    errors = [r for r in bot.records() if r.get("level") in ("ERROR", "CRITICAL") or "Traceback" in str(r)]
    assert code == 0, f"exit code {code} after the signal; log:\n{bot.log()}"
    assert errors == [], f"errors logged while stopping:\n{bot.log()}"
    assert "Application.stop() complete" in bot.log()


def test_sigterm_mid_visit_then_restart_continues_the_visit(
    telegram: FakeTelegram, bot_env: dict[str, str], tmp_path: Path
) -> None:
    api, chat = telegram.api, Webhook(telegram)
    with running_bot(bot_env, tmp_path, "first") as bot:
        (registered,) = api.calls_of("setWebhook")
        assert registered.params["url"] == WEBHOOK_URL
        assert registered.params["secret_token"] == SECRET
        assert set(registered.params["allowed_updates"]) >= {"message", "callback_query"}
        assert api.calls_of("deleteWebhook") == []

        assert chat.post(bot, chat.message("/visit")) == 200
        enterprises = chat.last()
        assert "您走访了哪家企业" in enterprises.text
        # The enterprise is chosen, and SIGTERM arrives while the bot is still answering that update.
        telegram.delays["editMessageText"] = 0.5
        with ThreadPoolExecutor(1) as pool:
            in_flight = pool.submit(chat.post, bot, chat.tap(ENTERPRISE))
            telegram.wait_for(lambda _: "editMessageText" in telegram.requests)
            bot.process.send_signal(signal.SIGTERM)
            assert in_flight.result(timeout=STOP_TIMEOUT) == 200  # finished, not cut off
        telegram.delays.clear()
        topics = chat.last()
        assert topics.message_id == enterprises.message_id  # the same message, edited
        assert ENTERPRISE in topics.text and "本次走访涉及哪些内容" in topics.text
        bot.wait()

    with running_bot(bot_env, tmp_path, "second") as bot:
        assert len(api.calls_of("setWebhook")) == 2
        assert chat.post(bot, chat.tap("政策宣传", topics)) == 200
        chosen = chat.last()
        assert chosen.message_id == topics.message_id
        assert ENTERPRISE in chosen.text  # what was entered before the restart is still there
        assert [label for row in chosen.buttons for label, _ in row if "政策宣传" in label] == ["✓ 政策宣传"]
        assert chat.post(bot, chat.tap("完成")) == 200
        assert "请发送走访记录" in chat.last().text


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signal_stops_the_bot_gracefully_with_exit_code_0(
    telegram: FakeTelegram, bot_env: dict[str, str], tmp_path: Path, sig: signal.Signals
) -> None:
    chat = Webhook(telegram)
    with running_bot(bot_env, tmp_path, "bot") as bot:
        assert chat.post(bot, chat.message("/visit")) == 200
        bot.process.send_signal(sig)
        assert_clean_stop(bot, bot.wait())


def test_webhook_requests_without_the_secret_are_refused(
    telegram: FakeTelegram, bot_env: dict[str, str], tmp_path: Path
) -> None:
    api, chat = telegram.api, Webhook(telegram)
    with running_bot(bot_env, tmp_path, "bot") as bot:
        assert chat.post(bot, chat.message("/help"), secret=None) == 403
        assert chat.post(bot, chat.message("/help"), secret="not-the-secret-000000") == 403
        assert api.calls_of("sendMessage") == []
        assert chat.post(bot, chat.message("/help")) == 200
        assert "/visit" in chat.last().text
