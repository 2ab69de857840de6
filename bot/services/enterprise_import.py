"""Apply a parsed enterprise register to the database: upsert by credit code, never a duplicate.

An empty liaison/instructor cell leaves the current assignment as it is; a name that matches no
user creates a not-yet-invited user of that role, so the register can be imported before invites
are sent (`users invite` later reuses that user).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime

from sqlalchemy.ext.asyncio import AsyncSession

from bot.services.enterprise_file import EnterpriseRow, ParsedFile, RowError
from bot.storage.audit import record
from bot.storage.enterprises import assign, current_assignments, enterprises_by_code, staff_by_name
from bot.storage.enums import Role
from bot.storage.models import Enterprise, User

FIELDS = ("name", "stage", "community", "address", "industry", "employees", "party_org", "party_members")


@dataclass
class ImportReport:
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    assignments: int = 0
    new_staff: list[str] = field(default_factory=list)
    errors: list[RowError] = field(default_factory=list)
    applied: bool = False


def _ambiguous(row: EnterpriseRow, by_name: dict[tuple[str, Role], list[User]]) -> list[RowError]:
    errors = []
    for column, role in (("liaison", Role.liaison), ("instructor", Role.instructor)):
        name = getattr(row, column)
        if name and len(by_name.get((name, role), [])) > 1:
            errors.append(RowError(row.row, column, f"more than one {role.value} is named {name!r}"))
    return errors


async def import_enterprises(
    session: AsyncSession, *, parsed: ParsedFile, skip_invalid: bool, now: datetime, today: date
) -> ImportReport:
    """Import the valid rows. With errors and without `skip_invalid`, nothing is written."""
    by_name = await staff_by_name(session)
    report = ImportReport(errors=list(parsed.errors))
    for row in parsed.rows:
        report.errors.extend(_ambiguous(row, by_name))
    if report.errors and not skip_invalid:
        return report
    bad_rows = {error.row for error in report.errors}
    rows = [row for row in parsed.rows if row.row not in bad_rows]
    existing = await enterprises_by_code(session, codes=[row.credit_code for row in rows])
    enterprises: list[tuple[EnterpriseRow, Enterprise]] = []
    for row in rows:
        enterprise = existing.get(row.credit_code)
        values = {name: getattr(row, name) for name in FIELDS}
        if enterprise is None:
            enterprise = Enterprise(credit_code=row.credit_code, created_at=now, updated_at=now, **values)
            session.add(enterprise)
            report.created += 1
        elif any(getattr(enterprise, name) != value for name, value in values.items()):
            for name, value in values.items():
                setattr(enterprise, name, value)
            report.updated += 1
        else:
            report.unchanged += 1
        enterprises.append((row, enterprise))
    await session.flush()
    current = await current_assignments(session, enterprise_ids=[e.id for _, e in enterprises])
    for row, enterprise in enterprises:
        for role, person in ((Role.liaison, row.liaison), (Role.instructor, row.instructor)):
            if not person:
                continue
            users = by_name.get((person, role))
            if not users:
                user = User(name=person, role=role, created_at=now)
                session.add(user)
                await session.flush()
                by_name[(person, role)] = users = [user]
                report.new_staff.append(f"{person} ({role.value})")
            if await assign(
                session,
                enterprise_id=enterprise.id,
                user_id=users[0].id,
                role=role,
                today=today,
                current=current.get((enterprise.id, role)),
            ):
                report.assignments += 1
    await record(
        session,
        actor_id=None,
        action="import",
        entity="enterprise",
        entity_id=None,
        now=now,
        details={"created": report.created, "updated": report.updated, "assignments": report.assignments},
    )
    report.applied = True
    return report
