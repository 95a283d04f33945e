"""Sign-offs: content hashes of the steps, who must approve, freshness, and asking again.

A sign-off records the sha256 of its step's artifacts as they were when it was given. The
step's current hash is computed from the database (one query per artifact model, whatever the
number of rows); when it no longer matches, the sign-off is stale.

The write path (`record_stale_signoffs`, called after every successful write to a project, see
`planner.web.permissions.project_access`) hashes every step and stores the hashes
(`StepContent`); it records, once, each sign-off that went stale as a `SignOffStale` event, and
the approvers are emailed by a Celery task queued after the commit. Reading never writes: pages
compare a sign-off's hash with the stored one (a step with none stored is hashed on reading).

Separation of duties: a step may need several different approvers (`approvers_needed`), and by
default the person who made the step's last change and the project's owners cannot be its
only approvers (`independent`).
"""

import hashlib
import json
import logging
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import date, datetime, time
from decimal import Decimal
from functools import cached_property

from django.conf import settings
from django.db import IntegrityError, connection, models, transaction

from planner.checklist import revision
from planner.checklist.evidence import Evidence
from planner.checklist.registry import STEPS, STEPS_BY_NUMBER, Finding, Rule
from planner.models import (
    ApproverRequirement,
    IntegrationProject,
    Membership,
    NotificationKind,
    Role,
    SignOff,
    SignOffStale,
    StepContent,
)
from planner.models.people import display_name
from planner.models.signoff import DEFAULT_REQUIRED_ROLES, SIGN_OFF_ROLES
from planner.notify.service import notify
from planner.task_queue import QueueUnreachable, publish

log = logging.getLogger(__name__)

# Bookkeeping, not content: saving a record unchanged must not make its step's sign-off stale.
BOOKKEEPING = frozenset({"id", "version", "updated_at", "created_at", "project"})


# ---------------------------------------------------------------------------------------------
# Content hashes


def _canonical(value):
    if isinstance(value, Decimal):
        # 5, 5.0 and 5.0000 are one value: the database may hand back any of them.
        return format(value.normalize(), "f")
    if isinstance(value, date | datetime | time):
        return value.isoformat()
    return value


def _content_fields(model: type[models.Model]) -> list[str]:
    # A model may keep operational fields beside its plan (`NOT_SIGNED`): what happened after
    # the approval, which must neither change nor stale it.
    skip = BOOKKEEPING | frozenset(getattr(model, "NOT_SIGNED", ()))
    return [f.attname for f in model._meta.concrete_fields if f.name not in skip]


# json.dumps(row, sort_keys=True), without building an encoder for every row.
_row_json = json.JSONEncoder(sort_keys=True).encode
_PLAIN = frozenset({str, int, float, bool, type(None)})


def _artifact_rows(model: type[models.Model], project_ids: list[int]) -> dict[int, list[str]]:
    names = _content_fields(model)
    # No ORDER BY (some default orderings join other tables): the rows are sorted below.
    rows = (
        model._default_manager.filter(project_id__in=project_ids)
        .order_by()
        .values_list("project_id", *names)
    )
    out: dict[int, list[str]] = {pk: [] for pk in project_ids}
    for project_id, *values in rows:
        canonical = [v if type(v) in _PLAIN else _canonical(v) for v in values]
        out[project_id].append(_row_json(dict(zip(names, canonical, strict=True))))
    # Sorted as canonical JSON, so the hash depends on content alone, not on primary keys or
    # the order rows come back in; an explicit order lives in `position` fields, which count.
    return {pk: sorted(found) for pk, found in out.items()}


def step_hashes(project: IntegrationProject, steps: Iterable[int] | None = None) -> dict[int, str]:
    """sha256 of each step's artifacts; one query per artifact model of the steps asked for."""
    return step_hashes_many({project.pk: STEPS_BY_NUMBER if steps is None else steps})[project.pk]


def step_hashes_many(wanted: dict[int, Iterable[int]]) -> dict[int, dict[int, str]]:
    """The hashes of the steps asked for, per project id: one query per artifact model of
    those steps, however many projects ask."""
    wanted = {pk: set(numbers) for pk, numbers in wanted.items()}
    rows: dict[type[models.Model], dict[int, list[str]]] = {}
    for number in sorted(set().union(*wanted.values())):
        askers = [pk for pk, numbers in wanted.items() if number in numbers]
        for model in STEPS_BY_NUMBER[number].artifacts:
            rows[model] = _artifact_rows(model, askers)
    out: dict[int, dict[int, str]] = {}
    for pk, numbers in wanted.items():
        out[pk] = {}
        for number in sorted(numbers):
            artifacts = STEPS_BY_NUMBER[number].artifacts
            payload = {
                "step": number,
                "artifacts": {m._meta.label: rows[m][pk] for m in artifacts},
            }
            canonical = json.dumps(
                payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False
            )
            out[pk][number] = hashlib.sha256(canonical.encode()).hexdigest()
    return out


def store_step_hashes(project: IntegrationProject) -> dict[int, str]:
    """Hash every step with a live sign-off, store those hashes (`StepContent`) stamped with
    the project revision they hold at, and drop the rows of the other steps; returns the
    hashes.

    The write path calls this after each write to the project (`record_stale_signoffs`), so
    pages compare a sign-off's hash with the stored one instead of hashing the artifacts; only
    a live sign-off's step is read that way, so only those are hashed (a write costs what it
    did). The project row is locked meanwhile: of two writes' calls, the later one hashes
    after both writes, so an earlier hash never overwrites a later one. The stamp is the
    revision this transaction commits as (`revision.advance`), or none when another write was
    counted since the revision was read before hashing: a write that passes no write path
    (raw SQL, a bulk update, a data migration, a restore) moves the revision, so a stored hash
    is trusted only while nothing it was computed from can have changed."""
    with transaction.atomic():
        IntegrationProject.objects.select_for_update().filter(pk=project.pk).values("pk").first()
        seen = revision.current(project.pk)
        signed = set(
            SignOff.objects.filter(project=project, stale_event__isnull=True).values_list(
                "step", flat=True
            )
        )
        hashes = step_hashes(project, signed) if signed else {}
        rows = StepContent.objects.filter(project=project)
        if hashes:
            stamp = revision.advance(project.pk, seen)
            StepContent.objects.bulk_create(
                [
                    StepContent(project=project, step=n, content_hash=h, revision_token=stamp)
                    for n, h in hashes.items()
                ],
                update_conflicts=True,
                unique_fields=["project", "step"],
                update_fields=["content_hash", "revision_token"],
            )
        rows.exclude(step__in=list(hashes)).delete()
    return hashes


# Set while a request writes: its artifacts may have changed since the hashes were stored,
# and they are stored again only after the view returns (`write_in_progress`).
_WRITING: ContextVar[bool] = ContextVar("writing", default=False)


@contextmanager
def write_in_progress() -> Iterator[None]:
    """Read hashes from the artifacts, not the stored ones, inside a write: what a write's
    own response shows (the navigator's stale marks) is the step after the write."""
    token = _WRITING.set(True)
    try:
        yield
    finally:
        _WRITING.reset(token)


def current_hashes_many(wanted: dict[int, Iterable[int]]) -> dict[int, dict[int, str]]:
    """The current hash of the steps asked for, per project id: the stored ones that hold at
    the project's revision now, in one query, and the others computed (read only: nothing is
    stored here). Inside a write (`write_in_progress`) every one is computed."""
    wanted = {pk: set(numbers) for pk, numbers in wanted.items() if numbers}
    out: dict[int, dict[int, str]] = {pk: {} for pk in wanted}
    if not wanted:
        return out
    if _WRITING.get():
        return step_hashes_many(wanted)
    rows = revision.stamped_rows(
        StepContent, ["project_id", "step", "content_hash"], sorted(wanted)
    )
    for pk, number, content_hash in rows:
        if number in wanted[pk]:
            out[pk][number] = content_hash
    unknown = {pk: left for pk, numbers in wanted.items() if (left := numbers - out[pk].keys())}
    if unknown:
        for pk, computed in step_hashes_many(unknown).items():
            out[pk].update(computed)
    return out


def project_hash(hashes: dict[int, str]) -> str:
    """The version of the whole project: one hash over every step's hash."""
    joined = ",".join(f"{n}:{h}" for n, h in sorted(hashes.items()))
    return hashlib.sha256(joined.encode()).hexdigest()


# ---------------------------------------------------------------------------------------------
# Who must sign


def required_roles(project: IntegrationProject) -> dict[int, list[str]]:
    return {n: p.roles for n, p in policies(project).items()}


@dataclass(frozen=True)
class Policy:
    """Who must sign one step: the roles, how many people, and whether one must be independent."""

    roles: list[str]
    approvers_needed: int = 1
    independent: bool = True


def policies(project: IntegrationProject) -> dict[int, Policy]:
    return policies_many([project.pk])[project.pk]


def policies_many(project_ids: list[int]) -> dict[int, dict[int, Policy]]:
    """Each project's policy per step, by project id, in one query."""
    configured: dict[int, dict[int, Policy]] = {pk: {} for pk in project_ids}
    for r in ApproverRequirement.objects.filter(project_id__in=project_ids):
        configured[r.project_id][r.step] = Policy(
            list(r.roles), max(1, r.approvers_needed), r.independent
        )
    return {
        pk: {s.number: steps.get(s.number, Policy(list(DEFAULT_REQUIRED_ROLES))) for s in STEPS}
        for pk, steps in configured.items()
    }


def last_editor(project: IntegrationProject, number: int) -> int | None:
    """The user who made the newest change to the step's artifacts (one query per model)."""
    return last_editors([(project.pk, number)]).get((project.pk, number))


# Each artifact model's history table, looked up once: `Model.history` builds a new manager
# class on every access, which cost more than the rest of building the query.
_HISTORY_TABLES: dict[type, str] = {}


def _history_table(model: type) -> str:
    if model not in _HISTORY_TABLES:
        _HISTORY_TABLES[model] = model.history.model._meta.db_table
    return _HISTORY_TABLES[model]


def last_editors(pairs: Iterable[tuple[int, int]]) -> dict[tuple[int, int], int | None]:
    """The last editor of each (project id, step) pair, in one query however many projects
    and steps: the newest history row of the step's artifacts (ties: the model listed first
    in the step's artifacts, then the newest history id)."""
    projects_of: dict[int, set[int]] = {}
    for project_id, number in pairs:
        projects_of.setdefault(number, set()).add(project_id)
    branches, params = [], []
    for number, project_ids in sorted(projects_of.items()):
        for order, model in enumerate(STEPS_BY_NUMBER[number].artifacts):
            table = connection.ops.quote_name(_history_table(model))
            marks = ", ".join(["%s"] * len(project_ids))
            # Written in: the models' own quoted table names and our step and model numbers.
            branches.append(
                f"SELECT {int(number)} AS step, {order} AS artifact, project_id, history_date, "  # noqa: S608
                f"history_id, history_user_id FROM {table} WHERE project_id IN ({marks})"
            )
            params += sorted(project_ids)
    found: dict[tuple[int, int], int | None] = {}
    if branches:
        # The branches above: quoted table names, values as parameters.
        sql = (
            "SELECT step, project_id, history_user_id FROM (SELECT step, project_id, "  # noqa: S608
            "history_user_id, ROW_NUMBER() OVER (PARTITION BY step, project_id ORDER BY "
            "history_date DESC, artifact, history_id DESC) AS newest FROM ("
            + " UNION ALL ".join(branches)
            + ") AS edits) AS ranked WHERE newest = 1"
        )
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            for number, project_id, user_id in cursor.fetchall():
                found[(project_id, number)] = user_id
    return {
        (project_id, number): found.get((project_id, number))
        for number, project_ids in projects_of.items()
        for project_id in project_ids
    }


def role_label(role: str) -> str:
    return Role(role).label


# ---------------------------------------------------------------------------------------------
# Freshness of a step's sign-offs


@dataclass(frozen=True)
class Signature:
    """A signer's latest sign-off on a step, and whether it still holds."""

    signoff: SignOff
    fresh: bool
    holds_role: bool  # the signer still has, on the project, the role they signed as

    @property
    def stale(self) -> bool:
        return not self.fresh

    @property
    def counts(self) -> bool:
        return self.fresh and self.holds_role and self.signoff.decision == SignOff.Decision.APPROVE


@dataclass
class StepSignOff:
    project: IntegrationProject
    step: int
    required: list[str]
    latest: list[Signature]  # one per signer, newest first
    holders: dict[str, list[str]]  # role -> usernames holding it now
    known_hash: str | None = None
    _findings: list[Finding] = field(default_factory=list)
    approvers_needed: int = 1
    independent: bool = True
    owner_ids: frozenset[int] = frozenset()

    @cached_property
    def last_editor_id(self) -> int | None:
        return last_editor(self.project, self.step)

    @property
    def not_independent_ids(self) -> set[int]:
        """Who cannot be the step's only approvers: its last editor and the owners."""
        ids = set(self.owner_ids)
        if self.last_editor_id is not None:
            ids.add(self.last_editor_id)
        return ids

    @property
    def approvers(self) -> list[Signature]:
        """The approvals that count, one per person."""
        return [s for s in self.latest if s.counts and s.signoff.role in self.required]

    @property
    def needs_independent(self) -> bool:
        """Every counting approval is by the last editor or an owner, and that is not enough."""
        if not self.independent or not self.approvers:
            return False
        excluded = self.not_independent_ids
        return all(s.signoff.user_id in excluded for s in self.approvers)

    @property
    def complete(self) -> bool:
        return (
            not self.missing
            and len(self.approvers) >= self.approvers_needed
            and not self.needs_independent
        )

    def decision_label(self, sig: Signature) -> str:
        """What the page and the runbook print: "Approved" only for an approval that counts."""
        if sig.signoff.decision != SignOff.Decision.APPROVE:
            return sig.signoff.get_decision_display()
        if sig.stale:
            return "Approval no longer counts: the step changed since"
        if not sig.holds_role:
            return "Approval does not count: the signer no longer has this role"
        if sig.signoff.role not in self.required:
            return "Approval does not count: this role is not asked to sign"
        if self.needs_independent:
            return "Approval does not count alone: another approver must sign too"
        return "Approved"

    @property
    def decisions(self) -> list[tuple[Signature, str]]:
        return [(s, self.decision_label(s)) for s in self.latest]

    @cached_property
    def current_hash(self) -> str:
        # Computed on demand (the sign-off form needs it) when no sign-off made it necessary.
        return self.known_hash or step_hashes(self.project, [self.step])[self.step]

    @property
    def short_hash(self) -> str:
        return self.current_hash[:12]

    def approval_for(self, role: str) -> Signature | None:
        return next((s for s in self.latest if s.counts and s.signoff.role == role), None)

    @property
    def missing(self) -> list[str]:
        return [r for r in self.required if self.approval_for(r) is None]

    @property
    def stale(self) -> bool:
        """An approval that no longer matches the step: shown on the step and the navigator."""
        return any(s.stale and s.signoff.decision == SignOff.Decision.APPROVE for s in self.latest)

    @property
    def required_text(self) -> str:
        text = " and ".join(f"an {role_label(r).lower()}" for r in self.required)
        if self.approvers_needed > 1:
            text += f" ({self.approvers_needed} different people)"
        return text

    @property
    def rule(self) -> Rule:
        number = self.step
        return Rule(
            "signed_off",
            f"Signed off by {self.required_text}, on the current version",
            lambda ev: signoff_states(ev)[number].findings,
        )

    @property
    def findings(self) -> list[Finding]:
        out = []
        for role in self.missing:
            label = role_label(role)
            mine = [s for s in self.latest if s.signoff.role == role and s.holds_role]
            if not self.holders.get(role):
                out.append(
                    Finding(
                        f"No member has the {label} role: invite one, or change who signs off "
                        "this step in the sign-off settings.",
                        "signoff",
                    )
                )
            elif mine and mine[0].stale:
                s = mine[0].signoff
                out.append(
                    Finding(
                        f"{display_name(s.user)}'s sign-off of {s.created_at:%d %b %Y} is stale: "
                        "the step changed since. Asked to sign off again.",
                        "signoff",
                    )
                )
            elif mine and mine[0].signoff.decision == SignOff.Decision.CHANGES:
                s = mine[0].signoff
                out.append(
                    Finding(
                        f"{display_name(s.user)} requested changes: {s.comment}".rstrip(": "),
                        "signoff",
                    )
                )
            else:
                out.append(Finding(f"Awaiting sign-off by an {label.lower()}.", "signoff"))
        if not self.missing and len(self.approvers) < self.approvers_needed:
            out.append(
                Finding(
                    f"{len(self.approvers)} of {self.approvers_needed} approvals: this step needs "
                    f"{self.approvers_needed} different approvers.",
                    "signoff",
                )
            )
        if self.needs_independent:
            names = ", ".join(display_name(s.signoff.user) for s in self.approvers)
            out.append(
                Finding(
                    f"Approved only by {names}, who made the step's last change or owns the "
                    "project: another approver must sign too.",
                    "signoff",
                )
            )
        return out


def load_signoff_states(evidences: list[Evidence]) -> None:
    """Fill the sign-off cache of every evidence object that lacks it, in one load."""
    missing = [ev for ev in evidences if "_signoffs" not in ev.__dict__]
    if missing:
        loaded = _load_states([ev.project for ev in missing])
        for ev in missing:
            ev.__dict__["_signoffs"] = loaded[ev.project.pk]


def signoff_states(ev: Evidence) -> dict[int, StepSignOff]:
    """Every step's sign-off state, loaded once per Evidence (3 queries + hashes if signed)."""
    load_signoff_states([ev])
    return ev.__dict__["_signoffs"]


def step_signoff(number: int, ev: Evidence) -> StepSignOff:
    return signoff_states(ev)[number]


def _load_states(projects: list[IntegrationProject]) -> dict[int, dict[int, StepSignOff]]:
    """Read only: freshness is the stored hash against the current one, nothing is recorded.
    The same queries for one project or many."""
    ids = [p.pk for p in projects]
    policy = policies_many(ids)
    members = Membership.objects.filter(project_id__in=ids, role__in=SIGN_OFF_ROLES)
    role_of: dict[int, dict[int, str]] = {pk: {} for pk in ids}
    holders: dict[int, dict[str, list[str]]] = {pk: {r: [] for r in SIGN_OFF_ROLES} for pk in ids}
    owner_ids: dict[int, set[int]] = {pk: set() for pk in ids}
    for m in members.select_related("user"):
        role_of[m.project_id][m.user_id] = m.role
        holders[m.project_id][m.role].append(display_name(m.user))
        if m.role == Role.OWNER:
            owner_ids[m.project_id].add(m.user_id)

    latest: dict[int, dict[int, dict[int, SignOff]]] = {pk: {} for pk in ids}
    for s in SignOff.objects.filter(project_id__in=ids).select_related("user", "stale_event"):
        # newest first by Meta.ordering
        latest[s.project_id].setdefault(s.step, {}).setdefault(s.user_id, s)

    unresolved = {
        pk: {
            step
            for step, by_user in signed.items()
            if any(not hasattr(s, "stale_event") for s in by_user.values())
        }
        for pk, signed in latest.items()
    }
    hashes = current_hashes_many(unresolved)

    out: dict[int, dict[int, StepSignOff]] = {}
    for project in projects:
        pk = project.pk
        known = hashes.get(pk, {})
        states = out[pk] = {}
        for step in STEPS:
            n = step.number
            signatures = []
            signed = latest[pk].get(n, {}).values()
            for s in sorted(signed, key=lambda s: s.created_at, reverse=True):
                fresh = not hasattr(s, "stale_event") and s.content_hash == known.get(n)
                signatures.append(Signature(s, fresh, role_of[pk].get(s.user_id) == s.role))
            p = policy[pk][n]
            states[n] = StepSignOff(
                project,
                n,
                p.roles,
                signatures,
                holders[pk],
                known_hash=known.get(n),
                approvers_needed=p.approvers_needed,
                independent=p.independent,
                owner_ids=frozenset(owner_ids[pk]),
            )
    # Who made each step's last change matters only where approvals might all be by that
    # person or the owners: loaded for those steps of every project at once.
    asked = [
        (pk, n)
        for pk, states in out.items()
        for n, state in states.items()
        if state.required and state.independent and state.approvers
    ]
    if asked:
        editors = last_editors(asked)
        for pk, n in asked:
            out[pk][n].__dict__["last_editor_id"] = editors[(pk, n)]
    return out


# ---------------------------------------------------------------------------------------------
# Recording staleness: on the write path, never on a page view

ASK_AGAIN_TASK = "planner.signoff_tasks.ask_again"


def record_stale_signoffs(project: IntegrationProject) -> list[SignOffStale]:
    """Record, once each, the live sign-offs whose step changed; mail after the commit.

    Called after every write to the project: it also stores the hashes of the signed steps
    (`store_step_hashes`), which the pages compare sign-offs with. One transaction, so that
    the events it records are counted in the revision the stored hashes are stamped with
    (recorded after it, they would move the revision past the stamp).
    """
    with transaction.atomic():
        return _record_stale_signoffs(project)


def _record_stale_signoffs(project: IntegrationProject) -> list[SignOffStale]:
    hashes = store_step_hashes(project)
    live = list(
        SignOff.objects.filter(project=project, stale_event__isnull=True).select_related("user")
    )
    if not live:
        return []
    if late := {s.step for s in live} - hashes.keys():  # signed meanwhile, by another request
        hashes |= step_hashes(project, late)
    events = []
    for signoff in live:
        if signoff.content_hash != hashes[signoff.step]:
            event = _record_stale(project, signoff, hashes[signoff.step], "The step changed.")
            if event:
                events.append(event)
    return events


def mark_step_stale(project: IntegrationProject, number: int, reason: str) -> list[SignOffStale]:
    """Make every live sign-off of a step stale, whatever its hash: who must sign changed."""
    live = SignOff.objects.filter(project=project, step=number, stale_event__isnull=True)
    current = step_hashes(project, [number])[number]
    events = []
    for signoff in live.select_related("user"):
        if event := _record_stale(project, signoff, current, reason):
            events.append(event)
    return events


def _recipients(project: IntegrationProject, signoff: SignOff) -> list[str]:
    roles = policies(project)[signoff.step].roles
    emails = Membership.objects.filter(project=project, role__in=roles).exclude(user__email="")
    found = set(emails.values_list("user__email", flat=True))
    if signoff.user.email:
        found.add(signoff.user.email)
    return sorted(found)


def _record_stale(project, signoff: SignOff, current: str, reason: str) -> SignOffStale | None:
    """Record that `signoff` no longer holds; the approvers are emailed once the commit lands."""
    recipients = _recipients(project, signoff)
    try:
        with transaction.atomic():
            event = SignOffStale.objects.create(
                project=project,
                signoff=signoff,
                step=signoff.step,
                current_hash=current,
                reason=reason[:300],
                notified="\n".join(recipients),
            )
    except IntegrityError:
        return None  # another request recorded it (and queued the mail) a moment ago
    signoff.stale_event = event
    _tell_stale(project, signoff, reason)
    if recipients:
        transaction.on_commit(lambda: queue_ask_again(event.pk))
    return event


def _tell_stale(project: IntegrationProject, signoff: SignOff, reason: str) -> None:
    """The approvers' and the signer's notification; the ask-again task mails them, so the
    notification is not mailed a second time."""
    roles = policies(project)[signoff.step].roles
    people = set(
        Membership.objects.filter(project=project, role__in=roles).values_list("user_id", flat=True)
    )
    people.add(signoff.user_id)
    step = STEPS_BY_NUMBER[signoff.step]
    notify(
        people,
        project,
        NotificationKind.SIGNOFF_STALE,
        f"Step {step.number} ({step.title}): {signoff.user.get_username()}'s sign-off is stale. "
        f"{reason}",
        step.url(project.pk, "signoff"),
        mailed=True,
    )


def request_signoff(project: IntegrationProject, number: int, by, note: str = "") -> list:
    """Ask the members whose role signs this step to review and sign it off."""
    roles = policies(project)[number].roles
    people = Membership.objects.filter(project=project, role__in=roles).values_list(
        "user_id", flat=True
    )
    step = STEPS_BY_NUMBER[number]
    text = f"{by.get_username()} asks you to sign off step {number} ({step.title})"
    if note.strip():
        text += f": {note.strip()}"
    return notify(
        list(people),
        project,
        NotificationKind.SIGNOFF_REQUEST,
        text,
        step.url(project.pk, "signoff"),
        exclude=by,
    )


def queue_ask_again(event_id: int) -> None:
    # By name, as the runs do: the task module (planner/checklist/tasks.py) imports this one.
    from aethon.celery import app

    try:
        publish(app.tasks[ASK_AGAIN_TASK], event_id)
    except QueueUnreachable:
        # The event keeps who was to be asked; the step page shows the stale state regardless.
        log.exception("could not queue the stale sign-off mail of event %s", event_id)


def step_url(project: IntegrationProject, number: int) -> str:
    base = getattr(settings, "AETHON_BASE_URL", "http://127.0.0.1:8000").rstrip("/")
    return f"{base}{STEPS_BY_NUMBER[number].url(project.pk, 'signoff')}"


def ask_again_message(event: SignOffStale) -> tuple[str, str, list[str]]:
    """Subject, body and recipients of the mail asking the approvers to sign again."""
    signoff, project = event.signoff, event.project
    step = STEPS_BY_NUMBER[signoff.step]
    subject = f"[Aethon] {project.name}: step {step.number} changed, please sign off again"
    why = event.reason or "The step changed."
    body = (
        f"Step {step.number} ({step.title}) of '{project.name}': {why} "
        f"{display_name(signoff.user)}'s sign-off of {signoff.created_at:%d %b %Y %H:%M} "
        f"(version {signoff.short_hash}) no longer counts.\n\n"
        "The step is not complete until it is signed off again on the current version:\n\n"
        f"{step_url(project, step.number)}\n"
    )
    return subject, body, [r for r in event.notified.splitlines() if r]


# ---------------------------------------------------------------------------------------------
# Signing


class SignOffRefused(Exception):
    """Why a sign-off was not recorded, in words for the signer."""


def sign(
    project: IntegrationProject,
    number: int,
    membership: Membership,
    decision: str,
    comment: str,
    seen_hash: str,
) -> SignOff:
    """Record `membership`'s decision on the version of step `number` they were shown.

    Only a role the step asks for decides, and once per version: a decision that would not
    count (a role nobody asked, a second vote on the same version) is refused, not recorded.
    """
    step = STEPS_BY_NUMBER.get(number)
    if step is None:
        raise SignOffRefused("This step cannot be signed off yet.")
    if membership.role not in SIGN_OFF_ROLES:
        raise SignOffRefused(f"Your role ({membership.get_role_display()}) cannot sign off.")
    _check_role_asked(project, number, membership)
    if decision not in SignOff.Decision.values:
        raise SignOffRefused("Decision: choose approve or request changes.")
    comment = comment.strip()
    if decision == SignOff.Decision.CHANGES and not comment:
        raise SignOffRefused("Comment: say what needs to change.")
    try:
        with transaction.atomic():
            current = step_hashes(project, [number])[number]
            if seen_hash != current:
                raise SignOffRefused(
                    f"Step {number} changed since you opened it. Review the current version and "
                    "sign off again."
                )
            round_ = _round(project, number, membership.user_id)
            if earlier := _earlier_decision(project, number, membership.user_id, current, round_):
                raise SignOffRefused(_already_decided(earlier))
            if decision == SignOff.Decision.APPROVE:
                ev = Evidence.load(project)
                failing = [r.text for r in step.rules if r.check(ev)]
                if failing:
                    raise SignOffRefused(
                        f"Step {number} cannot be approved while rules fail: {'; '.join(failing)}."
                    )
            return SignOff.objects.create(
                project=project,
                step=number,
                user=membership.user,
                role=membership.role,
                decision=decision,
                comment=comment,
                content_hash=current,
                round=round_,
            )
    except IntegrityError:
        # Another request by the same signer recorded a decision on this version meanwhile.
        round_ = _round(project, number, membership.user_id)
        earlier = _earlier_decision(project, number, membership.user_id, seen_hash, round_)
        if earlier is None:
            raise
        raise SignOffRefused(_already_decided(earlier)) from None


def _check_role_asked(project: IntegrationProject, number: int, membership: Membership) -> None:
    asked = required_roles(project)[number]
    if not asked:
        raise SignOffRefused(
            f"Step {number} asks for no sign-off: no role is set to sign it in the sign-off "
            "settings."
        )
    if membership.role not in asked:
        raise SignOffRefused(
            f"Step {number} asks for sign-off by: {', '.join(map(role_label, asked))}. "
            f"Your role ({membership.get_role_display()}) is not one of them."
        )


def _round(project: IntegrationProject, number: int, user_id: int) -> int:
    """How many of the signer's decisions on the step went stale: a decision after one of
    them is a new one, even on a version they decided on before (changed, then changed back)."""
    return SignOffStale.objects.filter(
        project=project, step=number, signoff__user_id=user_id
    ).count()


def _earlier_decision(
    project: IntegrationProject, number: int, user_id: int, content_hash: str, round_: int
) -> SignOff | None:
    """The signer's live decision on this version of the step, if they made one."""
    return SignOff.objects.filter(
        project=project, step=number, user_id=user_id, content_hash=content_hash, round=round_
    ).first()


def _already_decided(earlier: SignOff) -> str:
    what = "approved" if earlier.decision == SignOff.Decision.APPROVE else "requested changes on"
    return (
        f"You already {what} version {earlier.short_hash} of step {earlier.step} on "
        f"{earlier.created_at:%d %b %Y %H:%M}. A new decision is possible once the step changes."
    )


def signoff_log(project: IntegrationProject) -> list[SignOff]:
    """Every sign-off of the project, oldest first, for the runbook's sign-off table."""
    return list(
        SignOff.objects.filter(project=project)
        .select_related("user", "stale_event")
        .order_by("step", "created_at", "pk")
    )
