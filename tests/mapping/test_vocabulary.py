"""The importer's vocabulary: what people write in a mapping spreadsheet, and what it means."""

import re
from pathlib import Path

import pytest

from planner.mapping.spreadsheet import SpreadsheetError, match_columns, read_sheet, validate_rows
from planner.mapping.vocabulary import MEANINGS, interpret


@pytest.mark.parametrize(
    ("field", "text", "meaning"),
    [
        ("frequency", "every 5 minutes", {"frequency": "minutes", "every_minutes": 5}),
        ("frequency", "Every 15 min", {"frequency": "minutes", "every_minutes": 15}),
        ("frequency", "every 2 hours", {"frequency": "minutes", "every_minutes": 120}),
        ("frequency", "real-time", {"frequency": "real_time"}),
        ("frequency", "Realtime", {"frequency": "real_time"}),
        ("frequency", "hourly", {"frequency": "minutes", "every_minutes": 60}),
        ("frequency", "daily", {"frequency": "daily"}),
        ("frequency", "Nightly", {"frequency": "daily"}),
        ("frequency", "weekly", {"frequency": "minutes", "every_minutes": 7 * 24 * 60}),
        ("direction", "one-way", {"direction": "one_way"}),
        ("direction", "→", {"direction": "one_way"}),
        ("direction", "both", {"direction": "bidirectional"}),
        ("direction", "Two-way", {"direction": "bidirectional"}),
        ("direction", "bidirectional", {"direction": "bidirectional"}),
        ("null_rule", "required", {"null_rule": "reject"}),
        ("null_rule", "reject", {"null_rule": "reject"}),
        ("null_rule", "skip", {"null_rule": "skip"}),
        ("null_rule", "default N/A", {"null_rule": "default", "null_default": "N/A"}),
        ("null_rule", "Default 0", {"null_rule": "default", "null_default": "0"}),
        ("target_type", "varchar(80)", {"target_type": "string", "max_length": 80}),
        ("target_type", "VARCHAR (80)", {"target_type": "string", "max_length": 80}),
        ("source_type", "varchar(80)", {"source_type": "string"}),
        ("target_type", "int", {"target_type": "integer"}),
        ("target_type", "bigint", {"target_type": "integer"}),
        ("target_type", "bool", {"target_type": "boolean"}),
        ("target_type", "timestamp", {"target_type": "datetime"}),
        ("target_type", "date", {"target_type": "date"}),
        ("target_type", "decimal(10,2)", {"target_type": "decimal"}),
        ("target_type", "text", {"target_type": "string"}),
        ("required", "Yes", {"required": True}),
        ("required", "y", {"required": True}),
        ("required", "TRUE", {"required": True}),
        ("required", "x", {"required": True}),
        ("required", "no", {"required": False}),
        ("required", "N", {"required": False}),
        ("required", "false", {"required": False}),
        ("required", "", {"required": False}),
    ],
)
def test_values_as_people_write_them(field, text, meaning):
    assert interpret(field, text) == meaning


@pytest.mark.parametrize(
    ("field", "text"),
    [("frequency", "fortnightly"), ("target_type", "int(4)"), ("required", "maybe")],
)
def test_a_value_not_in_the_vocabulary_is_not_guessed(field, text):
    assert interpret(field, text) is None


def test_every_offered_meaning_is_understood():
    for field, words in MEANINGS.items():
        for word in words:
            assert interpret(field, word), (field, word)


def test_the_documented_table_is_what_the_importer_understands():
    doc = (Path(__file__).parents[2] / "docs" / "mapping-spreadsheets.md").read_text()
    rows = re.findall(r"^\| `(\w+)` \| (.+?) \|$", doc, re.M)
    assert {field for field, _ in rows} >= set(MEANINGS)
    for field, spellings in rows:
        for text in re.findall(r"`([^`]+)`", spellings):
            assert interpret(field, text) is not None, (field, text)


def test_the_pm_sheet_comes_in_with_its_words():
    csv = (
        "Source field,Target field,Target type,Sync frequency,Direction,Null rule,Required\n"
        "email,email,varchar(80),every 5 minutes,→,default n/a,Y\n"
        "id,id,bigint,nightly,two-way,required,yes\n"
    ).encode()
    sheet = read_sheet(csv, "m.csv")
    first, second = validate_rows(sheet, match_columns(sheet.headers))
    assert (first["target_type"], first["max_length"]) == ("string", 80)
    assert (first["frequency"], first["every_minutes"]) == ("minutes", 5)
    assert (first["direction"], first["null_rule"], first["null_default"]) == (
        "one_way",
        "default",
        "n/a",
    )
    assert first["required"] is True
    assert (second["target_type"], second["frequency"], second["direction"]) == (
        "integer",
        "daily",
        "bidirectional",
    )


def test_an_unknown_frequency_lists_the_words_not_the_codes():
    sheet = read_sheet(b"Source field,Target field,Sync frequency\na,b,every fortnight\n", "m.csv")
    with pytest.raises(SpreadsheetError) as err:
        validate_rows(sheet, match_columns(sheet.headers))
    text = str(err.value)
    assert "row 2, column 'Sync frequency': 'every fortnight' is not a sync frequency" in text
    assert "every N minutes (e.g. every 5 minutes, every 15 min), hourly, daily" in text
    assert "real_time" not in text and "daily, minutes" not in text


def test_a_word_that_contradicts_another_column_is_named():
    csv = b"Source field,Target field,Target type,Max length\na,b,varchar(80),40\n"
    sheet = read_sheet(csv, "m.csv")
    with pytest.raises(SpreadsheetError) as err:
        validate_rows(sheet, match_columns(sheet.headers))
    assert (
        "row 2, column 'Target type': 'varchar(80)' means target max length 80, but column "
        "'Max length' says 40." in str(err.value)
    )


def test_an_unclosed_map_names_where_it_was_opened():
    csv = b"Source field,Target field,Mapping rule\nstatus,status,upper | map(a=1\n"
    sheet = read_sheet(csv, "m.csv")
    with pytest.raises(SpreadsheetError) as err:
        validate_rows(sheet, match_columns(sheet.headers))
    assert str(err.value) == (
        "row 2, column 'Mapping rule': missing ')' to close 'map(' opened at character 9"
    )
