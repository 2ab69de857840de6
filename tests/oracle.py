"""Independent oracle for the report figures: plain SQL, one figure per query, written straightforwardly.

Deliberately shares nothing with `bot.storage.reports` or `bot.services.periods`: bounds are explicit UTC
instants given by the caller (or computed here with the obvious `datetime(..., tzinfo=tz)` arithmetic),
the department of an enterprise is looked up with a correlated subquery, and every figure has its own
SELECT. Used by tests/test_reports.py (figure by figure) and bench/reports.py (the baseline timings).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Date, Integer, bindparam, text
from sqlalchemy.ext.asyncio import AsyncSession

from bot.storage.models import UTCDateTime

FIGURES = (
    "visits",
    "enterprises_visited",
    "assigned",
    "assigned_visited",
    "reported",
    "resolved",
    "overdue",
    "funds",
    "requested",
    "delivered",
)
GROUPINGS = {
    "total": "'all'",
    "department": (
        "(SELECT u.department FROM assignments a JOIN users u ON u.id = a.user_id "
        "WHERE a.enterprise_id = e.id AND a.role = 'liaison' AND a.end_date IS NULL)"
    ),
    "community": "e.community",
}
HAS_ASSIGNMENT = "EXISTS (SELECT 1 FROM assignments x WHERE x.enterprise_id = e.id AND x.end_date IS NULL)"
_TYPES: dict[str, Any] = {
    "start": UTCDateTime(),
    "end": UTCDateTime(),
    "since": UTCDateTime(),
    "today": Date(),
    "scope": Integer(),
    "user_id": Integer(),
}


def week_bounds(year: int, week: int, tz: str = "Asia/Shanghai") -> tuple[datetime, datetime]:
    """UTC bounds of an ISO week in ``tz``: Monday 00:00 local to the next Monday 00:00 local."""
    monday = date.fromisocalendar(year, week, 1)
    start = datetime(monday.year, monday.month, monday.day, tzinfo=ZoneInfo(tz))
    return start.astimezone(UTC), (start + timedelta(days=7)).astimezone(UTC)


def month_bounds(year: int, month: int, tz: str = "Asia/Shanghai") -> tuple[datetime, datetime]:
    start = datetime(year, month, 1, tzinfo=ZoneInfo(tz))
    after = datetime(year + (month == 12), month % 12 + 1, 1, tzinfo=ZoneInfo(tz))
    return start.astimezone(UTC), after.astimezone(UTC)


async def _rows(session: AsyncSession, sql: str, **params: Any) -> list[Any]:
    stmt = text(sql).bindparams(*(bindparam(k, type_=_TYPES[k]) for k in params if k in _TYPES))
    return list((await session.execute(stmt, params)).all())


def _money(value: Any) -> Decimal:
    return Decimal(str(value or 0)).quantize(Decimal("0.01"))


def _scope(scope: int | None) -> str:
    if scope is None:
        return ""
    return " AND e.id IN (SELECT enterprise_id FROM assignments WHERE user_id = :scope AND end_date IS NULL)"


async def figures(
    session: AsyncSession,
    *,
    start: datetime,
    end: datetime,
    today: date,
    grouping: str,
    scope: int | None = None,
) -> dict[Any, dict[str, Any]]:
    """{group: {figure: value}} for [start, end); grouping is total, department or community."""
    g, s = GROUPINGS[grouping], _scope(scope)
    sp: dict[str, Any] = {"scope": scope} if scope is not None else {}
    period = {"start": start, "end": end, **sp}
    out: dict[Any, dict[str, Any]] = defaultdict(lambda: {f: 0 for f in FIGURES} | {"funds": Decimal("0.00")})
    queries: list[tuple[tuple[str, ...], str, dict[str, Any]]] = [
        (
            ("visits", "enterprises_visited"),
            f"SELECT {g} AS k, COUNT(*), COUNT(DISTINCT v.enterprise_id) FROM visits v "
            f"JOIN enterprises e ON e.id = v.enterprise_id WHERE v.withdrawn_at IS NULL "
            f"AND v.visited_at >= :start AND v.visited_at < :end{s} GROUP BY k",
            period,
        ),
        (
            ("assigned_visited",),
            f"SELECT {g} AS k, COUNT(DISTINCT v.enterprise_id) FROM visits v "
            f"JOIN enterprises e ON e.id = v.enterprise_id WHERE v.withdrawn_at IS NULL "
            f"AND v.visited_at >= :start AND v.visited_at < :end AND {HAS_ASSIGNMENT}{s} GROUP BY k",
            period,
        ),
        (
            ("assigned",),
            f"SELECT {g} AS k, COUNT(*) FROM enterprises e WHERE {HAS_ASSIGNMENT}{s} GROUP BY k",
            sp,
        ),
        (
            ("reported",),
            f"SELECT {g} AS k, COUNT(*) FROM problems p JOIN enterprises e ON e.id = p.enterprise_id "
            f"WHERE p.created_at >= :start AND p.created_at < :end{s} GROUP BY k",
            period,
        ),
        (
            ("resolved", "funds"),
            f"SELECT {g} AS k, COUNT(*), SUM(p.funds_wan) FROM problems p "
            f"JOIN enterprises e ON e.id = p.enterprise_id WHERE p.status = 'resolved' "
            f"AND p.resolved_at >= :start AND p.resolved_at < :end{s} GROUP BY k",
            period,
        ),
        (
            ("overdue",),
            f"SELECT {g} AS k, COUNT(*) FROM problems p JOIN enterprises e ON e.id = p.enterprise_id "
            f"WHERE p.due_date < :today AND p.status NOT IN ('resolved', 'closed'){s} GROUP BY k",
            {"today": today, **sp},
        ),
        (
            ("requested",),
            f"SELECT {g} AS k, COUNT(*) FROM service_requests r JOIN enterprises e ON e.id = r.enterprise_id "
            f"WHERE r.created_at >= :start AND r.created_at < :end{s} GROUP BY k",
            period,
        ),
        (
            ("delivered",),
            f"SELECT {g} AS k, COUNT(*) FROM service_requests r JOIN enterprises e ON e.id = r.enterprise_id "
            "WHERE r.status = 'delivered' "
            f"AND r.delivered_at >= :start AND r.delivered_at < :end{s} GROUP BY k",
            period,
        ),
    ]
    for names, sql, params in queries:
        for key, *values in await _rows(session, sql, **params):
            for name, value in zip(names, values, strict=True):
                out[key][name] = _money(value) if name == "funds" else int(value or 0)
    return dict(out)


async def weekly_visits(
    session: AsyncSession, *, weeks: list[tuple[datetime, datetime]], scope: int | None = None
) -> list[int]:
    counts = []
    for start, end in weeks:
        params: dict[str, Any] = {"start": start, "end": end} | (
            {"scope": scope} if scope is not None else {}
        )
        rows = await _rows(
            session,
            "SELECT COUNT(*) FROM visits v JOIN enterprises e ON e.id = v.enterprise_id "
            f"WHERE v.withdrawn_at IS NULL AND v.visited_at >= :start AND v.visited_at < :end{_scope(scope)}",
            **params,
        )
        counts.append(int(rows[0][0]))
    return counts


@dataclass
class StatsOracle:
    total: dict[str, Any]
    department: dict[Any, dict[str, Any]]
    community: dict[Any, dict[str, Any]]
    previous: dict[str, Any]
    trend: list[int]


async def stats(
    session: AsyncSession,
    *,
    period: tuple[datetime, datetime],
    previous: tuple[datetime, datetime],
    weeks: list[tuple[datetime, datetime]],
    today: date,
    scope: int | None = None,
) -> StatsOracle:
    """Everything /stats shows, the plain way."""
    start, end = period
    blank = {f: 0 for f in FIGURES} | {"funds": Decimal("0.00")}
    total = await figures(session, start=start, end=end, today=today, grouping="total", scope=scope)
    prev = await figures(
        session, start=previous[0], end=previous[1], today=today, grouping="total", scope=scope
    )
    return StatsOracle(
        total=total.get("all", blank),
        department=await figures(
            session, start=start, end=end, today=today, grouping="department", scope=scope
        ),
        community=await figures(
            session, start=start, end=end, today=today, grouping="community", scope=scope
        ),
        previous=prev.get("all", blank),
        trend=await weekly_visits(session, weeks=weeks, scope=scope),
    )


# -- /coverage ----------------------------------------------------------------------------------------
@dataclass
class CoverageOracle:
    party_org: dict[tuple[str | None, str], int]  # (community, party_org) -> enterprises
    assigned: dict[str | None, int]
    visited_30: dict[str | None, int]
    visited_90: dict[str | None, int]
    unvisited_count: int
    unvisited: list[tuple[int, datetime | None]]  # (enterprise id, last visit) in display order


async def coverage(session: AsyncSession, *, now: datetime, limit: int) -> CoverageOracle:
    since_30, since_90 = now - timedelta(days=30), now - timedelta(days=90)
    org = await _rows(
        session, "SELECT community, party_org, COUNT(*) FROM enterprises GROUP BY community, party_org"
    )
    assigned = await _rows(
        session,
        f"SELECT e.community, COUNT(*) FROM enterprises e WHERE {HAS_ASSIGNMENT} GROUP BY e.community",
    )
    visited_since = (
        f"SELECT e.community, COUNT(*) FROM enterprises e WHERE {HAS_ASSIGNMENT} AND EXISTS (SELECT 1 FROM "
        "visits v WHERE v.enterprise_id = e.id AND v.withdrawn_at IS NULL AND v.visited_at >= :since) "
        "GROUP BY e.community"
    )
    v30 = await _rows(session, visited_since, since=since_30)
    v90 = await _rows(session, visited_since, since=since_90)
    not_recent = (
        f"{HAS_ASSIGNMENT} AND NOT EXISTS (SELECT 1 FROM visits v WHERE v.enterprise_id = e.id "
        "AND v.withdrawn_at IS NULL AND v.visited_at >= :since)"
    )
    count = await _rows(session, f"SELECT COUNT(*) FROM enterprises e WHERE {not_recent}", since=since_90)
    listed = await _rows(
        session,
        "SELECT id, last_visit FROM (SELECT e.id AS id, e.name AS name, "
        "(SELECT MAX(v.visited_at) FROM visits v WHERE v.enterprise_id = e.id AND v.withdrawn_at IS NULL) "
        "AS last_visit FROM enterprises e "
        f"WHERE {not_recent}) t ORDER BY CASE WHEN last_visit IS NULL THEN 0 ELSE 1 END, last_visit, name "
        f"LIMIT {int(limit)}",
        since=since_90,
    )
    return CoverageOracle(
        party_org={(c, o): int(n) for c, o, n in org},
        assigned={c: int(n) for c, n in assigned},
        visited_30={c: int(n) for c, n in v30},
        visited_90={c: int(n) for c, n in v90},
        unvisited_count=int(count[0][0]),
        unvisited=[(int(i), _aware(last)) for i, last in listed],
    )


def _aware(value: Any) -> datetime | None:
    """MAX() over a text column comes back as a string on SQLite; as an aware datetime on PostgreSQL."""
    if value is None:
        return None
    if isinstance(value, str):
        return datetime.fromisoformat(value).replace(tzinfo=UTC)
    assert isinstance(value, datetime)
    return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)


# -- /trends ------------------------------------------------------------------------------------------
async def trends(session: AsyncSession, *, now: datetime) -> dict[tuple[str, str | None], tuple[int, int]]:
    rows = await _rows(
        session,
        "SELECT p.category, e.community, COUNT(*), COUNT(DISTINCT p.enterprise_id) FROM problems p "
        "JOIN enterprises e ON e.id = p.enterprise_id WHERE p.created_at >= :since "
        "GROUP BY p.category, e.community",
        since=now - timedelta(days=90),
    )
    return {(c, m): (int(n), int(k)) for c, m, n, k in rows}


# -- /liaison -----------------------------------------------------------------------------------------
async def liaison(
    session: AsyncSession, *, user_id: int, start: datetime, end: datetime, now: datetime
) -> dict[str, Any]:
    visits = await _rows(
        session,
        "SELECT COUNT(*), COUNT(DISTINCT enterprise_id) FROM visits WHERE user_id = :user_id "
        "AND withdrawn_at IS NULL AND visited_at >= :start AND visited_at < :end",
        user_id=user_id,
        start=start,
        end=end,
    )
    mine = "SELECT enterprise_id FROM assignments WHERE user_id = :user_id AND end_date IS NULL"
    assigned = await _rows(session, f"SELECT COUNT(*) FROM ({mine}) t", user_id=user_id)
    stale = await _rows(
        session,
        f"SELECT COUNT(*) FROM enterprises e WHERE e.id IN ({mine}) AND NOT EXISTS (SELECT 1 FROM visits v "
        "WHERE v.enterprise_id = e.id AND v.withdrawn_at IS NULL AND v.visited_at >= :since)",
        user_id=user_id,
        since=now - timedelta(days=30),
    )
    open_problems = await _rows(
        session,
        "SELECT status, COUNT(*) FROM problems WHERE reporter_id = :user_id "
        "AND status IN ('open', 'in_progress', 'returned') GROUP BY status",
        user_id=user_id,
    )
    open_services = await _rows(
        session,
        "SELECT COUNT(*) FROM service_requests WHERE requester_id = :user_id "
        "AND status IN ('requested', 'in_progress')",
        user_id=user_id,
    )
    reported = await _rows(
        session,
        "SELECT COUNT(*) FROM problems WHERE reporter_id = :user_id "
        "AND created_at >= :start AND created_at < :end",
        user_id=user_id,
        start=start,
        end=end,
    )
    return {
        "visits": int(visits[0][0]),
        "enterprises_visited": int(visits[0][1]),
        "assigned": int(assigned[0][0]),
        "stale_count": int(stale[0][0]),
        "open_problems": {s: int(n) for s, n in open_problems},
        "open_services": int(open_services[0][0]),
        "problems_reported": int(reported[0][0]),
    }


# -- /pending (bench baseline) ---------------------------------------------------------------------------
async def pending(session: AsyncSession, *, page: int = 10) -> tuple[int, list[Any], list[Any], list[Any]]:
    """What the first page of /pending needs: the count, the oldest page, counts by category and by
    department."""
    status = "status IN ('open', 'in_progress', 'returned')"
    count = await _rows(session, f"SELECT COUNT(*) FROM problems WHERE {status}")
    rows = await _rows(
        session,
        "SELECT p.id, p.created_at, e.name, p.category, p.status, p.department, p.due_date FROM problems p "
        f"JOIN enterprises e ON e.id = p.enterprise_id WHERE p.{status} "
        f"ORDER BY p.created_at, p.id LIMIT {page}",
    )
    categories = await _rows(
        session, f"SELECT category, COUNT(*) FROM problems WHERE {status} GROUP BY category"
    )
    departments = await _rows(
        session, f"SELECT department, COUNT(*) FROM problems WHERE {status} GROUP BY department"
    )
    return int(count[0][0]), rows, categories, departments
