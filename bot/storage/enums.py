"""Domain vocabularies shared by storage, services and flows (see shared/GLOSSARY.md)."""

from enum import StrEnum


class Role(StrEnum):
    admin = "admin"
    supervisor = "supervisor"
    liaison = "liaison"
    instructor = "instructor"


# Field staff: they act only on the enterprises currently assigned to them.
STAFF = (Role.liaison, Role.instructor)


class Stage(StrEnum):
    """Development stage of an enterprise; decides its service menu."""

    startup = "startup"  # 创业型
    growth = "growth"  # 发展型
    leading = "leading"  # 龙头型


class PartyOrg(StrEnum):
    """Party-organisation status of an enterprise (组建 progress)."""

    none = "none"  # 未组建
    standalone = "standalone"  # 单独组建
    joint = "joint"  # 联合组建
    affiliated = "affiliated"  # 挂靠


class ProblemCategory(StrEnum):
    land = "land"  # 用地
    power = "power"  # 用电
    transport = "transport"  # 交通
    labour = "labour"  # 劳资
    ip = "ip"  # 知识产权
    financing = "financing"  # 融资
    licences = "licences"  # 证照
    policy = "policy"  # 政策
    other = "other"  # 其他


class ProblemStatus(StrEnum):
    open = "open"  # 待办
    in_progress = "in_progress"  # 处理中
    resolved = "resolved"  # 已解决
    returned = "returned"  # 退回修改
    closed = "closed"  # 已关闭


class ServiceStatus(StrEnum):
    requested = "requested"
    in_progress = "in_progress"
    delivered = "delivered"
    declined = "declined"


class VisitTopic(StrEnum):
    policy = "policy"  # 政策宣传
    party_building = "party_building"  # 党组织组建
    problems = "problems"  # 问题收集
    services = "services"  # 服务对接
    other = "other"
