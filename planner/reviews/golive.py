"""Marking a project live: refused unless the go-live verdict is ready; starts the reviews."""

from django.db import IntegrityError, transaction

from planner.checklist.golive import verdict
from planner.checklist.signoff import project_hash, step_hashes
from planner.models import GoLive, IntegrationProject
from planner.reviews.schedule import schedule_after_go_live


class GoLiveRefused(Exception):
    pass


def mark_live(project: IntegrationProject, user) -> GoLive:
    """Record the go-live with the readiness snapshot; refused unless the verdict is ready."""
    v = verdict(project)
    if v.live:
        raise GoLiveRefused(f"This project has been live since {v.live.created_at:%d %b %Y}.")
    if not v.ready:
        raise GoLiveRefused(
            f"Not ready to go live: {len(v.reasons)} blocking reason(s); see the list."
        )
    hashes = step_hashes(project)
    snapshot = {
        **v.as_dict(),
        "step_hashes": {str(k): h for k, h in hashes.items()},
        "version": project_hash(hashes),
    }
    try:
        with transaction.atomic():
            live = GoLive.objects.create(project=project, user=user, snapshot=snapshot)
    except IntegrityError:
        raise GoLiveRefused("This project was just marked live by someone else.") from None
    schedule_after_go_live(live)
    return live
