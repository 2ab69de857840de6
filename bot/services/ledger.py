"""The 台账 ledger (/export): an XLSX workbook — or zipped CSV files — with the sheets Summary,
Enterprises, Visits, Problems (with their history) and Services of one period.

Built for any size with flat memory: rows come from the database in batches (`ledger_queries.stream`),
each batch is formatted and encoded in a worker thread (`asyncio.to_thread`, so the event loop stays
free) while the next batch is fetched, and deflated into the zip file in a thread of its own. The
Summary's figures are read on a second connection meanwhile (`SummaryFirst`).

The XLSX is written here rather than through openpyxl or XlsxWriter: they spend 3–7 µs on each cell
(openpyxl 3.1 s, XlsxWriter 1.5–1.8 s for a busy month's 470,000 cells, measured) and deflate the whole
sheet again when the workbook is saved: 5–10× the cost of the queries. A streamed worksheet is plain
SpreadsheetML — one `<row>` of `<c>` cells per row in column order, text as inline strings (never
formulas), times as serial numbers with a date format — and the package around it (workbook,
relationships, styles with the bold header font and the date formats, content types) is a few fixed
parts. The tests read it back with openpyxl.

A file must fit Telegram's 50 MB limit for bots. Each part is a zip written as it grows, so its size is
known: the bytes already in the file, plus a bound on what the deflater still holds (`HELD`), plus the
next rows' raw bytes (deflate never grows data by more than a few bytes per block), plus what closing the
part adds. Before rows would push the part past the limit, the part is finished and a new one starts,
repeating the current sheet's header. Every part is checked after saving.

Times are shown in the district's time zone (local dates and times); headers and labels in the user's
language (Chinese by default). Text that a spreadsheet would take for a formula is written as text.
"""

from __future__ import annotations

import asyncio
import codecs
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
from typing import IO, Any
from xml.sax.saxutils import quoteattr
from zoneinfo import ZoneInfo

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
# Characters XML 1.0 does not allow (the C0 controls but tab, newline and carriage return): removed from
# text (only text that is not all printable can hold one).
ILLEGAL_CHARACTERS = "".join(chr(c) for c in range(32) if c not in (9, 10, 13))
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
    """Writes sheets into one or more zip files, each within `limit` bytes. Subclasses say what a sheet's
    entry holds; rows arrive in batches and are encoded to bytes a batch at a time. A batch is deflated into
    the file in a thread of its own (zlib lets go of the GIL) while the next one is encoded; every other
    step first waits for it (`drain`), so the zip is only ever touched by one thread at a time."""

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

    def sheet_tail(self) -> bytes:
        return b""

    def encode(self, rows: Sequence[Sequence[Value]], first: int) -> bytes:
        """The rows as they go into the entry; `first` is the row number of the first."""
        raise NotImplementedError

    def encode_header(self, header: list[str]) -> bytes:
        return self.encode([header], 1)

    def package(self) -> None:
        """Write the part's remaining entries (before its zip directory)."""

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
            self.entry.write(self.sheet_tail())
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
        self.package()
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


# SpreadsheetML: the fixed parts of the package, and the cells.
_MAIN = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
_REL = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
_PKG_REL = "http://schemas.openxmlformats.org/package/2006/relationships"
_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml"
_RELS_TYPE = "application/vnd.openxmlformats-package.relationships+xml"
_DECLARATION = '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
_PRESERVE = ' xml:space="preserve"'
_ROOT_RELS = (
    f'{_DECLARATION}<Relationships xmlns="{_PKG_REL}"><Relationship Id="rId1" '
    f'Type="{_REL}/officeDocument" Target="xl/workbook.xml"/></Relationships>'
)
# Cell styles (the `s` of a cell): 0 normal, 1 bold (headers), 2 date and time, 3 date.
STYLE_BOLD, STYLE_DATETIME, STYLE_DATE = 1, 2, 3
_STYLES = (
    f'{_DECLARATION}<styleSheet xmlns="{_MAIN}">'
    '<numFmts count="2"><numFmt numFmtId="164" formatCode="yyyy-mm-dd h:mm:ss"/>'
    '<numFmt numFmtId="165" formatCode="yyyy-mm-dd"/></numFmts>'
    '<fonts count="2"><font><sz val="11"/><name val="Calibri"/><family val="2"/></font>'
    '<font><b/><sz val="11"/><name val="Calibri"/><family val="2"/></font></fonts>'
    '<fills count="2"><fill><patternFill patternType="none"/></fill>'
    '<fill><patternFill patternType="gray125"/></fill></fills>'
    '<borders count="1"><border><left/><right/><top/><bottom/><diagonal/></border></borders>'
    '<cellStyleXfs count="1"><xf numFmtId="0" fontId="0" fillId="0" borderId="0"/></cellStyleXfs>'
    '<cellXfs count="4"><xf numFmtId="0" fontId="0" fillId="0" borderId="0" xfId="0"/>'
    '<xf numFmtId="0" fontId="1" fillId="0" borderId="0" xfId="0" applyFont="1"/>'
    '<xf numFmtId="164" fontId="0" fillId="0" borderId="0" xfId="0" applyNumberFormat="1"/>'
    '<xf numFmtId="165" fontId="0" fillId="0" borderId="0" xfId="0" applyNumberFormat="1"/></cellXfs>'
    '<cellStyles count="1"><cellStyle name="Normal" xfId="0" builtinId="0"/></cellStyles>'
    "</styleSheet>"
)
_SHEET_TAIL = b"</sheetData></worksheet>"
EXCEL_EPOCH = datetime(1899, 12, 30)  # serial day 0 (the 1900 date system)
EXCEL_EPOCH_DATE = EXCEL_EPOCH.date()
DAY = timedelta(days=1)
_SPACE = " \t\n\r"


def sheet_rows_xml(rows: Sequence[Sequence[Any]], first: int) -> str:
    """`<row>` elements for `rows`, numbered from `first`. Cells go in column order without references (the
    `r` of a cell is optional: Excel, LibreOffice and openpyxl take it as the next column), an empty one as
    `<c/>`. Text is an inline string (so "=1+1" stays text), escaped and capped. (The sheets' hot loop, ~0.25
    µs a cell; most text is letters only — names, codes, labels in Chinese — and needs no escaping.)"""
    out: list[str] = []
    add = out.append
    number = first
    for values in rows:
        add(f'<row r="{number}">')
        number += 1
        for v in values:
            if v is None:
                add("<c/>")
                continue
            kind = v.__class__
            if kind is str:
                if v.isalnum() and len(v) <= CELL_LIMIT:
                    add(f'<c t="inlineStr"><is><t>{v}</t></is></c>')
                elif v:
                    add(f'<c t="inlineStr"><is>{text_element(v)}</is></c>')
                else:
                    add("<c/>")
            elif kind is int:
                add(f"<c><v>{v}</v></c>")
            elif kind is datetime:
                add(f'<c s="{STYLE_DATETIME}"><v>{(v - EXCEL_EPOCH) / DAY}</v></c>')
            elif kind is date:
                add(f'<c s="{STYLE_DATE}"><v>{(v - EXCEL_EPOCH_DATE).days}</v></c>')
            elif kind is Decimal or kind is float:
                add(f"<c><v>{v}</v></c>")
            else:  # anything else (bool, ...) as its text
                add(f'<c t="inlineStr"><is>{text_element(str(v))}</is></c>')
        add("</row>")
    return "".join(out)


def text_element(text: str) -> str:
    """`<t>` of an inline string: without illegal characters, capped, escaped, spaces at either end kept."""
    text = clean_text(text, csv_safe=False)
    if "&" in text or "<" in text or ">" in text:
        text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    if text and (text[0] in _SPACE or text[-1] in _SPACE):
        return f"<t{_PRESERVE}>{text}</t>"
    return f"<t>{text}</t>"


def header_row_xml(header: Sequence[str]) -> str:
    """The first row: bold text."""
    cells = "".join(f'<c s="{STYLE_BOLD}" t="inlineStr"><is>{text_element(text)}</is></c>' for text in header)
    return f'<row r="1">{cells}</row>'


class XlsxWriter(PartWriter):
    suffix = ".xlsx"
    CLOSING = 8_000  # the sheet's end, workbook, relationships, styles, content types, zip directory

    def entry_name(self, sheet: Sheet) -> str:
        return f"xl/worksheets/sheet{len(self.titles)}.xml"

    def sheet_head(self, sheet: Sheet) -> bytes:
        columns = "".join(
            f'<col min="{i}" max="{i}" width="{width}" customWidth="1"/>'
            for i, width in enumerate(sheet.widths, start=1)
        )
        return (
            f'{_DECLARATION}<worksheet xmlns="{_MAIN}" xmlns:r="{_REL}">'
            '<sheetViews><sheetView workbookViewId="0">'
            '<pane ySplit="1" topLeftCell="A2" activePane="bottomLeft" state="frozen"/>'
            '<selection pane="bottomLeft" activeCell="A2" sqref="A2"/></sheetView></sheetViews>'
            '<sheetFormatPr defaultRowHeight="15"/>'
            + (f"<cols>{columns}</cols>" if columns else "")
            + "<sheetData>"
        ).encode()

    def sheet_tail(self) -> bytes:
        return _SHEET_TAIL

    def encode(self, rows: Sequence[Sequence[Value]], first: int) -> bytes:
        return sheet_rows_xml(rows, first).encode("utf-8", "replace")

    def encode_header(self, header: list[str]) -> bytes:
        return header_row_xml(header).encode("utf-8", "replace")

    def package(self) -> None:
        count = len(self.titles)
        sheets = "".join(
            f'<sheet name={quoteattr(title[:31])} sheetId="{i}" r:id="rId{i}"/>'
            for i, title in enumerate(self.titles, start=1)
        )
        workbook = (
            f'{_DECLARATION}<workbook xmlns="{_MAIN}" xmlns:r="{_REL}">'
            f"<bookViews><workbookView/></bookViews><sheets>{sheets}</sheets></workbook>"
        )
        relationships = "".join(
            f'<Relationship Id="rId{i}" Type="{_REL}/worksheet" Target="worksheets/sheet{i}.xml"/>'
            for i in range(1, count + 1)
        )
        relationships += f'<Relationship Id="rId{count + 1}" Type="{_REL}/styles" Target="styles.xml"/>'
        overrides = "".join(
            f'<Override PartName="/xl/worksheets/sheet{i}.xml" ContentType="{_TYPE}.worksheet+xml"/>'
            for i in range(1, count + 1)
        )
        content_types = (
            f'{_DECLARATION}<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
            f'<Default Extension="rels" ContentType="{_RELS_TYPE}"/>'
            '<Default Extension="xml" ContentType="application/xml"/>'
            f'<Override PartName="/xl/workbook.xml" ContentType="{_TYPE}.sheet.main+xml"/>'
            f'<Override PartName="/xl/styles.xml" ContentType="{_TYPE}.styles+xml"/>{overrides}</Types>'
        )
        parts = {
            "xl/workbook.xml": workbook,
            "xl/_rels/workbook.xml.rels": f'{_DECLARATION}<Relationships xmlns="{_PKG_REL}">{relationships}'
            "</Relationships>",
            "xl/styles.xml": _STYLES,
            "_rels/.rels": _ROOT_RELS,
            "[Content_Types].xml": content_types,
        }
        for name, xml in parts.items():
            self.archive.writestr(name, xml)


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

    def __init__(self, writer: PartWriter, figures: Future[list[list[Value]]], first: Sheet) -> None:
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
    writer_class = XlsxWriter if fmt is Format.xlsx else CsvWriter
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
