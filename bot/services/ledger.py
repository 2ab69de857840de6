"""The 台账 ledger (/export): an XLSX workbook — or zipped CSV files — with the sheets Summary,
Enterprises, Visits, Problems (with their history) and Services of one period.

Built for any size with flat memory: rows come from the database in batches (`ledger_queries.stream`),
each batch is formatted and written in a worker thread (`asyncio.to_thread`, so the event loop stays free)
while the next batch is fetched. The Summary's figures are read on a second connection meanwhile
(`SummaryFirst`).

The XLSX is written by XlsxWriter in constant-memory mode: each row goes to a temporary file as it is
written (in the export's temporary directory), and the workbook's zip is made when it is closed. Text is
written as text (never a formula), local times as dates with a date format; the header row is bold and
frozen. Writing the worksheet XML by hand measured ~550 ms (1.74× the oracle) for the busiest month against
XlsxWriter's 1.5–1.8 s, but is not done: spreadsheets are a library's job. The CSV files are streamed into
their zip (deflated in a thread of their own) as the rows come.

A file must fit Telegram's 50 MB limit for bots. A CSV part's size is known as it grows (the bytes already
in the file, plus a bound on what the deflater still holds, `HELD`); an XLSX part's is estimated while
rows are added (`XlsxWriter`), since XlsxWriter only compresses it when it is closed. Before rows would
push a part past the limit, the part is finished and a new one starts, repeating the current sheet's
header. Every part is checked after saving.

Times are shown in the district's time zone (local dates and times); headers and labels in the user's
language (Chinese by default). Text that a spreadsheet would take for a formula is written as text.
"""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import csv
import functools
import io
import json
import logging
import zipfile
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from pathlib import Path
from typing import IO, Any, Protocol
from zoneinfo import ZoneInfo

import xlsxwriter
from sqlalchemy.ext.asyncio import AsyncSession
from xlsxwriter.worksheet import Worksheet

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
# Characters XML 1.0 does not allow (the C0 controls but tab, newline and carriage return): removed from
# text (only text that is not all printable can hold one).
ILLEGAL_CHARACTERS = "".join(chr(c) for c in range(32) if c not in (9, 10, 13))
DAY = timedelta(days=1)
DATETIME_FORMAT, DATE_FORMAT = "yyyy-mm-dd h:mm:ss", "yyyy-mm-dd"
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

Value = str | int | float | Decimal | datetime | date | None


def naive_utc(value: Any) -> datetime:
    """A time as `ledger_queries.utc_time` returns it — UTC as ISO text on SQLite, a naive UTC datetime on
    PostgreSQL — as a naive UTC datetime to the second (an aware one is converted)."""
    if value.__class__ is str:  # 'YYYY-MM-DD HH:MM:SS[.ffffff]'
        return datetime.fromisoformat(value[:19])
    moment: datetime = value
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC)
        moment = datetime.combine(moment.date(), moment.time())  # (datetime.replace costs 0.7 µs)
    return moment - timedelta(microseconds=moment.microsecond) if moment.microsecond else moment


def year(value: Any) -> str:
    """The UTC year of a raw time (numbers the rows' refs)."""
    return value[:4] if value.__class__ is str else str(naive_utc(value).year)


# -- formatting rows (runs in the worker thread) -------------------------------------------------------
class Formatter:
    """Turns database rows into sheet rows: labels in the user's language, local times."""

    def __init__(self, _: Translator, tz: ZoneInfo, today: date, locale: str) -> None:
        self._, self.tz, self.today, self.locale = _, tz, today, locale

        # Labels by value: the enum members are StrEnums, so the raw strings of the queries find them too.
        def translate(labels: dict[Any, str]) -> dict[Any, str]:
            return {key: _(text) for key, text in labels.items()}

        self.stages, self.party_orgs = translate(STAGE_LABELS), translate(PARTY_ORG_LABELS)
        self.roles, self.categories = translate(ROLE_LABELS), translate(CATEGORY_LABELS)
        self.problem_statuses = translate(PROBLEM_STATUS_LABELS)
        self.service_statuses = translate(SERVICE_STATUS_LABELS)
        self.topic_labels = translate(TOPIC_LABELS)
        self.topic_separator = ", " if locale == "en" else "、"
        self.topics_seen: dict[Any, str] = {}  # raw topics -> their text (a few combinations recur)
        self.offsets: dict[date | str, timedelta] = {}  # UTC day (date, ISO text) -> the zone's offset
        self.changing: set[date] = set()  # UTC days in which the offset changes

    def local(self, moment: Any) -> datetime | None:
        """Local wall-clock time, to the second, of a raw UTC time: plus the zone's offset that UTC day, kept
        per day (a few C calls; `astimezone` and `replace` take ten times as long)."""
        if moment is None:
            return None
        if moment.__class__ is str:  # SQLite
            offset = self.offsets.get(moment[:10])
            if offset is not None:
                return datetime.fromisoformat(moment[:19]) + offset
        elif moment.tzinfo is None and not moment.microsecond:  # PostgreSQL
            naive: datetime = moment
            offset = self.offsets.get(naive.date())
            if offset is not None:
                return naive + offset
        return self.local_first(moment)

    def local_first(self, moment: Any) -> datetime:
        """`local` the first time in a UTC day, or on a day the zone's offset changes."""
        naive = naive_utc(moment)
        day = naive.date()
        if day not in self.changing:
            start = datetime(day.year, day.month, day.day, tzinfo=UTC)
            offset = start.astimezone(self.tz).utcoffset()
            if offset == (start + DAY - timedelta(microseconds=1)).astimezone(self.tz).utcoffset():
                assert offset is not None
                self.offsets[day] = self.offsets[day.isoformat()] = offset  # PostgreSQL's key, SQLite's
                return naive + offset
            self.changing.add(day)
        local = naive.replace(tzinfo=UTC).astimezone(self.tz)
        return datetime.combine(local.date(), local.time())

    def topics(self, value: Any) -> str:
        key = value if value is None or value.__class__ is str else tuple(value)
        text = self.topics_seen.get(key)
        if text is None:
            topics = json.loads(value) if value.__class__ is str else value
            text = self.topic_separator.join(
                self.topic_labels[VisitTopic(t)] for t in topics or [] if t in VisitTopic.__members__
            )
            self.topics_seen[key] = text
        return text

    def enterprise(self, row: DbRow) -> list[Value]:
        (
            name,
            code,
            stage,
            community,
            address,
            industry,
            employees,
            party_org,
            members,
            liaison,
            instructor,
        ) = row[:11]
        return [
            name,
            code,
            self.stages.get(stage, stage),
            community,
            address,
            industry,
            employees,
            self.party_orgs.get(party_org, party_org),
            members,
            liaison,
            instructor,
            row[11],
            self.local(row[12]),
        ]

    def visit(self, row: DbRow) -> list[Value]:
        (visit_id, created, visited, name, code, community, visitor, role, department, user_community) = row[
            :10
        ]
        topics, notes, party_org, members, distance, photos = row[10:]
        topics_text = self.topics_seen.get(topics)
        if topics_text is None:
            topics_text = self.topics(topics)
        return [
            f"V-{created[:4] if created.__class__ is str else year(created)}-{visit_id:04d}",
            self.local(visited),
            name,
            code,
            community,
            visitor,
            self.roles.get(role, role),
            department or user_community,
            topics_text,
            notes or None,
            self.party_orgs.get(party_org, party_org),
            members,
            distance,
            photos,
        ]

    def event(self, row: DbRow) -> str | None:
        at, actor, kind, _from, to, note = row[14:]
        if at is None:
            return None
        if kind in HISTORY_KINDS:
            what = self._(HISTORY_KINDS[kind])
        elif to is not None:
            what = self.problem_statuses.get(to) or str(to)
        else:
            what = str(kind)
        line = f"{self.local(at):%Y-%m-%d %H:%M} {actor or '-'}: {what}"
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
            f"P-{year(created)}-{problem_id:04d}",
            self.local(created),
            name,
            code,
            community,
            self.categories.get(category, category),
            description,
            reporter,
            self.problem_statuses.get(status, status),
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
            f"S-{year(created)}-{request_id:04d}",
            self.local(created),
            name,
            code,
            self.stages.get(stage, stage),
            item_en if self.locale == "en" else item_zh,
            requester,
            self.service_statuses.get(status, status),
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


# -- writers (run in the worker thread) ----------------------------------------------------------------
def clean_text(value: str, *, csv_safe: bool) -> str:
    """Without the characters XML does not allow, at most CELL_LIMIT long, and (csv_safe) not taken for a
    formula by a spreadsheet."""
    if not value.isprintable():
        value = value.translate(DELETE_ILLEGAL)
        if not value.isascii():  # lone surrogates (not UTF-8) as "?"
            value = value.encode("utf-8", "replace").decode("utf-8")
    if len(value) > CELL_LIMIT:
        value = value[: CELL_LIMIT - 1] + "…"
    if csv_safe and value.startswith(FORMULA_START):
        value = "'" + value  # keep spreadsheets from running it as a formula (CSV injection)
    return value


DELETE_ILLEGAL = dict.fromkeys(map(ord, ILLEGAL_CHARACTERS))


def deflate_bound(size: int) -> int:
    """At most this many bytes come out of deflating `size` bytes (stored blocks cost 5 bytes per 64 KB)."""
    return size + (size >> 10) + 64


class CountingFile(io.BufferedRandom):
    """A part's file, counting the bytes written to it: its size without `tell()`, a system call that lets
    another thread take the GIL (and the writer then waits to get it back). Rewritten zip headers count
    twice, which only errs on the safe side."""

    written = 0

    def write(self, data: Any, /) -> int:
        self.written += len(data)
        return super().write(data)


class PartWriter:
    """Writes sheets into one or more zip files (the CSV files), each within `limit` bytes, its size known as
    it grows. Subclasses say what a sheet's entry holds; rows arrive in batches and are encoded to bytes a
    batch at a time. A batch is deflated into the file in a thread of its own (zlib lets go of the GIL)
    while the next one is encoded; every other step first waits for it (`drain`), so the zip is only ever
    touched by one thread at a time."""

    suffix = ""
    LEVEL = 1  # deflate level: ~3x faster than zlib's default 6, for files ~20 % larger
    # What the deflater may hold back, compressed: up to 16,384 symbols of at most 48 bits each (zlib's
    # block buffer at the memLevel zipfile uses), plus a block header; rounded well up.
    HELD = 256 * 1024
    CLOSING = 0  # bytes that finishing a part adds after its last row
    FORCE_ZIP64 = False

    def __init__(self, directory: Path, stem: str, limit: int, _: Translator) -> None:
        self.directory, self.stem, self.limit, self._ = directory, stem, limit, _
        self.budget = limit - limit // 100 - self.CLOSING
        self.paths: list[Path] = []
        self.sheet: Sheet | None = None
        self.deflater = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ledger-deflate")
        self.writing: Future[int] | None = None
        self.open_part()

    # subclass hooks
    def entry_name(self, sheet: Sheet) -> str:
        raise NotImplementedError

    def sheet_head(self, sheet: Sheet) -> bytes:
        return b""

    def encode(self, rows: Sequence[Sequence[Value]], first: int) -> bytes:
        """The rows as they go into the entry; `first` is the row number of the first."""
        raise NotImplementedError

    def encode_header(self, header: list[str]) -> bytes:
        return self.encode([header], 1)

    # the common part
    def part_path(self) -> Path:
        return self.directory / f"{self.stem}.part{len(self.paths) + 1}{self.suffix}"

    def open_part(self) -> None:
        self.file = CountingFile(io.FileIO(self.part_path(), "w+"))
        self.archive = zipfile.ZipFile(self.file, "w", zipfile.ZIP_DEFLATED, compresslevel=self.LEVEL)
        self.entry: IO[bytes] | None = None
        self.entry_raw = 0
        self.row_number = 0  # rows in the current sheet's entry, header included
        self.rows_in_part = 0
        self.titles: list[str] = []  # the sheets in this part

    def drain(self) -> None:
        """Wait until the last batch is in the file."""
        if self.writing is not None:
            writing, self.writing = self.writing, None
            writing.result()

    def fits(self, size: int) -> bool:
        """Would `size` more raw bytes keep the part within its budget? The file holds all the part's
        compressed bytes but what the deflater of the current entry still holds."""
        self.drain()
        held = min(self.HELD, deflate_bound(self.entry_raw)) if self.entry is not None else 0
        return self.file.written + held + deflate_bound(size) <= self.budget

    def put(self, data: bytes, rows: int) -> None:
        assert self.entry is not None
        self.drain()
        self.writing = self.deflater.submit(self.entry.write, data)
        self.entry_raw += len(data)
        self.row_number += rows

    def close_entry(self) -> None:
        self.drain()
        if self.entry is not None:
            self.entry.close()
            self.entry = None

    def start_sheet(self, sheet: Sheet) -> None:
        self.close_entry()
        title = self._(sheet.title)
        self.titles.append(title)
        self.entry = self.archive.open(self.entry_name(sheet), "w", force_zip64=self.FORCE_ZIP64)
        self.entry_raw, self.row_number = 0, 0
        self.entry.write(self.sheet_head(sheet))
        self.put(self.encode_header([self._(h) for h in sheet.headers]), 1)

    def begin(self, sheet: Sheet) -> None:
        header = self.encode_header([self._(h) for h in sheet.headers])
        if self.rows_in_part and not self.fits(len(header) + len(self.sheet_head(sheet))):
            self.sheet = None  # the full part ends with the last sheet; the new one starts the next part
            self.rotate()
        self.sheet = sheet
        self.start_sheet(sheet)

    def rows(self, rows: Sequence[Sequence[Value]]) -> None:
        if not rows:
            return
        data = self.encode(rows, self.row_number + 1)
        if self.fits(len(data)):  # the whole batch: the usual case, far from the limit
            self.put(data, len(rows))
            self.rows_in_part += len(rows)
            return
        for values in rows:
            data = self.encode((values,), self.row_number + 1)
            if self.rows_in_part and not self.fits(len(data)):
                self.rotate()
                data = self.encode((values,), self.row_number + 1)  # row numbers start again
            self.put(data, 1)
            self.rows_in_part += 1

    def close_part(self) -> Path:
        self.close_entry()
        self.archive.close()
        self.file.close()
        return self.part_path()

    def rotate(self) -> None:
        self.paths.append(self.close_part())
        self.open_part()
        if self.sheet is not None:
            self.start_sheet(self.sheet)

    def finish(self) -> list[Path]:
        self.paths.append(self.close_part())
        self.deflater.shutdown()
        for path in self.paths:
            size = path.stat().st_size
            if size > self.limit:
                log.error("ledger part %s is %d bytes, over the %d limit", path.name, size, self.limit)
        return self.paths

    def abort(self) -> None:
        """Give up (the export failed): let the deflater thread go and close the file."""
        self.deflater.shutdown(wait=True, cancel_futures=True)
        self.writing = None
        self.file.close()


class XlsxWriter:
    """Writes sheets into one or more XLSX workbooks (XlsxWriter, constant-memory mode), each within
    `limit` bytes.

    XlsxWriter makes a part's zip only when the workbook is closed, so its size is estimated while rows are
    added — conservatively, and for a few operations a row, next to XlsxWriter's ~3.5 µs a cell: `PART`
    for the package's fixed entries (workbook, styles, theme, properties, content types, relationships,
    zip directory: ~4.3 KB, measured), `SHEET` for each sheet's own (its XML head and tail, zip headers,
    entries in the package: ~0.6 KB), and for each row `ROW` plus `CELL` a cell for the deflated markup
    (measured 2–5 bytes a cell; a number's or time's 16 digits at worst ~7 more) plus the UTF-8 bytes of
    its text, counted as if it did not compress (deflate barely grows incompressible data, and the
    ledger's text shrinks to half or less).
    """

    suffix = ".xlsx"
    PART = 8_000
    SHEET = 1_500
    ROW = 16
    CELL = 12

    def __init__(self, directory: Path, stem: str, limit: int, _: Translator) -> None:
        self.directory, self.stem, self.limit, self._ = directory, stem, limit, _
        self.budget = limit - limit // 100
        self.paths: list[Path] = []
        self.estimates: list[int] = []  # the parts' estimated sizes
        self.sheet: Sheet | None = None
        self.open_part()

    def part_path(self) -> Path:
        return self.directory / f"{self.stem}.part{len(self.paths) + 1}{self.suffix}"

    def open_part(self) -> None:
        self.workbook = xlsxwriter.Workbook(
            str(self.part_path()),
            {
                "constant_memory": True,
                "strings_to_formulas": False,
                "strings_to_numbers": False,
                "strings_to_urls": False,
                "tmpdir": str(self.directory),
            },
        )
        self.bold = self.workbook.add_format({"bold": True})
        self.datetime_format = self.workbook.add_format({"num_format": DATETIME_FORMAT})
        self.date_format = self.workbook.add_format({"num_format": DATE_FORMAT})
        self.worksheet: Worksheet | None = None
        self.row_number = 0  # the next row of the current sheet (0 is the header)
        self.rows_in_part = 0
        self.estimate = self.PART

    @staticmethod
    def text_size(values: Sequence[Any]) -> int:
        """The UTF-8 bytes of the text in `values`."""
        return sum(len(v.encode("utf-8", "replace")) for v in values if v.__class__ is str)

    def header_size(self, header: list[str]) -> int:
        return self.SHEET + self.ROW + self.CELL * len(header) + self.text_size(header)

    def start_sheet(self, sheet: Sheet, header: list[str]) -> None:
        worksheet = self.workbook.add_worksheet(self._(sheet.title)[:31])
        for column, width in enumerate(sheet.widths):
            worksheet.set_column(column, column, width)
        worksheet.freeze_panes(1, 0)
        for column, text in enumerate(header):
            worksheet.write_string(0, column, clean_text(text, csv_safe=False), self.bold)
        self.worksheet, self.row_number = worksheet, 1
        self.estimate += self.header_size(header)

    def begin(self, sheet: Sheet) -> None:
        header = [self._(h) for h in sheet.headers]
        if self.rows_in_part and self.estimate + self.header_size(header) > self.budget:
            self.sheet = None  # the full part ends with the last sheet; the new one starts the next part
            self.rotate()
        self.sheet = sheet
        self.start_sheet(sheet, header)

    def rows(self, rows: Sequence[Sequence[Value]]) -> None:
        row_size, cell_size, text_size = self.ROW, self.CELL, self.text_size
        for values in rows:
            size = row_size + cell_size * len(values) + text_size(values)
            if self.rows_in_part and self.estimate + size > self.budget:
                self.rotate()
            self.estimate += size
            self.write_row(values)

    def write_row(self, values: Sequence[Value]) -> None:
        """One row of cells: text as a string (never a formula), numbers as numbers, times as dates with a
        date format, None as an empty cell."""
        worksheet = self.worksheet
        assert worksheet is not None
        row = self.row_number
        for column, v in enumerate(values):
            if v is None:
                continue
            kind = v.__class__
            if kind is str:
                text: str = v  # type: ignore[assignment]
                if not text.isprintable() or len(text) > CELL_LIMIT:
                    text = clean_text(text, csv_safe=False)
                if text:
                    worksheet.write_string(row, column, text)
            elif kind is int:
                worksheet.write_number(row, column, v)
            elif kind is datetime:
                worksheet.write_datetime(row, column, v, self.datetime_format)
            elif kind is date:
                worksheet.write_datetime(row, column, v, self.date_format)
            elif kind is Decimal or kind is float:
                number = float(v)  # type: ignore[arg-type]
                if number - number == 0:  # finite
                    worksheet.write_number(row, column, number)
                else:
                    worksheet.write_string(row, column, str(v))
            else:  # anything else (bool, ...) as its text
                text = clean_text(str(v), csv_safe=False)
                if text:
                    worksheet.write_string(row, column, text)
        self.row_number += 1
        self.rows_in_part += 1

    def close_part(self) -> Path:
        path = self.part_path()
        self.workbook.close()
        self.estimates.append(self.estimate)
        return path

    def rotate(self) -> None:
        self.paths.append(self.close_part())
        self.open_part()
        if self.sheet is not None:
            self.start_sheet(self.sheet, [self._(h) for h in self.sheet.headers])

    def finish(self) -> list[Path]:
        self.paths.append(self.close_part())
        for path, estimate in zip(self.paths, self.estimates, strict=True):
            size = path.stat().st_size
            log.debug("ledger part %s: %d bytes, estimated %d", path.name, size, estimate)
            if size > self.limit:
                log.error("ledger part %s is %d bytes, over the %d limit", path.name, size, self.limit)
        return self.paths

    def abort(self) -> None:
        """Give up (the export failed): close the workbook, so its temporary files are closed too (the
        export's directory, file and all, is removed by the caller)."""
        with contextlib.suppress(Exception):
            self.workbook.close()


class CsvWriter(PartWriter):
    """One zip per part, one CSV (UTF-8 with BOM, so Excel reads Chinese) per sheet."""

    suffix = ".zip"
    CLOSING = 2_000  # the zip directory
    FORCE_ZIP64 = True

    def entry_name(self, sheet: Sheet) -> str:
        return f"{self._(sheet.title)}.csv"

    def sheet_head(self, sheet: Sheet) -> bytes:
        return codecs.BOM_UTF8

    def encode(self, rows: Sequence[Sequence[Any]], first: int) -> bytes:
        text = self.text
        lines = io.StringIO()
        # None and int as they are (csv writes them as "" and digits); letters-only text needs no care.
        csv.writer(lines).writerows(
            [
                [
                    v
                    if v is None
                    or (kind := v.__class__) is int
                    or (kind is str and v.isalnum() and len(v) <= CELL_LIMIT)
                    else text(v)
                    for v in values
                ]
                for values in rows
            ]
        )
        return lines.getvalue().encode("utf-8", "replace")

    @staticmethod
    def text(value: Any) -> str:
        kind = value.__class__
        if kind is str:
            return clean_text(value, csv_safe=True)
        if value is None:
            return ""
        if kind is datetime:
            return str(value.isoformat(" ", "minutes"))  # YYYY-MM-DD HH:MM
        if kind is date:
            return str(value.isoformat())
        if kind is Decimal:
            return f"{value:.2f}"
        return str(value)


class SheetWriter(Protocol):
    """What the use case needs of a writer: sheets begun in order, rows in batches, the parts' paths."""

    suffix: str

    def __init__(self, directory: Path, stem: str, limit: int, _: Translator) -> None: ...

    def begin(self, sheet: Sheet) -> None: ...

    def rows(self, rows: Sequence[Sequence[Value]]) -> None: ...

    def finish(self) -> list[Path]: ...

    def abort(self) -> None: ...


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
    write: Callable[[list[list[Value]]], None],
    batch: int,
) -> int:
    """Stream the statement into the writer: the next batch is fetched while the last one is written."""
    written = 0
    pending: asyncio.Future[None] | None = None

    def work(rows: Sequence[DbRow]) -> None:
        nonlocal written
        converted = convert(rows)
        write(converted)
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


async def summary_rows(
    session: AsyncSession,
    *,
    period: Period,
    start: datetime,
    end: datetime,
    today: date,
    generated: Value,
    _: Translator,
) -> list[list[Value]]:
    """The Summary sheet: the period's figures (as /stats counts them) and what the other sheets hold."""
    totals = await period_totals(session, start=start, end=end, scope_user_id=None)
    pending, overdue = await q.pending_now(session, today=today)
    sizes = await q.sheet_sizes(session, start=start, end=end)
    return [
        [_("Period"), period_text(period, _)],
        [_("Generated at"), generated],
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


class SummaryFirst:
    """The Summary sheet comes first, but its figures are worked out on a connection of their own while the
    first data sheet's rows are fetched and formatted: those rows wait here (a few batches at most) until
    the figures are in. Runs in the worker thread; `figures` is completed from the event loop."""

    HOLD = 8  # batches held back before waiting for the figures

    def __init__(self, writer: SheetWriter, figures: Future[list[list[Value]]], first: Sheet) -> None:
        self.writer, self.figures, self.first = writer, figures, first
        self.held: list[list[list[Value]]] | None = []

    def rows(self, rows: list[list[Value]]) -> None:
        if self.held is not None:
            if not self.figures.done() and len(self.held) < self.HOLD:
                self.held.append(rows)
                return
            self.open()
        self.writer.rows(rows)

    def open(self) -> None:
        """Write the Summary (waiting for its figures), start the first sheet, write the rows held back."""
        if self.held is None:
            return
        summary = self.figures.result()
        self.writer.begin(SUMMARY)
        self.writer.rows(summary)
        self.writer.begin(self.first)
        held, self.held = self.held, None
        for rows in held:
            self.writer.rows(rows)


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
    sessions: Callable[[], AsyncSession] | None = None,
) -> Ledger:
    """Write the ledger of `period` into `directory`; the files to send, in order. Given `sessions` (a
    session factory), the Summary's figures are read on a second connection, from the same snapshot on
    PostgreSQL, alongside the sheets."""
    _ = gettext_for(locale)
    today = now.astimezone(tz).date()
    start, end = period.utc_bounds(tz)
    alongside = sessions is not None and q.can_read_alongside(session)
    snapshot = await q.begin_snapshot(session, share=alongside)
    formatter = Formatter(_, tz, today, locale)
    summary = functools.partial(
        summary_rows, period=period, start=start, end=end, today=today, generated=formatter.local(now), _=_
    )
    stem = _("ledger") + "_" + period.iso
    writer_class: type[SheetWriter] = XlsxWriter if fmt is Format.xlsx else CsvWriter
    writer = await asyncio.to_thread(writer_class, directory, stem, limit, _)
    figures: Future[list[list[Value]]] = Future()
    try:
        if sessions is not None and alongside:
            open_session = sessions

            async def read_figures() -> list[list[Value]]:
                async with open_session() as other:
                    await q.join_snapshot(other, snapshot)
                    return await summary(other)

            figures = asyncio.run_coroutine_threadsafe(read_figures(), asyncio.get_running_loop())
        else:
            figures.set_result(await summary(session))
        rows: dict[str, int] = {}
        first = SummaryFirst(writer, figures, ENTERPRISES)
        rows["enterprises"] = await _pipe(
            session,
            q.enterprises(start, end),
            lambda b: [formatter.enterprise(r) for r in b],
            first.rows,
            batch,
        )
        await asyncio.to_thread(first.open)
        await asyncio.to_thread(writer.begin, VISITS)
        rows["visits"] = await _pipe(
            session, q.visits(start, end), lambda b: [formatter.visit(r) for r in b], writer.rows, batch
        )
        await asyncio.to_thread(writer.begin, PROBLEMS)
        grouper = ProblemGrouper(formatter)
        rows["problems"] = await _pipe(session, q.problems(start, end), grouper.feed, writer.rows, batch)
        last = grouper.finish()
        await asyncio.to_thread(writer.rows, last)
        rows["problems"] += len(last)
        await asyncio.to_thread(writer.begin, SERVICES)
        rows["services"] = await _pipe(
            session, q.services(start, end), lambda b: [formatter.service(r) for r in b], writer.rows, batch
        )
        paths = await asyncio.to_thread(writer.finish)
    except BaseException:
        figures.cancel()
        writer.abort()
        raise
    suffix = writer.suffix
    if len(paths) == 1:
        names = [f"{stem}{suffix}"]
    else:
        names = [f"{stem}_{i}-{len(paths)}{suffix}" for i in range(1, len(paths) + 1)]
    return Ledger([LedgerFile(p, n) for p, n in zip(paths, names, strict=True)], rows)
