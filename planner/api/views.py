"""API endpoints: thin wrappers over the same functions the pages call."""

import json
from datetime import datetime
from typing import Literal

from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.utils.text import slugify
from ninja import Field, File, Form, NinjaAPI, Schema, Status
from ninja.errors import HttpError
from ninja.files import UploadedFile
from ninja.security import HttpBearer

from planner.checklist import golive
from planner.checklist.standing import after_write
from planner.metrics import figures as kpis
from planner.runbook import service as runbook
from planner.runs import partition_progress as partitions
from planner.runs.service import RunRefused, start_validation_run
from planner.steps.mapping.files import (
    CONTENT_TYPES,
    MAX_UPLOAD,
    apply_import,
    chosen_meaning_problem,
    export_response,
    plan_import,
    read_upload,
)
from planner.web.permissions import membership_for

from ..mapping.spreadsheet import (
    SpreadsheetError,
    match_columns,
)
from ..mapping.vocabulary import MEANINGS, value_key
from ..models import (
    Connection,
    IntegrationProject,
    Membership,
    RunKind,
    ValidationRun,
)
from .tokens import user_for


class BearerToken(HttpBearer):
    def authenticate(self, request: HttpRequest, token: str):
        user = user_for(token)
        if user is not None:
            request.user = user
        return user


api = NinjaAPI(
    title="Aethon API",
    version="1",
    description="Integration readiness for CI pipelines. Authenticate with `Authorization: "
    "Bearer <token>` (create tokens on the API tokens page).",
    auth=BearerToken(),
    urls_namespace="api",
)


class Error(Schema):
    detail: str


def _access(request: HttpRequest, project_id: int, capability: str = "view") -> IntegrationProject:
    """The same check as the pages' project_access, answered as API errors."""
    try:
        writing = request.method not in ("GET", "HEAD", "OPTIONS")
        return membership_for(request.user, project_id, capability, write=writing).project
    except Http404:
        raise HttpError(404, "No such project.") from None
    except PermissionDenied as exc:
        raise HttpError(403, str(exc)) from None


def _one(queryset, what: str):
    found = queryset.first()
    if found is None:
        raise HttpError(404, f"No such {what} in this project.")
    return found


def _connection(project: IntegrationProject, connection_id: int) -> Connection:
    connections = Connection.objects.select_related("source", "target")
    return _one(connections.filter(project=project, pk=connection_id), "connection")


def _run(project: IntegrationProject, run_id: int) -> ValidationRun:
    runs = ValidationRun.objects.select_related("connection__source", "connection__target")
    return _one(runs.filter(project=project, pk=run_id), "validation run")


# ---------------------------------------------------------------------------------------------
# Schemas


class ProjectOut(Schema):
    id: int
    name: str
    role: str
    readiness_percent: int
    ready: bool
    live: bool


class ReasonOut(Schema):
    kind: str
    text: str
    href: str
    step: int | None = None


class VerdictOut(Schema):
    project_id: int
    ready: bool
    percent: int
    live: bool
    live_since: datetime | None = None
    reasons: list[ReasonOut]


class StageOut(Schema):
    name: str
    status: str
    error: str
    figures: dict


class RunOut(Schema):
    id: int = Field(description="Names the run in URLs.")
    number: int = Field(description="The run's number within its project, as pages show it.")
    project_id: int
    connection_id: int
    connection: str
    kind: str
    status: str
    stage: str
    percent: int | None = None
    records_done: int
    records_total: int | None = None
    created_at: datetime
    finished_at: datetime | None = None
    error: str
    summary: dict
    max_differences: int | None = None
    sample_percent: int | None = None


class PartitionOut(Schema):
    number: int = Field(description="1 for the range of the lowest keys.")
    keys: str = Field(description="The range of keys, in words.")
    status: str = Field(description="queued, running, done, or stopped (the run ended first).")
    records_done: int = Field(description="Rows read by the range's current attempt.")
    attempt: int = Field(description="How often a worker took it (more: a worker was lost).")
    worker: str
    error: str = Field(description="Why an earlier attempt was lost.")


class RunDetailOut(RunOut):
    # A large run on SQL systems is split into key ranges that workers compare in parallel.
    partitions: list[PartitionOut] = []


class FigureOut(Schema):
    key: str
    label: str
    value: float
    unit: str


class RunResultsOut(RunDetailOut):
    stages: list[StageOut]
    figures: list[FigureOut]
    # A sampled run: keys compared, mismatch rate and its 95 % Wilson interval.
    sample_estimate: dict | None = None
    # Per compared column: the share of matched keys whose value differs (%).
    column_mismatch_pct: dict[str, float] = {}


class ImportedInto(Schema):
    connection_id: int
    source: str
    target: str
    imported: int
    created: bool


class ImportOut(Schema):
    imported: int
    mode: str
    connections: list[ImportedInto]


class UnknownValueOut(Schema):
    column: str
    field: str
    value: str
    rows: list[int]
    choices: list[str]


class ImportErrorOut(Schema):
    detail: str
    problems: list[str]
    unknown_values: list[UnknownValueOut] = []
    unknown_connections: list[str] = []


def _run_out(run: ValidationRun) -> dict:
    return {
        "id": run.pk,
        "number": run.number,
        "project_id": run.project_id,
        "connection_id": run.connection_id,
        "connection": str(run.connection),
        "kind": run.kind,
        "status": run.status,
        "stage": run.stage,
        "percent": run.percent,
        "records_done": run.records_done,
        "records_total": run.records_total,
        "created_at": run.created_at,
        "finished_at": run.finished_at,
        "error": run.error,
        "summary": run.summary,
        "max_differences": run.max_differences,
        "sample_percent": run.sample_percent,
    }


# ---------------------------------------------------------------------------------------------
# Endpoints


@api.get("/projects", response=list[ProjectOut], summary="Projects you are a member of")
def list_projects(request):
    out = []
    memberships = list(Membership.objects.filter(user=request.user).select_related("project"))
    standings = golive.standings([m.project for m in memberships])
    for m in memberships:
        v = standings[m.project_id]
        out.append(
            {
                "id": m.project_id,
                "name": m.project.name,
                "role": m.role,
                "readiness_percent": v.percent,
                "ready": v.ready,
                "live": v.live is not None,
            }
        )
    return out


@api.get(
    "/projects/{project_id}/verdict",
    response={200: VerdictOut, 403: Error, 404: Error},
    summary="Readiness and the go-live verdict, with every blocking reason",
)
def verdict(request, project_id: int):
    project = _access(request, project_id)
    v = golive.verdict(project)
    base = request.build_absolute_uri("/")[:-1]
    return {
        "project_id": project.pk,
        "ready": v.ready,
        "percent": v.percent,
        "live": v.live is not None,
        "live_since": v.live.created_at if v.live else None,
        "reasons": [
            {"kind": r.kind, "text": r.text, "href": base + r.href, "step": r.step}
            for r in v.reasons
        ],
    }


@api.post(
    "/projects/{project_id}/connections/{connection_id}/runs",
    response={202: RunOut, 400: Error, 403: Error, 404: Error},
    summary="Start a validation (or parallel) run of a connection",
)
def start_run(
    request,
    project_id: int,
    connection_id: int,
    kind: Literal["validation", "parallel"] = RunKind.VALIDATION.value,
    max_differences: int | None = None,
    sample_percent: int | None = None,
):
    project = _access(request, project_id, "edit")
    connection = _connection(project, connection_id)
    try:
        run = start_validation_run(
            connection,
            request.user,
            kind,
            ValidationRun.Trigger.API,
            max_differences=max_differences,
            sample_percent=sample_percent,
        )
    except RunRefused as exc:
        raise HttpError(400, str(exc)) from None
    return Status(202, _run_out(run))


@api.get(
    "/projects/{project_id}/runs/{run_id}",
    response={200: RunDetailOut, 403: Error, 404: Error},
    summary="Poll a run: status and progress",
)
def get_run(request, project_id: int, run_id: int):
    run = _run(_access(request, project_id), run_id)
    return {**_run_out(run), "partitions": partitions.progress_of(run)}


@api.get(
    "/projects/{project_id}/runs/{run_id}/results",
    response={200: RunResultsOut, 403: Error, 404: Error},
    summary="A run's results: every stage with its figures",
)
def run_results(request, project_id: int, run_id: int):
    run = _run(_access(request, project_id), run_id)
    all_stages = list(run.stages.all())
    stages = [
        {"name": s.name, "status": s.status, "error": s.error, "figures": s.figures}
        for s in all_stages
    ]
    # The figures by their one definition (planner/metrics), as the run page shows them.
    figures = [
        {"key": key, "label": kpis.LABELS[key][0], "value": value, "unit": kpis.unit_of(key)}
        for key, value in kpis.of_run(run, all_stages).items()
    ]
    compared = next(
        (s.figures for s in all_stages if s.name in ("reconciliation", "parallel") and s.figures),
        {},
    )
    return {
        **_run_out(run),
        "partitions": partitions.progress_of(run),
        "stages": stages,
        "figures": figures,
        "sample_estimate": kpis.sample_estimate(compared),
        "column_mismatch_pct": kpis.column_mismatch_pct(compared),
    }


@api.get(
    "/projects/{project_id}/connections/{connection_id}/mapping",
    response={200: None, 400: Error, 403: Error, 404: Error},
    summary="Export a connection's mapping (CSV or XLSX)",
    openapi_extra={
        "responses": {
            200: {
                "description": "The mapping spreadsheet",
                "content": {CONTENT_TYPES["csv"]: {}, CONTENT_TYPES["xlsx"]: {}},
            }
        }
    },
)
def export_mapping(
    request, project_id: int, connection_id: int, fmt: Literal["csv", "xlsx"] = "csv"
):
    project = _access(request, project_id)
    connection = _connection(project, connection_id)
    try:
        return export_response(connection, fmt)
    except SpreadsheetError as exc:
        return Status(400, {"detail": f"fmt: the mapping cannot be exported as {fmt}: {exc}"})


@api.post(
    "/projects/{project_id}/connections/{connection_id}/mapping",
    response={200: ImportOut, 400: ImportErrorOut, 403: Error, 404: Error},
    summary="Import a mapping spreadsheet: all rows or none",
)
def import_mapping(
    request,
    project_id: int,
    connection_id: int,
    file: File[UploadedFile],
    mode: Form[Literal["append", "replace"]] = "append",
    values: Form[str] = "",
    create_connections: Form[bool] = False,
):
    """The same checks as the page's preview and confirm. `values` is a JSON object that says
    what unknown values mean, e.g. {"frequency": {"every fortnight": "weekly"}}; the choices are
    remembered for the project. Rows with Source System / Target System go to that connection;
    a pair the project lacks is created only with create_connections=true."""
    project = _access(request, project_id, "edit")
    connection = _connection(project, connection_id)
    if file.size > MAX_UPLOAD:
        return Status(400, {"detail": "file: larger than 1.5 MB.", "problems": []})
    meanings, problems = _meanings(values)
    if problems:
        return Status(400, {"detail": "values: " + " ".join(problems), "problems": problems})
    replace = mode == "replace"
    plan = None
    try:
        sheet = read_upload(file.read(), file.name or "upload.csv")
        plan = plan_import(
            connection, sheet, match_columns(sheet.headers), replace=replace, meanings=meanings
        )
        done = apply_import(
            connection,
            plan,
            replace=replace,
            create_connections=create_connections,
            remember=meanings,
            user=request.user,
        )
        after_write(project)  # the write path records what it made stale
    except SpreadsheetError as exc:
        return Status(
            400,
            {
                "detail": "file: the spreadsheet has problems; nothing was imported.",
                "problems": [str(p) for p in exc.problems],
                "unknown_values": [
                    {
                        "column": u.header,
                        "field": u.field,
                        "value": u.text,
                        "rows": list(u.rows),
                        "choices": list(MEANINGS[u.field]),
                    }
                    for u in (plan.unknown if plan else [])
                ],
                "unknown_connections": [r.label for r in (plan.new_pairs if plan else [])],
            },
        )
    return {
        "imported": sum(count for _, count, _ in done),
        "mode": mode,
        "connections": [
            {
                "connection_id": c.pk,
                "source": c.source.name,
                "target": c.target.name,
                "imported": count,
                "created": created,
            }
            for c, count, created in done
        ],
    }


def _meanings(values: str) -> tuple[dict, list[str]]:
    if not values.strip():
        return {}, []
    try:
        given = json.loads(values)
    except ValueError as exc:
        return {}, [f"not JSON ({exc})."]
    if not isinstance(given, dict) or not all(isinstance(v, dict) for v in given.values()):
        return {}, ['give an object like {"frequency": {"every fortnight": "weekly"}}.']
    meanings, problems = {}, []
    for field, chosen in given.items():
        for text, word in chosen.items():
            problem = chosen_meaning_problem(field, str(word))
            if problem:
                problems.append(f"{field} '{text}': {problem}")
            else:
                meanings[field, value_key(str(text))] = str(word)
    return meanings, problems


@api.get(
    "/projects/{project_id}/runbook.pdf",
    response={200: None, 403: Error, 404: Error},
    summary="Download the runbook as PDF",
    openapi_extra={
        "responses": {200: {"description": "The runbook", "content": {"application/pdf": {}}}}
    },
)
def download_runbook(request, project_id: int):
    project = _access(request, project_id)
    pdf, _pages, version = runbook.render_pdf(project)
    response = HttpResponse(pdf, content_type="application/pdf")
    response["Content-Disposition"] = f'attachment; filename="{slugify(project.name)}-runbook.pdf"'
    response["X-Aethon-Version"] = version
    return response
