"""Shared vocabulary of the mapping language.

Both the vectorised engine and the row-by-row reference read these constants, so a
value is "a valid number" or "a valid date" by exactly the same definition in both.
The definitions are deliberately narrower than what polars or Python would accept on
their own (ASCII digits only, explicit whitespace set, a small date-directive set):
every input either engine accepts must be accepted by the other.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import MAX_EMAX, MIN_EMIN, ROUND_HALF_EVEN, Context, Decimal

KINDS = ("string", "integer", "decimal", "boolean", "date", "datetime")

# Order matters: it is the order of ValidationReport.examples within a field.
REASONS = (
    "null_not_allowed",
    "too_long",
    "unmapped_value",
    "bad_date",
    "type_mismatch",
    "regex_mismatch",
    "rejected",
)
REASON_CODE = {reason: code for code, reason in enumerate(REASONS, start=1)}

# The Unicode White_Space set (includes no-break and ideographic spaces): what
# polars' strip_chars() removes. Spelled out because Python's str.strip() would also
# strip the control characters U+001C..U+001F.
TRIM_CHARS = (
    "\t\n\x0b\x0c\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006"
    "\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000"
)

# Decimals are exact (polars Decimal(38, scale) / Python Decimal, half-to-even).
# Bounding magnitude and scale keeps every product below 38 digits, so polars never
# raises an overflow error mid-validation.
MAX_SCALE = 9
DEFAULT_SCALE = 6  # what currency() works at when its amount has no stated scale
# Text -> decimal without a stated scale (number(), a decimal target): every place the text
# has, up to 20 (with |value| < 10^18 that fills 38 digits). Written back as text without
# trailing zeros, so 383.75 stays "383.75" and 1e-7 is 0.0000001, never rounded to 6 places.
FULL_SCALE = 20
DECIMAL_LIMIT = 10**18  # |value| must be strictly below
RATE_SCALE = 9
RATE_LIMIT = 10**9
MIN_CURRENCY_SCALE = 2

# Exactly the grammars polars' casts accept (fuzz-tested), so the engine can cast
# without a regex pre-check. Exponents are limited to 9 digits: polars misreads
# exponents near 2^31 (the engine guards against that, see engine.parse_decimal).
INT_PATTERN = r"[+-]?[0-9]+"
DECIMAL_PATTERN = r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE](?P<exp>[+-]?[0-9]+))?"
MAX_EXPONENT = 10**9

BOOLEAN_WORDS = {
    "true": True,
    "yes": True,
    "y": True,
    "1": True,
    "false": False,
    "no": False,
    "n": False,
    "0": False,
}

MONTHS = (
    "january",
    "february",
    "march",
    "april",
    "may",
    "june",
    "july",
    "august",
    "september",
    "october",
    "november",
    "december",
)
MONTH_NUMBER = {name: i for i, name in enumerate(MONTHS, start=1)} | {
    name[:3]: i for i, name in enumerate(MONTHS, start=1)
}

# Active ISO 4217 codes plus a few recently withdrawn ones still found in old data.
CURRENCIES = frozenset(
    """
    AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BHD BIF BMD BND BOB BOV BRL
    BSD BTN BWP BYN BZD CAD CDF CHE CHF CHW CLF CLP CNY COP COU CRC CUC CUP CVE CZK DJF
    DKK DOP DZD EGP ERN ETB EUR FJD FKP GBP GEL GHS GIP GMD GNF GTQ GYD HKD HNL HRK HTG
    HUF IDR ILS INR IQD IRR ISK JMD JOD JPY KES KGS KHR KMF KPW KRW KWD KYD KZT LAK LBP
    LKR LRD LSL LYD MAD MDL MGA MKD MMK MNT MOP MRU MUR MVR MWK MXN MXV MYR MZN NAD NGN
    NIO NOK NPR NZD OMR PAB PEN PGK PHP PKR PLN PYG QAR RON RSD RUB RWF SAR SBD SCR SDG
    SEK SGD SHP SLE SLL SOS SRD SSP STN SVC SYP SZL THB TJS TMT TND TOP TRY TTD TWD TZS
    UAH UGX USD USN UYI UYU UYW UZS VED VES VND VUV WST XAF XAG XAU XCD XCG XDR XOF XPD
    XPF XPT YER ZAR ZMW ZWG ZWL
    """.split()  # noqa: SIM905 - a block of codes reads better than 170 quoted strings
)

# --- date formats -----------------------------------------------------------------
# A strftime/chrono subset whose meaning is identical in polars (chrono) and in the
# reference's own parser. Parsing first requires a full regex match built from the
# format, so chrono only ever sees well-formed text.

_TWO = {
    "m": "0[1-9]|1[0-2]",
    "d": "0[1-9]|[12][0-9]|3[01]",
    "H": "[01][0-9]|2[0-3]",
    "M": "[0-5][0-9]",
    "S": "[0-5][0-9]",
}
_ONE = {"m": "[1-9]", "d": "[1-9]", "H": "[0-9]", "M": "[0-9]", "S": "[0-9]"}
_NUMERIC = set(_TWO) | {"Y", "y"}
DATE_DIRECTIVES = {
    "Y": "4-digit year",
    "y": "2-digit year (70-99 -> 19xx, 00-69 -> 20xx)",
    "m": "month 01-12",
    "b": "month abbreviation (Jan)",
    "B": "month name (January; abbreviations accepted when parsing)",
    "d": "day 01-31",
    "H": "hour 00-23",
    "M": "minute 00-59",
    "S": "second 00-59",
    "%": "a literal %",
}
_FIELD_OF = {"Y": "year", "y": "year", "m": "month", "b": "month", "B": "month", "d": "day"}
_FIELD_OF |= {"H": "hour", "M": "minute", "S": "second"}
_REGEX_META = set(r"\.^$|?*+()[]{}")


def _caseless(word: str) -> str:
    # ASCII-only classes: (?i) would apply Unicode folding (e.g. U+017F matches 's').
    return "".join(f"[{c.upper()}{c}]" for c in word)


_ABBR = "|".join(_caseless(m[:3]) for m in MONTHS)
_FULL = "|".join(_caseless(m) for m in MONTHS)


class DateFormatError(ValueError):
    def __init__(self, message: str, offset: int) -> None:
        super().__init__(message)
        self.message = message
        self.offset = offset  # index into the format string


@dataclass(frozen=True)
class DateFormat:
    text: str  # strftime/chrono format, used as-is by polars
    pattern: str  # unanchored regex, valid for Python re and Rust regex
    fields: frozenset[str]  # year, month, day, hour, minute, second

    @property
    def has_time(self) -> bool:
        return "hour" in self.fields


def _tokens(fmt: str) -> list[tuple[str, str, int]]:
    """Split a format into ("lit", char, offset) and ("dir", letter, offset)."""
    out: list[tuple[str, str, int]] = []
    i = 0
    while i < len(fmt):
        if fmt[i] != "%":
            out.append(("lit", fmt[i], i))
            i += 1
            continue
        if i + 1 >= len(fmt):
            raise DateFormatError("format ends with a lone '%'", i)
        letter = fmt[i + 1]
        if letter not in DATE_DIRECTIVES:
            supported = " ".join("%" + d for d in DATE_DIRECTIVES)
            raise DateFormatError(f"unsupported directive %{letter} (supported: {supported})", i)
        out.append(("lit", "%", i) if letter == "%" else ("dir", letter, i))
        i += 2
    return out


def compile_date_format(fmt: str, *, parsing: bool = True) -> DateFormat:
    """Validate a format and build its matching regex; raises DateFormatError."""
    tokens = _tokens(fmt)
    seen: dict[str, int] = {}
    parts: list[str] = []
    for n, (kind, value, offset) in enumerate(tokens):
        if kind == "lit":
            parts.append("\\" + value if value in _REGEX_META else value)
            continue
        field = _FIELD_OF[value]
        if parsing and field in seen:
            raise DateFormatError(f"the {field} appears twice in the format", offset)
        seen[field] = offset
        nxt = tokens[n + 1] if n + 1 < len(tokens) else None
        # Followed by a digit, the digit count must be fixed or the split is ambiguous
        # (chrono reads greedily).
        glued = nxt is not None and (nxt[1] in _NUMERIC if nxt[0] == "dir" else nxt[1].isdigit())
        if value == "Y":
            body = "[1-9][0-9]{3}|0[1-9][0-9]{2}|00[1-9][0-9]|000[1-9]"  # no year 0
        elif value == "y":
            body = "[0-9]{2}"
        elif value == "b":
            body = _ABBR
        elif value == "B":
            body = f"{_FULL}|{_ABBR}"
        else:
            body = _TWO[value] if glued else f"{_TWO[value]}|{_ONE[value]}"
        parts.append(f"(?P<{value if value not in 'bB' else 'mon'}>{body})")
    if parsing:
        missing = [f for f in ("year", "month", "day") if f not in seen]
        if missing:
            raise DateFormatError(f"a date format needs a {missing[0]}", 0)
        if ("hour" in seen) != ("minute" in seen) or ("second" in seen and "hour" not in seen):
            raise DateFormatError("a time needs both %H and %M", 0)
    return DateFormat(text=fmt, pattern="".join(parts), fields=frozenset(seen))


def _iso(fmt: str) -> DateFormat:
    return compile_date_format(fmt)


# Text -> date/datetime without an explicit format (target types, epoch, format_date).
ISO_DATE = _iso("%Y-%m-%d")
ISO_DATETIMES = (_iso("%Y-%m-%dT%H:%M:%S"), _iso("%Y-%m-%d %H:%M:%S"), ISO_DATE)
ISO_DATETIME_TEXT = "%Y-%m-%dT%H:%M:%S"  # canonical text of a datetime (whole second)
ISO_DATETIME_FRACTION_TEXT = "%Y-%m-%dT%H:%M:%S%.6f"  # ... and of one with microseconds

# Timestamps as databases and exports write them: an ISO date and time followed by a
# fraction of a second (any digits; microseconds kept, the rest dropped) and/or a UTC offset
# (Z, +02, +0200, +02:00). They are parsed to naive UTC, so a timestamp stored as text
# compares exactly with a time-zone-aware column on the other side.
_OFFSET = r"[+-](?:[01][0-9]|2[0-3])(?::?[0-5][0-9])?"
STAMP_SUFFIX = rf"(?P<frac>\.[0-9]{{1,9}})?(?P<tz>Z|{_OFFSET})?"


def _unnamed(pattern: str) -> str:
    return re.sub(r"\(\?P<\w+>", "(?:", pattern)


# The date-and-time part is either ISO format; a fraction or an offset must follow.
STAMP_PATTERN = (
    "(?:" + "|".join(_unnamed(f.pattern) for f in ISO_DATETIMES[:2]) + ")"
    rf"(?:\.[0-9]{{1,9}}(?:Z|{_OFFSET})?|Z|{_OFFSET})"
)


def anchored(pattern: str) -> str:
    """Whole-string regex for polars (Rust's `$` only matches at the very end)."""
    return f"^(?:{pattern})$"


def fullmatch(pattern: str, text: str) -> re.Match[str] | None:
    return _compiled(pattern).fullmatch(text)


_CACHE: dict[str, re.Pattern[str]] = {}


def _compiled(pattern: str) -> re.Pattern[str]:
    found = _CACHE.get(pattern)
    if found is None:
        found = _CACHE[pattern] = re.compile(pattern)
    return found


# --- Python value semantics ---------------------------------------------------------
# Used by the checker (literal arguments) and by the row-by-row reference. The engine
# implements the same rules with polars expressions.


@dataclass(frozen=True)
class ValueType:
    kind: str  # one of KINDS
    scale: int = 0  # decimal places, decimals only


class _Fail:
    def __repr__(self) -> str:
        return "FAIL"


FAIL = _Fail()  # "could not convert", as opposed to None = null


def decimal_scale(d: Decimal) -> int:
    exponent = d.as_tuple().exponent
    return max(0, -exponent) if isinstance(exponent, int) else 0


DECIMAL_CONTEXT = Context(prec=80, rounding=ROUND_HALF_EVEN, Emin=MIN_EMIN, Emax=MAX_EMAX)


def quantize(d: Decimal, scale: int) -> Decimal | _Fail:
    """Round half to even to scale places; FAIL outside the supported magnitude."""
    if d.is_nan() or d.is_infinite() or (not d.is_zero() and d.adjusted() >= 18):
        return FAIL
    q = d.quantize(Decimal(1).scaleb(-scale), context=DECIMAL_CONTEXT)
    if abs(q) >= DECIMAL_LIMIT:
        return FAIL
    return q.copy_abs() if q.is_zero() else q  # polars has no negative zero


def to_text(v: object) -> str | None:
    """Canonical text of a value: what text transforms and field references see."""
    if v is None or isinstance(v, str):
        return v
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, Decimal):
        if v.as_tuple().exponent == -FULL_SCALE:
            return trim_zeros(format(v, "f"))
        return format(v, "f")
    if isinstance(v, float):
        return repr(v)
    if isinstance(v, datetime):
        if v.tzinfo is not None:
            v = v.astimezone(UTC)
        text = f"{v.year:04d}-{v.month:02d}-{v.day:02d}T{v.hour:02d}:{v.minute:02d}:{v.second:02d}"
        return f"{text}.{v.microsecond:06d}" if v.microsecond else text
    if isinstance(v, date):
        return f"{v.year:04d}-{v.month:02d}-{v.day:02d}"
    return str(v)


def trim_zeros(text: str) -> str:
    """A decimal's text without trailing fraction zeros (and without a bare point)."""
    return text.rstrip("0").rstrip(".") if "." in text else text


def literal_text(v: object) -> str:
    """Text of a literal or map key (`1.50` stays "1.50")."""
    text = to_text(v)
    return "null" if text is None else text


def is_blank(text: str) -> bool:
    """Empty text is a missing value for parsing; spaces are not (trim first)."""
    return text == ""


def parse_int(text: str) -> int | _Fail:
    if not fullmatch(INT_PATTERN, text):
        return FAIL
    n = int(text)
    return n if -(2**63) <= n < 2**63 else FAIL


def parse_decimal(text: str, scale: int) -> Decimal | _Fail:
    m = fullmatch(DECIMAL_PATTERN, text)
    if not m or (m["exp"] is not None and abs(int(m["exp"])) >= MAX_EXPONENT):
        return FAIL
    return quantize(Decimal(text), scale)


def parse_bool(text: str) -> bool | _Fail:
    word = text.lower()
    return BOOLEAN_WORDS.get(word, FAIL)  # type: ignore[return-value]


def parse_date(text: str, fmt: DateFormat, kind: str) -> date | datetime | _Fail:
    m = fullmatch(fmt.pattern, text)
    if not m:
        return FAIL
    g = {k: v for k, v in m.groupdict().items() if v is not None}
    if "Y" in g:
        year = int(g["Y"])
    else:
        yy = int(g["y"])
        year = 2000 + yy if yy < 70 else 1900 + yy  # chrono's pivot, not POSIX's 69
    month = int(g["m"]) if "m" in g else MONTH_NUMBER[g["mon"].lower()]
    try:
        value = datetime(
            year, month, int(g["d"]), int(g.get("H", 0)), int(g.get("M", 0)), int(g.get("S", 0))
        )
    except ValueError:
        return FAIL
    return value.date() if kind == "date" else value


def parse_stamp(text: str) -> datetime | _Fail:
    """An ISO timestamp with a fraction and/or an offset, as naive UTC (STAMP_PATTERN)."""
    if not fullmatch(STAMP_PATTERN, text):
        return FAIL
    suffix = re.search(STAMP_SUFFIX + "$", text)
    assert suffix is not None  # the pattern ends with it
    base = text[: suffix.start()]
    value = next(
        (v for fmt in ISO_DATETIMES[:2] if (v := parse_date(base, fmt, "datetime")) is not FAIL),
        FAIL,
    )
    if value is FAIL:
        return FAIL
    if suffix["frac"]:
        value = value.replace(microsecond=int((suffix["frac"][1:] + "00000")[:6]))  # type: ignore[union-attr]
    tz = suffix["tz"]
    if tz and tz != "Z":
        digits = tz[1:].replace(":", "")
        shift = timedelta(hours=int(digits[:2]), minutes=int(digits[2:] or 0))
        try:
            value = value - shift if tz[0] == "+" else value + shift  # type: ignore[operator]
        except OverflowError:
            return FAIL
    return value  # type: ignore[return-value]


def parse_iso(text: str, kind: str) -> date | datetime | _Fail:
    for fmt in (ISO_DATE,) if kind == "date" else ISO_DATETIMES:
        value = parse_date(text, fmt, kind)
        if value is not FAIL:
            return value
    return parse_stamp(text) if kind == "datetime" else FAIL


def parse_text(text: str, vt: ValueType) -> object:
    """Text -> value of type vt; None for blank text, FAIL when it does not parse."""
    if vt.kind == "string":
        return text
    if is_blank(text):
        return None
    if vt.kind == "integer":
        return parse_int(text)
    if vt.kind == "decimal":
        return parse_decimal(text, vt.scale)
    if vt.kind == "boolean":
        return parse_bool(text)
    return parse_iso(text, vt.kind)


def convert(value: object, src: ValueType, dst: ValueType) -> object:
    """Implicit conversion between kinds (see rules.can_convert); FAIL on failure."""
    if value is None or src == dst:
        return value
    if dst.kind == "string":
        return to_text(value)
    if src.kind == "string":
        return parse_text(value, dst)  # type: ignore[arg-type]
    if dst.kind == "decimal":  # from integer or decimal of another scale
        return quantize(Decimal(value), dst.scale)  # type: ignore[arg-type]
    if dst.kind == "integer":  # from decimal: only whole numbers
        return int(value) if value == value.to_integral_value() else FAIL  # type: ignore[union-attr]
    if dst.kind == "datetime":
        return datetime(value.year, value.month, value.day)  # type: ignore[union-attr]
    if dst.kind == "date":
        return value.date()  # type: ignore[union-attr]
    raise ValueError(f"cannot convert {src.kind} to {dst.kind}")


def literal_as(value: object, vt: ValueType) -> object:
    """A literal argument as a value of type vt; raises ValueError with a message."""
    text = literal_text(value)
    converted = text if vt.kind == "string" else parse_text(text, vt)
    if converted is FAIL or converted is None:
        raise ValueError(f"{text!r} is not a valid {vt.kind}")
    return converted


def format_date_value(value: date, fmt: str) -> str:
    """strftime for the supported directives, independent of the C library."""
    out = []
    for kind, item, _ in _tokens(fmt):
        if kind == "lit":
            out.append(item)
        elif item in "bB":
            name = MONTHS[value.month - 1].title()
            out.append(name[:3] if item == "b" else name)
        else:
            number = {
                "Y": value.year,
                "y": value.year % 100,
                "m": value.month,
                "d": value.day,
                "H": getattr(value, "hour", 0),
                "M": getattr(value, "minute", 0),
                "S": getattr(value, "second", 0),
            }[item]
            out.append(f"{number:04d}" if item == "Y" else f"{number:02d}")
    return "".join(out)
