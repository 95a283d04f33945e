"""The one way a project is started from a template, for the page and the API alike.

A source is named `builtin:<key>`, `template:<id>` (a saved template) or `project:<id>` (an
existing project). The user must be able to see it: a project they are a member of, a saved
template they made or whose source project they are a member of. Anything else is "not
found", whether or not it exists.
"""

from dataclasses import dataclass

from django.db.models import Q

from planner.models import IntegrationProject, Membership, ProjectTemplate
from planner.project_templates import snapshot
from planner.project_templates.builtin import BUILT_IN


class TemplateNotFound(LookupError):
    pass


@dataclass(frozen=True)
class Source:
    value: str  # what a form or the API sends
    kind: str  # built-in, saved, project
    title: str
    description: str


def visible_templates(user):
    mine = Membership.objects.filter(user=user).values("project_id")
    return ProjectTemplate.objects.filter(Q(created_by=user) | Q(source_id__in=mine))


def sources_for(user) -> list[Source]:
    found = [
        Source(f"builtin:{b.key}", "built-in", b.title, b.description) for b in BUILT_IN.values()
    ]
    for t in visible_templates(user):
        found.append(Source(f"template:{t.pk}", "saved", t.name, t.description))
    for m in Membership.objects.filter(user=user).select_related("project"):
        p = m.project
        found.append(Source(f"project:{p.pk}", "project", p.name, p.business_problem))
    return found


def snapshot_of(user, source: str) -> dict:
    kind, _, key = source.partition(":")
    if kind == "builtin" and key in BUILT_IN:
        return BUILT_IN[key].snapshot
    if key.isdigit():
        if kind == "template":
            template = visible_templates(user).filter(pk=int(key)).first()
            if template is not None:
                return template.snapshot
        if kind == "project" and Membership.objects.filter(user=user, project_id=int(key)).exists():
            return snapshot.take(IntegrationProject.objects.get(pk=int(key)))
    raise TemplateNotFound(f"No template '{source}' you can use.")


def create_from_template(
    user, source: str, name: str, business_problem: str = ""
) -> IntegrationProject:
    """A new project owned by `user` with the source's plan; nothing of its runs or people."""
    return snapshot.instantiate(snapshot_of(user, source), name.strip(), user, business_problem)


def save_as_template(
    project: IntegrationProject, user, name: str, description: str = ""
) -> ProjectTemplate:
    return ProjectTemplate.objects.create(
        name=name.strip() or project.name,
        description=description or project.business_problem,
        source=project,
        created_by=user,
        snapshot=snapshot.take(project),
    )
