"""The command line: set-up errors, migrations, invites and the enterprise register import."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from bot.__main__ import main
from bot.app import build_application
from bot.config import Settings
from bot.storage.db import create_engine, create_sessionmaker
from bot.storage.enums import PartyOrg, Role, Stage
from bot.storage.models import Assignment, Enterprise, User
from tests.botapi import BotAPI, Chat
from tests.conftest import credit_code, run_sync

ROOT = Path(__file__).resolve().parent.parent


def run_cli(*args: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("TELEGRAM_", "DATABASE_"))}
    return subprocess.run(
        [sys.executable, "-m", "bot", *args],
        env={**clean, "PYTHONPATH": str(ROOT), **env},
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_run_without_token_says_how_to_set_it(tmp_path: Path) -> None:
    result = run_cli("run", env={"DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/bot.db"}, cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0, result.stderr
    assert "TELEGRAM_BOT_TOKEN" in result.stderr and ".env.example" in result.stderr
    assert "Traceback" not in result.stderr and result.stdout == ""


def test_invalid_settings_are_reported_one_line_each(tmp_path: Path) -> None:
    env = {
        "TELEGRAM_BOT_TOKEN": "1:secret-token",
        "TIMEZONE": "Mars/Olympus",
        "DEFAULT_LOCALE": "fr",
        "DATABASE_URL": "mysql://x",
    }
    result = run_cli("db", "upgrade", env=env, cwd=tmp_path)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 3, lines
    assert any(line.startswith("Invalid setting TIMEZONE") for line in lines)
    assert any(line.startswith("Invalid setting DEFAULT_LOCALE") for line in lines)
    assert any(line.startswith("Invalid setting DATABASE_URL") for line in lines)
    assert "secret-token" not in result.stderr and "Traceback" not in result.stderr


def test_every_command_has_help(tmp_path: Path) -> None:
    for args in (
        ["--help"],
        ["run", "--help"],
        ["db", "upgrade", "--help"],
        ["enterprises", "import", "--help"],
        ["users", "invite", "--help"],
        ["users", "list", "--help"],
        ["users", "deactivate", "--help"],
    ):
        result = run_cli(*args, env={}, cwd=tmp_path)
        assert result.returncode == 0 and "usage:" in result.stdout, (args, result.stderr)


def test_the_bot_refuses_an_outdated_database(tmp_path: Path) -> None:
    env = {"TELEGRAM_BOT_TOKEN": "1:x", "DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/new.db"}
    result = run_cli("run", env=env, cwd=tmp_path)
    assert result.returncode == 2
    assert "python -m bot db upgrade" in result.stderr and "Traceback" not in result.stderr
    upgraded = run_cli("db", "upgrade", env=env, cwd=tmp_path)
    assert upgraded.returncode == 0 and "revision" in upgraded.stdout


@pytest.fixture
def cli_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, settings: Settings) -> Settings:
    monkeypatch.chdir(tmp_path)  # no stray .env
    monkeypatch.setenv("TELEGRAM_BOT_TOKEN", "123:TEST")
    monkeypatch.setenv("DATABASE_URL", settings.database_url)
    return settings


async def _count(settings: Settings, model: Any, *where: Any) -> int:
    engine = create_engine(settings.database_url)
    async with create_sessionmaker(engine)() as session:
        count = await session.scalar(select(func.count()).select_from(model).where(*where))
    await engine.dispose()
    return count or 0


async def _join(settings: Settings, api: BotAPI, token: str, telegram_id: int) -> str:
    app = build_application(settings, request=api)
    async with app:
        chat = Chat(app, api, telegram_id)
        await chat.send(f"/start {token}")
        await app.post_shutdown(app)  # type: ignore[misc]
        return chat.last.text


def test_invite_from_the_command_line_then_join(
    cli_env: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    api = BotAPI()
    assert (
        main(
            ["users", "invite", "--role", "liaison", "--name", "李明", "--department", "发改局"], request=api
        )
        == 0
    )
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("https://t.me/liaison_test_bot?start=") and "expires" in out[1]
    token = out[0].split("=", 1)[1]
    assert "欢迎" in run_sync(_join(cli_env, api, token, 4242))
    assert main(["users", "list"]) == 0
    listing = capsys.readouterr().out
    assert "李明" in listing and "joined" in listing and "发改局" in listing
    user_id = int(listing.split()[0])
    assert main(["users", "deactivate", str(user_id)]) == 0
    assert main(["users", "deactivate", str(user_id)]) == 2
    assert "no active user" in capsys.readouterr().err
    assert "已被停用" in run_sync(_join(cli_env, api, "whatever-token-1234567", 4242))


def test_invite_needs_a_unit_for_field_staff(cli_env: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["users", "invite", "--role", "instructor", "--name", "赵"], request=BotAPI()) == 2
    assert "--community" in capsys.readouterr().err
    assert run_sync(_count(cli_env, User)) == 0


HEADERS = [
    "企业名称",
    "统一社会信用代码",
    "企业类型",
    "社区",
    "地址",
    "行业",
    "职工人数",
    "党组织",
    "党员人数",
    "党建联络员",
    "党建指导员",
]


def write_register(path: Path, rows: list[list[str]], encoding: str = "utf-8-sig") -> Path:
    with path.open("w", newline="", encoding=encoding) as fh:
        writer = csv.writer(fh)
        writer.writerow(HEADERS)
        writer.writerows(rows)
    return path


def test_import_is_idempotent_and_updates_by_credit_code(
    cli_env: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    a, b = credit_code(901), credit_code(902)
    rows = [
        ["甲科技有限公司", a, "创业型", "东城社区", "路1号", "软件", "25", "未组建", "0", "李明", "赵敏"],
        ["乙制造有限公司", b, "龙头型", "西城社区", "路2号", "制造", "800", "单独组建", "31", "李明", ""],
    ]
    path = write_register(tmp_path / "register.csv", rows, encoding="gbk")
    assert main(["enterprises", "import", str(path)]) == 0
    assert "created 2, updated 0, unchanged 0, assignments changed 3" in capsys.readouterr().out
    assert main(["enterprises", "import", str(path)]) == 0
    assert "created 0, updated 0, unchanged 2, assignments changed 0" in capsys.readouterr().out
    rows[1][2], rows[1][9] = "发展型", "王芳"  # stage changes, a new liaison takes over
    write_register(path, rows)
    assert main(["enterprises", "import", str(path)]) == 0
    assert "created 0, updated 1, unchanged 1, assignments changed 1" in capsys.readouterr().out

    async def check() -> None:
        engine = create_engine(cli_env.database_url)
        async with create_sessionmaker(engine)() as session:
            enterprises = {e.credit_code: e for e in await session.scalars(select(Enterprise))}
            assert len(enterprises) == 2 and enterprises[b].stage is Stage.growth
            assert enterprises[b].party_org is PartyOrg.standalone and enterprises[b].party_members == 31
            current = (
                await session.execute(
                    select(User.name, Assignment.role)
                    .join(User, User.id == Assignment.user_id)
                    .where(Assignment.enterprise_id == enterprises[b].id, Assignment.end_date.is_(None))
                )
            ).all()
            assert current == [("王芳", Role.liaison)]
            ended = await session.scalar(
                select(func.count())
                .select_from(Assignment)
                .where(Assignment.enterprise_id == enterprises[b].id, Assignment.end_date.is_not(None))
            )
            assert ended == 1
        await engine.dispose()

    run_sync(check())


def test_invalid_rows_are_all_reported_and_nothing_is_imported(
    cli_env: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good = credit_code(903)
    rows = [
        ["好企业", good, "创业型", "东城社区", "", "", "10", "", "", "", ""],
        ["坏企业", good[:-1] + ("0" if good[-1] != "0" else "1"), "中型", "", "", "", "-5", "", "", "", ""],
        ["", credit_code(904), "", "", "", "", "", "", "", "", ""],
    ]
    path = write_register(tmp_path / "bad.csv", rows)
    assert main(["enterprises", "import", str(path)]) == 1
    err = capsys.readouterr().err
    assert "row 3, column 统一社会信用代码: check character" in err
    assert "row 3, column 企业类型" in err and "row 3, column 职工人数" in err
    assert "row 4, column 企业名称" in err and "nothing was imported" in err
    assert run_sync(_count(cli_env, Enterprise)) == 0
    assert main(["enterprises", "import", str(path), "--skip-invalid"]) == 0
    assert "created 1" in capsys.readouterr().out
    assert run_sync(_count(cli_env, Enterprise)) == 1


def test_import_reads_xlsx_with_english_headers(
    cli_env: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from openpyxl import Workbook

    workbook = Workbook()
    sheet = workbook.active
    assert sheet is not None
    sheet.append(["Name", "Credit code", "Stage", "Community", "Employees", "Party organisation", "Liaison"])
    sheet.append(["Alpha Ltd", credit_code(905), "growth", "East", 12.0, "joint", "Li Ming"])
    path = tmp_path / "register.xlsx"
    workbook.save(path)
    assert main(["enterprises", "import", str(path)]) == 0
    assert "created 1" in capsys.readouterr().out
    assert run_sync(_count(cli_env, Enterprise, Enterprise.party_org == PartyOrg.joint)) == 1
