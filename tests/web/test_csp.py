"""The Content Security Policy: every page carries a strict one, and nothing the app serves needs
inline script (or inline style), so an injected <script> or onerror= has nowhere to run."""

import re
from html.parser import HTMLParser
from pathlib import Path

import pytest
from django.urls import reverse

from tests.conftest import HTMX, client_for
from tests.urlwalk import planner_patterns, url_for

ROOT = Path(__file__).resolve().parents[2]
TEMPLATES = ROOT / "templates"

# Rendered only into PDFs by WeasyPrint, never served to a browser: its @page rules must be inline.
PDF_ONLY = {"planner/review_report_print.html"}

STRICT = {
    "default-src": "'self'",
    "script-src": "'self'",
    "style-src": "'self'",
    "img-src": "'self' data:",
    "object-src": "'none'",
    "base-uri": "'self'",
    "frame-ancestors": "'none'",
    "form-action": "'self'",
}


def policy(response) -> dict[str, str]:
    header = response.headers.get("Content-Security-Policy")
    assert header, f"no Content-Security-Policy on {response.request['PATH_INFO']}"
    directives = (part.strip().split(None, 1) for part in header.split(";") if part.strip())
    return {d[0]: d[1] if len(d) > 1 else "" for d in directives}


class InlineCode(HTMLParser):
    """Collect everything in a rendered page that a strict policy would block."""

    def __init__(self):
        super().__init__()
        self.found: list[str] = []

    def handle_starttag(self, tag, attrs):
        names = dict(attrs)
        if tag == "script" and "src" not in names and names.get("type") != "application/json":
            self.found.append(f"inline <script> at line {self.getpos()[0]}")
        if tag == "style" and "nonce" not in names:
            self.found.append(f"<style> without a nonce at line {self.getpos()[0]}")
        for name, value in attrs:
            value = (value or "").strip().lower()
            if name.startswith("on") or name.startswith("hx-on"):
                self.found.append(f"{tag} {name}= at line {self.getpos()[0]}")
            if name == "style":
                self.found.append(f"{tag} style= at line {self.getpos()[0]}")
            if value.startswith("javascript:") or (
                name in ("hx-vals", "hx-vars", "hx-headers") and value.startswith("js:")
            ):
                self.found.append(f"{tag} {name}={value[:20]} at line {self.getpos()[0]}")


def inline_code(html: str) -> list[str]:
    parser = InlineCode()
    parser.feed(html)
    return parser.found


# What a strict script-src (and style-src) refuses, as it appears in a template's source.
TEMPLATE_PATTERNS = {
    "inline <script>": re.compile(r"<script\b(?![^>]*\bsrc=)[^>]*>", re.I),
    "inline event handler": re.compile(r"<[a-z][^>]*\son[a-z]+\s*=", re.I),
    "hx-on handler": re.compile(r"\bhx-on", re.I),
    "javascript: URL": re.compile(r"javascript:", re.I),
    "htmx js: value": re.compile(r"hx-(?:vals|vars|headers)\s*=\s*['\"]\s*js:", re.I),
    "htmx trigger filter (needs eval)": re.compile(r"hx-trigger\s*=\s*['\"][^'\"]*\[", re.I),
    "style= attribute": re.compile(r"<[a-z][^>]*\sstyle\s*=", re.I),
    "<style> without a nonce": re.compile(r"<style\b(?![^>]*\bnonce=)[^>]*>", re.I),
}


def test_the_scanners_catch_what_they_should():
    bad = (
        '<script>alert(1)</script><img src=x onerror="alert(1)"><a href="javascript:x">'
        '<div hx-on:click="x" style="color:red"><style>p{}</style>'
    )
    assert len(inline_code(bad)) == 6
    assert all(p.search(bad) for name, p in TEMPLATE_PATTERNS.items() if "htmx" not in name)
    fine = '<script src="/static/js/app.js" defer></script><style nonce="abc">p{}</style>'
    assert inline_code(fine) == []
    assert not any(p.search(fine) for p in TEMPLATE_PATTERNS.values())


def test_no_template_has_inline_script_handlers_or_styles():
    problems = []
    templates = sorted(TEMPLATES.rglob("*.html"))
    assert len(templates) > 20, f"no templates found under {TEMPLATES}"
    for path in templates:
        name = path.relative_to(TEMPLATES).as_posix()
        text = path.read_text()
        for what, pattern in TEMPLATE_PATTERNS.items():
            if name in PDF_ONLY and what == "<style> without a nonce":
                continue
            for match in pattern.finditer(text):
                line = text.count("\n", 0, match.start()) + 1
                problems.append(f"templates/{name}:{line}: {what}: {match.group(0)[:60]}")
    assert problems == []


def test_the_sign_in_page_carries_the_strict_policy(client):
    response = client.get(reverse("login"))
    assert response.status_code == 200
    assert policy(response) == STRICT
    assert inline_code(response.content.decode()) == []


def test_htmx_is_configured_for_the_policy(client):
    html = client.get(reverse("login")).content.decode()
    # htmx would otherwise inject its indicator <style> and evaluate hx-on / js: values.
    meta = re.search(r'<meta name="htmx-config" content=\'([^\']*)\'>', html)
    assert meta, "no htmx-config meta"
    import json

    config = json.loads(meta.group(1))
    assert config["includeIndicatorStyles"] is False
    assert config["allowEval"] is False
    assert config["allowScriptTags"] is False
    css = (ROOT / "static/css/app.css").read_text()
    assert ".htmx-request .htmx-indicator" in css


@pytest.mark.parametrize("htmx", [False, True], ids=["page", "htmx"])
def test_every_project_page_carries_the_policy_and_no_inline_code(world, htmx):
    client = client_for(world["project"].owner)
    extra = HTMX if htmx else {}
    checked = 0
    for name, pattern in planner_patterns():
        url = url_for(name, pattern, world)
        response = client.get(url, **extra)
        if response.status_code != 200 or not response.get("Content-Type", "").startswith(
            "text/html"
        ):
            continue
        directives = policy(response)
        assert directives["script-src"] == "'self'", name
        assert inline_code(response.content.decode()) == [], name
        if name != "planner:runbook_preview":
            assert directives == STRICT, name
        checked += 1
    assert checked > 25


def test_the_runbook_preview_styles_carry_this_responses_nonce(world):
    client = client_for(world["project"].owner)
    response = client.get(reverse("planner:runbook_preview", args=[world["project"].pk]))
    assert response.status_code == 200
    directives = policy(response)
    nonce = re.fullmatch(r"'self' 'nonce-([A-Za-z0-9_-]{16,})'", directives["style-src"])
    assert nonce, directives["style-src"]
    styles = re.findall(r"<style([^>]*)>", response.content.decode())
    assert styles and all(attrs == f' nonce="{nonce.group(1)}"' for attrs in styles)
    assert directives["script-src"] == "'self'"
    again = client.get(reverse("planner:runbook_preview", args=[world["project"].pk]))
    assert policy(again)["style-src"] != directives["style-src"]


def test_the_api_docs_load_their_own_assets_under_the_policy(client):
    response = client.get("/api/docs")
    assert response.status_code == 200
    assert policy(response) == STRICT
    html = response.content.decode()
    assert "/static/ninja/swagger-ui-bundle.js" in html
    assert "cdn." not in html
    assert inline_code(html) == []


def test_the_admin_carries_the_policy(client):
    response = client.get(reverse("admin:login"))
    assert response.status_code == 200
    assert policy(response) == STRICT
