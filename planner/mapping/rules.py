"""The mapping rule language: tokenizer, parser, checker and canonical printer.

A rule is a pipeline of transforms, `trim | lower | map(active=1, *=reject)`. The
checker runs on every keystroke in the UI, so it must never raise and must point at
the offending token; the engine and the reference only ever see checked rules.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal

from planner.mapping import transforms as tf
from planner.mapping.transforms import ValueType, decimal_scale, literal_as, literal_text

# --- AST --------------------------------------------------------------------------
# Literal arguments are plain Python values (str, int, Decimal, bool, None). Source
# positions are kept for error messages but left out of equality.


@dataclass(frozen=True)
class FieldRef:
    name: str
    pos: int = field(default=-1, compare=False, repr=False)


@dataclass(frozen=True)
class Star:
    pos: int = field(default=-1, compare=False, repr=False)


type Value = str | int | Decimal | bool | None | FieldRef
type Key = str | int | Decimal | Star
type Span = tuple[int, int]


@dataclass(frozen=True)
class Call:
    name: str
    args: tuple[Value, ...] = ()
    kwargs: tuple[tuple[Key, Value], ...] = ()
    pos: int = field(default=-1, compare=False, repr=False)
    arg_spans: tuple[Span, ...] = field(default=(), compare=False, repr=False)
    key_spans: tuple[Span, ...] = field(default=(), compare=False, repr=False)
    value_spans: tuple[Span, ...] = field(default=(), compare=False, repr=False)
    end: int = field(default=-1, compare=False, repr=False)  # ')' or end of the name


@dataclass(frozen=True)
class Pipeline:
    steps: tuple[Call, ...] = ()


class RuleError(ValueError):
    """A problem in rule text, located by 0-based character offset."""

    def __init__(
        self, message: str, position: int = 0, length: int = 0, field: str | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.position = position
        self.length = length
        self.field = field

    def __str__(self) -> str:
        prefix = f"{self.field}: " if self.field else ""
        return f"{prefix}col {self.position + 1}: {self.message}"

    def __repr__(self) -> str:
        return f"RuleError({str(self)!r})"


# --- tokenizer --------------------------------------------------------------------

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_NUMBER = re.compile(r"-?[0-9]+(?:\.[0-9]+)?")
_ESCAPES = {'"': '"', "\\": "\\", "n": "\n", "t": "\t", "r": "\r"}
KEYWORDS = {"true": True, "false": False, "null": None}


@dataclass(frozen=True)
class _Tok:
    kind: str  # name qname string number | ( ) , = * eof
    value: object
    start: int
    end: int

    def describe(self) -> str:
        return "end of rule" if self.kind == "eof" else f"'{self.text}'"

    @property
    def text(self) -> str:
        return str(self.value) if self.kind in ("name", "qname") else self.kind


def _tokenize(text: str) -> list[_Tok]:
    toks: list[_Tok] = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c in " \t\r\n":
            i += 1
        elif c in "|(),=*":
            toks.append(_Tok(c, c, i, i + 1))
            i += 1
        elif c == '"':
            i = _string(text, i, toks)
        elif c == "`":
            end = text.find("`", i + 1)
            if end < 0 or "\n" in text[i:end]:
                raise RuleError("unclosed `field name`", i, n - i)
            if end == i + 1:
                raise RuleError("empty `field name`", i, 2)
            toks.append(_Tok("qname", text[i + 1 : end], i, end + 1))
            i = end + 1
        elif m := _NAME.match(text, i):
            toks.append(_Tok("name", m.group(), i, m.end()))
            i = m.end()
        elif m := _NUMBER.match(text, i):
            end = m.end()
            if end < n and (text[end].isalnum() or text[end] in "._"):
                bad = re.compile(r"[\w.]*").match(text, end)
                raise RuleError("malformed number", i, bad.end() - i if bad else end - i)
            raw = m.group()
            toks.append(_Tok("number", Decimal(raw) if "." in raw else int(raw), i, end))
            i = end
        else:
            raise RuleError(f"unexpected character {c!r}", i, 1)
    toks.append(_Tok("eof", None, n, n))
    return toks


def _string(text: str, start: int, toks: list[_Tok]) -> int:
    out: list[str] = []
    i = start + 1
    while i < len(text):
        c = text[i]
        if c == '"':
            toks.append(_Tok("string", "".join(out), start, i + 1))
            return i + 1
        if c != "\\":
            out.append(c)
            i += 1
            continue
        nxt = text[i + 1 : i + 2]
        if nxt in _ESCAPES:
            out.append(_ESCAPES[nxt])
            i += 2
        elif nxt == "u" and re.fullmatch(r"[0-9A-Fa-f]{4}", text[i + 2 : i + 6]):
            out.append(chr(int(text[i + 2 : i + 6], 16)))
            i += 6
        else:
            # Other escapes stay verbatim, so regexes read naturally: "\d+" is \d+.
            out.append(c)
            i += 1
    raise RuleError("unclosed string", start, len(text) - start)


# --- parser -----------------------------------------------------------------------


class _Parser:
    def __init__(self, text: str) -> None:
        self.toks = _tokenize(text)
        self.i = 0

    @property
    def tok(self) -> _Tok:
        return self.toks[self.i]

    def peek(self, k: int = 1) -> _Tok:
        return self.toks[min(self.i + k, len(self.toks) - 1)]

    def take(self) -> _Tok:
        tok = self.toks[self.i]
        self.i += 1
        return tok

    def fail(self, message: str, tok: _Tok | None = None) -> RuleError:
        tok = tok or self.tok
        return RuleError(message, tok.start, tok.end - tok.start)

    def pipeline(self) -> Pipeline:
        if self.tok.kind == "eof":
            return Pipeline(())
        steps = [self.call()]
        while self.tok.kind == "|":
            bar = self.take()
            if self.tok.kind == "eof":
                raise self.fail("expected a transform after '|'", bar)
            steps.append(self.call())
        if self.tok.kind != "eof":
            raise self.fail(f"expected '|' before {self.tok.describe()}")
        return Pipeline(tuple(steps))

    def call(self) -> Call:
        name = self.tok
        if name.kind != "name":
            raise self.fail(f"expected a transform name, found {name.describe()}")
        self.take()
        if self.tok.kind != "(":
            return Call(name.value, pos=name.start, end=name.start)  # type: ignore[arg-type]
        opening = self.take()
        args: list[Value] = []
        kwargs: list[tuple[Key, Value]] = []
        spans: list[Span] = []
        key_spans: list[Span] = []
        value_spans: list[Span] = []
        while self.tok.kind != ")":
            if self.tok.kind == "eof":
                raise self.fail(
                    f"missing ')' to close '{name.value}(' opened at character {name.start + 1}",
                    opening,
                )
            if args or kwargs:
                if self.tok.kind != ",":
                    raise self.fail(f"expected ',' or ')', found {self.tok.describe()}")
                self.take()
            if self.tok.kind in (")", ",", "eof", "|"):
                raise self.fail(f"missing argument before {self.tok.describe()}")
            if self.tok.kind == "*" or self.peek().kind == "=":
                key_tok = self.take()
                key = self.key(key_tok)
                self.take()  # '='
                if self.tok.kind in (")", ",", "eof", "|"):
                    raise self.fail(f"missing value after '=' (found {self.tok.describe()})")
                value_tok = self.tok
                kwargs.append((key, self.value()))
                key_spans.append((key_tok.start, key_tok.end))
                value_spans.append((value_tok.start, value_tok.end))
            else:
                if kwargs:
                    raise self.fail("positional argument after named arguments")
                tok = self.tok
                args.append(self.value())
                spans.append((tok.start, tok.end))
        close = self.take()
        return Call(
            name.value,  # type: ignore[arg-type]
            tuple(args),
            tuple(kwargs),
            pos=name.start,
            arg_spans=tuple(spans),
            key_spans=tuple(key_spans),
            value_spans=tuple(value_spans),
            end=close.start,
        )

    def key(self, tok: _Tok) -> Key:
        if tok.kind == "*":
            if self.tok.kind != "=":
                raise self.fail("'*' is only allowed as a map key, as in *=keep", tok)
            return Star(tok.start)
        if tok.kind in ("name", "qname", "string", "number"):
            return tok.value  # type: ignore[return-value]
        raise self.fail(f"expected a key before '=', found {tok.describe()}", tok)

    def value(self) -> Value:
        tok = self.take()
        if tok.kind in ("string", "number"):
            return tok.value  # type: ignore[return-value]
        if tok.kind == "name":
            if tok.value in KEYWORDS:
                return KEYWORDS[tok.value]  # type: ignore[index]
            return FieldRef(tok.value, tok.start)  # type: ignore[arg-type]
        if tok.kind == "qname":
            return FieldRef(tok.value, tok.start)  # type: ignore[arg-type]
        if tok.kind == "*":
            raise self.fail("'*' is only allowed as a map key, as in *=keep", tok)
        raise self.fail(f"expected an argument, found {tok.describe()}", tok)


def parse(text: str) -> Pipeline:
    """Parse rule text; empty text is the empty Pipeline. Raises RuleError."""
    return _Parser(text).pipeline()


# --- canonical printer ------------------------------------------------------------


def _quote(s: str) -> str:
    out = []
    for c in s:
        if c in '"\\':
            out.append("\\" + c)
        elif c in "\n\t\r":
            out.append({"\n": "\\n", "\t": "\\t", "\r": "\\r"}[c])
        elif ord(c) < 0x20 or 0xD800 <= ord(c) <= 0xDFFF or ord(c) == 0x7F:
            out.append(f"\\u{ord(c):04x}")
        else:
            out.append(c)
    return '"' + "".join(out) + '"'


def _number(v: int | Decimal) -> str:
    if isinstance(v, int):
        return str(v)
    if not v.is_finite():
        raise ValueError(f"cannot print {v}")
    text = format(v, "f")
    return text if "." in text else text + ".0"  # keep it a decimal when re-parsed


def _plain_name(name: str) -> bool:
    return bool(_NAME.fullmatch(name)) and name not in KEYWORDS


def format_value(v: Value) -> str:
    if isinstance(v, FieldRef):
        if _plain_name(v.name):
            return v.name
        if not v.name or "`" in v.name or "\n" in v.name:
            raise ValueError(f"field name {v.name!r} cannot be written in a rule")
        return f"`{v.name}`"
    if v is None or isinstance(v, bool):
        return {None: "null", True: "true", False: "false"}[v]
    if isinstance(v, int | Decimal):
        return _number(v)
    return _quote(v)


def _format_key(k: Key) -> str:
    if isinstance(k, Star):
        return "*"
    if isinstance(k, str):
        return k if _NAME.fullmatch(k) else _quote(k)
    return _number(k)


def format_rule(p: Pipeline) -> str:
    """Canonical text: parse(format_rule(p)) == p."""
    parts = []
    for call in p.steps:
        items = [format_value(a) for a in call.args]
        items += [f"{_format_key(k)}={format_value(v)}" for k, v in call.kwargs]
        parts.append(f"{call.name}({', '.join(items)})" if items else call.name)
    return " | ".join(parts)


# --- transform catalogue ----------------------------------------------------------

# Argument kinds a parameter accepts.
TEXT, INT, DEC, BOOL, NULL, FIELD = "text", "integer", "decimal", "boolean", "null", "field"
LITERAL = frozenset({TEXT, INT, DEC, BOOL})
_KIND_WORDS = {
    TEXT: "a quoted string",
    INT: "a whole number",
    DEC: "a decimal number",
    BOOL: "true/false",
    NULL: "null",
    FIELD: "a field name",
}


def arg_kind(v: Value) -> str:
    if isinstance(v, FieldRef):
        return FIELD
    if v is None:
        return NULL
    if isinstance(v, bool):
        return BOOL
    if isinstance(v, int):
        return INT
    if isinstance(v, Decimal):
        return DEC
    return TEXT


@dataclass(frozen=True)
class Param:
    name: str
    kinds: frozenset[str]
    optional: bool = False
    low: int | None = None  # bounds for whole numbers
    high: int | None = None


@dataclass(frozen=True)
class TransformSpec:
    name: str
    signature: str
    description: str
    example: str
    example_input: str
    example_output: str
    params: tuple[Param, ...] = ()
    variadic: bool = False  # last param repeats (concat)
    named: bool = False  # takes key=value pairs (map)
    takes: str = "text"  # what the incoming value is converted to: see _input_type


def _p(
    name: str, *kinds: str, optional: bool = False, low: int | None = None, high: int | None = None
):
    return Param(name, frozenset(kinds), optional, low, high)


def _spec(
    signature: str,
    description: str,
    example: str,
    example_input: str,
    example_output: str,
    *params: Param,
    **options,
) -> TransformSpec:
    name = signature.split("(")[0]
    return TransformSpec(
        name, signature, description, example, example_input, example_output, params, **options
    )


_ANY_LITERAL = (TEXT, INT, DEC, BOOL)
_SPECS = [
    _spec(
        "identity",
        "Pass the value through unchanged (an explicit 'no transformation').",
        "identity",
        "ACME Ltd",
        "ACME Ltd",
        takes="any",
    ),
    _spec(
        "trim",
        "Remove leading and trailing whitespace (including no-break spaces).",
        "trim",
        "  ACME Ltd  ",
        "ACME Ltd",
    ),
    _spec("lower", "Convert text to lower case.", "lower", "Active", "active"),
    _spec("upper", "Convert text to upper case.", "upper", "fr", "FR"),
    _spec(
        "replace(old, new)",
        "Replace every occurrence of old with new (plain text, not a pattern).",
        'replace("-", "")',
        "DE-123-45",
        "DE12345",
        _p("old", TEXT),
        _p("new", TEXT),
    ),
    _spec(
        "substr(start, length)",
        "Take length characters from position start (0-based); without length, to the end.",
        "substr(0, 5)",
        "10115 Berlin",
        "10115",
        _p("start", INT, low=0),
        _p("length", INT, optional=True, low=0),
    ),
    _spec(
        "split(separator, index)",
        "Split on separator and keep part number index (0-based, -1 = last); "
        "a missing part is null.",
        'split(" ", 0)',
        "Ada Lovelace",
        "Ada",
        _p("separator", TEXT),
        _p("index", INT),
    ),
    _spec(
        "concat(part, ...)",
        "Build a new text from fields and literals; it starts the pipeline. "
        "Null if any field is null.",
        'concat(first_name, " ", last_name)',
        'first_name="Ada", last_name="Lovelace"',
        "Ada Lovelace",
        _p("part", *_ANY_LITERAL, FIELD),
        variadic=True,
        takes="none",
    ),
    _spec(
        "default(value)",
        "Replace a null value (or empty text) with value.",
        'default("n/a")',
        "",
        "n/a",
        _p("value", *_ANY_LITERAL),
        takes="any",
    ),
    _spec(
        "map(key=value, ..., *=reject|keep|value)",
        "Translate values by exact text match. Other values: * decides; without * they "
        "are violations (unmapped_value).",
        "map(active=1, inactive=0, *=reject)",
        "active",
        "1",
        named=True,
    ),
    _spec(
        "number(decimals)",
        "Parse a number such as -1234.5 or 1.5e3 and round it, half to even, to decimals "
        "places (0-9, default 6).",
        "number(2)",
        "1234.567",
        "1234.57",
        _p("decimals", INT, optional=True, low=0, high=tf.MAX_SCALE),
    ),
    _spec("integer", "Parse a whole number (digits, optional sign).", "integer", "042", "42"),
    _spec(
        "boolean", "Parse true/false, yes/no, y/n or 1/0, in any case.", "boolean", "Yes", "true"
    ),
    _spec(
        "date(format)",
        "Parse a date with a strftime-style format (default %Y-%m-%d); failures are bad_date.",
        'date("%d.%m.%Y")',
        "31.12.2024",
        "2024-12-31",
        _p("format", TEXT, optional=True),
    ),
    _spec(
        "datetime(format)",
        "Parse a date and time (default ISO 8601, T or space); failures are bad_date.",
        'datetime("%d/%m/%Y %H:%M")',
        "31/12/2024 23:59",
        "2024-12-31T23:59:00",
        _p("format", TEXT, optional=True),
    ),
    _spec(
        "epoch",
        "Seconds since 1970-01-01 UTC of a date (at midnight) or a datetime.",
        'date("%Y-%m-%d") | epoch',
        "2024-01-01",
        "1704067200",
        takes="temporal",
    ),
    _spec(
        "format_date(format)",
        "Write a date or datetime as text with a strftime-style format.",
        'format_date("%d.%m.%Y")',
        "2024-12-31",
        "31.12.2024",
        _p("format", TEXT),
        takes="temporal",
    ),
    _spec(
        "currency(from, to, rate)",
        "Convert an amount: multiply by rate (a number or a field) and keep the amount's "
        "decimals (at least 2).",
        'number(2) | currency("EUR", "USD", 1.08)',
        "100.00",
        "108.00",
        _p("from", TEXT),
        _p("to", TEXT),
        _p("rate", INT, DEC, FIELD),
        takes="decimal",
    ),
    _spec(
        "max_length(n)",
        "Violation too_long when the text is longer than n characters.",
        "max_length(5)",
        "ACME Ltd",
        "violation too_long",
        _p("n", INT, low=1),
    ),
    _spec(
        "regex(pattern)",
        "Violation regex_mismatch unless the text contains a match (anchor with ^ and $).",
        'regex("^[^@]+@[^@]+$")',
        "ada@example.com",
        "ada@example.com",
        _p("pattern", TEXT),
    ),
    _spec(
        "reject_if_empty",
        "Violation rejected when the value is null or empty text.",
        "trim | reject_if_empty",
        "   ",
        "violation rejected",
        takes="any",
    ),
]
TRANSFORMS: dict[str, TransformSpec] = {s.name: s for s in _SPECS}
TEXT_TRANSFORMS = frozenset({"trim", "lower", "upper", "replace", "substr", "split"})
TEXT_TRANSFORMS |= {"max_length", "regex"}


# --- checking ---------------------------------------------------------------------


def suggest(name: str, options) -> str:
    close = difflib.get_close_matches(name, list(options), n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


class _Checker:
    def __init__(self, text: str, fields: set[str] | None) -> None:
        self.text = text
        self.fields = fields
        self.errors: list[RuleError] = []

    def err(self, message: str, span: Span) -> None:
        self.errors.append(RuleError(message, span[0], span[1] - span[0]))

    def call_span(self, call: Call) -> Span:
        return (call.pos, call.pos + len(call.name))

    def missing_span(self, call: Call) -> Span:
        # Point at ')' when there is one, else at the transform name.
        return (call.end, call.end + 1) if call.end > call.pos else self.call_span(call)

    def field_ref(self, ref: FieldRef, span: Span) -> None:
        if self.fields is not None and ref.name not in self.fields:
            self.err(f"unknown field '{ref.name}'{suggest(ref.name, self.fields)}", span)

    def args(self, call: Call, spec: TransformSpec) -> bool:
        """Arity and argument kinds; True when the call is well-formed enough to type."""
        before = len(self.errors)
        if call.kwargs and not spec.named:
            self.err(f"{spec.name} takes no named arguments: {spec.signature}", call.key_spans[0])
        if spec.named:
            if call.args:
                self.err(f"map takes key=value pairs: {spec.signature}", call.arg_spans[0])
            return self.map_args(call) and len(self.errors) == before
        params = spec.params
        required = sum(not p.optional for p in params)
        if len(call.args) < required:
            missing = params[len(call.args)].name
            self.err(
                f"{spec.name} is missing argument '{missing}': {spec.signature}",
                self.missing_span(call),
            )
        if len(call.args) > len(params) and not spec.variadic:
            self.err(
                f"{spec.name} takes at most {len(params)} argument"
                f"{'s' if len(params) != 1 else ''}: {spec.signature}",
                call.arg_spans[len(params)],
            )
        for i, value in enumerate(call.args):
            if i >= len(params) and not spec.variadic:
                break
            param = params[min(i, len(params) - 1)]
            span = call.arg_spans[i]
            kind = arg_kind(value)
            if kind not in param.kinds:
                wanted = " or ".join(_KIND_WORDS[k] for k in sorted(param.kinds))
                self.err(f"{spec.name}: '{param.name}' must be {wanted}", span)
                continue
            if isinstance(value, FieldRef):
                self.field_ref(value, span)
            if kind == INT and param.low is not None and value < param.low:  # type: ignore[operator]
                self.err(f"{spec.name}: '{param.name}' must be at least {param.low}", span)
            if kind == INT and param.high is not None and value > param.high:  # type: ignore[operator]
                self.err(f"{spec.name}: '{param.name}' must be at most {param.high}", span)
        if len(self.errors) == before:
            _VALUE_CHECKS.get(spec.name, lambda c, s: None)(self, call)
        return len(self.errors) == before

    def map_args(self, call: Call) -> bool:
        if not any(not isinstance(k, Star) for k, _ in call.kwargs):
            self.err("map needs at least one key=value pair", self.missing_span(call))
            return False
        seen: dict[str, int] = {}
        stars = 0
        for (key, value), kspan, vspan in zip(
            call.kwargs, call.key_spans, call.value_spans, strict=True
        ):
            if isinstance(key, Star):
                stars += 1
                if stars > 1:
                    self.err("map has more than one *= fallback", kspan)
                if isinstance(value, FieldRef) and value.name not in ("reject", "keep"):
                    self.err("after *= use reject, keep or a literal value", vspan)
                continue
            text = literal_text(key)
            if text in seen:
                self.err(f"map key {text!r} appears twice", kspan)
            seen[text] = kspan[0]
            if isinstance(value, FieldRef):
                self.err('map values must be literals (quote text: "...")', vspan)
            elif isinstance(value, Decimal):
                self.decimal_literal(value, vspan)
        return True

    def decimal_literal(self, value: Decimal, span: Span) -> None:
        if decimal_scale(value) > tf.MAX_SCALE:
            self.err(f"at most {tf.MAX_SCALE} decimal places", span)
        elif abs(value) >= tf.DECIMAL_LIMIT:
            self.err("number too large (limit 10^18)", span)

    def literal_offset(self, span: Span, offset: int, length: int) -> Span:
        """Map an offset inside a string literal's value to rule text, when exact."""
        raw = self.text[span[0] + 1 : span[1] - 1]
        if "\\" in raw:
            return span
        return (span[0] + 1 + offset, span[0] + 1 + offset + length)


def _check_date_format(c: _Checker, call: Call, parsing: bool = True) -> None:
    if not call.args:
        return
    try:
        tf.compile_date_format(call.args[0], parsing=parsing)  # type: ignore[arg-type]
    except tf.DateFormatError as e:
        c.err(f"bad date format: {e.message}", c.literal_offset(call.arg_spans[0], e.offset, 2))


def _check_regex(c: _Checker, call: Call) -> None:
    pattern = call.args[0]
    problem = regex_problem(pattern)  # type: ignore[arg-type]
    if problem:
        c.err(f"bad regex: {problem}", call.arg_spans[0])


def regex_problem(pattern: str) -> str | None:
    """Why a pattern can't be used, or None. It must compile in both dialects."""
    try:
        re.compile(pattern)
    except re.error as e:
        return str(e)
    import polars as pl  # noqa: PLC0415 - heavy import only when a regex is checked

    try:
        pl.Series([""], dtype=pl.String).str.contains(pattern)
    except Exception as e:  # noqa: BLE001 - polars raises several error types here
        lines = str(e).splitlines()
        detail = [ln[len("error: ") :] for ln in lines if ln.startswith("error: ")]
        return (detail or lines or ["not supported"])[0].removeprefix("regex error: ")
    return None


def _check_currency(c: _Checker, call: Call) -> None:
    for i in (0, 1):
        code = call.args[i]
        if code not in tf.CURRENCIES:
            upper = code.upper()  # type: ignore[union-attr]
            hint = f" (did you mean '{upper}'?)" if upper in tf.CURRENCIES else ""
            c.err(f"unknown currency code {code!r}{hint}", call.arg_spans[i])
    rate = call.args[2]
    if isinstance(rate, int | Decimal) and not isinstance(rate, bool):
        if rate <= 0:
            c.err("rate must be positive", call.arg_spans[2])
        elif decimal_scale(Decimal(rate)) > tf.RATE_SCALE or rate >= tf.RATE_LIMIT:
            c.err(
                f"rate must be below 10^9 with at most {tf.RATE_SCALE} decimals", call.arg_spans[2]
            )


def _check_nonempty(c: _Checker, call: Call) -> None:
    if call.args[0] == "":
        c.err(
            f"{call.name}: '{TRANSFORMS[call.name].params[0].name}' must not be empty",
            call.arg_spans[0],
        )


def _check_concat(c: _Checker, call: Call) -> None:
    for value, span in zip(call.args, call.arg_spans, strict=True):
        if isinstance(value, Decimal):
            c.decimal_literal(value, span)


_VALUE_CHECKS: dict[str, Callable[[_Checker, Call], None]] = {
    "date": _check_date_format,
    "datetime": _check_date_format,
    "format_date": lambda c, call: _check_date_format(c, call, parsing=False),
    "regex": _check_regex,
    "currency": _check_currency,
    "replace": _check_nonempty,
    "split": _check_nonempty,
    "concat": _check_concat,
}


# --- static types -----------------------------------------------------------------

_CONVERTIBLE = {
    ("integer", "decimal"),
    ("decimal", "integer"),
    ("date", "datetime"),
    ("datetime", "date"),
}


def can_convert(src: str, dst: str) -> bool:
    """Whether a value of kind src may be implicitly converted to kind dst."""
    return src == dst or dst == "string" or src == "string" or (src, dst) in _CONVERTIBLE


def _input_type(spec: TransformSpec, current: ValueType) -> ValueType | str:
    """The type a transform works on, or an error message."""
    if spec.takes == "any":
        return current
    if spec.takes == "text":
        return ValueType("string")
    if spec.takes == "temporal":
        if current.kind in ("date", "datetime"):
            return current
        if current.kind == "string":
            return ValueType("datetime")
        return f"{spec.name} needs a date or datetime, but the value is {current.kind}"
    if spec.takes == "decimal":
        if current.kind == "decimal":
            # Amounts of no stated scale are converted at DEFAULT_SCALE, which keeps the
            # product with a rate inside 38 digits.
            return (
                current if current.scale <= tf.MAX_SCALE else ValueType("decimal", tf.DEFAULT_SCALE)
            )
        if current.kind in ("integer", "string"):
            scale = 0 if current.kind == "integer" else tf.DEFAULT_SCALE
            return ValueType("decimal", scale)
        return f"{spec.name} needs a number, but the value is {current.kind}"
    return current  # "none": concat ignores its input


def _map_output(call: Call) -> ValueType | tuple[str, Span]:
    fallback = [
        (v, s)
        for (k, v), s in zip(call.kwargs, call.value_spans, strict=True)
        if isinstance(k, Star)
    ]
    if fallback and isinstance(fallback[0][0], FieldRef) and fallback[0][0].name == "keep":
        return ValueType("string")
    values = [
        (v, s)
        for (k, v), s in zip(call.kwargs, call.value_spans, strict=True)
        if not isinstance(v, FieldRef) and v is not None
    ]
    kinds = {arg_kind(v) for v, _ in values}
    if not kinds or kinds == {TEXT}:
        return ValueType("string")
    if kinds == {BOOL}:
        return ValueType("boolean")
    if kinds == {INT}:
        return ValueType("integer")
    if kinds <= {INT, DEC}:
        return ValueType("decimal", max(decimal_scale(Decimal(v)) for v, _ in values))  # type: ignore[arg-type]
    first = arg_kind(values[0][0])
    odd = next(s for v, s in values if arg_kind(v) != first)
    return ("map values must all be text, all numbers or all true/false", odd)


def _output_type(call: Call, given: ValueType) -> ValueType:
    name = call.name
    if name in TEXT_TRANSFORMS or name in ("concat", "format_date"):
        return ValueType("string")
    if name == "number":
        return ValueType("decimal", call.args[0] if call.args else tf.FULL_SCALE)  # type: ignore[arg-type]
    if name in ("integer", "epoch"):
        return ValueType("integer")
    if name in ("boolean", "date", "datetime"):
        return ValueType(name)
    if name == "currency":
        return ValueType("decimal", max(given.scale, tf.MIN_CURRENCY_SCALE))
    return given  # identity, default, reject_if_empty


@dataclass(frozen=True)
class StepType:
    given: ValueType  # what the step works on (after implicit conversion)
    result: ValueType


def infer_types(p: Pipeline) -> list[StepType]:
    """Static types of a checked pipeline; every source value starts as text."""
    out: list[StepType] = []
    current = ValueType("string")
    for call in p.steps:
        spec = TRANSFORMS[call.name]
        given = _input_type(spec, current)
        assert isinstance(given, ValueType), given
        result = _map_output(call) if call.name == "map" else _output_type(call, given)
        assert isinstance(result, ValueType), result
        out.append(StepType(given, result))
        current = result
    return out


def output_type(p: Pipeline) -> ValueType:
    steps = infer_types(p)
    return steps[-1].result if steps else ValueType("string")


def check(
    text: str, available_fields: set[str] | None = None, *, target_type: str | None = None
) -> list[RuleError]:
    """All problems in a rule, sorted by position; [] when it is fine. Never raises.

    target_type (optional) also checks that the rule's result can become that type.
    """
    try:
        pipeline = parse(text)
    except RuleError as e:
        return [e]
    except Exception as e:  # noqa: BLE001 - the UI calls this on every keystroke
        return [RuleError(f"internal error: {e}", 0, len(text))]
    c = _Checker(text, available_fields)
    current: ValueType | None = ValueType("string")
    for n, call in enumerate(pipeline.steps):
        spec = TRANSFORMS.get(call.name)
        if spec is None:
            c.err(
                f"unknown transform '{call.name}'{suggest(call.name, TRANSFORMS)}",
                c.call_span(call),
            )
            current = None
            continue
        if call.name == "concat" and n > 0:
            c.err("concat starts a new value from its arguments; put it first", c.call_span(call))
        ok = c.args(call, spec)
        if not ok or current is None:
            current = None if not ok else current
            continue
        given = _input_type(spec, current)
        if isinstance(given, str):
            c.err(given, c.call_span(call))
            current = None
            continue
        if call.name == "default" and call.args:
            try:
                literal_as(call.args[0], given)  # type: ignore[arg-type]
            except ValueError as e:
                c.err(f"default: {e}", call.arg_spans[0])
        result = _map_output(call) if call.name == "map" else _output_type(call, given)
        if isinstance(result, tuple):
            c.err(*result)
            current = None
            continue
        current = result
    if (
        target_type is not None
        and current is not None
        and not can_convert(current.kind, target_type)
    ):
        last = pipeline.steps[-1]
        c.err(
            f"the rule produces {current.kind}, which cannot become {target_type}",
            c.call_span(last),
        )
    return sorted(c.errors, key=lambda e: (e.position, e.length))


def with_field(error: RuleError, target: str) -> RuleError:
    """The same error, labelled with the target field it belongs to."""
    return RuleError(error.message, error.position, error.length, target)


__all__ = [
    "Call",
    "FieldRef",
    "Pipeline",
    "RuleError",
    "Star",
    "TRANSFORMS",
    "TransformSpec",
    "check",
    "format_rule",
    "infer_types",
    "output_type",
    "parse",
]
