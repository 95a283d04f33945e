"""Marking a project live, and taking that back: each an immutable event with its reasons.

Going live is refused unless the verdict is ready and the person confirms the version they
saw; it records the evidence it rested on (the verdict, every step's hash, each connection's
latest run, the approvals that counted, the test cases) and starts the health reviews.
Reverting ("back to not live") needs a reason, is recorded too, and stops the reviews.
"""

from django.db import transaction

from planner.checklist.delivery import plan_of
from planner.checklist.evidence import Evidence
from planner.checklist.golive import latest_runs, verdict
from planner.checklist.signoff import project_hash, signoff_states, step_hashes
from planner.models import GoLive, GoLiveRevert, IntegrationProject
from planner.reviews.schedule import recompute, schedule_after_go_live, schedule_of


class GoLiveRefused(Exception):
    pass


def evidence_snapshot(project: IntegrationProject, ev: Evidence) -> dict:
    """What go-live rested on, as plain JSON kept with the record."""
    runs = latest_runs(project)
    states = signoff_states(ev)
    return {
        "runs": [
            {
                "connection": str(c),
                "run": runs[c.pk].pk if c.pk in runs else None,
                "status": runs[c.pk].status if c.pk in runs else None,
                "finished_at": (
                    runs[c.pk].finished_at.isoformat()
                    if c.pk in runs and runs[c.pk].finished_at
                    else None
                ),
            }
            for c in ev.connections
        ],
        "approvals": [
            {
                "step": n,
                "user": s.signoff.user.get_username(),
                "role": s.signoff.role,
                "version": s.signoff.content_hash,
            }
            for n, state in states.items()
            for s in state.approvers
        ],
        "test_cases": [
            {"case": str(c), "status": c.status, "run": c.validation_run_id}
            for c in plan_of(ev).test_cases
        ],
    }


def mark_live(project: IntegrationProject, user, seen_version: str | None = None) -> GoLive:
    """Record the go-live with the evidence snapshot; refused unless the verdict is ready.

    `seen_version` is the project version the person confirmed on the page: if anything
    changed since, they confirm again.
    """
    with transaction.atomic():
        # One go-live at a time per project: the project row is the lock.
        IntegrationProject.objects.select_for_update().filter(pk=project.pk).first()
        ev = Evidence.load(project)
        v = verdict(project, ev)
        if v.live:
            raise GoLiveRefused(f"This project has been live since {v.live.created_at:%d %b %Y}.")
        if not v.ready:
            raise GoLiveRefused(
                f"Not ready to go live: {len(v.reasons)} blocking reason(s); see the list."
            )
        hashes = step_hashes(project)
        version = project_hash(hashes)
        if seen_version is not None and seen_version != version:
            raise GoLiveRefused(
                "The project changed since you opened this page: review the verdict and "
                "confirm again."
            )
        snapshot = {
            **v.as_dict(),
            "step_hashes": {str(k): h for k, h in hashes.items()},
            "version": version,
            "evidence": evidence_snapshot(project, ev),
        }
        live = GoLive.objects.create(project=project, user=user, snapshot=snapshot)
    schedule_after_go_live(live)
    return live


def revert_live(project: IntegrationProject, user, reason: str) -> GoLiveRevert:
    """Back to not live, with the reason; the health reviews stop until it goes live again."""
    reason = (reason or "").strip()
    if not reason:
        raise GoLiveRefused("Reason: say why the project goes back to not live.")
    with transaction.atomic():
        IntegrationProject.objects.select_for_update().filter(pk=project.pk).first()
        live = GoLive.objects.current().filter(project=project).first()
        if live is None:
            raise GoLiveRefused("This project is not live.")
        revert = GoLiveRevert.objects.create(
            project=project, go_live=live, user=user, reason=reason
        )
    recompute(schedule_of(project))  # no go-live in force: no next review, no beat entry
    return revert


def changed_since_live(project: IntegrationProject, live: GoLive) -> list[int]:
    """The steps whose content differs from what was live."""
    then = live.snapshot.get("step_hashes", {})
    now = step_hashes(project)
    return [n for n, h in now.items() if then.get(str(n)) != h]


def golive_history(project: IntegrationProject) -> list[GoLive]:
    return list(
        GoLive.objects.filter(project=project)
        .select_related("user", "revert__user")
        .order_by("-created_at", "-pk")
    )
