"""The rule language: parsing, error positions, checking and the canonical printer."""

from decimal import Decimal

import pytest

from planner.mapping.rules import (
    TRANSFORMS,
    Call,
    FieldRef,
    Pipeline,
    RuleError,
    Star,
    check,
    format_rule,
    output_type,
    parse,
)
from planner.mapping.transforms import ValueType

# --- parsing ------------------------------------------------------------------------


def test_crm_status_rule_parses_to_the_expected_ast():
    p = parse("trim | lower | map(active=1, inactive=0, *=reject)")
    assert p == Pipeline(
        (
            Call("trim"),
            Call("lower"),
            Call("map", (), (("active", 1), ("inactive", 0), (Star(), FieldRef("reject")))),
        )
    )


@pytest.mark.parametrize(
    ("rule", "expected"),
    [
        ("identity", Call("identity")),
        ("trim()", Call("trim")),
        ('replace("-", "")', Call("replace", ("-", ""))),
        ("substr(0, 5)", Call("substr", (0, 5))),
        ('split(" ", -1)', Call("split", (" ", -1))),
        (
            'concat(first_name, " ", last_name)',
            Call("concat", (FieldRef("first_name"), " ", FieldRef("last_name"))),
        ),
        ('default("")', Call("default", ("",))),
        ("default(0.50)", Call("default", (Decimal("0.50"),))),
        ("number(2)", Call("number", (2,))),
        ("integer", Call("integer")),
        ("boolean", Call("boolean")),
        ('date("%Y-%m-%d")', Call("date", ("%Y-%m-%d",))),
        ('datetime("%d/%m/%Y %H:%M")', Call("datetime", ("%d/%m/%Y %H:%M",))),
        ("epoch", Call("epoch")),
        ('format_date("%d.%m.%Y")', Call("format_date", ("%d.%m.%Y",))),
        ('currency("EUR", "USD", rate)', Call("currency", ("EUR", "USD", FieldRef("rate")))),
        ('currency("EUR", "USD", 1.0850)', Call("currency", ("EUR", "USD", Decimal("1.085")))),
        ("max_length(80)", Call("max_length", (80,))),
        ('regex("^[^@]+@[^@]+$")', Call("regex", ("^[^@]+@[^@]+$",))),
        ("reject_if_empty", Call("reject_if_empty")),
        (
            'map("on hold"=2, 1=true, *=null)',
            Call("map", (), (("on hold", 2), (1, True), (Star(), None))),
        ),
        ("map(a=x, *=keep)", Call("map", (), (("a", FieldRef("x")), (Star(), FieldRef("keep"))))),
    ],
)
def test_every_transform_parses(rule, expected):
    assert parse(rule) == Pipeline((expected,))


def test_literal_types_are_kept_apart():
    (call,) = parse('f("1", 1, 1.0, true, false, null, x, `first name`)').steps
    assert [type(a) for a in call.args] == [
        str,
        int,
        Decimal,
        bool,
        bool,
        type(None),
        FieldRef,
        FieldRef,
    ]
    assert call.args[7] == FieldRef("first name")


def test_string_escapes():
    (call,) = parse(r'f("a\"b", "c\\d", "e\nf", "\u00e9", "\d+")').steps
    assert call.args == ('a"b', "c\\d", "e\nf", "é", "\\d+")  # unknown escapes stay verbatim


@pytest.mark.parametrize("text", ["", "   ", "\n\t"])
def test_empty_rule_is_the_empty_pipeline(text):
    assert parse(text) == Pipeline(())
    assert check(text) == []


def test_positions_are_not_part_of_equality_but_are_recorded():
    a, b = parse("trim|lower"), parse("  trim  |  lower ")
    assert a == b
    assert [c.pos for c in b.steps] == [2, 11]


def test_every_catalogue_example_is_a_clean_rule():
    for spec in TRANSFORMS.values():
        assert check(spec.example) == [], spec.name
        assert spec.name in spec.signature and spec.description and spec.example_output


# --- error positions --------------------------------------------------------------


def only_error(rule: str, fields=None, **kw) -> RuleError:
    errors = check(rule, fields, **kw)
    assert len(errors) == 1, errors
    return errors[0]


def test_unknown_transform_points_at_it_and_suggests():
    e = only_error("trim | lowr")
    assert (e.position, e.length) == (7, 4)
    assert e.message == "unknown transform 'lowr' (did you mean 'lower'?)"
    assert str(e) == "col 8: unknown transform 'lowr' (did you mean 'lower'?)"
    assert isinstance(e, ValueError)


@pytest.mark.parametrize(
    ("rule", "position", "length", "message"),
    [
        ('default("abc', 8, 4, "unclosed string"),
        ('replace("a")', 11, 1, "missing argument 'new'"),
        ('replace("a", )', 13, 1, "missing argument before ')'"),
        ("max_length()", 11, 1, "missing argument 'n'"),
        ("max_length", 0, 10, "missing argument 'n'"),
        ("number(2", 6, 1, "missing ')' to close 'number(' opened at character 1"),
        ("trim |", 5, 1, "expected a transform after '|'"),
        ("trim lower", 5, 5, "expected '|' before 'lower'"),
        ("| trim", 0, 1, "expected a transform name"),
        ("default(*)", 8, 1, "only allowed as a map key"),
        ("trim(1)", 5, 1, "takes at most 0 arguments"),
        ('max_length("80")', 11, 4, "must be a whole number"),
        ("substr(1x, 2)", 7, 2, "malformed number"),
        ("number(12)", 7, 2, "at most 9"),
        ("substr(-1)", 7, 2, "at least 0"),
        ('split("", 0)', 6, 2, "must not be empty"),
        ("map(1)", 4, 1, "key=value pairs"),
        ("map(*=keep)", 10, 1, "at least one key=value"),
        ("map(a=1, a=2)", 9, 1, "appears twice"),
        ("map(a=1, *=maybe)", 11, 5, "reject, keep or a literal"),
        ('map(a=1, b="x")', 11, 3, "must all be text, all numbers or all true/false"),
        ('trim | default("x") | integer | default("x")', 40, 3, "'x' is not a valid integer"),
        ("boolean | epoch", 10, 5, "needs a date or datetime, but the value is boolean"),
        ('trim | concat(a, "b")', 7, 6, "put it first"),
        ("f(a=1, 2)", 7, 1, "positional argument after named"),
        ("trim | 'x'", 7, 1, "unexpected character"),
        ("concat(`a", 7, 2, "unclosed `field name`"),
    ],
)
def test_errors_point_at_the_bad_token(rule, position, length, message):
    errors = check(rule)
    assert errors, rule
    e = errors[0]
    assert message in e.message, e
    assert (e.position, e.length) == (position, length), (rule, e)
    assert 0 <= e.position <= len(rule)


def test_bad_regex_points_at_the_pattern():
    e = only_error('trim | regex("(")')
    assert (e.position, e.length) == (13, 3)
    assert e.message.startswith("bad regex")


def test_regex_must_work_in_polars_too():
    e = only_error('regex("(?=a)b")')  # Python accepts look-ahead, polars (Rust) does not
    assert "look-around" in e.message


def test_bad_date_format_points_at_the_directive():
    e = only_error('date("%Y-%q")')
    assert (e.position, e.length) == (9, 2)
    assert "unsupported directive %q" in e.message
    assert "needs a day" in only_error('date("%Y-%m")').message
    assert "appears twice" in only_error('date("%Y-%m-%d %Y")').message
    assert check('format_date("%Y")') == []  # formatting needs no complete date


def test_currency_codes_are_checked():
    e = only_error('currency("EUR", "usd", 1.1)')
    assert (e.position, e.length) == (16, 5)
    assert e.message == "unknown currency code 'usd' (did you mean 'USD'?)"
    assert "unknown currency code 'XYZ'" in only_error('currency("XYZ", "USD", 1)').message
    assert "positive" in only_error('currency("EUR", "USD", 0)').message
    bare = check("currency(EUR, USD, 1.1)")
    assert [(e.position, e.message) for e in bare] == [
        (9, "currency: 'from' must be a quoted string"),
        (14, "currency: 'to' must be a quoted string"),
    ]


def test_field_references_are_checked_when_fields_are_given():
    e = only_error('concat(frist_name, " ")', {"first_name", "rate"})
    assert e.message == "unknown field 'frist_name' (did you mean 'first_name'?)"
    assert (e.position, e.length) == (7, 10)
    assert check('concat(frist_name, " ")') == []  # no field list, no field check
    assert check('currency("EUR", "USD", rate)', {"rate"}) == []


def test_target_type_compatibility():
    assert check('date("%Y-%m-%d")', target_type="date") == []
    assert check('date("%Y-%m-%d")', target_type="string") == []
    assert check('date("%Y-%m-%d")', target_type="datetime") == []
    e = only_error('trim | date("%Y-%m-%d")', target_type="integer")
    assert e.message == "the rule produces date, which cannot become integer"
    assert e.position == 7


def test_all_errors_are_reported_in_order():
    errors = check("lowr | max_length() | uper")
    assert [e.position for e in errors] == [0, 18, 22]


def test_check_never_raises_on_garbage():
    for text in ['"', "(", ")", "|||", "map(", "map(=)", "a(b=", "`", "\\", "\x00", "é(ü)"]:
        assert all(isinstance(e, RuleError) for e in check(text))


def test_static_types():
    assert output_type(parse("trim | lower | map(active=1, inactive=0)")) == ValueType("integer")
    assert output_type(parse('number(2) | currency("EUR", "JPY", 150)')) == ValueType("decimal", 2)
    assert output_type(parse('integer | currency("EUR", "JPY", 150)')) == ValueType("decimal", 2)
    assert output_type(parse("map(a=1, b=2.50)")) == ValueType("decimal", 2)
    assert output_type(parse("map(a=1, *=keep)")) == ValueType("string")
    assert output_type(parse('date("%d.%m.%Y") | epoch')) == ValueType("integer")
    assert output_type(parse("")) == ValueType("string")


# --- canonical printer ------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "canonical"),
    [
        (
            '  trim|lower |map( active = 1,"on hold"=2 , * = keep )',
            'trim | lower | map(active=1, "on hold"=2, *=keep)',
        ),
        ("trim()", "trim"),
        ("default( 1.50 )", "default(1.50)"),
        ('default("say \\"hi\\"\\n")', 'default("say \\"hi\\"\\n")'),
        ("concat(`first name`, `true`, x)", "concat(`first name`, `true`, x)"),
        ("map(1=true, -2.5=false, *=null)", "map(1=true, -2.5=false, *=null)"),
        ('regex("\\d+")', 'regex("\\\\d+")'),
        ("", ""),
    ],
)
def test_format_rule_is_canonical(text, canonical):
    assert format_rule(parse(text)) == canonical
    assert parse(canonical) == parse(text)


def test_format_rule_keeps_decimals_decimal():
    p = Pipeline((Call("default", (Decimal("1E+2"),)),))
    assert format_rule(p) == "default(100.0)"
    (call,) = parse(format_rule(p)).steps
    assert isinstance(call.args[0], Decimal)


def test_the_language_doc_covers_every_transform():
    from pathlib import Path

    doc = (Path(__file__).parents[2] / "docs" / "mapping-language.md").read_text()
    for spec in TRANSFORMS.values():
        assert f"### {spec.name}" in doc or f"/ {spec.name}" in doc, spec.name
        assert spec.example in doc, spec.example
