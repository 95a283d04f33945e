"""Assigning work, threads, "My work" and notifications.

Project pages go through `project_access`; the account pages (My work, notifications,
preferences) show only the signed-in user's own rows, within the projects they belong to.
"""

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST

from planner.checklist.signoff import request_signoff
from planner.collaboration.forms import AssignForm, CommentForm, PreferenceForm, ResolveForm
from planner.models import Assignment, Comment, IntegrationProject
from planner.notify import service as inbox
from planner.teamwork import assignments, comments
from planner.teamwork.assignments import AssignmentRefused
from planner.teamwork.comments import CommentRefused, Thread
from planner.web.common import project_context
from planner.web.permissions import can, project_access


def _back(request: HttpRequest, default: str) -> str:
    target = request.POST.get("next") or request.GET.get("next") or ""
    if target and url_has_allowed_host_and_scheme(target, {request.get_host()}):
        return target
    return default


# ---------------------------------------------------------------------------------------------
# Assignments


@project_access("edit")
def assign(request: HttpRequest, project: IntegrationProject, work: str, ref: int) -> HttpResponse:
    item = assignments.work_item(project, work, ref)
    current = assignments.current(item)
    members = list(assignments.assignable_members(project, item.kind))
    initial = {"assignee": current.assignee_id, "due_date": current.due_date} if current else {}
    form = AssignForm(request.POST or None, members=members, kind=item.kind, initial=initial)
    if request.method == "POST" and form.is_valid():
        try:
            saved = assignments.assign(
                item, form.cleaned_data["assignee"], form.cleaned_data["due_date"], request.user
            )
        except AssignmentRefused as refused:
            form.add_error(refused.field, str(refused))
        else:
            note = f"{item.title}: assigned to {saved.assignee}." if saved else "Unassigned."
            messages.success(request, note)
            return redirect(_back(request, item.url))
    ctx = project_context(request, project)
    ctx.update(item=item, form=form, current=current, next=_back(request, item.url))
    status = 400 if request.method == "POST" else 200
    return render(request, "collaboration/assign.html", ctx, status=status)


@project_access("view", write="review")
def assignment_done(request: HttpRequest, project: IntegrationProject, pk: int) -> HttpResponse:
    """The assignee (or an editor) marks the work done, or not done again."""
    assignment = get_object_or_404(Assignment, project=project, pk=pk)
    if request.method != "POST":
        return redirect("planner:my_work")
    if assignment.assignee_id != request.user.pk and not can(request.membership.role, "edit"):
        raise PermissionDenied("Only the assignee or an editor can mark this work done.")
    done = request.POST.get("done", "1") == "1"
    assignments.mark_done(assignment, done)
    messages.success(request, "Marked done." if done else "Marked not done.")
    return redirect(_back(request, reverse("planner:my_work")))


def my_work(request: HttpRequest) -> HttpResponse:
    """What is assigned to me across my projects, overdue first."""
    return render(
        request, "collaboration/my_work.html", {"work": assignments.open_work(request.user)}
    )


# ---------------------------------------------------------------------------------------------
# Comment threads


@project_access("view", write="comment")
def step_comments(request: HttpRequest, project: IntegrationProject, number: int) -> HttpResponse:
    return _thread_page(request, comments.step_thread(project, number))


@project_access("view", write="comment")
def mapping_comments(request: HttpRequest, project: IntegrationProject, pk: int) -> HttpResponse:
    return _thread_page(request, comments.mapping_thread(project, pk))


def _thread_of(comment: Comment) -> Thread:
    if comment.mapping_id:
        return Thread(comment.project, step=2, mapping=comment.mapping)
    return Thread(comment.project, step=comment.step)


def _thread_page(request: HttpRequest, thread: Thread, form=None, status: int = 200):
    if request.method == "POST" and form is None:
        form = CommentForm(request.POST)
        if form.is_valid():
            try:
                made = comments.post(thread, request.user, form.cleaned_data["body"])
            except CommentRefused as refused:
                form.add_error(refused.field, str(refused))
            else:
                messages.success(request, "Comment posted.")
                return redirect(f"{thread.url}#comment-{made.pk}")
        status = 400
    ctx = project_context(request, thread.project)
    choices = comments.change_choices(thread)
    ctx.update(
        thread=thread,
        comments=list(thread.comments()),
        form=form or CommentForm(),
        resolve_form=ResolveForm(choices=choices),
        can_comment=comments.can_comment(request.membership.role),
    )
    return render(request, "collaboration/thread.html", ctx, status=status)


@project_access("view", write="comment")
def comment_edit(request: HttpRequest, project: IntegrationProject, pk: int) -> HttpResponse:
    comment = get_object_or_404(Comment.objects.select_related("mapping"), project=project, pk=pk)
    thread = _thread_of(comment)
    if request.method != "POST":
        return redirect(f"{thread.url}#comment-{comment.pk}")
    if comment.author_id != request.user.pk:
        raise PermissionDenied("Only its author can edit a comment.")
    form = CommentForm(request.POST)
    if form.is_valid():
        try:
            comments.edit(thread, comment, request.user, form.cleaned_data["body"])
        except CommentRefused as refused:
            form.add_error(refused.field, str(refused))
        else:
            messages.success(request, "Comment saved.")
            return redirect(f"{thread.url}#comment-{comment.pk}")
    return _thread_page(request, thread, form=form, status=400)


@project_access("view", write="comment")
def comment_resolve(request: HttpRequest, project: IntegrationProject, pk: int) -> HttpResponse:
    comment = get_object_or_404(Comment.objects.select_related("mapping"), project=project, pk=pk)
    thread = _thread_of(comment)
    if request.method != "POST":
        return redirect(f"{thread.url}#comment-{comment.pk}")
    if request.POST.get("reopen"):
        comments.reopen(comment)
        messages.success(request, "Comment reopened.")
        return redirect(f"{thread.url}#comment-{comment.pk}")
    form = ResolveForm(request.POST, choices=comments.change_choices(thread))
    if form.is_valid():
        try:
            comments.resolve(thread, comment, request.user, form.cleaned_data["change"])
        except CommentRefused as refused:
            messages.error(request, f"Resolved with a change: {refused}")
        else:
            messages.success(request, "Comment resolved.")
    else:
        messages.error(request, "Resolved with a change: choose one of the listed changes.")
    return redirect(f"{thread.url}#comment-{comment.pk}")


@project_access("view")
def mention_suggest(request: HttpRequest, project: IntegrationProject) -> HttpResponse:
    """The members matching the @word being typed at the end of the comment (htmx)."""
    text = request.GET.get("body", "")
    word = text.rsplit(None, 1)[-1] if text.strip() and not text[-1].isspace() else ""
    people = []
    if word.startswith("@"):
        people = comments.mention_candidates(project, word[1:])
    return render(request, "collaboration/_mentions.html", {"people": people, "word": word})


@project_access("view", write="edit")
def signoff_ask(request: HttpRequest, project: IntegrationProject, number: int) -> HttpResponse:
    """Ask the members whose role signs the step to sign it off."""
    thread = comments.step_thread(project, number)  # 404 for a step that does not exist
    if request.method == "POST":
        told = request_signoff(project, number, request.user, request.POST.get("note", ""))
        messages.success(
            request,
            f"Asked {len(told)} member(s) to sign off step {number}."
            if told
            else "Nobody else in this project can sign off this step: add an approver first.",
        )
    return redirect(reverse("planner:step", args=[project.pk, thread.step]))


# ---------------------------------------------------------------------------------------------
# Notifications


def notifications(request: HttpRequest) -> HttpResponse:
    page = Paginator(inbox.visible(request.user).select_related("project"), 50).get_page(
        request.GET.get("page")
    )
    return render(
        request,
        "collaboration/notifications.html",
        {"page": page, "unread": inbox.unread_count(request.user)},
    )


@require_POST
def notifications_read(request: HttpRequest) -> HttpResponse:
    which = request.POST.get("notification")
    inbox.mark_read(request.user, int(which) if which and which.isdigit() else None)
    return redirect(_back(request, reverse("planner:notifications")))


def notifications_bell(request: HttpRequest) -> HttpResponse:
    return render(request, "collaboration/_bell.html", {"unread": inbox.unread_count(request.user)})


def notification_settings(request: HttpRequest) -> HttpResponse:
    pref = inbox.preference_of(request.user)
    form = PreferenceForm(request.POST or None, instance=pref)
    if request.method == "POST" and form.is_valid():
        form.save()
        messages.success(request, "Notification settings saved.")
        return redirect("planner:notification_settings")
    return render(request, "collaboration/settings.html", {"form": form})
