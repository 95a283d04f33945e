"""A step page's long lists written in Python read exactly as the template loops did."""

from django.template import engines

from planner.checklist.registry import Finding
from planner.templatetags.step_tags import finding_items, service_level_links

HOSTILE = """<script>alert("x")</script> & 'quoted'"""
# The loops of templates/planner/step.html and steps/step1.html before they became tags.
FINDINGS_LOOP = (
    '{% for f in o.findings %}<li>{% if f.href %}<a href="{{ f.href }}">{{ f.text }}</a>'
    "{% else %}{{ f.text }}{% endif %}</li>{% endfor %}"
)
LINKS_LOOP = (
    '{% for item in items %}<a href="{{ item.service_level_url }}">{{ item.obj.metric }}</a>'
    "{% if not forloop.last %} · {% endif %}{% endfor %}"
)


class Criterion:
    def __init__(self, metric: str) -> None:
        self.metric = metric


def test_findings_read_as_the_loop_wrote_them():
    findings = [
        Finding("plain"),
        Finding(HOSTILE, anchor="criterion-7"),
        Finding("elsewhere", url="/projects/1/steps/2/?a=1&b=2"),
        Finding("both", anchor="x", url="/p/"),
    ]
    expected = engines["django"].from_string(FINDINGS_LOOP).render({"o": {"findings": findings}})
    assert finding_items(findings) == expected
    assert '<li><a href="#criterion-7">&lt;script&gt;' in expected
    assert finding_items([]) == ""


def test_service_level_links_read_as_the_loop_wrote_them():
    loop = engines["django"].from_string(LINKS_LOOP)
    for count in (0, 1, 3):
        items = [
            {"obj": Criterion(f"{HOSTILE} {i}"), "service_level_url": f"/p/1/c/{i}/?x&y"}
            for i in range(count)
        ]
        assert service_level_links(items) == loop.render({"items": items})
    assert " · " in service_level_links(items) and "&amp;y" in service_level_links(items)
