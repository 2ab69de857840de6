"""Parse the district's enterprise register (企业名录) from CSV or XLSX.

Headers may be Chinese or English, in any order; unknown columns are ignored and listed. Every invalid
cell of every row is reported as a :class:`RowError`; valid rows become :class:`EnterpriseRow`.
Rows are streamed, so memory grows only with the number of valid rows kept.
"""

from __future__ import annotations

import codecs
import csv
import datetime as dt
import re
import unicodedata
import warnings
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from openpyxl import load_workbook
from openpyxl.worksheet._read_only import ReadOnlyWorksheet
from pydantic import BaseModel, ConfigDict, Field

from bot.services.credit_code import validate_credit_code
from bot.storage.enums import PartyOrg, Stage

__all__ = [
    "EnterpriseFileError",
    "EnterpriseRow",
    "ParsedFile",
    "RowError",
    "read_enterprise_file",
]

NAME_MAX: Final = 200
COMMUNITY_MAX: Final = 100
ADDRESS_MAX: Final = 300
INDUSTRY_MAX: Final = 100
PERSON_MAX: Final = 50
#: Upper bound for head counts; anything larger is a typo and would not fit usual integer columns.
COUNT_MAX: Final = 10_000_000
#: How many non-blank rows may precede the header (e.g. a merged title row "XX街道非公企业名录").
HEADER_SEARCH_ROWS: Final = 5

_CHUNK = 1 << 16


class EnterpriseRow(BaseModel):
    """One valid enterprise of the register; ``row`` is the 1-based spreadsheet row (header is row 1)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    row: int = Field(ge=1)
    name: str = Field(min_length=1, max_length=NAME_MAX)
    credit_code: str = Field(min_length=18, max_length=18)
    stage: Stage | None
    community: str | None = Field(max_length=COMMUNITY_MAX)
    address: str | None = Field(max_length=ADDRESS_MAX)
    industry: str | None = Field(max_length=INDUSTRY_MAX)
    employees: int | None = Field(ge=0, le=COUNT_MAX)
    party_org: PartyOrg
    party_members: int = Field(ge=0, le=COUNT_MAX)
    liaison: str | None = Field(max_length=PERSON_MAX)
    instructor: str | None = Field(max_length=PERSON_MAX)


@dataclass(frozen=True)
class RowError:
    """A bad cell; ``column`` is the header as written in the file, or the field name if it is absent."""

    row: int
    column: str
    reason: str


@dataclass(frozen=True)
class ParsedFile:
    """Result of :func:`read_enterprise_file`; ``ignored_columns`` are unrecognised headers as written."""

    rows: list[EnterpriseRow]
    errors: list[RowError]
    ignored_columns: list[str]


class EnterpriseFileError(ValueError):
    """The file as a whole cannot be used (format, encoding, header); the message is English."""


# --------------------------------------------------------------------------------------------- headers

_HEADERS: Final[dict[str, tuple[str, ...]]] = {
    "name": ("企业名称", "名称", "name", "enterprise", "enterprise name"),
    "credit_code": ("统一社会信用代码", "信用代码", "credit code", "credit_code"),
    "stage": ("企业类型", "发展阶段", "类型", "stage"),
    "community": ("社区", "片区", "所属社区", "community", "area"),
    "address": ("地址", "企业地址", "address"),
    "industry": ("行业", "所属行业", "industry"),
    "employees": ("职工人数", "员工人数", "从业人数", "employees"),
    "party_org": (
        "党组织",
        "党组织状态",
        "党组织组建",
        "party organisation",
        "party organization",
        "party_org",
    ),
    "party_members": ("党员人数", "党员数", "party members", "party_members"),
    "liaison": ("党建联络员", "联络员", "liaison"),
    "instructor": ("党建指导员", "指导员", "instructor"),
}
_REQUIRED: Final = {"name": "企业名称 / name", "credit_code": "统一社会信用代码 / credit code"}
_UNIT_SUFFIX = re.compile(r"\s*\([^()]*\)$")  # a unit after NFKC, e.g. "职工人数(人)" → "职工人数"
_STRIP = " \t\r\n\f\v\u3000\ufeff\u200b"


def _header_key(text: str) -> str:
    """Canonical form of a header: NFKC, no '*' markers or trailing '(unit)', '_'/'-' as spaces, casefold."""
    key = unicodedata.normalize("NFKC", text).strip().strip("*").strip()
    key = _UNIT_SUFFIX.sub("", key)
    key = key.replace("_", " ").replace("-", " ")
    return " ".join(key.split()).casefold()


_HEADER_LOOKUP: Final = {
    _header_key(alias): field for field, aliases in _HEADERS.items() for alias in aliases
}


@dataclass(frozen=True, slots=True)
class _Column:
    index: int
    header: str
    field: str


# ----------------------------------------------------------------------------------------- cell values


class _CellError(Exception):
    """Internal: the reason a single cell is invalid."""


def _text(value: object) -> str:
    """Cell value as trimmed text; Excel's integral floats lose their '.0'."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value.strip(_STRIP)
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    return str(value).strip(_STRIP)


def _is_blank(value: object) -> bool:
    return value is None or (isinstance(value, str) and not value.strip(_STRIP))


def _optional_text(label: str, limit: int) -> Callable[[object], str | None]:
    def parse(value: object) -> str | None:
        text = _text(value)
        if len(text) > limit:
            raise _CellError(f"{label} is {len(text)} characters long; at most {limit} allowed")
        return text or None

    return parse


def _name(value: object) -> str:
    text = _text(value)
    if not text:
        raise _CellError("name is required")
    if len(text) > NAME_MAX:
        raise _CellError(f"name is {len(text)} characters long; at most {NAME_MAX} allowed")
    return text


def _credit_code(value: object) -> str:
    text = _text(value)
    if not text:
        raise _CellError("credit code is required")
    try:
        return validate_credit_code(text)
    except ValueError as exc:
        reason = str(exc)
        if isinstance(value, int | float) and not isinstance(value, bool):
            reason += " (the cell holds a number, and Excel keeps only 15 digits; format the column as text)"
        raise _CellError(reason) from None


_INT_TEXT = re.compile(r"([+-]?)([0-9]+)(?:\.0*)?")


def _count(label: str, value: object) -> int | None:
    """A head count ≥ 0: int, integral float, or text like '120', '120.0', '1,200' (full-width too)."""
    if _is_blank(value):
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif isinstance(value, float) and value.is_integer():
        number = int(value)
    else:
        text = unicodedata.normalize("NFKC", _text(value)).replace(",", "").replace(" ", "")
        match = _INT_TEXT.fullmatch(text)
        if match is None:
            raise _CellError(f"{label} must be a whole number, got {_text(value)!r}")
        number = int(match[2]) * (-1 if match[1] == "-" else 1)
    if number < 0:
        raise _CellError(f"{label} must not be negative, got {number}")
    if number > COUNT_MAX:
        raise _CellError(f"{label} is implausibly large: {number}")
    return number


def _choice_key(value: object) -> str:
    return "".join(unicodedata.normalize("NFKC", _text(value)).split()).casefold()


_STAGES: Final = {
    "创业型": Stage.startup,
    "创业": Stage.startup,
    "startup": Stage.startup,
    "发展型": Stage.growth,
    "发展": Stage.growth,
    "growth": Stage.growth,
    "龙头型": Stage.leading,
    "龙头": Stage.leading,
    "leading": Stage.leading,
}

_PARTY_ORGS: Final = {
    "单独组建": PartyOrg.standalone,
    "standalone": PartyOrg.standalone,
    "联合组建": PartyOrg.joint,
    "joint": PartyOrg.joint,
    "挂靠": PartyOrg.affiliated,
    "affiliated": PartyOrg.affiliated,
    "未组建": PartyOrg.none,
    "无": PartyOrg.none,
    "none": PartyOrg.none,
    "": PartyOrg.none,
}


def _stage(value: object) -> Stage | None:
    key = _choice_key(value)
    if not key:
        return None
    stage = _STAGES.get(key)
    if stage is None:
        raise _CellError(f"unknown stage {_text(value)!r}; use 创业型, 发展型 or 龙头型")
    return stage


def _party_org(value: object) -> PartyOrg:
    org = _PARTY_ORGS.get(_choice_key(value))
    if org is None:
        raise _CellError(
            f"unknown party organisation {_text(value)!r}; use 单独组建, 联合组建, 挂靠 or 未组建"
        )
    return org


def _party_members(value: object) -> int:
    count = _count("party members", value)
    return 0 if count is None else count


_PARSERS: Final[dict[str, Callable[[object], object]]] = {
    "name": _name,
    "credit_code": _credit_code,
    "stage": _stage,
    "community": _optional_text("community", COMMUNITY_MAX),
    "address": _optional_text("address", ADDRESS_MAX),
    "industry": _optional_text("industry", INDUSTRY_MAX),
    "employees": lambda value: _count("employees", value),
    "party_org": _party_org,
    "party_members": _party_members,
    "liaison": _optional_text("liaison", PERSON_MAX),
    "instructor": _optional_text("instructor", PERSON_MAX),
}
# Defaults for optional columns absent from the file.
_ABSENT: Final[dict[str, object]] = {
    field: _PARSERS[field](None) for field in _PARSERS if field not in _REQUIRED
}


# ------------------------------------------------------------------------------------------ row sources

_Rows = Generator[tuple[int, Sequence[object]], None, None]


def _detect_encoding(path: Path) -> str:
    """Return 'utf-8-sig' or 'gb18030', whichever decodes the whole file strictly (streamed)."""
    with path.open("rb") as fh:
        head = fh.read(4)
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        raise EnterpriseFileError("the CSV file is UTF-16 encoded; save it as 'CSV UTF-8' instead")
    for encoding in ("utf-8-sig", "gb18030"):
        decoder = codecs.getincrementaldecoder(encoding)(errors="strict")
        try:
            with path.open("rb") as fh:
                while chunk := fh.read(_CHUNK):
                    decoder.decode(chunk)
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            continue
        return encoding
    raise EnterpriseFileError("cannot decode the CSV file as UTF-8 or GBK/GB18030; save it as 'CSV UTF-8'")


def _csv_rows(path: Path) -> _Rows:
    encoding = _detect_encoding(path)
    with path.open(encoding=encoding, newline="") as fh:
        reader = csv.reader(fh)
        try:
            # Spreadsheet row = record number (a quoted cell may span several physical lines).
            yield from enumerate(reader, start=1)
        except csv.Error as exc:
            raise EnterpriseFileError(f"malformed CSV at line {reader.line_num}: {exc}") from exc


def _xlsx_rows(path: Path) -> _Rows:
    # openpyxl fails on corrupt uploads with assorted exception types; all mean "not a usable workbook".
    try:
        with warnings.catch_warnings():
            # Workbooks saved by WPS and others make openpyxl warn about styles it ignores anyway.
            warnings.simplefilter("ignore", UserWarning)
            workbook = load_workbook(path, read_only=True, data_only=True)
    except OSError:
        raise
    except Exception as exc:
        raise EnterpriseFileError(f"not a valid XLSX workbook ({type(exc).__name__}: {exc})") from exc
    try:
        if not workbook.worksheets:
            raise EnterpriseFileError("the workbook has no worksheet")
        sheet = workbook.worksheets[0]
        if isinstance(sheet, ReadOnlyWorksheet):
            sheet.reset_dimensions()  # some writers store a wrong <dimension>; read every cell present
        try:
            yield from enumerate(sheet.iter_rows(values_only=True), start=1)
        except OSError:
            raise
        except Exception as exc:
            raise EnterpriseFileError(f"corrupt XLSX worksheet ({type(exc).__name__}: {exc})") from exc
    finally:
        workbook.close()


_READERS: Final[dict[str, Callable[[Path], _Rows]]] = {
    ".csv": _csv_rows,
    ".xlsx": _xlsx_rows,
    ".xlsm": _xlsx_rows,
}


# ---------------------------------------------------------------------------------------------- parsing


def _map_header(cells: Sequence[object]) -> tuple[list[_Column], list[str]]:
    columns: list[_Column] = []
    ignored: list[str] = []
    for index, cell in enumerate(cells):
        header = _text(cell)
        if not header:
            continue
        field = _HEADER_LOOKUP.get(_header_key(header))
        if field is None:
            ignored.append(header)
        else:
            columns.append(_Column(index, header, field))
    return columns, ignored


def _find_header(rows: _Rows) -> tuple[list[_Column], list[str]]:
    """Consume rows up to and including the header (the first non-blank row with a known column)."""
    first: Sequence[object] | None = None
    checked = 0
    for _, cells in rows:
        if all(_is_blank(cell) for cell in cells):
            continue
        if first is None:
            first = cells
        columns, ignored = _map_header(cells)
        if columns:
            return _check_header(columns), ignored
        checked += 1
        if checked == HEADER_SEARCH_ROWS:
            break
    if first is None:
        raise EnterpriseFileError("the file is empty")
    found = ", ".join(repr(_text(cell)) for cell in first if not _is_blank(cell))
    raise EnterpriseFileError(
        f"missing required columns: {', '.join(_REQUIRED.values())} (no known column header found; "
        f"first row: {found})"
    )


def _check_header(columns: list[_Column]) -> list[_Column]:
    by_field: dict[str, _Column] = {}
    for column in columns:
        if column.field in by_field:
            other = by_field[column.field].header
            raise EnterpriseFileError(
                f"columns {other!r} and {column.header!r} both mean {column.field}; keep only one of them"
            )
        by_field[column.field] = column
    missing = [label for field, label in _REQUIRED.items() if field not in by_field]
    if missing:
        raise EnterpriseFileError(f"missing required columns: {', '.join(missing)}")
    return columns


def _parse(rows: _Rows) -> ParsedFile:
    columns, ignored = _find_header(rows)
    absent = {field: default for field, default in _ABSENT.items() if all(c.field != field for c in columns)}
    credit_header = next(c.header for c in columns if c.field == "credit_code")
    parsed: list[EnterpriseRow] = []
    errors: list[RowError] = []
    first_row_of: dict[str, int] = {}
    for number, cells in rows:
        if all(_is_blank(cell) for cell in cells):
            continue
        values: dict[str, object] = dict(absent)
        row_errors: list[RowError] = []
        for column in columns:
            cell = cells[column.index] if column.index < len(cells) else None
            try:
                values[column.field] = _PARSERS[column.field](cell)
            except _CellError as exc:
                row_errors.append(RowError(number, column.header, str(exc)))
        code = values.get("credit_code")
        if isinstance(code, str):
            if code in first_row_of:
                row_errors.append(RowError(number, credit_header, f"duplicate of row {first_row_of[code]}"))
            else:
                first_row_of[code] = number
        if row_errors:
            errors.extend(row_errors)
        else:
            parsed.append(EnterpriseRow.model_validate({"row": number, **values}))
    return ParsedFile(rows=parsed, errors=errors, ignored_columns=ignored)


def read_enterprise_file(path: Path) -> ParsedFile:
    """Parse a ``.csv`` (UTF-8, UTF-8 with BOM or GBK/GB18030) or ``.xlsx`` (first sheet) register.

    Raises :class:`EnterpriseFileError` when the file as a whole is unusable: unknown extension,
    empty file, missing required columns, undecodable text or a corrupt workbook.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    reader = _READERS.get(suffix)
    if reader is None:
        kind = f"'{path.suffix}'" if suffix else "(no extension)"
        hint = " (save .xls workbooks as .xlsx first)" if suffix == ".xls" else ""
        raise EnterpriseFileError(f"unsupported file type {kind}; upload a .xlsx or .csv file{hint}")
    try:
        if path.stat().st_size == 0:
            raise EnterpriseFileError("the file is empty")
        rows = reader(path)
        try:
            return _parse(rows)
        finally:
            rows.close()
    except OSError as exc:
        raise EnterpriseFileError(f"cannot read the file: {exc.strerror or exc}") from exc
