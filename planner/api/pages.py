"""The user's API tokens page: create (shown once) and revoke.

Every POST redirects, so refreshing the page never creates a second token. The new token
crosses the redirect in the server-side session (never a cookie: it is a secret) and is
popped by the next page, so it is shown exactly once.
"""

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render

from planner.api.tokens import create_token, revoke
from planner.models import ApiToken

NEW_TOKEN_KEY = "api_tokens_new_token"  # noqa: S105 - a session key name, not a secret


def api_tokens(request: HttpRequest) -> HttpResponse:
    if request.method == "POST":
        if token_id := request.POST.get("revoke"):
            if token_id.isdigit() and revoke(request.user, int(token_id)):
                messages.success(request, "Token revoked: it no longer works.")
            else:
                messages.error(request, "No such active token.")
            return redirect("planner:api_tokens")
        name = request.POST.get("name", "").strip()
        if not name:
            messages.error(request, "Token name: give the token a name (e.g. 'CI deploy gate').")
        elif len(name) > 100:
            messages.error(request, "Token name: at most 100 characters.")
        else:
            token, raw = create_token(request.user, name)
            request.session[NEW_TOKEN_KEY] = raw
            messages.success(request, f"Created '{token.name}'. Copy it now: it is shown once.")
            return redirect("planner:api_tokens")
    new_token = request.session.pop(NEW_TOKEN_KEY, None) if request.method == "GET" else None
    tokens = ApiToken.objects.filter(user=request.user)
    return render(request, "planner/api_tokens.html", {"tokens": tokens, "new_token": new_token})
