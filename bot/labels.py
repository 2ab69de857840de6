"""The product's words for enums, in one place (message ids; translate with `_()` when shown)."""

from __future__ import annotations

from bot.i18n import N_
from bot.storage.enums import PartyOrg, ProblemCategory, ProblemStatus, Role, ServiceStatus, Stage, VisitTopic

CATEGORY_LABELS: dict[ProblemCategory, str] = {
    ProblemCategory.land: N_("Land"),
    ProblemCategory.power: N_("Power"),
    ProblemCategory.transport: N_("Transport"),
    ProblemCategory.labour: N_("Labour"),
    ProblemCategory.ip: N_("IP"),
    ProblemCategory.financing: N_("Financing"),
    ProblemCategory.licences: N_("Licences"),
    ProblemCategory.policy: N_("Policy"),
    ProblemCategory.other: N_("Other"),
}
PROBLEM_STATUS_LABELS: dict[ProblemStatus, str] = {
    ProblemStatus.open: N_("Open"),
    ProblemStatus.in_progress: N_("In progress"),
    ProblemStatus.resolved: N_("Resolved"),
    ProblemStatus.returned: N_("Returned for correction"),
    ProblemStatus.closed: N_("Closed"),
}
SERVICE_STATUS_LABELS: dict[ServiceStatus, str] = {
    ServiceStatus.requested: N_("Requested"),
    ServiceStatus.in_progress: N_("In progress"),
    ServiceStatus.delivered: N_("Delivered"),
    ServiceStatus.declined: N_("Declined"),
}
TOPIC_LABELS: dict[VisitTopic, str] = {
    VisitTopic.policy: N_("Policy explanation"),
    VisitTopic.party_building: N_("Party-organisation building"),
    VisitTopic.problems: N_("Collecting problems"),
    VisitTopic.services: N_("Service matching"),
    VisitTopic.other: N_("Other"),
}
PARTY_ORG_LABELS: dict[PartyOrg, str] = {
    PartyOrg.none: N_("No party organisation yet"),
    PartyOrg.standalone: N_("Standalone organisation"),
    PartyOrg.joint: N_("Joint organisation"),
    PartyOrg.affiliated: N_("Affiliated"),
}
STAGE_LABELS: dict[Stage, str] = {
    Stage.startup: N_("Startup"),
    Stage.growth: N_("Growth"),
    Stage.leading: N_("Leading"),
}
ROLE_LABELS: dict[Role, str] = {
    Role.admin: N_("administrator"),
    Role.supervisor: N_("supervisor"),
    Role.liaison: N_("party-building liaison"),
    Role.instructor: N_("party-building instructor"),
}
