"""The 台账 ledger (/export): an XLSX workbook — or zipped CSV files — with the sheets Summary,
Enterprises, Visits, Problems (with their history) and Services of one period.

Built for any size with flat memory: rows come from the database in batches (`ledger_queries.stream`),
each batch is formatted and written in a worker thread (`asyncio.to_thread`, so the event loop stays
free) while the next batch is fetched, openpyxl writes in `write_only` mode (rows go straight to a
temporary file, strings inline), and the CSV files are deflated into the zip as they are written.

A file must fit Telegram's 50 MB limit for bots. The compressed size of each part is estimated as it
grows (the same deflate the zip uses, over an approximation of the cells' XML, or over the exact CSV
bytes); before a row would push the part past the limit, the part is finished and a new one starts,
repeating the current sheet's header. Every part is checked after saving.

Times are shown in the district's time zone (local dates and times); headers and labels in the user's
language (Chinese by default). Text that a spreadsheet would take for a formula is written as text.
"""

from __future__ import annotations

import asyncio
import csv
import io
import logging
import zipfile
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from enum import StrEnum
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape
from zoneinfo import ZoneInfo

from openpyxl import Workbook
from openpyxl.cell import WriteOnlyCell
from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE
from openpyxl.styles import Font
from openpyxl.utils import get_column_letter
from sqlalchemy.ext.asyncio import AsyncSession

from bot.i18n import N_, Translator, gettext_for
from bot.labels import (
    CATEGORY_LABELS,
    PARTY_ORG_LABELS,
    PROBLEM_STATUS_LABELS,
    ROLE_LABELS,
    SERVICE_STATUS_LABELS,
    STAGE_LABELS,
    TOPIC_LABELS,
)
from bot.services.periods import Period, PeriodKind
from bot.storage import ledger_queries as q
from bot.storage.enums import ProblemStatus, VisitTopic
from bot.storage.ledger_queries import DbRow
from bot.storage.reports import period_totals

log = logging.getLogger(__name__)

TELEGRAM_LIMIT = 50 * 1000 * 1000  # bytes: the Bot API's limit for a document a bot sends
CELL_LIMIT = 32_000  # characters: Excel keeps at most 32,767 in a cell
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
# -- labels (message ids shared with the flows, so each has one translation) ---------------------------


class Format(StrEnum):
    xlsx = "xlsx"
    csv = "csv"


# -- sheets and headers --------------------------------------------------------------------------------
@dataclass(frozen=True)
class Sheet:
    key: str
    title: str  # N_() marked
    headers: tuple[str, ...]  # N_() marked
    widths: tuple[int, ...] = ()


SUMMARY = Sheet("summary", N_("Summary"), (N_("Item"), N_("Value")), (36, 40))
ENTERPRISES = Sheet(
    "enterprises",
    N_("Enterprises"),
    (
        N_("Enterprise name"),
        N_("Unified social credit code"),
        N_("Stage"),
        N_("Community"),
        N_("Address"),
        N_("Industry"),
        N_("Employees"),
        N_("Party organisation status"),
        N_("Party members"),
        N_("Liaison"),
        N_("Instructor"),
        N_("Visits in the period"),
        N_("Last visit"),
    ),
    (30, 22, 10, 14, 30, 14, 10, 14, 10, 12, 12, 10, 18),
)
VISITS = Sheet(
    "visits",
    N_("Visits"),
    (
        N_("Ref"),
        N_("Visited at"),
        N_("Enterprise name"),
        N_("Unified social credit code"),
        N_("Community"),
        N_("Visited by"),
        N_("Role"),
        N_("Department or community"),
        N_("Topics"),
        N_("Notes"),
        N_("Party organisation recorded"),
        N_("Party members"),
        N_("Distance from the enterprise (m)"),
        N_("Photos"),
    ),
    (14, 18, 30, 22, 14, 12, 14, 16, 24, 40, 14, 10, 10, 8),
)
PROBLEMS = Sheet(
    "problems",
    N_("Problems"),
    (
        N_("Ref"),
        N_("Reported at"),
        N_("Enterprise name"),
        N_("Unified social credit code"),
        N_("Community"),
        N_("Category"),
        N_("Description"),
        N_("Reported by"),
        N_("Status"),
        N_("Responsible department"),
        N_("Due date"),
        N_("Days overdue"),
        N_("Resolution"),
        N_("Funds provided (10k CNY)"),
        N_("Resolved at"),
        N_("History"),
    ),
    (14, 18, 30, 22, 14, 10, 40, 12, 12, 16, 12, 8, 30, 12, 18, 60),
)
SERVICES = Sheet(
    "services",
    N_("Services"),
    (
        N_("Ref"),
        N_("Requested at"),
        N_("Enterprise name"),
        N_("Unified social credit code"),
        N_("Stage"),
        N_("Service"),
        N_("Requested by"),
        N_("Status"),
        N_("Delivered at"),
        N_("Note"),
    ),
    (14, 18, 30, 22, 10, 24, 12, 12, 18, 40),
)
SHEETS = (SUMMARY, ENTERPRISES, VISITS, PROBLEMS, SERVICES)

HISTORY_KINDS = {
    "created": N_("reported the problem"),
    "assigned": N_("assigned the responsible department and due date"),
    "in_progress": N_("marked it in progress"),
    "progress": N_("reported progress"),
    "returned": N_("returned it for correction"),
    "corrected": N_("corrected it"),
    "resolved": N_("marked it resolved"),
    "closed": N_("closed it without resolution"),
    "reopened": N_("reopened it"),
    "open": N_("set it back to open"),
}

Value = str | int | Decimal | datetime | date | None


# -- formatting rows (runs in the worker thread) -------------------------------------------------------
@dataclass
class Formatter:
    """Turns database rows into sheet rows: labels in the user's language, local times."""

    _: Translator
    tz: ZoneInfo
    today: date
    locale: str

    def local(self, moment: datetime | None) -> datetime | None:
        return moment.astimezone(self.tz).replace(tzinfo=None, microsecond=0) if moment else None

    def label(self, labels: dict[Any, str], value: Any) -> str | None:
        return self._(labels[value]) if value is not None else None

    def enterprise(self, row: DbRow) -> list[Value]:
        (name, code, stage, community, address, industry, employees, party_org, members) = row[:9]
        liaison, instructor, visits, last_visit = row[9:]
        return [
            name,
            code,
            self.label(STAGE_LABELS, stage),
            community,
            address,
            industry,
            employees,
            self.label(PARTY_ORG_LABELS, party_org),
            members,
            liaison,
            instructor,
            int(visits),
            self.local(last_visit),
        ]

    def visit(self, row: DbRow) -> list[Value]:
        (visit_id, created, visited, name, code, community, visitor, role, department, user_community) = row[
            :10
        ]
        topics, notes, party_org, members, distance, photos = row[10:]
        topic_names = [
            self._(TOPIC_LABELS[VisitTopic(t)]) for t in topics or [] if t in VisitTopic.__members__
        ]
        return [
            f"V-{created.year}-{visit_id:04d}",
            self.local(visited),
            name,
            code,
            community,
            visitor,
            self.label(ROLE_LABELS, role),
            department or user_community,
            "、".join(topic_names) if self.locale != "en" else ", ".join(topic_names),
            notes or None,
            self.label(PARTY_ORG_LABELS, party_org),
            members,
            distance,
            int(photos),
        ]

    def event(self, row: DbRow) -> str | None:
        at, actor, kind, _from, to, note = row[14:]
        if at is None:
            return None
        if kind in HISTORY_KINDS:
            what = self._(HISTORY_KINDS[kind])
        elif to is not None:
            what = self._(PROBLEM_STATUS_LABELS[to])
        else:
            what = kind
        line = f"{at.astimezone(self.tz):%Y-%m-%d %H:%M} {actor or '-'}: {what}"
        return f"{line} — {note}" if note else line

    def problem(self, row: DbRow, history: list[str]) -> list[Value]:
        (problem_id, created, name, code, community, category, description, reporter, status) = row[:9]
        department, due, resolution, funds, resolved_at = row[9:14]
        overdue = (
            max((self.today - due).days, 0)
            if due is not None
            and status in (ProblemStatus.open, ProblemStatus.in_progress, ProblemStatus.returned)
            else 0
        )
        return [
            f"P-{created.year}-{problem_id:04d}",
            self.local(created),
            name,
            code,
            community,
            self.label(CATEGORY_LABELS, category),
            description,
            reporter,
            self.label(PROBLEM_STATUS_LABELS, status),
            department,
            due,
            overdue or None,
            resolution,
            funds,
            self.local(resolved_at),
            "\n".join(history),
        ]

    def service(self, row: DbRow) -> list[Value]:
        request_id, created, name, code, stage, item_zh, item_en, requester, status, delivered, note = row
        return [
            f"S-{created.year}-{request_id:04d}",
            self.local(created),
            name,
            code,
            self.label(STAGE_LABELS, stage),
            item_en if self.locale == "en" else item_zh,
            requester,
            self.label(SERVICE_STATUS_LABELS, status),
            self.local(delivered),
            note or None,
        ]


class ProblemGrouper:
    """Problems arrive as one row per history event; emit one sheet row per problem, with its history.
    Keeps state across batches (a problem's events may span two)."""

    def __init__(self, formatter: Formatter) -> None:
        self.formatter = formatter
        self.current: DbRow | None = None
        self.history: list[str] = []

    def feed(self, rows: Sequence[DbRow]) -> list[list[Value]]:
        out = []
        for row in rows:
            if self.current is not None and row[0] != self.current[0]:
                out.append(self.formatter.problem(self.current, self.history))
                self.history = []
            self.current = row
            if (line := self.formatter.event(row)) is not None:
                self.history.append(line)
        return out

    def finish(self) -> list[list[Value]]:
        if self.current is None:
            return []
        last = self.formatter.problem(self.current, self.history)
        self.current, self.history = None, []
        return [last]


# -- size budget ---------------------------------------------------------------------------------------
class Budget:
    """An upper estimate of a part's compressed size as rows are added: what deflate has produced so far
    plus the input it still holds (flushed every `chunk` bytes, so the estimate never lags far)."""

    def __init__(self, limit: int, overhead: int) -> None:
        self.limit, self.overhead = limit, overhead
        self.chunk = max(min(16_384, limit // 8), 512)
        self.reset()

    def reset(self) -> None:
        # Level 3 is ~3x faster than the level 6 zip and openpyxl use, and compresses a little less:
        # the estimate errs on the safe side.
        self.deflate = zlib.compressobj(3, zlib.DEFLATED, -15)
        self.size, self.held = self.overhead, 0

    def fits(self, extra: int) -> bool:
        return self.size + self.held + extra <= self.limit

    def add(self, data: bytes) -> None:
        self.size += len(self.deflate.compress(data))
        self.held += len(data)
        if self.held >= self.chunk:
            self.size += len(self.deflate.flush(zlib.Z_SYNC_FLUSH))
            self.held = 0


# -- writers (run in the worker thread) ----------------------------------------------------------------
def clean_text(value: str, *, csv_safe: bool) -> str:
    value = ILLEGAL_CHARACTERS_RE.sub("", value)
    if len(value) > CELL_LIMIT:
        value = value[: CELL_LIMIT - 1] + "…"
    if csv_safe and value.startswith(FORMULA_START):
        value = "'" + value  # keep spreadsheets from running it as a formula (CSV injection)
    return value


class PartWriter:
    """Writes sheets into one or more files, each within `limit` bytes."""

    suffix = ""

    def __init__(self, directory: Path, stem: str, limit: int, _: Translator) -> None:
        self.directory, self.stem, self.limit, self._ = directory, stem, limit, _
        self.paths: list[Path] = []
        self.sheet: Sheet | None = None
        self.rows_in_part = 0
        self.budget = Budget(int(limit * 0.95), self.overhead())
        self.open_part()

    # subclass hooks
    def overhead(self) -> int:
        return 0

    def open_part(self) -> None:
        raise NotImplementedError

    def close_part(self) -> Path:
        raise NotImplementedError

    def start_sheet(self, sheet: Sheet) -> None:
        raise NotImplementedError

    def encode(self, values: Sequence[Value]) -> tuple[bytes, Any]:
        """(bytes whose compressed size estimates the row's, the row prepared for `write`)"""
        raise NotImplementedError

    def write(self, prepared: Any) -> None:
        raise NotImplementedError

    # the common part
    def part_path(self) -> Path:
        return self.directory / f"{self.stem}.part{len(self.paths) + 1}{self.suffix}"

    def begin(self, sheet: Sheet) -> None:
        self.sheet = sheet
        self.start_sheet(sheet)
        header = [self._(h) for h in sheet.headers]
        data, prepared = self.encode(header)
        self.budget.add(data)
        self.write_header(header, prepared)

    def write_header(self, header: list[str], prepared: Any) -> None:
        self.write(prepared)

    def rows(self, rows: Sequence[Sequence[Value]]) -> None:
        for values in rows:
            data, prepared = self.encode(values)
            if self.rows_in_part and not self.budget.fits(len(data)):
                self.rotate()
                data, prepared = self.encode(values)  # row numbers start again in the new part
            self.budget.add(data)
            self.write(prepared)
            self.rows_in_part += 1

    def rotate(self) -> None:
        self.paths.append(self.close_part())
        self.budget.reset()
        self.rows_in_part = 0
        self.open_part()
        if self.sheet is not None:
            self.begin(self.sheet)

    def finish(self) -> list[Path]:
        self.paths.append(self.close_part())
        for path in self.paths:
            size = path.stat().st_size
            if size > self.limit:
                log.error("ledger part %s is %d bytes, over the %d limit", path.name, size, self.limit)
        return self.paths


class XlsxWriter(PartWriter):
    suffix = ".xlsx"
    XML_OVERHEAD = 5_000  # bytes of an empty workbook (styles, properties, relationships), compressed
    SHEET_OVERHEAD = 600

    def overhead(self) -> int:
        return self.XML_OVERHEAD + len(SHEETS) * self.SHEET_OVERHEAD

    def open_part(self) -> None:
        self.workbook = Workbook(write_only=True)
        self.worksheet: Any = None  # WriteOnlyWorksheet (its stubs lack column_dimensions)
        self.row_number = 0
        self.bold = Font(bold=True)

    def close_part(self) -> Path:
        path = self.part_path()
        self.workbook.save(path)
        return path

    def start_sheet(self, sheet: Sheet) -> None:
        self.worksheet = self.workbook.create_sheet(self._(sheet.title))
        self.worksheet.freeze_panes = "A2"
        for i, width in enumerate(sheet.widths, start=1):
            self.worksheet.column_dimensions[get_column_letter(i)].width = width
        self.row_number = 0

    def write_header(self, header: list[str], prepared: Any) -> None:
        assert self.worksheet is not None
        cells = []
        for text in header:
            cell = WriteOnlyCell(self.worksheet, value=text)
            cell.font = self.bold
            cells.append(cell)
        self.worksheet.append(cells)
        self.row_number += 1

    def encode(self, values: Sequence[Value]) -> tuple[bytes, Any]:
        """Roughly the XML openpyxl writes for the row (only used to estimate the compressed size)."""
        row = self.row_number + 1
        parts = [f'<row r="{row}">']
        for i, value in enumerate(values):
            ref = f"{get_column_letter(i + 1)}{row}"
            if value is None:
                continue
            if isinstance(value, str):
                parts.append(f'<c r="{ref}" t="inlineStr"><is><t>{escape(value)}</t></is></c>')
            else:
                parts.append(f'<c r="{ref}" t="n" s="1"><v>{value}</v></c>')
        parts.append("</row>")
        return "".join(parts).encode(), values

    def write(self, prepared: Any) -> None:
        values: Sequence[Value] = prepared
        assert self.worksheet is not None
        cells: list[Any] = []
        for value in values:
            if isinstance(value, str):
                value = clean_text(value, csv_safe=False)
                if value.startswith("="):  # openpyxl would write it as a formula
                    cell = WriteOnlyCell(self.worksheet, value=value)
                    cell.data_type = "s"
                    cells.append(cell)
                    continue
            cells.append(value)
        self.worksheet.append(cells)
        self.row_number += 1


class CsvWriter(PartWriter):
    """One zip per part, one CSV (UTF-8 with BOM, so Excel reads Chinese) per sheet."""

    suffix = ".zip"
    ENTRY_OVERHEAD = 200  # bytes of a zip entry's headers (name, sizes, CRC)

    def overhead(self) -> int:
        return 100 + len(SHEETS) * self.ENTRY_OVERHEAD

    def open_part(self) -> None:
        self.archive = zipfile.ZipFile(self.part_path(), "w", zipfile.ZIP_DEFLATED)
        self.entry: io.TextIOWrapper | None = None

    def close_entry(self) -> None:
        if self.entry is not None:
            self.entry.close()
            self.entry = None

    def close_part(self) -> Path:
        self.close_entry()
        path = Path(str(self.archive.filename))
        self.archive.close()
        return path

    def start_sheet(self, sheet: Sheet) -> None:
        self.close_entry()
        binary = self.archive.open(f"{self._(sheet.title)}.csv", "w", force_zip64=True)
        self.entry = io.TextIOWrapper(binary, encoding="utf-8-sig", newline="")
        self.line = io.StringIO()
        self.csv = csv.writer(self.line)

    def text(self, value: Value) -> str:
        if value is None:
            return ""
        if isinstance(value, datetime):
            return value.strftime("%Y-%m-%d %H:%M")
        if isinstance(value, date):
            return value.isoformat()
        if isinstance(value, Decimal):
            return f"{value:.2f}"
        if isinstance(value, str):
            return clean_text(value, csv_safe=True)
        return str(value)

    def encode(self, values: Sequence[Value]) -> tuple[bytes, Any]:
        self.line.seek(0)
        self.line.truncate()
        self.csv.writerow([self.text(v) for v in values])
        line = self.line.getvalue()
        return line.encode(), line

    def write(self, prepared: Any) -> None:
        assert self.entry is not None
        self.entry.write(prepared)


# -- the use case --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class LedgerFile:
    path: Path
    filename: str


@dataclass
class Ledger:
    files: list[LedgerFile]
    rows: dict[str, int] = field(default_factory=dict)  # sheet key -> data rows written


def period_text(period: Period, _: Translator) -> str:
    first, last = period.start.isoformat(), period.last_day.isoformat()
    if period.kind is PeriodKind.week:
        return _("Week {week} of {year} ({first} – {last})").format(
            week=period.number, year=period.year, first=first, last=last
        )
    return _("{year}-{month:02d} ({first} – {last})").format(
        year=period.year, month=period.number, first=first, last=last
    )


async def _pipe(
    session: AsyncSession,
    stmt: Any,
    convert: Callable[[Sequence[DbRow]], list[list[Value]]],
    writer: PartWriter,
    batch: int,
) -> int:
    """Stream the statement into the writer: the next batch is fetched while the last one is written."""
    written = 0
    pending: asyncio.Future[None] | None = None

    def work(rows: Sequence[DbRow]) -> None:
        nonlocal written
        converted = convert(rows)
        writer.rows(converted)
        written += len(converted)

    try:
        async for rows in q.stream(session, stmt, batch=batch):
            if pending is not None:
                await pending
            pending = asyncio.ensure_future(asyncio.to_thread(work, rows))
    finally:
        if pending is not None:
            await pending
    return written


async def export_ledger(
    session: AsyncSession,
    *,
    period: Period,
    tz: ZoneInfo,
    locale: str,
    now: datetime,
    fmt: Format,
    directory: Path,
    limit: int = TELEGRAM_LIMIT,
    batch: int = q.BATCH,
) -> Ledger:
    """Write the ledger of `period` into `directory`; the files to send, in order."""
    _ = gettext_for(locale)
    today = now.astimezone(tz).date()
    start, end = period.utc_bounds(tz)
    await q.begin_snapshot(session)
    totals = await period_totals(session, start=start, end=end, scope_user_id=None)
    pending, overdue = await q.pending_now(session, today=today)
    sizes = await q.sheet_sizes(session, start=start, end=end)
    stem = _("ledger") + "_" + period.iso
    writer_class = XlsxWriter if fmt is Format.xlsx else CsvWriter
    writer = await asyncio.to_thread(writer_class, directory, stem, limit, _)
    formatter = Formatter(_, tz, today, locale)
    summary: list[list[Value]] = [
        [_("Period"), period_text(period, _)],
        [_("Generated at"), formatter.local(now)],
        [_("Number of visits"), totals.visits],
        [_("Enterprises visited"), totals.enterprises_visited],
        [_("Enterprises on the register"), sizes["enterprises"]],
        [_("Problems reported"), totals.reported],
        [_("Problems resolved"), totals.resolved],
        [_("Funds provided (10k CNY)"), totals.funds],
        [_("Problems pending now"), pending],
        [_("Problems overdue now"), overdue],
        [_("Services requested"), totals.requested],
        [_("Services delivered"), totals.delivered],
        [_("Problems in this ledger (reported or handled in the period)"), sizes["problems"]],
        [_("Service requests in this ledger (requested or delivered in the period)"), sizes["services"]],
    ]
    await asyncio.to_thread(writer.begin, SUMMARY)
    await asyncio.to_thread(writer.rows, summary)
    rows: dict[str, int] = {}
    await asyncio.to_thread(writer.begin, ENTERPRISES)
    rows["enterprises"] = await _pipe(
        session, q.enterprises(start, end), lambda b: [formatter.enterprise(r) for r in b], writer, batch
    )
    await asyncio.to_thread(writer.begin, VISITS)
    rows["visits"] = await _pipe(
        session, q.visits(start, end), lambda b: [formatter.visit(r) for r in b], writer, batch
    )
    await asyncio.to_thread(writer.begin, PROBLEMS)
    grouper = ProblemGrouper(formatter)
    rows["problems"] = await _pipe(session, q.problems(start, end), grouper.feed, writer, batch)
    last = grouper.finish()
    await asyncio.to_thread(writer.rows, last)
    rows["problems"] += len(last)
    await asyncio.to_thread(writer.begin, SERVICES)
    rows["services"] = await _pipe(
        session, q.services(start, end), lambda b: [formatter.service(r) for r in b], writer, batch
    )
    paths = await asyncio.to_thread(writer.finish)
    suffix = writer.suffix
    if len(paths) == 1:
        names = [f"{stem}{suffix}"]
    else:
        names = [f"{stem}_{i}-{len(paths)}{suffix}" for i in range(1, len(paths) + 1)]
    return Ledger([LedgerFile(p, n) for p, n in zip(paths, names, strict=True)], rows)
