"""Per-project roles, enforced by one decorator on every project view.

A non-member gets 404 (the project's existence is not disclosed); a member whose role lacks
the capability gets 403. After a successful write the decorator records the sign-offs it made
stale, so that no page view has to.
"""

from collections.abc import Callable
from functools import wraps

from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse

from planner.checklist.signoff import write_in_progress
from planner.checklist.standing import after_write
from planner.models import Membership, Role

CAPABILITIES: dict[str, frozenset[str]] = {
    "view": frozenset({Role.OWNER, Role.EDITOR, Role.APPROVER, Role.VIEWER}),
    "edit": frozenset({Role.OWNER, Role.EDITOR}),
    "sign_off": frozenset({Role.OWNER, Role.APPROVER}),
    "manage": frozenset({Role.OWNER}),
    # start a health review, log incidents and feedback after go-live
    "review": frozenset({Role.OWNER, Role.EDITOR, Role.APPROVER}),
    # post in comment threads: those who edit or sign off; viewers read the threads
    "comment": frozenset({Role.OWNER, Role.EDITOR, Role.APPROVER}),
}
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def can(role: str | None, capability: str) -> bool:
    return role is not None and role in CAPABILITIES[capability]


ARCHIVED = (
    "This project is archived, so it is read-only. An owner can restore it from the project's "
    "settings page."
)


def membership_for(
    user, project_id: int, capability: str, write: bool = False, archived_ok: bool = False
) -> Membership:
    """The user's membership of the project, if their role has `capability`.

    Http404 for a non-member (the project's existence is not disclosed), PermissionDenied
    naming the role for a member whose role lacks the capability, and PermissionDenied for
    any write to an archived project (unless the view is the one that restores it). The pages
    and the API both answer through this.
    """
    membership = (
        Membership.objects.select_related("project", "user")
        .filter(project_id=project_id, user_id=user.pk)
        .first()
    )
    if membership is None:
        raise Http404("No such project.")
    if not can(membership.role, capability):
        raise PermissionDenied(
            f"Your role ({membership.get_role_display()}) cannot {capability.replace('_', ' ')}"
            " in this project."
        )
    if write and membership.project.archived and not archived_ok:
        raise PermissionDenied(ARCHIVED)
    return membership


def project_access(
    read: str = "view", write: str | None = None, archived_ok: bool = False
) -> Callable:
    """Guard a view taking `project_id`: `read` for safe methods, `write` for the rest.

    Writes to an archived project are refused, except by a view marked `archived_ok`.
    """
    write = write or read
    for capability in (read, write):
        if capability not in CAPABILITIES:
            raise ValueError(f"unknown capability {capability!r}")

    def decorator(view: Callable) -> Callable:
        @wraps(view)
        def wrapper(request: HttpRequest, project_id: int, *args, **kwargs) -> HttpResponse:
            writing = request.method not in SAFE_METHODS
            membership = membership_for(
                request.user, project_id, write if writing else read, writing, archived_ok
            )
            request.project = membership.project
            request.membership = membership
            if writing:
                with write_in_progress():
                    response = view(request, membership.project, *args, **kwargs)
            else:
                response = view(request, membership.project, *args, **kwargs)
            # (A deleted project has no sign-offs left to record.)
            if writing and response.status_code < 400 and membership.project.pk is not None:
                # The write path records which sign-offs the write made stale (pages only
                # read): every edit, import, move and delete of a project passes here.
                after_write(membership.project)
            return response

        wrapper.project_capabilities = (read, write)
        return wrapper

    return decorator
