"""What people write in a mapping spreadsheet, and what it means.

Every vocabulary cell (types, yes/no, null rule, direction, frequency, source of truth, conflict
rule) goes through `interpret(field, text)`, which returns the model values it stands for, or
None when the text is not understood. The documented table is docs/mapping-spreadsheets.md; the
tests walk every spelling listed there.
"""

import re
from functools import lru_cache

TYPES = ("string", "integer", "decimal", "boolean", "date", "datetime")

# Vocabulary fields: each unknown value of these goes to the value-matching step.
VOCABULARY_FIELDS = (
    "source_type",
    "target_type",
    "required",
    "null_rule",
    "direction",
    "frequency",
    "source_of_truth",
    "conflict_rule",
)

# fmt: off
_TYPE_NAMES = {
    "string": (
        "string", "str", "text", "varchar", "varchar2", "nvarchar", "char", "nchar",
        "character", "character varying", "clob", "email", "uuid",
    ),
    "integer": (
        "integer", "int", "bigint", "smallint", "tinyint", "int2", "int4", "int8", "long",
        "whole number", "serial", "bigserial",
    ),
    "decimal": (
        "decimal", "numeric", "number", "float", "double", "double precision", "real",
        "money", "currency",
    ),
    "boolean": ("boolean", "bool", "bit", "flag", "yes/no", "checkbox"),
    "date": ("date",),
    "datetime": (
        "datetime", "timestamp", "timestamptz", "timestamp with time zone",
        "timestamp without time zone", "datetime2", "date time", "date/time", "date and time",
    ),
}
# fmt: on
TYPE_WORDS = {name: kind for kind, names in _TYPE_NAMES.items() for name in names}
YES_WORDS = ("yes", "y", "true", "t", "1", "x", "✓", "✔", "required", "mandatory", "on")
NO_WORDS = ("no", "n", "false", "f", "0", "", "-", "optional", "off", "nullable", "not required")
# fmt: off
_WORDS: dict[str, dict[str, str]] = {
    "null_rule": {
        "reject": "reject", "required": "reject", "reject the record": "reject",
        "reject record": "reject", "error": "reject", "fail": "reject",
        "skip": "skip", "skip the field": "skip", "skip field": "skip", "ignore": "skip",
        "leave empty": "skip", "leave blank": "skip",
        "default": "default", "use a default value": "default", "use default": "default",
    },
    "direction": {
        "one_way": "one_way", "one-way": "one_way", "one way": "one_way", "oneway": "one_way",
        "unidirectional": "one_way", "uni-directional": "one_way", "→": "one_way",
        "->": "one_way", "=>": "one_way", "⟶": "one_way", "source to target": "one_way",
        "bidirectional": "bidirectional", "bi-directional": "bidirectional",
        "both": "bidirectional", "both ways": "bidirectional", "two-way": "bidirectional",
        "two way": "bidirectional", "2-way": "bidirectional", "twoway": "bidirectional",
        "↔": "bidirectional", "⇄": "bidirectional", "<->": "bidirectional",
        "<=>": "bidirectional",
    },
    "source_of_truth": {
        "source": "source", "target": "target", "source system": "source",
        "target system": "target",
    },
    "conflict_rule": {
        "truth_wins": "truth_wins", "source of truth wins": "truth_wins",
        "truth wins": "truth_wins", "last_write": "last_write", "last write wins": "last_write",
        "last write": "last_write", "latest wins": "last_write", "manual": "manual",
        "manual review": "manual",
    },
}
# fmt: on
_REAL_TIME = ("real_time", "real-time", "realtime", "real time", "live", "instant", "immediate")
_DAILY = ("daily", "nightly", "daily batch", "every day", "every night", "once a day")
_NAMED_MINUTES = {"hourly": 60, "every hour": 60, "weekly": 7 * 24 * 60, "every week": 7 * 24 * 60}
_NAMED_MINUTES |= {"once a week": 7 * 24 * 60, "every minute": 1}
_EVERY = re.compile(r"every (\d+) ?(m|min|mins|minute|minutes|h|hr|hrs|hour|hours)\.?$")
_TYPE = re.compile(r"(.+?) ?(?:\( ?(\d+) ?(?:, ?(\d+) ?)?\))?$")
_DEFAULT = re.compile(r"(?is)\s*default(?:\s*(?:value)?\s*[:=]?\s+|\s*[:=]\s*)(.*?)\s*$")

# The words offered in the value-matching step, each one understood by `interpret`.
# fmt: off
MEANINGS: dict[str, tuple[str, ...]] = {
    "source_type": TYPES,
    "target_type": TYPES,
    "required": ("yes", "no"),
    "null_rule": ("reject", "skip", "default"),
    "direction": ("one-way", "bidirectional"),
    "frequency": (
        "real-time", "every 5 minutes", "every 15 minutes", "every 30 minutes", "hourly",
        "daily", "weekly",
    ),
    "source_of_truth": ("source system", "target system"),
    "conflict_rule": ("source of truth wins", "last write wins", "manual review"),
}
# fmt: on
# What the message for an unknown value lists: the words, not the stored codes.
ACCEPTED: dict[str, str] = {
    "source_type": "string, varchar(n), text, int, bigint, decimal(p,s), bool, date, timestamp",
    "target_type": "string, varchar(n), text, int, bigint, decimal(p,s), bool, date, timestamp",
    "required": "yes or no (y/n, true/false, 1/0, x, required/optional)",
    "null_rule": "required, reject, skip, default, default <value>",
    "direction": "one-way, →, both, two-way, bidirectional",
    "frequency": (
        "real-time, every N minutes (e.g. every 5 minutes, every 15 min), hourly, daily, "
        "nightly, weekly"
    ),
    "source_of_truth": "source, target",
    "conflict_rule": "source of truth wins, last write wins, manual review",
}


def value_key(text: str) -> str:
    """The form under which a value is looked up and remembered: case and spacing ignored."""
    return " ".join(text.split()).lower()


@lru_cache(maxsize=16_384)
def interpret(field: str, text: str) -> dict | None:
    """The model values `text` stands for in the column `field`; None when not understood.

    An empty cell means the field's default ({} here; the caller fills defaults). Cached, as a
    sheet repeats its words on every row: callers must not change the dict returned.
    """
    key = value_key(text)
    if key == "" and field != "required":
        return {}
    if field in ("source_type", "target_type"):
        return _type(field, key)
    if field == "required":
        if key in YES_WORDS:
            return {"required": True}
        if key in NO_WORDS:
            return {"required": False}
        return None
    if field == "frequency":
        return _frequency(key)
    if field == "null_rule":
        if key in _WORDS["null_rule"]:
            return {"null_rule": _WORDS["null_rule"][key]}
        match = _DEFAULT.fullmatch(text)
        if match:
            return {"null_rule": "default", "null_default": _unquote(match.group(1))}
        return None
    code = _WORDS[field].get(key)
    return None if code is None else {field: code}


def _type(field: str, key: str) -> dict | None:
    key = re.sub(r"\s*([(),])\s*", r"\1", key).replace(",", ", ").replace("(", " (")
    match = _TYPE.fullmatch(key)
    if not match:
        return None
    kind = TYPE_WORDS.get(match.group(1).strip())
    if kind is None:
        return None
    out: dict = {field: kind}
    if match.group(2) and kind == "string" and field == "target_type":
        length = int(match.group(2))
        if length < 1:
            return None
        out["max_length"] = length
    elif match.group(2) and kind not in ("string", "decimal"):
        return None  # int(4) or date(3) mean nothing we can keep
    return out


def _frequency(key: str) -> dict | None:
    if key in _REAL_TIME:
        return {"frequency": "real_time"}
    if key in _DAILY:
        return {"frequency": "daily"}
    if key in ("minutes", "every n minutes", "every few minutes"):
        return {"frequency": "minutes"}
    if key in _NAMED_MINUTES:
        return {"frequency": "minutes", "every_minutes": _NAMED_MINUTES[key]}
    match = _EVERY.fullmatch(key.replace("  ", " "))
    if match:
        n = int(match.group(1))
        if n < 1:
            return None
        minutes = n * 60 if match.group(2).startswith("h") else n
        return {"frequency": "minutes", "every_minutes": minutes}
    return None


def _unquote(text: str) -> str:
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        return text[1:-1]
    return text
