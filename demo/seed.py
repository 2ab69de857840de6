"""A demo district: 3 communities, 4 departments, 40 enterprises, staff, and a few weeks of work."""

from __future__ import annotations

import random
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.services.credit_code import credit_code_check_char
from bot.storage.enums import PartyOrg, ProblemCategory, ProblemStatus, Role, ServiceStatus, Stage, VisitTopic
from bot.storage.models import (
    Assignment,
    Enterprise,
    MenuItem,
    Problem,
    ProblemEvent,
    ServiceRequest,
    User,
    Visit,
)

COMMUNITIES = ["东城社区", "西城社区", "南湖社区"]
DEPARTMENTS = ["发改局", "人社局", "市场监管局", "科技局"]
PREFIXES = [
    "华信",
    "恒达",
    "新源",
    "联创",
    "金桥",
    "博远",
    "众合",
    "天润",
    "瑞丰",
    "鼎盛",
    "中科",
    "汇智",
    "远航",
    "锦程",
    "宏图",
    "清风",
    "星河",
    "佳和",
    "安泰",
    "盛世",
]
TRADES = [
    ("科技", "软件和信息技术"),
    ("制造", "装备制造"),
    ("物流", "交通运输"),
    ("餐饮", "住宿餐饮"),
    ("医疗", "医疗服务"),
    ("文化", "文化创意"),
]

# Telegram ids of the personas (the demo's chats).
PERSONAS = {"supervisor": 9001, "admin": 9002, "liaison": 9003, "instructor": 9004}


def _code(n: int) -> str:
    body = f"91510100MA{n:07d}"
    return body + credit_code_check_char(body)


async def seed(session: AsyncSession, *, now: datetime) -> None:
    rng = random.Random(20261125)
    joined = now - timedelta(days=60)
    supervisor = User(
        name="王督导", role=Role.supervisor, telegram_id=PERSONAS["supervisor"], joined_at=joined
    )
    admin = User(name="陈管理员", role=Role.admin, telegram_id=PERSONAS["admin"], joined_at=joined)
    liaisons = [
        User(
            name=name,
            role=Role.liaison,
            department=dept,
            joined_at=joined,
            telegram_id=PERSONAS["liaison"] if i == 0 else None,
        )
        for i, (name, dept) in enumerate(zip(["李明", "张伟", "刘洋", "杨帆"], DEPARTMENTS, strict=True))
    ]
    instructors = [
        User(
            name=name,
            role=Role.instructor,
            community=community,
            joined_at=joined,
            telegram_id=PERSONAS["instructor"] if i == 0 else None,
        )
        for i, (name, community) in enumerate(zip(["赵敏", "孙丽", "周静"], COMMUNITIES, strict=True))
    ]
    session.add_all([supervisor, admin, *liaisons, *instructors])
    await session.flush()
    stages: list[Stage | None] = (
        [Stage.startup] * 18 + [Stage.growth] * 14 + [Stage.leading] * 6 + [None, None]
    )
    enterprises = []
    for n in range(40):
        prefix, (trade, industry) = PREFIXES[n % len(PREFIXES)], TRADES[n % len(TRADES)]
        community = COMMUNITIES[n % 3]
        org = rng.choice(
            [PartyOrg.none, PartyOrg.none, PartyOrg.standalone, PartyOrg.joint, PartyOrg.affiliated]
        )
        enterprise = Enterprise(
            name=f"{prefix}{trade}{'有限公司' if n % 4 else '股份有限公司'}"
            + ("" if n < 20 else "（二分公司）"),
            credit_code=_code(n + 1),
            stage=stages[n],
            community=community,
            industry=industry,
            address=f"{community}{n + 1}号",
            employees=rng.randint(5, 900),
            party_org=org,
            party_members=0 if org is PartyOrg.none else rng.randint(3, 40),
            latitude=30.65 + rng.random() / 50,
            longitude=104.06 + rng.random() / 50,
        )
        enterprises.append(enterprise)
    session.add_all(enterprises)
    await session.flush()
    start = date(2026, 1, 1)
    for n, enterprise in enumerate(enterprises):
        liaison, instructor = liaisons[n % 4], instructors[n % 3]
        session.add(
            Assignment(enterprise_id=enterprise.id, user_id=liaison.id, role=Role.liaison, start_date=start)
        )
        session.add(
            Assignment(
                enterprise_id=enterprise.id, user_id=instructor.id, role=Role.instructor, start_date=start
            )
        )
        # Eight weeks of visits up to today (the chart of /stats shows eight); some enterprises never visited.
        for _ in range(rng.randint(0, 4)):
            when = now - timedelta(days=rng.randint(0, 55), hours=rng.randint(1, 8))
            session.add(
                Visit(
                    enterprise_id=enterprise.id,
                    user_id=rng.choice([liaison, instructor]).id,
                    visited_at=when,
                    topics=rng.sample([t.value for t in VisitTopic], 2),
                    notes="了解企业经营情况，宣传惠企政策。",
                    created_at=when,
                    updated_at=when,
                )
            )
    for k in range(14):
        enterprise = enterprises[rng.randrange(40)]
        reporter = liaisons[enterprises.index(enterprise) % 4]
        created = now - timedelta(days=rng.randint(2, 28))
        status = rng.choice([ProblemStatus.open, ProblemStatus.in_progress, ProblemStatus.resolved])
        problem = Problem(
            enterprise_id=enterprise.id,
            reporter_id=reporter.id,
            category=rng.choice(list(ProblemCategory)),
            description=rng.choice(
                [
                    "企业扩产需要新增用地指标",
                    "变压器容量不足，申请增容",
                    "员工通勤公交线路不足",
                    "劳动合同纠纷需要调解",
                    "商标被仿冒，需要知识产权保护",
                    "流动资金紧张，希望对接贷款",
                ]
            ),
            status=status,
            created_at=created,
            updated_at=created,
            department=rng.choice(DEPARTMENTS) if status is not ProblemStatus.open else None,
            due_date=(created + timedelta(days=rng.choice([7, 14, 30]))).astimezone(UTC).date()
            if k % 2
            else None,
        )
        if status is ProblemStatus.resolved:
            problem.resolved_at = min(created + timedelta(days=rng.randint(1, 6)), now - timedelta(hours=1))
            problem.resolution = "已协调相关部门解决"
            problem.funds_wan = Decimal(rng.choice(["0", "5.00", "12.50", "30.00"]))
        session.add(problem)
        await session.flush()
        session.add(
            ProblemEvent(
                problem_id=problem.id,
                actor_id=reporter.id,
                kind="created",
                to_status=ProblemStatus.open,
                created_at=created,
            )
        )
        if status is not ProblemStatus.open:
            session.add(
                ProblemEvent(
                    problem_id=problem.id,
                    actor_id=supervisor.id,
                    kind=status.value,
                    from_status=ProblemStatus.open,
                    to_status=status,
                    created_at=problem.resolved_at or created + timedelta(days=1),
                )
            )
    # The liaison persona's first enterprise as /visit lists it has an open problem, so that a first /visit
    # shows the follow-up checkpoint.
    first = min(enterprises[::4], key=lambda e: (e.name, e.id))
    created = now - timedelta(days=12)
    problem = Problem(
        enterprise_id=first.id,
        reporter_id=liaisons[0].id,
        category=ProblemCategory.power,
        description="变压器容量不足，企业扩产需要增容",
        status=ProblemStatus.open,
        created_at=created,
        updated_at=created,
    )
    session.add(problem)
    await session.flush()
    session.add(
        ProblemEvent(
            problem_id=problem.id,
            actor_id=liaisons[0].id,
            kind="created",
            to_status=ProblemStatus.open,
            created_at=created,
        )
    )
    rows = await session.execute(select(MenuItem.stage, func.min(MenuItem.id)).group_by(MenuItem.stage))
    first_item = {stage: item_id for stage, item_id in rows}
    for enterprise in enterprises[:8]:
        if enterprise.stage is None:
            continue
        created = now - timedelta(days=rng.randint(1, 20))
        service_status = rng.choice(list(ServiceStatus))
        session.add(
            ServiceRequest(
                enterprise_id=enterprise.id,
                requester_id=liaisons[0].id,
                menu_item_id=first_item[enterprise.stage],
                note="",
                status=service_status,
                created_at=created,
                updated_at=created,
                delivered_at=min(created + timedelta(days=3), now - timedelta(hours=1))
                if service_status is ServiceStatus.delivered
                else None,
            )
        )
