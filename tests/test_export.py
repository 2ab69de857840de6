"""/export: the 台账 ledger as XLSX (or zipped CSV) — exactly the rows of the period in Beijing time (week
boundaries, withdrawn visits excluded), Chinese or English headers, formulas kept as text, split into parts
under a size limit, refused to liaisons, and a plain answer for a bad or empty period."""

from __future__ import annotations

import csv
import io
import zipfile
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from random import Random
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from openpyxl import load_workbook
from openpyxl.worksheet.worksheet import Worksheet
from sqlalchemy import select, text
from telegram.ext import Application

from bot.handlers import export
from bot.i18n import gettext_for
from bot.services.ledger import CELL_LIMIT, CsvWriter, Formatter, Sheet, XlsxWriter
from bot.storage.db import SessionMaker
from bot.storage.enums import ProblemCategory, ProblemStatus, Role, ServiceStatus, VisitTopic
from bot.storage.models import Attachment, MenuItem, ServiceRequest, User, Visit
from bot.storage.problems import change_status, create_problem, resolve
from tests.botapi import BotAPI, Sent
from tests.conftest import Clock, chat_with, make_enterprise, make_user

App = Application[Any, Any, Any, Any, Any, Any]
SHEETS_ZH = ["汇总", "企业", "走访", "问题", "服务"]
# Week 47 of 2026 is Monday 16 to Sunday 22 November; in UTC it runs from 15 Nov 16:00 to 22 Nov 16:00.
W47_START, W47_END = datetime(2026, 11, 15, 16, 0, tzinfo=UTC), datetime(2026, 11, 22, 16, 0, tzinfo=UTC)


def beijing(day: int, hour: int, minute: int = 0, month: int = 11) -> datetime:
    """An aware UTC instant given as a Beijing wall-clock time in 2026."""
    return datetime(2026, month, day, hour, minute, tzinfo=UTC) - timedelta(hours=8)


@dataclass
class District:
    supervisor: User
    liaison: User
    inside: list[int]  # ids of the visits that belong to week 47, in time order
    notes: dict[int, str]


async def add_visit(
    db: SessionMaker,
    *,
    user: User,
    enterprise_id: int,
    at: datetime,
    notes: str = "",
    withdrawn: bool = False,
) -> int:
    async with db.begin() as session:
        visit = Visit(
            enterprise_id=enterprise_id,
            user_id=user.id,
            visited_at=at,
            topics=[VisitTopic.policy.value, VisitTopic.problems.value],
            notes=notes,
            created_at=at,
            updated_at=at,
            withdrawn_at=at + timedelta(hours=1) if withdrawn else None,
        )
        session.add(visit)
        await session.flush()
        return visit.id


async def district(db: SessionMaker) -> District:
    async with db.begin() as session:
        supervisor = await make_user(session, role=Role.supervisor, name="王督导")
        liaison = await make_user(session, role=Role.liaison, name="李明", department="发改局")
        instructor = await make_user(session, role=Role.instructor, name="赵敏", community="东城社区")
        east = await make_enterprise(session, name="东方机械有限公司", liaison=liaison, instructor=instructor)
        west = await make_enterprise(session, name="西城科技有限公司", community="西城社区", liaison=liaison)
        await make_enterprise(session, name="南山食品有限公司", community="南山社区")
    inside = [
        await add_visit(db, user=liaison, enterprise_id=east.id, at=beijing(16, 0, 10), notes="周一零点十分"),
        await add_visit(db, user=liaison, enterprise_id=west.id, at=beijing(19, 15), notes="=1+1"),
        await add_visit(db, user=liaison, enterprise_id=east.id, at=beijing(22, 23, 30), notes="周日夜里"),
    ]
    async with db.begin() as session:
        session.add(Attachment(visit_id=inside[0], file_id="f1", file_unique_id="u1"))
        session.add(Attachment(visit_id=inside[0], file_id="f2", file_unique_id="u2"))
    outside = [
        await add_visit(db, user=liaison, enterprise_id=east.id, at=beijing(15, 23, 50), notes="上周日"),
        await add_visit(db, user=liaison, enterprise_id=east.id, at=beijing(23, 0, 10), notes="下周一"),
        await add_visit(
            db, user=liaison, enterprise_id=west.id, at=beijing(18, 10), notes="已撤回", withdrawn=True
        ),
    ]
    notes = {visit_id: "" for visit_id in inside + outside}
    async with db.begin() as session:
        # reported in the week
        await create_problem(
            session,
            enterprise_id=east.id,
            reporter_id=liaison.id,
            category=ProblemCategory.power,
            description="用电增容",
            requested_due_date=None,
            now=beijing(17, 9),
        )
        # reported the week before, resolved in the week: in the ledger, with its whole history
        p2 = await create_problem(
            session,
            enterprise_id=west.id,
            reporter_id=liaison.id,
            category=ProblemCategory.financing,
            description="融资难",
            requested_due_date=None,
            now=beijing(10, 9),
        )
        await session.flush()
        change_status(session, p2, to=ProblemStatus.in_progress, actor_id=supervisor.id, now=beijing(12, 10))
        resolve(
            session,
            p2,
            actor_id=liaison.id,
            now=beijing(20, 16),
            resolution="已对接银行",
            funds_wan=Decimal("12.5"),
        )
        # reported and handled before the week: not in it
        await create_problem(
            session,
            enterprise_id=west.id,
            reporter_id=liaison.id,
            category=ProblemCategory.other,
            description="旧问题",
            requested_due_date=None,
            now=beijing(9, 9),
        )
        item = await session.scalar(select(MenuItem).where(MenuItem.code.is_not(None)).order_by(MenuItem.id))
        assert item is not None
        session.add_all(
            [
                ServiceRequest(
                    enterprise_id=east.id,
                    requester_id=liaison.id,
                    menu_item_id=item.id,
                    note="本周申请",
                    created_at=beijing(18, 11),
                    updated_at=beijing(18, 11),
                ),
                ServiceRequest(
                    enterprise_id=west.id,
                    requester_id=liaison.id,
                    menu_item_id=item.id,
                    note="上周申请，本周完成",
                    status=ServiceStatus.delivered,
                    created_at=beijing(11, 11),
                    updated_at=beijing(21, 11),
                    delivered_at=beijing(21, 11),
                ),
                ServiceRequest(
                    enterprise_id=west.id,
                    requester_id=liaison.id,
                    menu_item_id=item.id,
                    note="上周的",
                    created_at=beijing(11, 12),
                    updated_at=beijing(11, 12),
                ),
            ]
        )
    return District(supervisor, liaison, inside, notes)


def sheet_rows(sheet: Worksheet) -> list[list[Any]]:
    return [list(row) for row in sheet.iter_rows(values_only=True)]


def workbook(sent: Sent) -> Any:
    assert sent.kind == "document" and sent.file_bytes is not None
    return load_workbook(io.BytesIO(sent.file_bytes))


async def oracle_visit_ids(db: SessionMaker, start: datetime, end: datetime) -> list[int]:
    """The visits of [start, end) by plain SQL (explicit UTC bounds, no shared code)."""
    async with db() as session:
        rows = await session.execute(
            text("SELECT id, visited_at FROM visits WHERE withdrawn_at IS NULL ORDER BY visited_at, id")
        )
        found = []
        for visit_id, visited_at in rows.all():
            moment = visited_at if isinstance(visited_at, datetime) else datetime.fromisoformat(visited_at)
            moment = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment
            if start <= moment < end:
                found.append(visit_id)
        return found


async def test_the_ledger_of_last_week_holds_exactly_its_rows_in_beijing_time(
    app: App, api: BotAPI, db: SessionMaker, clock: Clock
) -> None:
    d = await district(db)
    assert await oracle_visit_ids(db, W47_START, W47_END) == d.inside
    chat = chat_with(app, api, d.supervisor)
    await chat.send("/export last")
    messages = chat.messages()
    assert messages[-2].text == "正在生成2026年第47周（2026-11-16 至 2026-11-22）的台账……"
    sent = chat.last
    assert sent.file_name == "台账_2026-W47.xlsx"
    assert sent.text == "2026年第47周（2026-11-16 至 2026-11-22）台账\n走访 3 · 问题 2 · 服务申请 2"
    book = workbook(sent)
    assert book.sheetnames == SHEETS_ZH

    visits = sheet_rows(book["走访"])
    assert visits[0] == [
        "编号",
        "走访时间",
        "企业名称",
        "统一社会信用代码",
        "社区",
        "走访人",
        "身份",
        "所属单位",
        "走访内容",
        "走访记录",
        "党组织情况（走访时）",
        "党员人数",
        "距企业距离（米）",
        "照片",
    ]
    assert [row[0] for row in visits[1:]] == [f"V-2026-{i:04d}" for i in d.inside]
    first = visits[1]
    assert first[1] == datetime(2026, 11, 16, 0, 10)  # local time, as the liaison lived it
    assert first[2:10] == [
        "东方机械有限公司",
        first[3],
        "东城社区",
        "李明",
        "党建联络员",
        "发改局",
        "政策宣传、问题收集",
        "周一零点十分",
    ]
    assert first[13] == 2  # photos
    assert visits[2][9] == "=1+1"  # text, not a formula
    assert book["走访"]["J3"].data_type == "s"
    assert visits[3][1] == datetime(2026, 11, 22, 23, 30)

    enterprises = sheet_rows(book["企业"])
    assert enterprises[0][:4] == ["企业名称", "统一社会信用代码", "企业类型", "社区"]
    by_name = {row[0]: row for row in enterprises[1:]}
    assert set(by_name) == {"东方机械有限公司", "西城科技有限公司", "南山食品有限公司"}
    east = by_name["东方机械有限公司"]
    assert east[2] == "创业型" and east[7] == "未组建" and east[9:11] == ["李明", "赵敏"]
    assert east[11] == 2 and east[12] == datetime(2026, 11, 22, 23, 30)
    assert by_name["南山食品有限公司"][11] == 0 and by_name["南山食品有限公司"][12] is None

    problems = sheet_rows(book["问题"])
    assert problems[0][:3] == ["编号", "报告时间", "企业名称"] and problems[0][-1] == "处理记录"
    assert [row[6] for row in problems[1:]] == ["用电增容", "融资难"]
    financing = problems[2]
    assert financing[5] == "融资" and financing[8] == "已解决" and financing[12] == "已对接银行"
    assert financing[13] == 12.5 and financing[14] == datetime(2026, 11, 20, 16, 0)
    assert financing[15].splitlines() == [
        "2026-11-10 09:00 李明: 报告了问题",
        "2026-11-12 10:00 王督导: 标记为处理中",
        "2026-11-20 16:00 李明: 标记为已解决 — 已对接银行",
    ]

    services = sheet_rows(book["服务"])
    assert [row[-1] for row in services[1:]] == ["上周申请，本周完成", "本周申请"]
    assert services[1][7] == "已完成" and services[1][8] == datetime(2026, 11, 21, 11, 0)

    summary = dict((row[0], row[1]) for row in sheet_rows(book["汇总"])[1:])
    assert summary["统计期间"] == "2026年第47周（2026-11-16 至 2026-11-22）"
    assert summary["走访次数"] == 3 and summary["走访企业数"] == 2 and summary["企业总数"] == 3
    assert summary["新报告问题"] == 1 and summary["解决问题"] == 1 and summary["帮扶资金（万元）"] == 12.5
    assert summary["完成服务"] == 1 and summary["申请服务"] == 1


async def test_an_english_user_gets_english_headers(app: App, api: BotAPI, db: SessionMaker) -> None:
    d = await district(db)
    async with db.begin() as session:
        user = await session.get(User, d.supervisor.id)
        assert user is not None
        user.locale = "en"
    chat = chat_with(app, api, d.supervisor, language_code="en")
    await chat.send("/export 2026-W47")
    assert chat.last.file_name == "ledger_2026-W47.xlsx"
    book = workbook(chat.last)
    assert book.sheetnames == ["Summary", "Enterprises", "Visits", "Problems", "Services"]
    visits = sheet_rows(book["Visits"])
    assert visits[0][:3] == ["Ref", "Visited at", "Enterprise name"]
    assert (
        visits[1][6] == "party-building liaison" and visits[1][8] == "Policy explanation, Collecting problems"
    )
    assert sheet_rows(book["Problems"])[2][8] == "Resolved"


async def test_a_large_ledger_is_split_into_parts_under_the_limit(
    app: App, api: BotAPI, db: SessionMaker, monkeypatch: pytest.MonkeyPatch
) -> None:
    d = await district(db)
    async with db() as session:
        east = await session.scalar(text("SELECT id FROM enterprises WHERE name = '东方机械有限公司'"))
    async with db.begin() as session:
        for i in range(400):
            session.add(
                Visit(
                    enterprise_id=east,
                    user_id=d.liaison.id,
                    visited_at=beijing(17, 8) + timedelta(minutes=i),
                    topics=["policy"],
                    notes=f"第{i}次走访：" + "企业生产经营情况良好，" * (i % 7 + 3) + f"{i * 7919 % 10007}",
                    created_at=beijing(17, 8),
                    updated_at=beijing(17, 8),
                )
            )
    limit = 16_000
    monkeypatch.setattr(export, "PART_LIMIT", limit)
    chat = chat_with(app, api, d.supervisor)
    await chat.send("/export last")
    documents = [m for m in chat.messages() if m.kind == "document"]
    assert len(documents) >= 3
    total = len(documents)
    seen: list[str] = []
    for number, document in enumerate(documents, start=1):
        assert document.file_bytes is not None and len(document.file_bytes) <= limit
        assert document.file_name == f"台账_2026-W47_{number}-{total}.xlsx"
        assert document.text.endswith(f"第 {number}/{total} 部分")
        book = workbook(document)
        if number == 1:
            assert book.sheetnames[0] == "汇总"
        if "走访" in book.sheetnames:
            rows = sheet_rows(book["走访"])
            assert rows[0][0] == "编号"  # each part repeats the header
            seen += [row[0] for row in rows[1:]]
    expected = await oracle_visit_ids(db, W47_START, W47_END)
    assert seen == [f"V-2026-{i:04d}" for i in expected] and len(seen) == 403
    last = workbook(documents[-1])
    assert last.sheetnames[-1] == "服务"


async def test_csv_gives_a_zip_of_bom_marked_files(app: App, api: BotAPI, db: SessionMaker) -> None:
    d = await district(db)
    chat = chat_with(app, api, d.supervisor)
    await chat.send("/export csv last")
    sent = chat.last
    assert sent.file_name == "台账_2026-W47.zip" and sent.file_bytes is not None
    archive = zipfile.ZipFile(io.BytesIO(sent.file_bytes))
    assert archive.namelist() == [f"{name}.csv" for name in SHEETS_ZH]
    raw = archive.read("走访.csv")
    assert raw.startswith(b"\xef\xbb\xbf")  # UTF-8 BOM: Excel opens the Chinese correctly
    rows = list(csv.reader(io.StringIO(raw.decode("utf-8-sig"))))
    assert rows[0][:2] == ["编号", "走访时间"]
    assert [row[0] for row in rows[1:]] == [f"V-2026-{i:04d}" for i in d.inside]
    assert rows[1][1] == "2026-11-16 00:10" and rows[1][9] == "周一零点十分"
    assert rows[2][9] == "'=1+1"  # kept from running as a formula
    problems = list(csv.reader(io.StringIO(archive.read("问题.csv").decode("utf-8-sig"))))
    assert problems[2][13] == "12.50" and "李明: 标记为已解决 — 已对接银行" in problems[2][15]


async def test_a_bad_period_is_explained(app: App, api: BotAPI, db: SessionMaker) -> None:
    d = await district(db)
    chat = chat_with(app, api, d.supervisor)
    await chat.send("/export 2026-W60")
    assert chat.last.text.startswith("没有2026-W60这一周")
    await chat.send("/export yesterday<b>")
    assert chat.last.text.startswith("没有看懂“yesterday<b>”")  # escaped on the way, shown as typed
    assert chat.last.text.endswith("例如：/export last、/export 2026-11 csv")
    assert not [m for m in chat.messages() if m.kind == "document"]


async def test_an_empty_period_says_so(app: App, api: BotAPI, db: SessionMaker) -> None:
    d = await district(db)
    chat = chat_with(app, api, d.supervisor)
    await chat.send("/export 2026-01")
    assert chat.last.file_name == "台账_2026-01.xlsx"
    assert "本期没有任何记录" in chat.last.text
    book = workbook(chat.last)
    assert len(sheet_rows(book["企业"])) == 4 and len(sheet_rows(book["走访"])) == 1


async def test_a_liaison_cannot_export(app: App, api: BotAPI, db: SessionMaker) -> None:
    d = await district(db)
    chat = chat_with(app, api, d.liaison)
    await chat.send("/export")
    assert chat.last.text == "抱歉，您没有此项操作的权限。"
    assert not api.calls_of("sendDocument")


async def test_this_week_is_the_default(app: App, api: BotAPI, db: SessionMaker, clock: Clock) -> None:
    d = await district(db)
    async with db() as session:
        east = await session.scalar(text("SELECT id FROM enterprises WHERE name = '东方机械有限公司'"))
    await add_visit(db, user=d.liaison, enterprise_id=east, at=clock() - timedelta(hours=1), notes="今天")
    chat = chat_with(app, api, d.supervisor)
    await chat.send("/export")
    assert chat.last.file_name == "台账_2026-W48.xlsx"
    visits = sheet_rows(workbook(chat.last)["走访"])
    # the 00:10 Monday visit of week 48 and today's
    assert [row[9] for row in visits[1:]] == ["下周一", "今天"]
    assert date(2026, 11, 23) <= visits[1][1].date()


@pytest.mark.parametrize("zone", ["Asia/Shanghai", "America/New_York", "Australia/Lord_Howe"])
def test_local_times_follow_the_zone_through_its_offset_changes(zone: str) -> None:
    """The ledger converts UTC to local time with one offset per UTC day, worked out once; on the days the
    offset changes (daylight saving, half-hour shifts) each time is converted on its own."""
    tz = ZoneInfo(zone)
    formatter = Formatter(gettext_for("en"), tz, date(2026, 11, 25), "en")
    start = datetime(2026, 3, 7, tzinfo=UTC)  # both sides of March's and April's changes
    for step in range(0, 60 * 24 * 60, 37):  # every 37 minutes for 60 days
        moment = start + timedelta(minutes=step, seconds=step % 60, microseconds=step)
        expected = moment.astimezone(tz).replace(tzinfo=None, microsecond=0)
        naive = moment.replace(tzinfo=None)
        assert formatter.local(naive.isoformat(" ")) == expected  # SQLite's text
        assert formatter.local(naive.replace(microsecond=0)) == expected  # PostgreSQL's naive UTC
        assert formatter.local(moment) == expected  # an aware time
    assert formatter.local(None) is None


TRICKY: list[Any] = [
    "a < b & c > d",
    None,
    "  spaces kept  ",
    "line one\nline two",
    "bell\x07 and\x00 nul removed",
    "\x01=1+1",
    "=SUM(A1:A2)",
    "",
    "x" * 40_000,
    12,
    Decimal("12.50"),
    datetime(2026, 11, 16, 0, 10, 5),
    date(2026, 11, 2),
    "企业007495制造有限公司",
    None,
]


def test_the_writers_keep_tricky_values_intact(tmp_path: Path) -> None:
    """Text is escaped, spaces at either end and newlines kept, characters XML does not allow removed, long
    text capped, formulas kept as text (prefixed with ' in CSV), gaps leave the next cells in their columns,
    numbers and times stay numbers and times."""
    _ = gettext_for("en")
    sheet = Sheet("t", "Tricky", tuple(f"h{i}" for i in range(len(TRICKY))))
    (tmp_path / "x").mkdir()
    xlsx = XlsxWriter(tmp_path / "x", "t", 10_000_000, _)
    xlsx.begin(sheet)
    xlsx.rows([TRICKY, TRICKY[::-1]])
    (path,) = xlsx.finish()
    rows = [list(r) for r in load_workbook(path)["Tricky"].iter_rows(values_only=True)]
    assert rows[0] == [f"h{i}" for i in range(len(TRICKY))]
    text = "x" * (CELL_LIMIT - 1) + "…"
    expected = [
        "a < b & c > d",
        None,
        "  spaces kept  ",
        "line one\nline two",
        "bell and nul removed",
        "=1+1",
        "=SUM(A1:A2)",
        None,
        text,
        12,
        12.5,
        datetime(2026, 11, 16, 0, 10, 5),
        datetime(2026, 11, 2),
        "企业007495制造有限公司",
        None,
    ]
    assert rows[1] == expected and rows[2] == expected[::-1]
    book = load_workbook(path)
    assert book["Tricky"]["G2"].data_type == "s" and book["Tricky"]["A1"].font.b
    assert book["Tricky"].freeze_panes == "A2"

    (tmp_path / "c").mkdir()
    zipped = CsvWriter(tmp_path / "c", "t", 10_000_000, _)
    zipped.begin(sheet)
    zipped.rows([TRICKY])
    (path,) = zipped.finish()
    with zipfile.ZipFile(path) as archive:
        lines = list(csv.reader(io.StringIO(archive.read("Tricky.csv").decode("utf-8-sig"))))
    assert lines[1] == [
        "a < b & c > d",
        "",
        "  spaces kept  ",
        "line one\nline two",
        "bell and nul removed",
        "'=1+1",
        "'=SUM(A1:A2)",
        "",
        text,
        "12",
        "12.50",
        "2026-11-16 00:10",
        "2026-11-02",
        "企业007495制造有限公司",
        "",
    ]


def test_the_xlsx_size_estimate_stays_above_the_files(tmp_path: Path) -> None:
    """XlsxWriter zips a part only when it is closed, so the part's size is estimated as rows are added: the
    estimate stays above the file even for text and numbers that hardly compress, and keeps every part of a
    split within the limit."""
    rng = Random(7)
    rows: list[list[Any]] = [
        [
            "".join(chr(rng.randint(0x4E00, 0x9FFF)) for _i in range(20)),
            "".join(chr(rng.randint(33, 126)) for _i in range(30)),
            rng.random() * 1e6,
            rng.randint(0, 10**12),
            datetime(2026, 1, 1) + timedelta(seconds=rng.randint(0, 10**7)),
            Decimal(rng.randint(0, 10**6)) / 100,
            None,
            "",
        ]
        for _row in range(3_000)
    ]
    sheet = Sheet("t", "Noise", tuple(f"h{i}" for i in range(8)))
    for limit in (10_000_000, 100_000):
        (tmp_path / str(limit)).mkdir()
        writer = XlsxWriter(tmp_path / str(limit), "t", limit, gettext_for("en"))
        writer.begin(sheet)
        writer.rows(rows)
        paths = writer.finish()
        assert len(paths) == len(writer.estimates)
        for path, estimate in zip(paths, writer.estimates, strict=True):
            assert path.stat().st_size < estimate <= limit
        found = [row for path in paths for row in load_workbook(path)["Noise"].iter_rows(values_only=True)]
        assert len(found) == len(rows) + len(paths)  # each part repeats the header
        assert len(paths) == 1 if limit == 10_000_000 else len(paths) > 5
