"""Benchmark: deliver N due reminders through the real sender against the Bot API double enforcing
Telegram's limits (30 messages/s overall, 1/s per chat, 429 with retry_after beyond them).

Waiting (pacing and retry_after) runs on a virtual clock shared by the sender and the double, so the
achieved rate is measured exactly and 10,000 messages take seconds, not the 5.5 minutes they take on
Telegram. The real CPU time of the sender (database claims and marks, PTB serialisation) is reported too:
it must stay well below the virtual time for the 30 msg/s ceiling to be the bottleneck.

    .venv/bin/python -m bench.reminders [--count 10000] [--database-url URL]
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import func, insert, select

from bot.app import build_application
from bot.config import Settings
from bot.context import Runtime
from bot.handlers.reminders import deliver
from bot.storage.db import create_engine
from bot.storage.enums import Role
from bot.storage.migrate import upgrade
from bot.storage.models import Notification, User
from tests.botapi import BotAPI

NOW = datetime(2026, 11, 25, 1, 0, tzinfo=UTC)  # Wednesday 09:00 in Beijing


class VirtualClock:
    def __init__(self) -> None:
        self.t = 0.0

    def monotonic(self) -> float:
        return self.t

    async def sleep(self, seconds: float) -> None:
        self.t += max(seconds, 0.0)
        await asyncio.sleep(0)


async def prepare(url: str, count: int) -> None:
    engine = create_engine(url)
    await upgrade(engine)
    async with engine.begin() as conn:
        await conn.execute(
            insert(User),
            [
                {
                    "telegram_id": 10_000_000 + i,
                    "name": f"user{i}",
                    "role": Role.liaison,
                    "active": True,
                    "unreachable": False,
                    "muted": [],
                    "created_at": NOW,
                }
                for i in range(count)
            ],
        )
        ids = list(await conn.scalars(select(User.id).order_by(User.id)))
        # A few users get two reminders, to exercise the 1 message/s per chat limit.
        rows = [
            {
                "kind": "pending",
                "recipient_id": uid,
                "subject": "daily",
                "period": "2026-11-25",
                "payload": {"text": f"reminder {n}", "buttons": []},
                "status": "pending",
                "attempts": 0,
                "send_after": NOW,
                "created_at": NOW,
            }
            for n, uid in enumerate(ids)
        ]
        rows += [
            {**rows[i], "kind": "overdue", "subject": f"problem:{i}", "payload": {"text": f"overdue {i}"}}
            for i in range(0, count, 100)
        ]
        await conn.execute(insert(Notification), rows)
    await engine.dispose()


async def run(url: str, count: int, limit: int) -> dict[str, float]:
    await prepare(url, count)
    settings = Settings(_env_file=None, telegram_bot_token="1:BENCH", database_url=url)
    virtual = VirtualClock()
    api = BotAPI()
    api.limit_rate(global_per_second=limit, per_chat_per_second=1, clock=virtual.monotonic)
    app = build_application(settings, request=api, clock=lambda: NOW)
    async with app:
        runtime: Runtime = app.bot_data["runtime"]
        runtime.monotonic, runtime.sleep = virtual.monotonic, virtual.sleep
        started = time.perf_counter()
        report = await deliver(app.bot, runtime)
        cpu = time.perf_counter() - started
        async with runtime.db() as session:
            expected = await session.scalar(select(func.count()).select_from(Notification)) or 0
            sent_rows = (
                await session.scalar(
                    select(func.count()).select_from(Notification).where(Notification.status == "sent")
                )
                or 0
            )
        await app.post_shutdown(app)  # type: ignore[misc]
    delivered = Counter((c.params["chat_id"], c.params["text"]) for c in api.calls_of("sendMessage") if c.ok)
    return {
        "messages": expected,
        "delivered": sum(delivered.values()),
        "lost": expected - len(delivered) + (expected - sent_rows),
        "duplicated": sum(n - 1 for n in delivered.values() if n > 1),
        "virtual_seconds": virtual.t,
        "rate": sum(delivered.values()) / virtual.t if virtual.t else float("inf"),
        "rate_limited_429": report.rate_limited,
        "cpu_seconds": cpu,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--count", type=int, default=10_000)
    parser.add_argument(
        "--limit",
        type=int,
        default=30,
        help="the double's overall limit (msg/s); below 30 "
        "it answers 429s that the sender must honour without losing messages",
    )
    parser.add_argument("--database-url", default=None, help="default: a fresh SQLite file in bench/out/")
    args = parser.parse_args()
    url = args.database_url
    if url is None:
        path = Path(__file__).parent / "out" / "reminders.db"
        path.parent.mkdir(exist_ok=True)
        path.unlink(missing_ok=True)
        url = f"sqlite+aiosqlite:///{path}"
    result = asyncio.run(run(url, args.count, args.limit))
    print("| messages | delivered | lost | duplicated | 429s | virtual s | rate msg/s | % of 30/s | CPU s |")
    print("|---|---|---|---|---|---|---|---|---|")
    print(
        f"| {result['messages']:.0f} | {result['delivered']:.0f} | {result['lost']:.0f} | "
        f"{result['duplicated']:.0f} | {result['rate_limited_429']:.0f} | {result['virtual_seconds']:.1f} | "
        f"{result['rate']:.2f} | {result['rate'] / 30 * 100:.1f} % | {result['cpu_seconds']:.1f} |"
    )


if __name__ == "__main__":
    main()
