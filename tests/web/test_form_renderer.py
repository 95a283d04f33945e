"""The form renderer writes the common widgets in Python: the HTML Django's templates write."""

from django import forms
from django.forms.renderers import DjangoTemplates, get_default_renderer
from hypothesis import given
from hypothesis import strategies as st

from planner.web.form_renderer import FormRenderer
from tests.every_form import every_form
from tests.factories import UserFactory, portfolio_project

FAST = FormRenderer()
TEMPLATES = DjangoTemplates()


def both(widget: forms.Widget, name: str, value, attrs=None) -> tuple[str, str]:
    return (
        widget.render(name, value, attrs, renderer=FAST),
        widget.render(name, value, attrs, renderer=TEMPLATES),
    )


def test_every_form_uses_it():
    assert isinstance(get_default_renderer(), FormRenderer)


def test_every_widget_of_every_form_renders_as_the_templates_render_it(db):
    project = portfolio_project(UserFactory())
    compared = set()
    for form in every_form(project):
        for name, field in form.fields.items():
            widget = field.widget
            choices = [value for value, _ in getattr(field, "choices", [])]
            values = [None, "", "plain", "<b>&\"'", 0, 12, *choices[:3], *choices[-1:]]
            if isinstance(widget, forms.CheckboxSelectMultiple | forms.SelectMultiple):
                values += [choices[:2], choices[-1:]]
            for value in values:
                fast, templates = both(widget, name, value, {"id": f"id_{name}"})
                assert fast == templates, (type(form).__name__, name, value)
            compared.add(type(widget).__name__)
    # the widgets of the step pages' forms, each written in Python
    assert {
        "TextInput",
        "NumberInput",
        "Textarea",
        "Select",
        "DateInput",
        "CheckboxInput",
        "CheckboxSelectMultiple",
        "HiddenInput",
    } <= compared


text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=12)
attr_values = st.one_of(text, st.booleans(), st.integers(-5, 5))
attr_maps = st.dictionaries(st.sampled_from(["class", "placeholder", "min", "data-x"]), attr_values)
choices = st.lists(st.tuples(text, text), max_size=4)
grouped = st.lists(
    st.one_of(st.tuples(text, text), st.tuples(text, choices)), min_size=1, max_size=4
)


@given(
    kind=st.sampled_from(
        [
            forms.TextInput,
            forms.NumberInput,
            forms.EmailInput,
            forms.HiddenInput,
            forms.DateInput,
            forms.PasswordInput,
            forms.Textarea,
            forms.CheckboxInput,
        ]
    ),
    name=text,
    value=st.one_of(st.none(), text, st.integers(), st.booleans()),
    attrs=attr_maps,
)
def test_inputs_and_text_areas_escape_as_the_templates_do(kind, name, value, attrs):
    fast, templates = both(kind(attrs=attrs), name, value, {"id": "id_x"})
    assert fast == templates


@given(
    kind=st.sampled_from(
        [forms.Select, forms.SelectMultiple, forms.CheckboxSelectMultiple, forms.RadioSelect]
    ),
    options=grouped,
    chosen=st.lists(text, max_size=2),
    attrs=attr_maps,
    with_id=st.booleans(),
)
def test_choices_and_groups_render_as_the_templates_render_them(
    kind, options, chosen, attrs, with_id
):
    widget = kind(attrs=attrs, choices=options)
    value = chosen if widget.allow_multiple_selected else (chosen or [None])[0]
    fast, templates = both(widget, "pick", value, {"id": "id_pick"} if with_id else None)
    assert fast == templates


def test_values_are_escaped_and_selected_options_marked():
    widget = forms.Select(choices=[("a&b", "<Ada>"), ("x", 'say "hi"')], attrs={"required": True})
    html, _ = both(widget, "who", "a&b")
    assert '<option value="a&amp;b" selected>&lt;Ada&gt;</option>' in html and " required>" in html
    html, _ = both(forms.Textarea(), "note", "</textarea><script>")
    assert "&lt;/textarea&gt;&lt;script&gt;</textarea>" in html


def test_a_widget_with_its_own_template_keeps_it():
    class Marked(forms.Select):
        option_template_name = "django/forms/widgets/input_option.html"  # not an <option>

    widget = Marked(choices=[("a", "A")])
    fast, templates = both(widget, "pick", "a")
    assert fast == templates and 'type="select"' in fast
    upload = forms.ClearableFileInput()
    fast, templates = both(upload, "file", None)
    assert fast == templates
