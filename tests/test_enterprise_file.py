"""Enterprise register import: CSV/XLSX, encodings, header aliases, per-cell error reporting."""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path

import pytest
from openpyxl import Workbook
from pydantic import ValidationError

from bot.services.credit_code import credit_code_check_char
from bot.services.enterprise_file import (
    EnterpriseFileError,
    EnterpriseRow,
    ParsedFile,
    RowError,
    read_enterprise_file,
)
from bot.storage.enums import PartyOrg, Stage

HUAWEI = "914403001922038216"
TENCENT = "91440300708461136T"
EXAMPLE = "91350100M000100Y43"

ZH_HEADER = [
    "企业名称",
    "统一社会信用代码",
    "企业类型",
    "所属社区",
    "企业地址",
    "所属行业",
    "职工人数",
    "党组织",
    "党员人数",
    "党建联络员",
    "党建指导员",
]
ZH_ROW = [
    "华为技术有限公司",
    HUAWEI,
    "龙头型",
    "东湖社区",
    "坂田华为基地",
    "通信",
    "120",
    "单独组建",
    "15",
    "张三",
    "李四",
]
HUAWEI_ROW = EnterpriseRow(
    row=2,
    name="华为技术有限公司",
    credit_code=HUAWEI,
    stage=Stage.leading,
    community="东湖社区",
    address="坂田华为基地",
    industry="通信",
    employees=120,
    party_org=PartyOrg.standalone,
    party_members=15,
    liaison="张三",
    instructor="李四",
)

Cell = str | int | float | None


def code(n: int) -> str:
    """A valid credit code numbered ``n``."""
    first17 = f"91440300MA{n:07d}"
    return first17 + credit_code_check_char(first17)


def write_csv(path: Path, rows: Sequence[Sequence[Cell]], encoding: str = "utf-8") -> Path:
    with path.open("w", encoding=encoding, newline="") as fh:
        csv.writer(fh).writerows(rows)
    return path


def write_xlsx(path: Path, rows: Sequence[Sequence[Cell]]) -> Path:
    workbook = Workbook()
    sheet = workbook.active
    assert sheet is not None
    for row in rows:
        sheet.append(list(row))
    workbook.create_sheet("second")["A1"] = "ignored"
    workbook.save(path)
    return path


def errors_of(parsed: ParsedFile) -> list[tuple[int, str, str]]:
    return [(e.row, e.column, e.reason) for e in parsed.errors]


# ------------------------------------------------------------------------------------------ formats


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "gbk", "gb18030"])
def test_csv_encodings_with_chinese_headers(tmp_path: Path, encoding: str) -> None:
    path = write_csv(tmp_path / "名录.csv", [ZH_HEADER, ZH_ROW], encoding)
    parsed = read_enterprise_file(path)
    assert parsed == ParsedFile(rows=[HUAWEI_ROW], errors=[], ignored_columns=[])


def test_english_headers_any_case_and_order(tmp_path: Path) -> None:
    header = [
        "  Credit Code ",
        "ENTERPRISE",
        "stage",
        "Area",
        "address",
        "Industry",
        "employees",
        "Party Organisation",
        "party_members",
        "Liaison",
        "instructor",
        "Notes",
    ]
    row = [
        HUAWEI,
        "Huawei",
        "Leading",
        "Donghu",
        "Bantian",
        "telecom",
        "120",
        "Standalone",
        "15",
        "Zhang",
        "Li",
        "x",
    ]
    parsed = read_enterprise_file(write_csv(tmp_path / "register.CSV", [header, row]))
    assert parsed.errors == []
    assert parsed.ignored_columns == ["Notes"]
    assert parsed.rows == [
        EnterpriseRow(
            row=2,
            name="Huawei",
            credit_code=HUAWEI,
            stage=Stage.leading,
            community="Donghu",
            address="Bantian",
            industry="telecom",
            employees=120,
            party_org=PartyOrg.standalone,
            party_members=15,
            liaison="Zhang",
            instructor="Li",
        )
    ]


def test_xlsx_with_excel_numbers_and_none(tmp_path: Path) -> None:
    rows: list[list[Cell]] = [
        ["名称", "信用代码", "发展阶段", "员工人数", "党组织状态", "党员数", "备注", None, "联系电话"],
        ["华为技术有限公司", HUAWEI, "龙头型", 120.0, "单独组建", 15, None],
        ["腾讯", TENCENT, None, None, None, None, "note"],
        ["示例", EXAMPLE, "创业型", "１２０", "联合组建", "３.0"],
    ]
    parsed = read_enterprise_file(write_xlsx(tmp_path / "名录.xlsx", rows))
    assert parsed.errors == []
    assert parsed.ignored_columns == ["备注", "联系电话"]
    huawei, tencent, example = parsed.rows
    assert (huawei.row, huawei.employees, huawei.party_members, huawei.stage) == (2, 120, 15, Stage.leading)
    assert (tencent.row, tencent.employees, tencent.party_members, tencent.party_org) == (
        3,
        None,
        0,
        PartyOrg.none,
    )
    assert tencent.stage is None and tencent.community is None
    assert (example.employees, example.party_members, example.party_org) == (120, 3, PartyOrg.joint)


def test_xlsx_title_row_and_blank_rows(tmp_path: Path) -> None:
    rows: list[list[Cell]] = [
        ["2024年某街道非公企业名录"],
        [None, None],
        ["企业名称", "统一社会信用代码"],
        ["华为技术有限公司", HUAWEI],
        [None, "  "],
        [],
        ["腾讯", TENCENT],
    ]
    parsed = read_enterprise_file(write_xlsx(tmp_path / "t.xlsx", rows))
    assert parsed.errors == []
    assert [(r.row, r.name) for r in parsed.rows] == [(4, "华为技术有限公司"), (7, "腾讯")]


def test_xlsx_numeric_credit_code_hints_at_precision_loss(tmp_path: Path) -> None:
    # Excel (and openpyxl) store numbers as doubles: an 18-digit code typed as a number is corrupted.
    rows: list[list[Cell]] = [["企业名称", "统一社会信用代码"], ["华为", int(HUAWEI)], ["短", 12345]]
    parsed = read_enterprise_file(write_xlsx(tmp_path / "n.xlsx", rows))
    assert parsed.rows == []
    hint = " (the cell holds a number, and Excel keeps only 15 digits; format the column as text)"
    assert errors_of(parsed) == [
        # the double reads back as 914403001922038272
        (2, "统一社会信用代码", "check character should be 'Q', not '2'" + hint),
        (3, "统一社会信用代码", "wrong length 5; a credit code has 18 characters" + hint),
    ]


def test_blank_csv_rows_are_skipped_and_row_numbers_kept(tmp_path: Path) -> None:
    path = tmp_path / "b.csv"
    path.write_text(
        "企业名称,统一社会信用代码,备注\n,,\n华为,914403001922038216,\n"
        "\n\u3000, ,\n腾讯,91440300708461136T,\n",
        encoding="utf-8",
    )
    parsed = read_enterprise_file(path)
    assert parsed.errors == []
    assert [(r.row, r.name) for r in parsed.rows] == [(3, "华为"), (6, "腾讯")]


def test_csv_multiline_cell_counts_as_one_row(tmp_path: Path) -> None:
    path = write_csv(
        tmp_path / "m.csv",
        [["企业名称", "地址", "信用代码"], ["华为", "深圳\n坂田", HUAWEI], ["x", "", "bad"]],
    )
    parsed = read_enterprise_file(path)
    assert parsed.rows[0].address == "深圳\n坂田"
    assert errors_of(parsed) == [(3, "信用代码", "wrong length 3; a credit code has 18 characters")]


# --------------------------------------------------------------------------------------- cell rules


def test_every_bad_cell_is_reported(tmp_path: Path) -> None:
    header = [*ZH_HEADER, "备注"]
    rows: list[Sequence[Cell]] = [
        header,
        ZH_ROW,
        [
            "",
            "91440300708461136X",
            "中型",
            "社" * 101,
            "址" * 301,
            "业" * 101,
            "-5",
            "已组建",
            "很多",
            "张" * 51,
            "李" * 51,
        ],
        ["好公司", "9144030070846113", "发展型", "", "", "", "12.5", "挂靠", "3", "", ""],
        ["名" * 201, code(1), "", "", "", "", "abc", "", "-1", "", ""],
    ]
    parsed = read_enterprise_file(write_csv(tmp_path / "bad.csv", rows))
    assert parsed.rows == [HUAWEI_ROW]
    assert errors_of(parsed) == [
        (3, "企业名称", "name is required"),
        (3, "统一社会信用代码", "check character should be 'T', not 'X'"),
        (3, "企业类型", "unknown stage '中型'; use 创业型, 发展型 or 龙头型"),
        (3, "所属社区", "community is 101 characters long; at most 100 allowed"),
        (3, "企业地址", "address is 301 characters long; at most 300 allowed"),
        (3, "所属行业", "industry is 101 characters long; at most 100 allowed"),
        (3, "职工人数", "employees must not be negative, got -5"),
        (3, "党组织", "unknown party organisation '已组建'; use 单独组建, 联合组建, 挂靠 or 未组建"),
        (3, "党员人数", "party members must be a whole number, got '很多'"),
        (3, "党建联络员", "liaison is 51 characters long; at most 50 allowed"),
        (3, "党建指导员", "instructor is 51 characters long; at most 50 allowed"),
        (4, "统一社会信用代码", "wrong length 16; a credit code has 18 characters"),
        (4, "职工人数", "employees must be a whole number, got '12.5'"),
        (5, "企业名称", "name is 201 characters long; at most 200 allowed"),
        (5, "职工人数", "employees must be a whole number, got 'abc'"),
        (5, "党员人数", "party members must not be negative, got -1"),
    ]
    assert parsed.ignored_columns == ["备注"]


def test_required_cells_missing(tmp_path: Path) -> None:
    rows = [["Name", "Credit Code", "Notes"], ["", "", "only a note"], ["x", "", ""]]
    parsed = read_enterprise_file(write_csv(tmp_path / "r.csv", rows))
    assert errors_of(parsed) == [
        (2, "Name", "name is required"),
        (2, "Credit Code", "credit code is required"),
        (3, "Credit Code", "credit code is required"),
    ]


def test_duplicate_credit_codes(tmp_path: Path) -> None:
    rows = [
        ["企业名称", "统一社会信用代码"],
        ["腾讯", TENCENT],
        ["华为", HUAWEI],
        ["腾讯（重复）", "９１４４０３００７０８４６１１３６ｔ"],  # same code, full-width and lower-case
        ["腾讯又一次", TENCENT.lower()],
    ]
    parsed = read_enterprise_file(write_csv(tmp_path / "d.csv", rows))
    assert [r.row for r in parsed.rows] == [2, 3]
    assert errors_of(parsed) == [
        (4, "统一社会信用代码", "duplicate of row 2"),
        (5, "统一社会信用代码", "duplicate of row 2"),
    ]


def test_duplicate_of_a_row_that_has_other_errors(tmp_path: Path) -> None:
    rows = [["企业名称", "统一社会信用代码", "类型"], ["甲", HUAWEI, "巨型"], ["乙", HUAWEI, ""]]
    parsed = read_enterprise_file(write_csv(tmp_path / "d2.csv", rows))
    assert parsed.rows == []
    assert errors_of(parsed) == [
        (2, "类型", "unknown stage '巨型'; use 创业型, 发展型 or 龙头型"),
        (3, "统一社会信用代码", "duplicate of row 2"),
    ]


@pytest.mark.parametrize(
    ("stage", "expected"),
    [
        ("创业型", Stage.startup),
        ("发展型", Stage.growth),
        ("龙头型", Stage.leading),
        ("STARTUP", Stage.startup),
        (" growth ", Stage.growth),
        ("", None),
    ],
)
def test_stage_values(tmp_path: Path, stage: str, expected: Stage | None) -> None:
    path = write_csv(
        tmp_path / "s.csv", [["企业名称", "统一社会信用代码", "发展阶段"], ["甲", HUAWEI, stage]]
    )
    assert read_enterprise_file(path).rows[0].stage == expected


@pytest.mark.parametrize(
    ("org", "expected"),
    [
        ("单独组建", PartyOrg.standalone),
        ("联合组建", PartyOrg.joint),
        ("挂靠", PartyOrg.affiliated),
        ("未组建", PartyOrg.none),
        ("无", PartyOrg.none),
        ("None", PartyOrg.none),
        ("", PartyOrg.none),
        ("Joint", PartyOrg.joint),
        ("affiliated", PartyOrg.affiliated),
    ],
)
def test_party_org_values(tmp_path: Path, org: str, expected: PartyOrg) -> None:
    path = write_csv(
        tmp_path / "p.csv", [["企业名称", "统一社会信用代码", "党组织组建"], ["甲", HUAWEI, org]]
    )
    assert read_enterprise_file(path).rows[0].party_org == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("120", 120), ("120.0", 120), ("１２０", 120), ("1,200", 1200), ("0", 0), ("", None)],
)
def test_employee_counts(tmp_path: Path, raw: str, expected: int | None) -> None:
    path = write_csv(tmp_path / "e.csv", [["企业名称", "统一社会信用代码", "从业人数"], ["甲", HUAWEI, raw]])
    assert read_enterprise_file(path).rows[0].employees == expected


def test_header_decorations_and_absent_optional_columns(tmp_path: Path) -> None:
    rows = [["*企业名称", "统一社会信用代码（18位）", "职工人数（人）"], [" 甲公司 ", f" {HUAWEI} ", "7"]]
    parsed = read_enterprise_file(write_csv(tmp_path / "h.csv", rows))
    assert parsed.rows == [
        EnterpriseRow(
            row=2,
            name="甲公司",
            credit_code=HUAWEI,
            stage=None,
            community=None,
            address=None,
            industry=None,
            employees=7,
            party_org=PartyOrg.none,
            party_members=0,
            liaison=None,
            instructor=None,
        )
    ]


def test_rows_are_frozen() -> None:
    with pytest.raises(ValidationError):
        HUAWEI_ROW.name = "x"  # type: ignore[misc]
    with pytest.raises(AttributeError):
        RowError(2, "a", "b").row = 3  # type: ignore[misc]


# ----------------------------------------------------------------------------------- whole-file errors


def test_missing_required_column(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "x.csv", [["企业名称", "社区"], ["甲", "东湖"]])
    with pytest.raises(EnterpriseFileError) as info:
        read_enterprise_file(path)
    assert str(info.value) == "missing required columns: 统一社会信用代码 / credit code"


def test_no_known_header(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "x.csv", [["foo", "bar"], ["1", "2"]])
    with pytest.raises(EnterpriseFileError) as info:
        read_enterprise_file(path)
    message = str(info.value)
    assert "企业名称 / name" in message and "统一社会信用代码 / credit code" in message and "'foo'" in message


def test_ambiguous_columns(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "x.csv", [["名称", "企业名称", "信用代码"], ["甲", "乙", HUAWEI]])
    with pytest.raises(EnterpriseFileError, match="columns '名称' and '企业名称' both mean name"):
        read_enterprise_file(path)


@pytest.mark.parametrize("name", ["list.txt", "list.xls", "list", "list.json"])
def test_unknown_extension(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    path.write_text("企业名称,统一社会信用代码\n", encoding="utf-8")
    with pytest.raises(EnterpriseFileError, match="unsupported file type"):
        read_enterprise_file(path)


@pytest.mark.parametrize("content", [b"", b"\xef\xbb\xbf", b"\r\n,,,\r\n\r\n"])
def test_empty_file(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "e.csv"
    path.write_bytes(content)
    with pytest.raises(EnterpriseFileError, match="the file is empty"):
        read_enterprise_file(path)


def test_header_only_gives_no_rows(tmp_path: Path) -> None:
    parsed = read_enterprise_file(write_csv(tmp_path / "h.csv", [ZH_HEADER]))
    assert parsed == ParsedFile(rows=[], errors=[], ignored_columns=[])


def test_undecodable_csv(tmp_path: Path) -> None:
    path = tmp_path / "u.csv"
    path.write_bytes("企业名称,统一社会信用代码\n".encode() + b"\x80\x80\xff\n")
    with pytest.raises(EnterpriseFileError, match="cannot decode"):
        read_enterprise_file(path)


def test_utf16_csv(tmp_path: Path) -> None:
    path = tmp_path / "u16.csv"
    path.write_bytes("企业名称,统一社会信用代码\n".encode("utf-16"))
    with pytest.raises(EnterpriseFileError, match="UTF-16"):
        read_enterprise_file(path)


def test_corrupt_xlsx(tmp_path: Path) -> None:
    path = tmp_path / "c.xlsx"
    path.write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(EnterpriseFileError, match="not a valid XLSX workbook"):
        read_enterprise_file(path)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(EnterpriseFileError, match="cannot read the file"):
        read_enterprise_file(tmp_path / "nope.csv")


def test_error_is_a_value_error() -> None:
    assert issubclass(EnterpriseFileError, ValueError)


def test_large_file_parses(tmp_path: Path) -> None:
    rows: list[list[Cell]] = [["企业名称", "统一社会信用代码", "职工人数"]]
    rows += [[f"企业{i}", code(i), i] for i in range(2000)]
    parsed = read_enterprise_file(write_csv(tmp_path / "big.csv", rows))
    assert len(parsed.rows) == 2000 and parsed.errors == []
    assert parsed.rows[-1].row == 2001
