"""The user's API tokens page: create (shown once) and revoke."""

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render

from planner.api.tokens import create_token, revoke
from planner.models import ApiToken


def api_tokens(request: HttpRequest) -> HttpResponse:
    new_token = None
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
            token, new_token = create_token(request.user, name)
            messages.success(request, f"Created '{token.name}'. Copy it now: it is shown once.")
    tokens = ApiToken.objects.filter(user=request.user)
    return render(request, "planner/api_tokens.html", {"tokens": tokens, "new_token": new_token})
