"""The visual system's rules that a template alone can break: no inline styles (the CSP refuses
them, and they escape the style sheet), and tables whose column headers say they are headers."""

import re
from pathlib import Path

from django.conf import settings

TEMPLATES = Path(settings.BASE_DIR) / "templates"
INLINE_STYLE = re.compile(r"\sstyle\s*=", re.IGNORECASE)
HEADER = re.compile(r"<th\b[^>]*>", re.IGNORECASE)


def templates() -> list[Path]:
    found = sorted(TEMPLATES.rglob("*.html"))
    assert len(found) > 30  # the walk really reads the templates
    return found


def test_no_template_has_an_inline_style_attribute():
    offenders = [
        f"{path.relative_to(TEMPLATES)}:{number}: {line.strip()[:100]}"
        for path in templates()
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if INLINE_STYLE.search(line)
    ]
    assert not offenders, "inline style= (use a class in static/css/app.css):\n" + "\n".join(
        offenders
    )


def test_the_check_catches_an_inline_style():
    assert INLINE_STYLE.search('<p class="x" style="color:red">')
    assert INLINE_STYLE.search("<div\nSTYLE='margin:0'>")
    assert not INLINE_STYLE.search('<link rel="stylesheet" href="app.css">')
    assert not INLINE_STYLE.search("{% include 'a.html' with stylesheet=x %}")


def test_every_header_cell_of_the_app_pages_has_a_scope():
    # The runbook's templates are for the PDF; the app's pages are read by screen readers.
    missing = [
        f"{path.relative_to(TEMPLATES)}: {cell}"
        for path in templates()
        if "runbook" not in path.parts
        for cell in HEADER.findall(path.read_text())
        if "scope=" not in cell
    ]
    assert not missing, missing
