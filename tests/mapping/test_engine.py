"""The vectorised engine, checked against hand-computed results and the reference."""

from datetime import date, datetime
from decimal import Decimal

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from planner.mapping import engine
from planner.mapping import transforms as tf
from planner.mapping.engine import MappingSpec, ValidationReport, Violation, compile_mapping
from planner.mapping.reference import validate_records
from planner.mapping.rules import TRANSFORMS, RuleError


def spec(
    source,
    target,
    rule="",
    target_type="string",
    *,
    max_length=None,
    required=False,
    null_rule="skip",
    null_default="",
):
    return MappingSpec(
        source, target, "string", target_type, max_length, required, null_rule, null_default, rule
    )


def run(specs, records, key="id", max_examples=20) -> ValidationReport:
    """Validate with the engine and assert the reference agrees exactly."""
    columns = sorted({k for r in records for k in r})
    df = pl.DataFrame(records, schema=dict.fromkeys(columns, pl.String))
    report = compile_mapping(specs).validate(df, key, max_examples)
    expected = validate_records(specs, records, key, max_examples)
    assert report.violations == expected.violations
    assert report.examples == expected.examples
    assert_frame_equal(report.output, expected.output)
    assert report.records == len(records)
    return report


CRM = [
    {"id": "C1", "status": "active"},
    {"id": "C2", "status": " Inactive "},
    {"id": "C3", "status": "pending"},
    {"id": "C4", "status": None},
]


def test_crm_status_to_billing_flag():
    report = run(
        [
            spec(
                "status",
                "status_code",
                "trim | lower | map(active=1, inactive=0, *=reject)",
                "integer",
                required=True,
                null_rule="reject",
            )
        ],
        CRM,
    )
    assert report.violations == {"status_code": {"null_not_allowed": 1, "unmapped_value": 1}}
    assert report.examples == [
        Violation("C4", "status_code", None, "null_not_allowed"),
        Violation("C3", "status_code", "pending", "unmapped_value"),
    ]
    assert report.output["status_code"].to_list() == [1, 0, None, None]
    assert report.output.columns == ["id", "status_code"]
    assert report.output.schema["status_code"] == pl.Int64
    assert report.total_violations == 2 and not report.ok


def test_map_without_star_is_unmapped_and_fallbacks_work():
    records = [{"id": str(i), "s": v} for i, v in enumerate(["a", "b", "c", None])]
    report = run(
        [
            spec("s", "strict", "map(a=1, b=2)", "integer"),
            spec("s", "keep", 'map(a="x", *=keep)'),
            spec("s", "other", 'map(a="x", *="?")'),
            spec("s", "nulls", "map(a=1, b=null, *=null)", "integer"),
            spec("s", "reject_null", "map(a=1, b=null)", "integer"),
        ],
        records,
    )
    out = report.output
    assert out["strict"].to_list() == [1, 2, None, None]
    assert out["keep"].to_list() == ["x", "b", "c", None]
    assert out["other"].to_list() == ["x", "?", "?", None]
    assert out["nulls"].to_list() == [1, None, None, None]
    assert report.violations["strict"] == {"unmapped_value": 1}
    assert report.violations["reject_null"] == {"unmapped_value": 1}  # b maps to null: fine
    assert report.violations["keep"] == report.violations["nulls"] == {}


def test_null_rules():
    records = [{"id": "1", "n": None}, {"id": "2", "n": "7"}, {"id": "3", "n": ""}]
    report = run(
        [
            spec("n", "rejecting", "integer", "integer", null_rule="reject"),
            spec("n", "defaulting", "integer", "integer", null_rule="default", null_default="0"),
            spec("n", "skipping", "integer", "integer", null_rule="skip"),
            spec("n", "required", "integer", "integer", required=True, null_rule="skip"),
            spec(
                "n",
                "required_default",
                "",
                "integer",
                required=True,
                null_rule="default",
                null_default="-1",
            ),
            spec("n", "text_default", "", null_rule="default", null_default="n/a"),
        ],
        records,
    )
    out = report.output
    # Empty text is a missing value for parsing, so "" behaves like null here.
    assert report.violations["rejecting"] == {"null_not_allowed": 2}
    assert out["defaulting"].to_list() == [0, 7, 0]
    assert out["skipping"].to_list() == [None, 7, None]
    assert report.violations["skipping"] == {}
    assert report.violations["required"] == {"null_not_allowed": 2}
    assert out["required_default"].to_list() == [-1, 7, -1]
    assert out["text_default"].to_list() == ["n/a", "7", ""]  # "" is a value for text targets


def test_too_long_from_the_spec_and_from_the_rule():
    records = [{"id": "1", "name": "Ada"}, {"id": "2", "name": "Grace Hopper"}]
    report = run(
        [
            spec("name", "spec_limit", "trim", max_length=5),
            spec("name", "rule_limit", "max_length(5)"),
            spec("name", "cut", "substr(0, 5)", max_length=5),
        ],
        records,
    )
    assert report.violations["spec_limit"] == {"too_long": 1}
    assert report.violations["rule_limit"] == {"too_long": 1}
    assert report.output["spec_limit"].to_list() == ["Ada", None]
    assert report.output["cut"].to_list() == ["Ada", "Grace"]
    assert report.examples[0] == Violation("2", "spec_limit", "Grace Hopper", "too_long")


def test_bad_dates_and_epoch():
    records = [
        {"id": "1", "d": "31.12.2024"},
        {"id": "2", "d": "31.02.2024"},  # no such day
        {"id": "3", "d": "2024-12-31"},  # wrong format
        {"id": "4", "d": ""},  # missing, not bad
        {"id": "5", "d": "1.1.1970"},
    ]
    report = run(
        [
            spec("d", "day", 'date("%d.%m.%Y")', "date"),
            spec("d", "ts", 'date("%d.%m.%Y") | epoch', "integer"),
            spec("d", "iso", "", "date"),  # the target type parses ISO dates
        ],
        records,
    )
    assert report.violations["day"] == {"bad_date": 2}
    assert report.output["day"].to_list() == [
        date(2024, 12, 31),
        None,
        None,
        None,
        date(1970, 1, 1),
    ]
    assert report.output["ts"].to_list() == [1735603200, None, None, None, 0]
    assert report.violations["iso"] == {"type_mismatch": 3}
    assert report.output["iso"].to_list() == [None, None, date(2024, 12, 31), None, None]


def test_datetimes_and_formatting():
    records = [{"id": "1", "t": "31/12/2024 23:59"}, {"id": "2", "t": "31/12/2024 24:00"}]
    report = run(
        [
            spec("t", "at", 'datetime("%d/%m/%Y %H:%M")', "datetime"),
            spec("t", "text", 'datetime("%d/%m/%Y %H:%M") | format_date("%d %b %Y, %H:%M")'),
            spec("t", "day", 'datetime("%d/%m/%Y %H:%M")', "date"),
        ],
        records,
    )
    assert report.output["at"].to_list() == [datetime(2024, 12, 31, 23, 59), None]
    assert report.output["text"].to_list() == ["31 Dec 2024, 23:59", None]
    assert report.output["day"].to_list() == [date(2024, 12, 31), None]
    assert report.violations["at"] == {"bad_date": 1}


def test_currency_with_a_field_rate_and_a_literal_rate():
    records = [
        {"id": "1", "amount": "100.00", "rate": "1.0850"},
        {"id": "2", "amount": "1.25", "rate": "1.1"},  # 1.375 rounds half to even: 1.38
        {"id": "3", "amount": "2.5", "rate": "x"},  # bad rate
        {"id": "4", "amount": "3", "rate": ""},  # no rate: null, not a violation
        {"id": "5", "amount": "abc", "rate": "1"},
    ]
    report = run(
        [
            spec("amount", "usd", 'number(2) | currency("EUR", "USD", rate)', "decimal"),
            spec("amount", "chf", 'number(2) | currency("EUR", "CHF", 0.5)', "decimal"),
        ],
        records,
    )
    assert report.output["usd"].to_list() == [Decimal("108.50"), Decimal("1.38"), None, None, None]
    assert report.output["chf"].to_list()[:4] == [
        Decimal("50.00"),
        Decimal("0.62"),
        Decimal("1.25"),
        Decimal("1.50"),
    ]
    assert report.violations["usd"] == {"type_mismatch": 2}
    assert report.output.schema["usd"] == pl.Decimal(38, 2)


def test_concat_of_fields():
    records = [
        {"id": "1", "first_name": "Ada", "last_name": "Lovelace"},
        {"id": "2", "first_name": "Grace", "last_name": None},
    ]
    report = run(
        [spec("first_name", "full_name", 'concat(first_name, " ", last_name)', required=True)],
        records,
    )
    assert report.output["full_name"].to_list() == ["Ada Lovelace", None]
    assert report.examples == [Violation("2", "full_name", "Grace", "null_not_allowed")]


def test_examples_are_capped_per_field_and_reason():
    records = [{"id": f"R{i}", "n": "x" if i % 2 else str(i)} for i in range(100)]
    report = run(
        [spec("n", "n", "integer", "integer", null_rule="reject")], records, max_examples=5
    )
    assert report.violations == {"n": {"type_mismatch": 50}}
    assert [v.key for v in report.examples] == ["R1", "R3", "R5", "R7", "R9"]
    assert len(run([spec("n", "n", "integer", "integer")], records, max_examples=0).examples) == 0


def test_target_type_enforcement():
    records = [{"id": "1", "v": "12"}, {"id": "2", "v": "12.5"}, {"id": "3", "v": "yes"}]
    report = run(
        [
            spec("v", "int", "", "integer"),
            spec("v", "dec", "", "decimal"),
            spec("v", "bool", "", "boolean"),
            spec("v", "whole", "number(1)", "integer"),
        ],
        records,
    )
    assert report.violations["int"] == {"type_mismatch": 2}
    assert report.output["dec"].to_list() == [Decimal("12"), Decimal("12.5"), None]
    assert report.output.schema["dec"] == pl.Decimal(38, tf.FULL_SCALE)  # every place read
    assert report.output["bool"].to_list() == [None, None, True]
    assert report.output["whole"].to_list() == [12, None, None]
    assert report.violations["whole"] == {"type_mismatch": 2}


def test_every_catalogue_example_produces_its_output():
    for t in TRANSFORMS.values():
        record = {"id": "1", "v": t.example_input, "first_name": "Ada", "last_name": "Lovelace"}
        report = run([spec("v", "out", t.example)], [record])
        (value,) = report.output["out"].to_list()
        if t.example_output.startswith("violation "):
            assert report.examples[0].reason == t.example_output.removeprefix("violation "), t.name
        else:
            assert value == t.example_output, t.name


def test_composite_key_and_key_name_clash():
    records = [{"id": "1", "part": "a", "v": "x"}, {"id": "1", "part": "b", "v": "12"}]
    report = run([spec("v", "id", "integer", "integer")], records, key=["id", "part"])
    assert report.key_columns == ["key:id", "part"]
    assert report.output.columns == ["key:id", "part", "id"]
    assert report.examples == [Violation(("1", "a"), "id", "x", "type_mismatch")]


def test_typed_input_columns_are_read_as_text():
    df = pl.DataFrame(
        {
            "id": [1, 2],
            "n": [5, None],
            "flag": [True, False],
            "d": [date(2024, 1, 5), date(1999, 12, 31)],
            "t": [datetime(2024, 1, 5, 10, 11, 12), None],
        }
    )
    report = compile_mapping(
        [
            spec("n", "n", "", "integer"),
            spec("flag", "flag", "upper"),
            spec("d", "d", 'format_date("%d.%m.%Y")'),
            spec("t", "t", "epoch", "integer"),
            spec("d", "year", "substr(0, 4)", "integer"),
        ]
    ).validate(df, "id")
    assert report.ok
    assert report.output.to_dicts()[0] == {
        "id": 1,
        "n": 5,
        "flag": "TRUE",
        "d": "05.01.2024",
        "t": 1704449472,
        "year": 2024,
    }


def test_lazy_frames_and_empty_frames():
    specs = [spec("s", "s", "trim", required=True)]
    lazy = pl.LazyFrame({"id": ["1"], "s": [" x "]})
    assert compile_mapping(specs).validate(lazy, "id").output["s"].to_list() == ["x"]
    empty = compile_mapping(specs).validate(
        pl.DataFrame(schema={"id": pl.String, "s": pl.String}), "id"
    )
    assert empty.records == 0 and empty.ok and empty.output.height == 0


def test_compile_errors_name_the_target():
    with pytest.raises(RuleError) as info:
        compile_mapping([spec("s", "status", "trim | lowr")])
    assert info.value.field == "status"
    assert (info.value.position, info.value.length) == (7, 4)
    assert str(info.value) == "status: col 8: unknown transform 'lowr' (did you mean 'lower'?)"
    with pytest.raises(RuleError, match="cannot become integer"):
        compile_mapping([spec("s", "t", 'date("%Y-%m-%d")', "integer")])
    with pytest.raises(ValueError, match="null_default"):
        compile_mapping([spec("s", "t", "", "integer", null_rule="default", null_default="x")])
    with pytest.raises(ValueError, match="null_rule"):
        compile_mapping([spec("s", "t", null_rule="ignore")])
    with pytest.raises(ValueError, match="mapped twice"):
        compile_mapping([spec("s", "t"), spec("s", "t")])
    with pytest.raises(ValueError, match="no column"):
        compile_mapping([spec("missing", "t")]).validate(pl.DataFrame({"id": ["1"]}), "id")


def test_distinct_value_path_gives_identical_results(monkeypatch):
    records = [
        {
            "id": str(i),
            "status": ["active", " Inactive", "pending", None][i % 4],
            "d": ["2024-01-31", "2024-02-30", ""][i % 3],
        }
        for i in range(200)
    ]
    specs = [
        spec(
            "status",
            "code",
            "trim | lower | map(active=1, inactive=0)",
            "integer",
            null_rule="default",
            null_default="9",
        ),
        spec("d", "ts", 'date("%Y-%m-%d") | epoch', "integer", required=True),
        spec("d", "text", 'date("%Y-%m-%d") | format_date("%d.%m.%Y")'),
    ]
    plain = run(specs, records)
    monkeypatch.setattr(engine, "DISTINCT_MIN_ROWS", 0)
    monkeypatch.setattr(engine, "DISTINCT_MIN_COST", 0)
    monkeypatch.setattr(engine, "DISTINCT_HEAD_RATIO", 1.0)
    monkeypatch.setattr(engine, "DISTINCT_RATIO", 1.0)
    calls = []
    real = engine._execute
    monkeypatch.setattr(engine, "_execute", lambda df, *a: calls.append(df.height) or real(df, *a))
    shortcut = run(specs, records)
    assert sorted(calls) == [4, 4, 200]  # status and d ran on their distinct values
    assert shortcut.violations == plain.violations
    assert_frame_equal(shortcut.output, plain.output)


def test_fields_share_work_only_when_rules_really_agree():
    # True == 1 == Decimal("1.0") in Python; the engine must not confuse their columns.
    records = [{"id": "1", "s": None}, {"id": "2", "s": "x"}]
    report = run(
        [
            spec("s", "one", "default(1)"),
            spec("s", "true", "default(true)"),
            spec("s", "decimal", "default(1.0)"),
            spec("s", "kept", "map(x=1, *=keep)"),
            spec("s", "kept_bool", "map(x=true, *=keep)"),
        ],
        records,
    )
    assert report.output.row(0) == ("1", "1", "true", "1.0", None, None)
    assert report.output.row(1) == ("2", "x", "x", "x", "1", "true")
