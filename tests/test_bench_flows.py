"""bench/flows.py runs end to end at a tiny size: floors, steps, statement traces, idle memory and the soak
(with its lost/duplicate checks), on SQLite and, when TEST_DATABASE_URL is set, on PostgreSQL."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from bench import flows
from tests.conftest import BACKENDS, PG_URL

TINY = flows.District(liaisons=3, enterprises_each=4, visits=60, problems=10, soak_users=6)


@pytest.fixture(params=BACKENDS)
def bench_url(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, str]:
    """(database URL, admin database) for a run of the bench."""
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'flows.db'}", ""
    assert PG_URL
    admin = make_url(PG_URL)
    name = f"flows_bench_{uuid.uuid4().hex[:8]}"
    return admin.set(database=name).render_as_string(hide_password=False), admin.database or "postgres"


async def test_the_flow_benchmark_runs_and_checks_the_soak(bench_url: tuple[str, str]) -> None:
    url, admin = bench_url
    url = await flows.fresh_database(url, admin)
    try:
        result = await flows.measure(url, 12, 2, district=TINY)
        soaked = await flows.soak(url, result.seeded, 1.0)
        memory = flows.idle_memory(url)
    finally:
        await flows.drop_database(url, admin)

    names = list(result.measurements)
    assert names[:4] == [flows.FLOOR_ECHO, flows.FLOOR_SELECT, flows.FLOOR_INSERT, flows.FLOOR_BUTTON]
    assert names[4:] == [flows.READ, flows.READ_COLD, flows.WRITE, flows.FLOW]
    assert all(len(m.latencies) == 12 for name, m in result.measurements.items() if name != flows.FLOW)
    assert len(result.flow_totals) == 3 and len(result.measurements[flows.FLOW].latencies) == 27  # at least 3
    # The floors do what they say; the real update path reads and writes through the bot's own engine.
    assert len(result.traces[flows.FLOOR_SELECT].statements) == 1
    assert result.traces[flows.FLOOR_INSERT].statements[0].startswith("INSERT INTO audit_log")
    # /my by someone the bot has just seen is the overview alone; once forgotten, the lookup comes first.
    (overview,) = result.traces[flows.READ].statements
    assert "FROM assignments" in overview and "FROM users" not in overview
    assert result.traces[flows.READ_COLD].statements[0].startswith("SELECT users.id")
    assert any(s.startswith("INSERT INTO visits") for s in result.traces[flows.WRITE].statements)
    assert [label for label, _t in result.flow_traces][:2] == ["/visit", "enterprise"]
    report = flows.table(result) + flows.trace_table(result)
    assert "read: /my" in report and "≤ 1.5×" in report and "≤ 2×" in report

    assert soaked.users == 6 and soaked.updates >= 6 * 6  # each user finished at least one flow
    assert soaked.visits + soaked.problems >= 6
    assert all(soaked.checks.values()), soaked.details
    assert "✔ no record twice" in flows.soak_report(soaked)
    assert 20 < memory["imported_mb"] <= memory["running_mb"] < 1000
