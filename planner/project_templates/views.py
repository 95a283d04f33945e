"""Pages: start a project from a template; save a project as one (owners)."""

from django import forms
from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from planner.models import IntegrationProject
from planner.project_templates import service
from planner.project_templates.snapshot import SnapshotError
from planner.web.permissions import project_access


class FromTemplateForm(forms.Form):
    source = forms.ChoiceField(label="Start from", widget=forms.RadioSelect)
    name = forms.CharField(label="Name of the new project", max_length=200)

    def __init__(self, *args, sources: list[service.Source], **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["source"].choices = [(s.value, s.title) for s in sources]


def project_from_template(request: HttpRequest) -> HttpResponse:
    sources = service.sources_for(request.user)
    form = FromTemplateForm(
        request.POST or None, sources=sources, initial={"source": request.GET.get("source")}
    )
    if request.method == "POST" and form.is_valid():
        try:
            project = service.create_from_template(
                request.user, form.cleaned_data["source"], form.cleaned_data["name"]
            )
        except (service.TemplateNotFound, SnapshotError) as refusal:
            form.add_error("source", str(refusal))
        else:
            messages.success(
                request, f"Created '{project}' from the template. Adapt it to this integration."
            )
            return redirect("planner:overview", project_id=project.pk)
    groups = {
        kind: [s for s in sources if s.kind == kind] for kind in ("built-in", "saved", "project")
    }
    return render(request, "planner/project_from_template.html", {"form": form, "groups": groups})


@project_access("manage")
@require_POST
def template_save(request: HttpRequest, project: IntegrationProject) -> HttpResponse:
    template = service.save_as_template(project, request.user, request.POST.get("name", ""))
    messages.success(
        request, f"Saved '{template.name}' as a template: start a new project from it any time."
    )
    return redirect("planner:settings", project_id=project.pk)
