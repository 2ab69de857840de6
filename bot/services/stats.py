"""Supervision figures as plain DTOs: weekly/monthly statistics, coverage, trends, a liaison's activity and
the enterprise card. The SQL lives in `bot.storage.reports`; this module picks periods and bounds, adds up
the per-(department, community) cells and ranks what is shown. Nothing here knows of Telegram."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, fields
from datetime import date, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from sqlalchemy.ext.asyncio import AsyncSession

from bot.services.periods import Period, elapsed_part, local_today, trend_weeks
from bot.storage import reports
from bot.storage.enterprises import accessible_enterprise
from bot.storage.enums import STAFF, PartyOrg, ProblemCategory
from bot.storage.models import User
from bot.storage.reports import Activity, EnterpriseDetails, StaleEnterprise

STALE_DAYS = 30
COVERAGE_DAYS = (30, 90)
TRENDS_DAYS = 90
ORGANISED = (PartyOrg.standalone, PartyOrg.joint, PartyOrg.affiliated)


@dataclass(frozen=True)
class Figures:
    """All figures of a period for some set of enterprises (overdue: as of today, whatever the period)."""

    visits: int = 0
    enterprises_visited: int = 0
    assigned: int = 0
    assigned_visited: int = 0
    reported: int = 0
    resolved: int = 0
    overdue: int = 0
    funds: Decimal = Decimal("0.00")
    requested: int = 0
    delivered: int = 0

    def __add__(self, other: Figures) -> Figures:
        return Figures(*(getattr(self, f.name) + getattr(other, f.name) for f in fields(self)))

    @property
    def quiet(self) -> bool:
        """Nothing happened in the period (overdue and assignments are not events of the period)."""
        return not (self.visits or self.reported or self.resolved or self.requested or self.delivered)

    @classmethod
    def of(cls, cell: reports.Cell) -> Figures:
        return cls(
            visits=cell.visits,
            enterprises_visited=cell.enterprises_visited,
            assigned=cell.assigned,
            assigned_visited=cell.assigned_visited,
            reported=cell.reported,
            resolved=cell.resolved,
            overdue=cell.overdue,
            funds=cell.funds,
            requested=cell.requested,
            delivered=cell.delivered,
        )


@dataclass(frozen=True)
class StatsReport:
    period: Period
    today: date
    scope_user_id: int | None  # None: the whole district; else that staff member's enterprises
    total: Figures
    previous_period: Period
    previous: reports.Totals  # the comparison range: all of the previous period, or its elapsed part
    previous_partial: bool  # the period is still running: compared with the same point of the previous
    by_department: list[tuple[str | None, Figures]]  # most visits first
    by_community: list[tuple[str | None, Figures]]
    trend: list[tuple[Period, int]]  # visits per ISO week, oldest first

    @property
    def empty(self) -> bool:
        return self.total.quiet

    @property
    def in_progress(self) -> bool:
        return self.period.contains(self.today)


def _ranked(groups: dict[str | None, Figures]) -> list[tuple[str | None, Figures]]:
    """Most visits first, then most assigned, then by name; the unknown group (None) last."""
    return sorted(groups.items(), key=lambda kv: (kv[0] is None, -kv[1].visits, -kv[1].assigned, kv[0] or ""))


async def stats_report(
    session: AsyncSession, *, period: Period, now: datetime, tz: ZoneInfo, scope_user_id: int | None
) -> StatsReport:
    today = local_today(now, tz)
    start, end = period.utc_bounds(tz)
    cells = await reports.period_cells(
        session, start=start, end=end, today=today, scope_user_id=scope_user_id
    )
    total = Figures()
    by_department: dict[str | None, Figures] = defaultdict(Figures)
    by_community: dict[str | None, Figures] = defaultdict(Figures)
    for cell in cells:
        figures = Figures.of(cell)
        total += figures
        by_department[cell.department] += figures
        by_community[cell.community] += figures
    previous_period = period.previous()
    prev_start, prev_end = elapsed_part(period, previous_period, now, tz)
    previous = await reports.period_totals(
        session, start=prev_start, end=prev_end, scope_user_id=scope_user_id
    )
    weeks = trend_weeks(period, today=today)
    bounds = [week.utc_bounds(tz)[0] for week in weeks] + [weeks[-1].utc_bounds(tz)[1]]
    counts = await reports.visits_per_range(session, bounds=bounds, scope_user_id=scope_user_id)
    return StatsReport(
        period=period,
        today=today,
        scope_user_id=scope_user_id,
        total=total,
        previous_period=previous_period,
        previous=previous,
        previous_partial=prev_end < previous_period.utc_bounds(tz)[1],
        by_department=_ranked(by_department),
        by_community=_ranked(by_community),
        trend=list(zip(weeks, counts, strict=True)),
    )


def scope_of(user: User) -> int | None:
    """Staff see the figures of their own enterprises; supervisors and admins the whole district."""
    return user.id if user.role in STAFF else None


# -- /coverage ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class CoverageLine:
    community: str | None
    enterprises: int
    party_org: dict[PartyOrg, int]
    assigned: int
    visited_30: int
    visited_90: int

    @property
    def organised(self) -> int:
        return sum(self.party_org.get(status, 0) for status in ORGANISED)

    @property
    def rate(self) -> float | None:
        """覆盖率: enterprises with a party organisation (standalone, joint or affiliated) / all."""
        return self.organised / self.enterprises if self.enterprises else None

    def __add__(self, other: CoverageLine) -> CoverageLine:
        orgs = {s: self.party_org.get(s, 0) + other.party_org.get(s, 0) for s in PartyOrg}
        return CoverageLine(
            None,
            self.enterprises + other.enterprises,
            orgs,
            self.assigned + other.assigned,
            self.visited_30 + other.visited_30,
            self.visited_90 + other.visited_90,
        )


@dataclass(frozen=True)
class CoverageReport:
    total: CoverageLine
    communities: list[CoverageLine]  # lowest party-organisation coverage first
    unvisited: list[StaleEnterprise]  # never visited first, then the longest ago
    unvisited_count: int
    unvisited_days: int


async def coverage_report(session: AsyncSession, *, now: datetime, limit: int) -> CoverageReport:
    short, long = COVERAGE_DAYS
    rows = await reports.coverage_by_community(
        session, since_30=now - timedelta(days=short), since_90=now - timedelta(days=long)
    )
    lines = [
        CoverageLine(r.community, r.enterprises, r.party_org, r.assigned, r.visited_30, r.visited_90)
        for r in rows
    ]
    total = CoverageLine(None, 0, {}, 0, 0, 0)
    for line in lines:
        total += line
    lines.sort(key=lambda c: (c.community is None, c.rate if c.rate is not None else 2.0, c.community or ""))
    unvisited = await reports.unvisited_enterprises(session, since=now - timedelta(days=long), limit=limit)
    return CoverageReport(total, lines, unvisited, total.assigned - total.visited_90, long)


# -- /trends ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Combination:
    category: ProblemCategory
    community: str | None
    problems: int
    enterprises: int


@dataclass(frozen=True)
class TrendsReport:
    days: int
    total: int
    categories: list[tuple[ProblemCategory, int]]  # most problems first
    communities: list[tuple[str | None, int]]
    combinations: list[Combination]  # every (category, community) with problems, most first

    @property
    def recurring(self) -> list[Combination]:
        """Combinations reported more than once: candidates for solving a kind of problem once."""
        return [c for c in self.combinations if c.problems > 1]


async def trends_report(session: AsyncSession, *, now: datetime) -> TrendsReport:
    rows = await reports.problem_matrix(session, since=now - timedelta(days=TRENDS_DAYS))
    combos = sorted(
        (Combination(*row) for row in rows),
        key=lambda c: (-c.problems, -c.enterprises, c.category.value, c.community or ""),
    )
    categories: dict[ProblemCategory, int] = defaultdict(int)
    communities: dict[str | None, int] = defaultdict(int)
    for combo in combos:
        categories[combo.category] += combo.problems
        communities[combo.community] += combo.problems
    return TrendsReport(
        days=TRENDS_DAYS,
        total=sum(categories.values()),
        categories=sorted(categories.items(), key=lambda kv: (-kv[1], kv[0].value)),
        communities=sorted(communities.items(), key=lambda kv: (-kv[1], kv[0] is None, kv[0] or "")),
        combinations=combos,
    )


# -- /liaison -----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class LiaisonReport:
    user: User
    period: Period
    activity: Activity
    stale_days: int


async def liaison_report(
    session: AsyncSession, *, user: User, period: Period, now: datetime, tz: ZoneInfo, stale_limit: int
) -> LiaisonReport:
    start, end = period.utc_bounds(tz)
    activity = await reports.staff_activity(
        session,
        user_id=user.id,
        start=start,
        end=end,
        stale_since=now - timedelta(days=STALE_DAYS),
        stale_limit=stale_limit,
    )
    return LiaisonReport(user, period, activity, STALE_DAYS)


# -- /enterprise --------------------------------------------------------------------------------------
async def enterprise_card(
    session: AsyncSession, *, user: User, enterprise_id: int
) -> EnterpriseDetails | None:
    """The enterprise's card, or None if it does not exist or this user may not see it (staff: only
    the enterprises currently assigned to them)."""
    enterprise = await accessible_enterprise(session, user=user, enterprise_id=enterprise_id)
    if enterprise is None:
        return None
    return await reports.enterprise_details(session, enterprise=enterprise)
