"""/visit: log a visit (驻点式服务).

enterprise → checkpoint (what is still open there; record progress on it) → topics (multi-select) →
notes → optional location, photos, party-organisation update → summary → confirm / edit / cancel.

Nothing is written before Confirm: progress notes on open items wait in the draft and are stored in
the same transaction as the visit, so a cancelled or expired visit leaves no trace.
"""

from __future__ import annotations

import html
import logging
import unicodedata
from math import asin, cos, radians, sin, sqrt
from typing import Any

from bot.flows.common import NOTES_LIMIT, enterprise_screen, pick_enterprise, read_text
from bot.flows.engine import (
    Choice,
    Finish,
    Flow,
    Goto,
    Input,
    Invalid,
    Location,
    Outcome,
    Photo,
    Screen,
    Step,
    Text,
)
from bot.i18n import N_, Translator
from bot.keyboards import Prefix, button
from bot.labels import PARTY_ORG_LABELS, PROBLEM_STATUS_LABELS, SERVICE_STATUS_LABELS, TOPIC_LABELS
from bot.storage.audit import record
from bot.storage.enterprises import accessible_enterprise
from bot.storage.enums import PartyOrg, ProblemStatus, VisitTopic
from bot.storage.models import Enterprise, Problem
from bot.storage.problems import PENDING, TransitionError, add_event, change_status
from bot.storage.visits import (
    MAX_PHOTOS,
    create_visit,
    open_problems,
    open_service_requests,
    problem_of_enterprise,
    update_party_org,
)

log = logging.getLogger(__name__)

PROGRESS_LIMIT = 500
MAX_PARTY_MEMBERS = 100_000
CHECKPOINT_ITEMS = 10  # per kind; an enterprise rarely has more open at once
EARTH_RADIUS_M = 6_371_008.8
MAX_ID = 2**31 - 1  # ids are 32-bit: anything larger is forged (and PostgreSQL would refuse the query)

FOLLOWING = {
    "checkpoint": "topics",
    "topics": "notes",
    "notes": "location",
    "location": "photos",
    "photos": "party",
    "party": "summary",
    "members": "summary",
}
EDITABLE = ("enterprise", "checkpoint", "topics", "notes", "location", "photos", "party")
EDIT_LABELS = {
    "enterprise": N_("Enterprise"),
    "checkpoint": N_("Follow-ups"),
    "topics": N_("Topics"),
    "notes": N_("Notes"),
    "location": N_("Location"),
    "photos": N_("Photos"),
    "party": N_("Party organisation"),
}


def distance_m(a: tuple[float, float], b: tuple[float, float]) -> int:
    """Great-circle distance in metres between two (latitude, longitude) points (haversine)."""
    lat1, lon1, lat2, lon2 = map(radians, (*a, *b))
    h = sin((lat2 - lat1) / 2) ** 2 + cos(lat1) * cos(lat2) * sin((lon2 - lon1) / 2) ** 2
    return round(2 * EARTH_RADIUS_M * asin(sqrt(h)))


def plausible_id(raw: object) -> int | None:
    """An id taken from a button or argument, or None if it cannot be one of ours."""
    if isinstance(raw, int) and not isinstance(raw, bool):
        return raw if 0 < raw <= MAX_ID else None
    if isinstance(raw, str) and raw.isascii() and raw.isdigit() and len(raw) <= 10:
        return plausible_id(int(raw))
    return None


def _excerpt(text: str, limit: int = 60) -> str:
    text = " ".join(text.split())
    return html.escape(text if len(text) <= limit else text[: limit - 1] + "…")


def _age(step: Step, days: int) -> str:
    _ = step._
    return _("today") if days <= 0 else _("{days} days").format(days=days)


def _parse_members(given: Input, _: Translator) -> int | Invalid:
    refusal = Invalid(
        _("Please send the number of party members as a whole number from 0 to {max}.").format(
            max=MAX_PARTY_MEMBERS
        )
    )
    if not isinstance(given, Text):
        return refusal
    value = unicodedata.normalize("NFKC", given.value).strip()
    if not value.isascii() or not value.isdigit() or len(value) > 6:
        return refusal
    number = int(value)
    return number if number <= MAX_PARTY_MEMBERS else refusal


class VisitFlow(Flow):
    name = "visit"
    title = N_("visit log")

    # -- start -----------------------------------------------------------------------------------
    async def begin(self, step: Step, args: dict[str, Any]) -> str | Finish:
        query = args.get("query")
        if isinstance(query, str) and query.strip():
            step.data["ent_query"] = query.strip()[:100]
        raw = args.get("enterprise_id")
        if raw is None:
            return "enterprise"
        enterprise_id = plausible_id(raw)
        enterprise = (
            await accessible_enterprise(step.session, user=step.user, enterprise_id=enterprise_id)
            if enterprise_id is not None
            else None
        )
        if enterprise is None:
            log.warning("user %s: visit refused for enterprise %r (not assigned)", step.user.id, raw)
            return Finish(step._("You are not assigned to this enterprise, so you cannot act on it."))
        return "checkpoint" if await self._choose(step, enterprise) else "topics"

    async def _choose(self, step: Step, enterprise: Enterprise) -> bool:
        """Remember the enterprise (what depended on a previous one goes); True if it has open items."""
        if step.data.get("enterprise_id") != enterprise.id:
            for key in ("followups", "party_org", "party_members"):
                step.data.pop(key, None)
        step.data["enterprise_id"] = enterprise.id
        step.data["enterprise_name"] = enterprise.name
        problems = await open_problems(step.session, enterprise_id=enterprise.id)
        services = await open_service_requests(step.session, enterprise_id=enterprise.id)
        step.data["open"] = len(problems) + len(services)
        return bool(step.data["open"])

    def _next(self, step: Step, name: str) -> Goto:
        """Go on from `name`: to the next step, or straight back to the summary after an edit (Back then
        leads where it led before the edit)."""
        if name == "party" and step.data.get("party_org"):
            return Goto("members")
        trail: list[str] = list(step.data.get("_trail", []))
        if "edit" in trail and "summary" in trail:
            step.data["_trail"] = trail[: trail.index("summary")]
            return Goto("summary", remember=False)
        return Goto(FOLLOWING[name])

    @staticmethod
    def _back_to(step: Step, name: str) -> Goto:
        """Return to `name` as if the detour (e.g. the progress note) had not been on the Back trail."""
        trail = list(step.data.get("_trail", []))
        if trail and trail[-1] == name:
            step.data["_trail"] = trail[:-1]
        return Goto(name, remember=False)

    # -- screens -----------------------------------------------------------------------------------
    async def screen(self, step: Step, name: str) -> Screen:
        _ = step._
        if name == "enterprise":
            return await enterprise_screen(step, _("<b>Log a visit.</b> Which enterprise did you visit?"))
        if name == "checkpoint":
            return await self._checkpoint_screen(step)
        if name == "progress":
            return self._progress_screen(step)
        if name == "topics":
            return self._topics_screen(step)
        if name == "notes":
            return self._notes_screen(step)
        if name == "location":
            return self._location_screen(step)
        if name == "photos":
            return self._photos_screen(step)
        if name == "party":
            return await self._party_screen(step)
        if name == "members":
            return await self._members_screen(step)
        if name == "edit":
            return Screen(
                _("What do you want to change?"),
                [
                    [(_(EDIT_LABELS[part]), f"e.{part}")]
                    for part in EDITABLE
                    if part != "checkpoint" or step.data.get("open")
                ],
            )
        return await self._summary_screen(step)

    def _heading(self, step: Step) -> str:
        return "🏢 <b>{}</b>".format(html.escape(step.data["enterprise_name"]))

    async def _checkpoint_screen(self, step: Step) -> Screen:
        _ = step._
        eid = step.data["enterprise_id"]
        problems = await open_problems(step.session, enterprise_id=eid)
        services = await open_service_requests(step.session, enterprise_id=eid)
        noted = {(f["kind"], f["id"]) for f in step.data.get("followups", [])}
        lines = [self._heading(step)]
        buttons: list[list[tuple[str, str]]] = []
        if not problems and not services:
            lines.append(
                _("Nothing is open at this enterprise: no problems or service requests to follow up.")
            )
        else:
            lines.append(
                _("Still open here — follow them up. Tap one to note the progress made during this visit.")
            )
        if problems:
            lines.append("\n" + _("<b>Open problems</b>"))
        for problem in problems[:CHECKPOINT_ITEMS]:
            done = ("problem", problem.id) in noted
            lines.append(
                "{mark} {ref} · {status} · {age}\n   {text}".format(
                    mark="✅" if done else "•",
                    ref=problem.ref,
                    status=_(PROBLEM_STATUS_LABELS[problem.status]),
                    age=_age(step, (step.now - problem.created_at).days),
                    text=_excerpt(problem.description),
                )
            )
            buttons.append([(("✅ " if done else "✎ ") + problem.ref, f"fp.{problem.id}")])
        if services:
            lines.append("\n" + _("<b>Pending service requests</b>"))
        for request, item in services[:CHECKPOINT_ITEMS]:
            done = ("service", request.id) in noted
            lines.append(
                "{mark} {ref} · {item} · {status} · {age}".format(
                    mark="✅" if done else "•",
                    ref=request.ref,
                    item=html.escape(item.label(step.locale)),
                    status=_(SERVICE_STATUS_LABELS[request.status]),
                    age=_age(step, (step.now - request.created_at).days),
                )
            )
            buttons.append([(("✅ " if done else "✎ ") + request.ref, f"fs.{request.id}")])
        hidden = max(0, len(problems) - CHECKPOINT_ITEMS) + max(0, len(services) - CHECKPOINT_ITEMS)
        if hidden:
            lines.append(_("… and {count} more (see /my).").format(count=hidden))
        buttons.append([(_("Continue ›"), "next")])
        return Screen("\n".join(lines), buttons)

    def _progress_screen(self, step: Step) -> Screen:
        _ = step._
        target = step.data["fu"]
        lines = [
            _("Progress on {ref}: {text}").format(ref=target["ref"], text=_excerpt(target["text"], 120)),
            _(
                "Send a short note on what was done or agreed during this visit (at most {limit} characters)."
            ).format(limit=PROGRESS_LIMIT),
        ]
        existing = self._followup(step, target["kind"], target["id"])
        if existing:
            lines.append(_("Noted so far: {note}").format(note=html.escape(existing["note"])))
        buttons: list[list[tuple[str, str]]] = []
        if target["kind"] == "problem" and target["status"] == ProblemStatus.open:
            mark = "☑" if target.get("start") else "☐"
            buttons.append([(f"{mark} " + _("Also mark it in progress"), "start")])
        if existing:
            buttons.append([(_("Remove this follow-up"), "drop")])
        return Screen("\n".join(lines), buttons)

    def _topics_screen(self, step: Step) -> Screen:
        _ = step._
        chosen = set(step.data.get("topics", []))
        lines = [self._heading(step)]
        if not step.data.get("open"):
            lines.append(
                _("Nothing is open at this enterprise: no problems or service requests to follow up.")
            )
        lines.append(_("What did the visit cover? Tap all that apply, then Done."))

        def label(topic: VisitTopic) -> tuple[str, str]:
            return (("✓ " if topic in chosen else "") + _(TOPIC_LABELS[topic]), f"t.{topic.value}")

        topics = list(VisitTopic)
        rows = [[label(t) for t in topics[i : i + 2]] for i in range(0, len(topics), 2)]
        rows.append([(_("Done ›"), "done")])
        return Screen("\n".join(lines), rows)

    def _notes_screen(self, step: Step) -> Screen:
        _ = step._
        lines = [
            _(
                "Notes on the visit: what you discussed, what the enterprise asked for "
                "(text, at most {limit} characters)."
            ).format(limit=NOTES_LIMIT)
        ]
        if step.data.get("notes"):
            lines.append(_("Current notes: {notes}").format(notes=html.escape(step.data["notes"])))
        return Screen("\n".join(lines))

    def _location_screen(self, step: Step) -> Screen:
        _ = step._
        lines = [
            _(
                "Optional: share your location to record where the visit took place "
                "(📎 → Location). Or tap Skip."
            )
        ]
        buttons = [[(_("Skip ›"), "skip")]]
        if step.data.get("location"):
            lines.append(_("A location is already recorded."))
            buttons = [[(_("Keep it ›"), "skip"), (_("Remove it"), "clear")]]
        return Screen("\n".join(lines), buttons)

    def _photos_screen(self, step: Step) -> Screen:
        _ = step._
        photos = step.data.get("photos", [])
        lines = [
            _(
                "Optional: send up to {max} photos of the visit (you may select several at once), "
                "then tap Done."
            ).format(max=MAX_PHOTOS)
        ]
        if photos and step.data.get("album"):
            lines.append(_("📷 Photos received. Send more or tap Done."))
        elif photos:
            lines.append(_("📷 {count} of {max} photos received.").format(count=len(photos), max=MAX_PHOTOS))
        if photos:
            buttons = [[(_("Done ›"), "done"), (_("Remove all photos"), "clear")]]
        else:
            buttons = [[(_("Skip ›"), "skip")]]
        return Screen("\n".join(lines), buttons)

    async def _enterprise(self, step: Step) -> Enterprise | None:
        return await accessible_enterprise(
            step.session, user=step.user, enterprise_id=step.data["enterprise_id"]
        )

    async def _party_screen(self, step: Step) -> Screen:
        _ = step._
        enterprise = await self._enterprise(step)
        lines = [self._heading(step)]
        if enterprise is not None:
            lines.append(
                _("Party organisation on record: {status}, {members} party members.").format(
                    status=_(PARTY_ORG_LABELS[enterprise.party_org]), members=enterprise.party_members
                )
            )
        lines.append(_("Optional: has it changed? Choose the status it has now, or tap Unchanged."))
        chosen = step.data.get("party_org")
        rows = [
            [(("✓ " if chosen == org.value else "") + _(PARTY_ORG_LABELS[org]), f"po.{org.value}")]
            for org in PartyOrg
        ]
        rows.append([(_("Unchanged ›"), "skip")])
        return Screen("\n".join(lines), rows)

    async def _members_screen(self, step: Step) -> Screen:
        _ = step._
        enterprise = await self._enterprise(step)
        current = enterprise.party_members if enterprise is not None else 0
        text = _("How many party members does it have now? Send a whole number from 0 to {max}.").format(
            max=MAX_PARTY_MEMBERS
        )
        return Screen(text, [[(_("Keep {count}").format(count=current), "keep")]])

    async def _summary_screen(self, step: Step) -> Screen:
        _ = step._
        data = step.data
        enterprise = await self._enterprise(step)
        lines = [_("<b>Please check the visit and confirm.</b>"), self._heading(step)]
        if enterprise is None:
            lines.append(_("You are no longer assigned to this enterprise, so the visit cannot be saved."))
            return Screen("\n".join(lines), [[(_("✎ Edit"), "edit")]])
        topics = "、".join(_(TOPIC_LABELS[VisitTopic(t)]) for t in data.get("topics", []))
        lines.append(_("Topics: {topics}").format(topics=topics))
        lines.append(_("Notes: {notes}").format(notes=html.escape(data.get("notes", ""))))
        lines.append(_("Location: {where}").format(where=self._where(step, enterprise)))
        photos = len(data.get("photos", []))
        if data.get("photos_dropped"):
            lines.append(
                _("Photos: {count} ({dropped} more not kept: at most {max})").format(
                    count=photos, dropped=data["photos_dropped"], max=MAX_PHOTOS
                )
            )
        else:
            lines.append(_("Photos: {count}").format(count=photos))
        lines.append(_("Party organisation: {change}").format(change=self._party_change(step, enterprise)))
        followups = data.get("followups", [])
        if followups:
            lines.append(_("Follow-ups:"))
            for f in followups:
                line = _("{ref}: {note} (→ in progress)") if f.get("start") else _("{ref}: {note}")
                lines.append("• " + line.format(ref=f["ref"], note=html.escape(f["note"])))
        return Screen("\n".join(lines), [[(_("✔ Confirm"), "confirm")], [(_("✎ Edit"), "edit")]])

    def _where(self, step: Step, enterprise: Enterprise) -> str:
        _ = step._
        location = step.data.get("location")
        if not location:
            return _("not shared")
        if enterprise.latitude is None or enterprise.longitude is None:
            return _("recorded (the enterprise has no coordinates on file)")
        metres = distance_m((location[0], location[1]), (enterprise.latitude, enterprise.longitude))
        return _("recorded, {metres} m from the enterprise").format(metres=metres)

    def _party_change(self, step: Step, enterprise: Enterprise) -> str:
        _ = step._
        org, members = step.data.get("party_org"), step.data.get("party_members")
        if org is None and members is None:
            return _("unchanged")
        parts = []
        if org is not None:
            parts.append(
                f"{_(PARTY_ORG_LABELS[enterprise.party_org])} → {_(PARTY_ORG_LABELS[PartyOrg(org)])}"
            )
        if members is not None:
            parts.append(
                _("party members {before} → {after}").format(before=enterprise.party_members, after=members)
            )
        return parts[0] if len(parts) == 1 else _("{first}; {second}").format(first=parts[0], second=parts[1])

    # -- input -----------------------------------------------------------------------------------
    async def handle(self, step: Step, name: str, given: Input) -> Outcome:
        _ = step._
        if isinstance(given, Photo) and name != "photos":
            # The 2nd…nth photo of an album sent at the wrong step: one re-prompt is enough.
            album = given.media_group_id
            if album is not None and album == step.data.get("album"):
                return Goto(name, remember=False, quiet=True)
            step.data["album"] = album
        if name == "enterprise":
            return await self._handle_enterprise(step, given)
        if name == "checkpoint":
            return await self._handle_checkpoint(step, given)
        if name == "progress":
            return self._handle_progress(step, given)
        if name == "topics":
            return self._handle_topics(step, given)
        if name == "notes":
            notes = read_text(given, _, limit=NOTES_LIMIT)
            if isinstance(notes, Invalid):
                return notes
            step.data["notes"] = notes
            return self._next(step, name)
        if name == "location":
            return self._handle_location(step, given)
        if name == "photos":
            return self._handle_photos(step, given)
        if name == "party":
            return self._handle_party(step, given)
        if name == "members":
            return await self._handle_members(step, given)
        if name == "edit":
            part = given.value.removeprefix("e.") if isinstance(given, Choice) else ""
            if part not in EDITABLE:
                return Invalid(_("Please choose one of the buttons."))
            return Goto(part)
        if given == Choice("edit"):
            return Goto("edit")
        if given == Choice("confirm"):
            return await self._confirm(step)
        return Invalid(_("Please choose one of the buttons."))

    async def _handle_enterprise(self, step: Step, given: Input) -> Outcome:
        chosen = given.value if isinstance(given, Choice) else ""
        if chosen.startswith("ent.") and plausible_id(chosen.removeprefix("ent.")) is None:
            log.warning("user %s: forged enterprise choice %r in a visit", step.user.id, chosen)
            return Invalid(step._("You are not assigned to this enterprise, so you cannot act on it."))
        picked = await pick_enterprise(step, given)
        if isinstance(picked, Invalid):
            if isinstance(given, Choice):
                log.warning("user %s: refused enterprise choice %r in a visit", step.user.id, given.value)
            return picked
        if picked is None:
            return Goto("enterprise", remember=False)
        step.data.pop("ent_query", None)
        step.data.pop("ent_page", None)
        if await self._choose(step, picked):
            return Goto("checkpoint")
        return self._next(step, "checkpoint")  # nothing to follow up: as if the checkpoint were passed

    async def _handle_checkpoint(self, step: Step, given: Input) -> Outcome:
        _ = step._
        if given == Choice("next"):
            return self._next(step, "checkpoint")
        value = given.value if isinstance(given, Choice) else ""
        kind, _sep, raw = value.partition(".")
        item_id = plausible_id(raw)
        if kind not in ("fp", "fs") or item_id is None:
            if isinstance(given, Choice):
                log.warning("user %s: unexpected checkpoint choice %r", step.user.id, value)
            return Invalid(_("Tap an item to note progress on it, or Continue."))
        eid = step.data["enterprise_id"]
        target: dict[str, Any] | None = None
        if kind == "fp":
            problem = await problem_of_enterprise(step.session, problem_id=item_id, enterprise_id=eid)
            if problem is not None and problem.status in PENDING:
                target = {
                    "kind": "problem",
                    "id": problem.id,
                    "ref": problem.ref,
                    "text": problem.description,
                }
                target["status"] = problem.status.value
        else:
            for request, item in await open_service_requests(step.session, enterprise_id=eid):
                if request.id == item_id:
                    target = {"kind": "service", "id": request.id, "ref": request.ref}
                    target.update(text=item.label(step.locale), status=request.status.value)
        if target is None:
            log.warning("user %s: follow-up %r is not open at enterprise %s", step.user.id, value, eid)
            return Invalid(_("That item is no longer open here."))
        existing = self._followup(step, target["kind"], target["id"])
        target["start"] = bool(existing and existing.get("start"))
        step.data["fu"] = target
        return Goto("progress")

    @staticmethod
    def _followup(step: Step, kind: str, id: int) -> dict[str, Any] | None:
        return next((f for f in step.data.get("followups", []) if f["kind"] == kind and f["id"] == id), None)

    def _handle_progress(self, step: Step, given: Input) -> Outcome:
        _ = step._
        target = dict(step.data["fu"])
        others = [
            f
            for f in step.data.get("followups", [])
            if not (f["kind"] == target["kind"] and f["id"] == target["id"])
        ]
        if given == Choice("start") and target["kind"] == "problem":
            target["start"] = not target.get("start")
            step.data["fu"] = target
            existing = self._followup(step, target["kind"], target["id"])
            if existing:  # keep an already noted follow-up in step with the tick
                step.data["followups"] = [*others, {**existing, "start": target["start"]}]
            return Goto("progress", remember=False)
        if given == Choice("drop"):
            step.data["followups"] = others
            step.data.pop("fu", None)
            return self._back_to(step, "checkpoint")
        note = read_text(given, _, limit=PROGRESS_LIMIT)
        if isinstance(note, Invalid):
            return note
        followup = {
            "kind": target["kind"],
            "id": target["id"],
            "ref": target["ref"],
            "status": target["status"],
            "note": note,
            "start": bool(target.get("start")),
        }
        step.data["followups"] = [*others, followup]
        step.data.pop("fu", None)
        return self._back_to(step, "checkpoint")

    def _handle_topics(self, step: Step, given: Input) -> Outcome:
        _ = step._
        topics: list[str] = list(step.data.get("topics", []))
        if given == Choice("done"):
            if not topics:
                return Invalid(_("Please choose at least one topic."))
            return self._next(step, "topics")
        value = given.value.removeprefix("t.") if isinstance(given, Choice) else ""
        if value not in VisitTopic.__members__:
            return Invalid(_("Please tap the topics the visit covered, then Done."))
        chosen = set(topics) ^ {value}
        step.data["topics"] = [t.value for t in VisitTopic if t.value in chosen]
        return Goto("topics", remember=False)

    def _handle_location(self, step: Step, given: Input) -> Outcome:
        _ = step._
        if isinstance(given, Location):
            step.data["location"] = [given.latitude, given.longitude]
            return self._next(step, "location")
        if given == Choice("skip"):
            return self._next(step, "location")
        if given == Choice("clear"):
            step.data.pop("location", None)
            return self._next(step, "location")
        return Invalid(_("Please share your location (📎 → Location), or tap Skip."))

    def _handle_photos(self, step: Step, given: Input) -> Outcome:
        _ = step._
        photos: list[list[str]] = list(step.data.get("photos", []))
        if isinstance(given, Photo):
            album = given.media_group_id
            same_album = album is not None and album == step.data.get("album")
            step.data["album"] = album
            if any(unique == given.file_unique_id for _id, unique in photos):
                if same_album:
                    return Goto("photos", remember=False, quiet=True)
                return Invalid(_("You already added this photo."))
            if len(photos) >= MAX_PHOTOS:
                if same_album:  # the rest of an album beyond the limit: counted, shown on the summary
                    step.data["photos_dropped"] = int(step.data.get("photos_dropped", 0)) + 1
                    return Goto("photos", remember=False, quiet=True)
                return Invalid(
                    _(
                        "A visit keeps at most {max} photos; this one was not added. Tap Done to go on."
                    ).format(max=MAX_PHOTOS)
                )
            step.data["photos"] = [*photos, [given.file_id, given.file_unique_id]]
            return Goto("photos", remember=False, quiet=same_album)
        if given in (Choice("done"), Choice("skip")):
            return self._next(step, "photos")
        if given == Choice("clear"):
            step.data["photos"] = []
            step.data.pop("photos_dropped", None)
            step.data.pop("album", None)
            return Goto("photos", remember=False)
        return Invalid(_("Please send photos, or tap Done or Skip."))

    def _handle_party(self, step: Step, given: Input) -> Outcome:
        _ = step._
        if given == Choice("skip"):
            step.data.pop("party_org", None)
            step.data.pop("party_members", None)
            return self._next(step, "party")
        value = given.value.removeprefix("po.") if isinstance(given, Choice) else ""
        if value not in PartyOrg.__members__:
            return Invalid(_("Please choose one of the buttons."))
        step.data["party_org"] = value
        return self._next(step, "party")

    async def _handle_members(self, step: Step, given: Input) -> Outcome:
        if given == Choice("keep"):
            step.data.pop("party_members", None)
            return self._next(step, "members")
        number = _parse_members(given, step._)
        if isinstance(number, Invalid):
            return number
        step.data["party_members"] = number
        return self._next(step, "members")

    # -- confirm ---------------------------------------------------------------------------------
    async def _confirm(self, step: Step) -> Outcome:
        _ = step._
        data = step.data
        topics = [VisitTopic(t) for t in data.get("topics", [])]
        if not topics or not data.get("notes"):  # cannot happen through the buttons; a stale draft might
            return Invalid(_("Please choose at least one topic."))
        location = data.get("location")
        where = (location[0], location[1]) if location else None
        party_org = PartyOrg(data["party_org"]) if data.get("party_org") else None
        party_members = data.get("party_members")
        enterprise_id: int = data["enterprise_id"]
        enterprise = None
        if where or party_org or party_members is not None:  # its coordinates, its party organisation
            enterprise = await self._enterprise(step)
            if enterprise is None:
                return self._refused(step, enterprise_id)
        metres = None
        if where and enterprise and enterprise.latitude is not None and enterprise.longitude is not None:
            metres = distance_m(where, (enterprise.latitude, enterprise.longitude))
        visit = await create_visit(
            step.session,
            enterprise_id=enterprise_id,
            user=step.user,
            visited_at=step.now,
            topics=topics,
            notes=data["notes"],
            location=where,
            distance_m=metres,
            party_org=party_org,
            party_members=party_members,
            photos=[(p[0], p[1]) for p in data.get("photos", [])],
            source=(step.chat_id, step.message_id),
        )
        if visit is None:  # the INSERT checks the assignment itself
            return self._refused(step, enterprise_id)
        changes: dict[str, object] = {}
        if enterprise is not None:
            changes = update_party_org(
                enterprise, party_org=party_org, party_members=party_members, now=step.now
            )
        done = [
            await self._record_followup(step, f, enterprise_id, visit.id) for f in data.get("followups", [])
        ]
        await record(
            step.session,
            actor_id=step.user.id,
            action="create",
            entity="visit",
            entity_id=visit.id,
            now=step.now,
            details={
                "enterprise_id": enterprise_id,
                "topics": [t.value for t in topics],
                "photos": len(data.get("photos", [])),
                "distance_m": metres,
                "party": changes,
                "followups": [f"{f['kind']}:{f['id']}" for f in data.get("followups", [])],
            },
        )
        if changes:
            await record(
                step.session,
                actor_id=step.user.id,
                action="party_org",
                entity="enterprise",
                entity_id=enterprise_id,
                now=step.now,
                details={**changes, "visit_id": visit.id},
            )
        lines = [
            _("✅ Visit saved as <b>{ref}</b>: {name}, {date}.").format(
                ref=visit.ref,
                name=html.escape(data["enterprise_name"]),
                date=step.now.astimezone(step.settings.tz).strftime("%Y-%m-%d"),
            )
        ]
        if changes:
            lines.append(_("The enterprise's party organisation was updated."))
        if any(done):
            lines.append(_("Progress recorded on:"))
            lines += [f"• {d}" for d in done if d]
        lines.append(_("Anything else for this enterprise?"))
        return Finish(
            "\n".join(lines),
            [
                [button(_("Report a problem"), Prefix.enterprise, enterprise_id, "problem")],
                [button(_("Request a menu service"), Prefix.enterprise, enterprise_id, "service")],
            ],
        )

    @staticmethod
    def _refused(step: Step, enterprise_id: int) -> Finish:
        log.warning("user %s: visit to enterprise %s refused at confirm", step.user.id, enterprise_id)
        return Finish(step._("You are no longer assigned to this enterprise, so the visit was not saved."))

    async def _record_followup(
        self, step: Step, followup: dict[str, Any], enterprise_id: int, visit_id: int
    ) -> str:
        """Store one follow-up noted at the checkpoint; the reference it was recorded on, or "" if gone."""
        _ = step._
        note = followup["note"]
        if followup["kind"] == "service":
            await record(
                step.session,
                actor_id=step.user.id,
                action="progress",
                entity="service_request",
                entity_id=followup["id"],
                now=step.now,
                details={"note": note, "visit_id": visit_id},
            )
            return str(followup["ref"])
        problem: Problem | None = await problem_of_enterprise(
            step.session, problem_id=followup["id"], enterprise_id=enterprise_id, lock=True
        )
        if problem is None:
            return ""
        add_event(step.session, problem, actor_id=step.user.id, kind="progress", now=step.now, note=note)
        problem.updated_at = step.now
        if not followup.get("start"):
            return problem.ref
        try:
            change_status(
                step.session,
                problem,
                to=ProblemStatus.in_progress,
                actor_id=step.user.id,
                now=step.now,
                expected=ProblemStatus.open,
            )
        except TransitionError:  # someone moved it meanwhile; the progress note still stands
            return problem.ref
        return _("{ref} (now in progress)").format(ref=problem.ref)
