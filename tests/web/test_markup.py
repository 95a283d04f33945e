"""`markup.text` writes a value as `{{ value }}` does in a page, and `markup.attrs` as
Django's attrs.html does."""

from datetime import date, datetime
from decimal import Decimal

from django.forms.renderers import DjangoTemplates
from django.template.base import render_value_in_context
from django.template.context import Context
from django.utils.safestring import mark_safe
from django.utils.translation import gettext_lazy
from hypothesis import given
from hypothesis import strategies as st

from planner.web.markup import attrs, text

PAGE = Context(autoescape=True)
values = st.one_of(
    st.text(),
    st.text().map(mark_safe),
    st.integers(),
    st.booleans(),
    st.none(),
    st.decimals(allow_nan=False, allow_infinity=False),
    st.dates(),
    st.floats(allow_nan=False),
)


@given(values)
def test_text_is_what_a_page_writes(value):
    assert text(value) == render_value_in_context(value, PAGE)


def test_text_escapes_strings_and_keeps_safe_html():
    assert (
        text("""<a href="x">'&'</a>""") == "&lt;a href=&quot;x&quot;&gt;&#x27;&amp;&#x27;&lt;/a&gt;"
    )
    assert text(mark_safe("<b>kept</b>")) == "<b>kept</b>"
    assert text(gettext_lazy("Yes")) == "Yes"
    assert text(1234567) == "1234567"
    for value in (Decimal("2.50"), date(2026, 3, 4), datetime(2026, 3, 4, 5, 6)):
        assert text(value) == render_value_in_context(value, PAGE)


ATTRS = DjangoTemplates().get_template("django/forms/widgets/attrs.html")


@given(
    st.dictionaries(
        st.text(min_size=1, max_size=8),
        st.one_of(st.text(), st.text().map(mark_safe), st.booleans(), st.integers()),
        max_size=4,
    )
)
def test_attrs_are_written_as_django_writes_them(values):
    expected = ATTRS.render({"widget": {"attrs": values}})
    assert attrs(values) == expected
