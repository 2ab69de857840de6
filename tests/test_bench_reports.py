"""bench/reports.py's /export part at a tiny size: the end-to-end rows, the sent files checked against the
ledger oracle, and the export's memory measured in child processes (two scales), on SQLite and, when
TEST_DATABASE_URL is set, on PostgreSQL."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from bench import reports
from bot.services.ledger import Format
from bot.storage.db import create_engine
from tests.conftest import BACKENDS, PG_URL

SCALE, SMALLER = 0.002, 0.001  # 1,000 and 500 visits


@pytest.fixture(params=BACKENDS)
def bench_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'reports.db'}"
    assert PG_URL
    name = f"reports_bench_{uuid.uuid4().hex[:8]}"
    return make_url(PG_URL).set(database=name).render_as_string(hide_password=False)


async def test_the_export_benchmark_matches_its_oracle_and_measures_memory(bench_url: str) -> None:
    postgres = make_url(bench_url).get_backend_name() == "postgresql"
    if postgres:
        await reports.create_database(bench_url)
    try:
        engine = create_engine(bench_url)
        await reports.reset(engine)
        await reports.generate(engine, reports.Size.scaled(SCALE))
        await engine.dispose()
        month, visits = await reports.largest_month(bench_url)
        rows, check = await reports.measure_export(bench_url, 1, month, visits)
        memories = await reports.memory_at_scales(
            bench_url, SCALE, [SMALLER, SCALE], reuse=False, formats=(Format.xlsx,)
        )
    finally:
        if postgres:
            await reports.drop_database(bench_url)

    assert month in reports.full_months()
    assert visits == check.expected["visits"] > 0
    assert check.expected["enterprises"] == reports.Size.scaled(SCALE).enterprises
    assert set(check.found) == {"xlsx", "csv"} and check.ok, (check.expected, check.found)
    assert [r.report for r in rows] == [
        f"/export {month.iso} (XLSX, end to end)",
        f"/export {month.iso} csv (csv, zipped CSV, end to end)",
        f"/export {month.iso} ledger file only (service, no Telegram)",
    ]
    assert all(r.handler_ms and r.oracle_ms > 0 for r in rows)

    assert [m.scale for m in memories] == [SMALLER, SCALE]
    assert memories[1].month == month and memories[1].month_visits == visits
    for m in memories:
        assert 0 < m.started_kb <= m.peak_kb and m.size > 0
        assert m.peak_kb < reports.TARGET_EXPORT_MB * 1024  # the parent's peak is not inherited
    if not postgres:  # the smaller scale's SQLite file is kept beside the main one
        assert (Path(make_url(bench_url).database or "").parent / f"reports-scale{SMALLER:g}.db").exists()
    table = reports.memory_table(memories)
    assert f"scale {SCALE:g}: /export {month.iso} |" in table
