"""Form fields written in Python read exactly as the template they replace did."""

from django import forms
from django.template import engines
from django.template.loader import render_to_string

from planner.templatetags.form_tags import field_html
from tests.every_form import every_form
from tests.factories import UserFactory, portfolio_project

# templates/_field.html as it was before fields were written in Python: the reference.
TEMPLATE_FIELD = """{% if f.widget_type == "checkboxselectmultiple" %}
<fieldset class="field{% if f.errors %} has-error{% endif %}{% if wide %} wide{% endif %}">
  <legend>{{ f.label }}{% if f.field.required %} *{% endif %}</legend>
  {{ f }}
  {% if f.help_text %}<small class="help">{{ f.help_text }}</small>{% endif %}
  {% for e in f.errors %}<span class="error">{{ f.label }}: {{ e }}</span>{% endfor %}
</fieldset>
{% else %}
<label class="field{% if f.errors %} has-error{% endif %}{% if wide %} wide{% endif %}">
  <span>{{ f.label }}{% if f.field.required %} *{% endif %}</span>
  {{ f }}
  {% if f.help_text %}<small class="help">{{ f.help_text }}</small>{% endif %}
  {% for e in f.errors %}<span class="error">{{ f.label }}: {{ e }}</span>{% endfor %}
</label>
{% endif %}
"""


def test_every_field_of_every_form_reads_as_the_template_wrote_it(db):
    reference = engines["django"].from_string(TEMPLATE_FIELD)
    project = portfolio_project(UserFactory())
    kinds = set()
    # unbound, and bound to nothing so required fields carry their errors
    for form in every_form(project) + every_form(project, data={}):
        for f in form.visible_fields():
            for wide in (False, True):
                expected = reference.render({"f": f, "form": form, "wide": wide})
                assert field_html(f, wide) + "\n" == expected, (type(form).__name__, f.name)
                assert render_to_string("_field.html", {"f": f, "wide": wide}) == expected
            kinds.add((f.widget_type, bool(f.errors), bool(f.help_text), f.field.required))
    assert any(widget == "checkboxselectmultiple" for widget, _, _, _ in kinds)
    assert any(errors for _, errors, _, _ in kinds)  # errors were compared
    assert any(helped for _, _, helped, _ in kinds)  # and help texts


def test_a_form_s_fields_read_as_the_include_loop_wrote_them(db):
    loop = engines["django"].from_string(
        '{% for f in form.visible_fields %}{% include "_field.html" %}{% endfor %}'
    )
    tag = engines["django"].from_string("{% load form_tags %}{% form_fields form %}")
    for form in every_form(portfolio_project(UserFactory()), data={}):
        assert tag.render({"form": form}) == loop.render({"form": form})


def test_labels_help_and_errors_are_escaped():
    class Hostile(forms.Form):
        who = forms.CharField(label="<Ada & Bob>", help_text="use <b>bold</b>?")

    f = Hostile(data={})["who"]
    html = field_html(f)
    assert "<span>&lt;Ada &amp; Bob&gt; *</span>" in html
    assert '<small class="help">use &lt;b&gt;bold&lt;/b&gt;?</small>' in html
    assert '<span class="error">&lt;Ada &amp; Bob&gt;: This field is required.</span>' in html
    assert 'class="field has-error"' in html
