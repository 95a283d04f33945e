"""Shared connector contract: protocol, report, errors, row->frame conversion.

Nothing here imports Django: settings reach connectors as plain arguments
(``config``/``secrets`` dicts and a :class:`~planner.connectors.guard.GuardPolicy`).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import decimal
import json
import re
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, Self, runtime_checkable

import polars as pl

if TYPE_CHECKING:
    from planner.connectors.guard import GuardPolicy

KINDS = ("postgres", "mysql", "sqlite", "file", "http_json")
DEFAULT_BATCH_SIZE = 10_000


class ConnectorError(Exception):
    """A failure whose ``message`` is safe to show to the user (no secrets, no stack)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class ConnectionReport:
    ok: bool
    latency_ms: float
    fields: list[str] = field(default_factory=list)
    sample: dict[str, Any] | None = None
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form, e.g. for a Django JSONField."""
        return {
            "ok": self.ok,
            "latency_ms": round(self.latency_ms, 1),
            "fields": list(self.fields),
            "sample": self.sample,
            "error": self.error,
        }


@runtime_checkable
class Connector(Protocol):
    kind: str
    key: list[str]

    def test(self) -> ConnectionReport: ...

    def fields(self) -> list[str]: ...

    def fetch(self, batch_size: int = DEFAULT_BATCH_SIZE) -> Iterator[pl.DataFrame]: ...

    def count(self) -> int | None: ...


# ---------------------------------------------------------------- config helpers


def parse_key(value: Any) -> list[str]:
    """Accept ``"id"``, ``"a, b"`` or ``["a", "b"]`` as key field(s)."""
    if value in (None, ""):
        return []
    if isinstance(value, str):
        parts = [p.strip() for p in value.split(",")]
    elif isinstance(value, Sequence):
        parts = [str(p).strip() for p in value]
    else:
        raise ConnectorError("Key must be a field name or a list of field names.")
    if any(not p for p in parts):
        raise ConnectorError("Key field names must not be empty.")
    return parts


def require_str(config: Mapping[str, Any], name: str, label: str | None = None) -> str:
    value = config.get(name)
    if not isinstance(value, str) or not value.strip():
        raise ConnectorError(f"{label or name} is required.")
    return value.strip()


def optional_str(config: Mapping[str, Any], name: str, default: str | None = None) -> str | None:
    value = config.get(name, default)
    if value is None or value == "":
        return default
    if not isinstance(value, str):
        raise ConnectorError(f"{name} must be text.")
    return value.strip()


def optional_int(config: Mapping[str, Any], name: str, default: int, minimum: int = 0) -> int:
    value = config.get(name, default)
    if value in (None, ""):
        return default
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise ConnectorError(f"{name} must be a whole number.") from None
    if number < minimum:
        raise ConnectorError(f"{name} must be at least {minimum}.")
    return number


def dataset_choice(config: Mapping[str, Any]) -> tuple[str | None, str | None]:
    """SQL kinds name exactly one of ``table`` or ``query``."""
    table = optional_str(config, "table")
    query = optional_str(config, "query")
    if bool(table) == bool(query):
        raise ConnectorError("Give either a table name or a query, not both or neither.")
    return table, query


# ---------------------------------------------------------------- secrets & errors


def scrub(text: str, secrets: Mapping[str, Any]) -> str:
    """Remove secret values from driver messages before they reach a user or a log."""
    for value in secrets.values():
        if isinstance(value, str) and len(value) >= 3:
            text = text.replace(value, "***")
    return text


@contextlib.contextmanager
def translate_errors(what: str, secrets: Mapping[str, Any]) -> Iterator[None]:
    """Turn driver/OS exceptions into ConnectorError with a scrubbed, one-line message.

    ``from None`` on purpose: the chained driver exception may carry a DSN.
    """
    try:
        yield
    except ConnectorError:
        raise
    except Exception as exc:  # noqa: BLE001 - every driver has its own hierarchy
        detail = " ".join(str(exc).split()) or type(exc).__name__
        raise ConnectorError(scrub(f"{what}: {detail}", secrets)[:500]) from None


# ---------------------------------------------------------------- read-only SQL check

# Statement verbs that can write or escape a read-only SELECT. Checked as bare words
# outside literals/comments; ``replace(`` (the string function) stays allowed.
_FORBIDDEN_WORDS = frozenset(
    {
        *("insert", "update", "delete", "merge", "upsert", "replace", "truncate"),
        *("drop", "alter", "create", "rename", "grant", "revoke", "reindex", "cluster"),
        *("copy", "call", "execute", "exec", "into", "outfile", "dumpfile", "load"),
        *("attach", "detach", "pragma", "vacuum", "handler"),
    }
)


def _sql_words(sql: str, dialect: str) -> tuple[list[tuple[str, int]], list[int]]:
    """Tokenise just enough: (word, end offset) pairs and statement separators.

    Skips quoted strings/identifiers and comments the way ``dialect`` does: backslash
    escapes and ``#`` comments only for MySQL, ``$tag$`` strings only for PostgreSQL.
    Getting this wrong in the lenient direction could hide a ``;`` inside a "string".
    """
    mysql, postgres = dialect == "mysql", dialect == "postgres"
    quotes = "'\"`" if not postgres else "'\""
    words: list[tuple[str, int]] = []
    semicolons: list[int] = []
    i, n = 0, len(sql)
    while i < n:
        c = sql[i]
        if c in quotes:
            j = i + 1
            while j < n:
                if mysql and sql[j] == "\\" and c != "`":
                    j += 2
                    continue
                if sql[j] == c:
                    if j + 1 < n and sql[j + 1] == c:  # doubled quote escape
                        j += 2
                        continue
                    break
                j += 1
            if j >= n:
                raise ConnectorError("The query has an unterminated quoted string.")
            i = j + 1
        elif (mysql and c == "#") or (
            # MySQL needs whitespace after "--" ("1--1" is arithmetic there)
            sql.startswith("--", i) and (not mysql or sql[i + 2 : i + 3] in ("", " ", "\t", "\n"))
        ):
            j = sql.find("\n", i)
            i = n if j < 0 else j + 1
        elif c == "/" and sql.startswith("/*", i):
            j = sql.find("*/", i + 2)
            if j < 0:
                raise ConnectorError("The query has an unterminated comment.")
            i = j + 2
        elif postgres and c == "$" and (m := re.match(r"\$([A-Za-z_]\w*)?\$", sql[i:])):
            tag = m.group(0)
            j = sql.find(tag, i + len(tag))
            if j < 0:
                raise ConnectorError("The query has an unterminated dollar-quoted string.")
            i = j + len(tag)
        elif c == ";":
            semicolons.append(i)
            i += 1
        elif c.isalpha() or c == "_":
            m = re.match(r"\w+", sql[i:])
            assert m is not None
            words.append((m.group(0).lower(), i + m.end()))
            i += m.end()
        else:
            i += 1
    return words, semicolons


def check_select_query(sql: str, dialect: str = "postgres") -> str:
    """Return the query without a trailing ``;`` if it is one read-only SELECT.

    ``dialect`` is "postgres", "mysql" or "sqlite". This is a guard against accidents,
    not the only line of defence: connectors also run queries in read-only
    transactions (or under a read-only authorizer for SQLite).
    """
    words, semicolons = _sql_words(sql, dialect)
    body = sql.strip()
    if semicolons:
        if len(semicolons) > 1 or sql[semicolons[0] + 1 :].strip():
            raise ConnectorError("The query must be a single SELECT statement.")
        body = sql[: semicolons[0]].strip()
    if not words or words[0][0] not in ("select", "with"):
        raise ConnectorError("The query must start with SELECT or WITH.")
    for word, end in words:
        if word == "replace" and sql[end:].lstrip().startswith("("):
            continue  # the string function, not MySQL's REPLACE statement
        if word in _FORBIDDEN_WORDS:
            raise ConnectorError(f"The query may only read data ('{word.upper()}' is not allowed).")
    return body


# ---------------------------------------------------------------- rows -> polars

_NATIVE = (str, int, float, bool, decimal.Decimal, dt.date, dt.datetime, dt.time, dt.timedelta)


def _as_text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, dict | list | tuple):
        return json.dumps(value, default=str, ensure_ascii=False)
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).hex()
    return str(value)


def _series(name: str, values: list[Any], dtype: pl.DataType | None) -> pl.Series:
    if dtype is not None:
        try:
            return pl.Series(name, values, dtype=dtype, strict=True)
        except Exception:  # noqa: BLE001,S110 - hint was wrong for this batch; infer below
            pass
    try:
        s = pl.Series(name, values, strict=False)
    except Exception:  # noqa: BLE001 - exotic driver objects: fall back to text
        s = None
    if s is None or s.dtype == pl.Object:
        s = pl.Series(name, [_as_text(v) for v in values], dtype=pl.String)
    return s


def unique_names(names: Iterable[str]) -> list[str]:
    """``SELECT a.id, b.id`` yields two ``id`` columns; polars needs distinct names."""
    seen: dict[str, int] = {}
    out = []
    for name in names:
        if name in seen:
            seen[name] += 1
            name = f"{name}_{seen[name]}"
        seen.setdefault(name, 1)
        out.append(name)
    return out


def frame_from_rows(
    columns: Sequence[str],
    rows: Sequence[Sequence[Any]],
    dtypes: Mapping[str, pl.DataType | None] | None = None,
) -> pl.DataFrame:
    """Build a frame column by column from driver rows (tuples)."""
    dtypes = dtypes or {}
    if not rows:
        return pl.DataFrame({c: pl.Series(c, [], dtype=dtypes.get(c) or pl.Null) for c in columns})
    cols = list(zip(*rows, strict=True))
    return pl.DataFrame(
        [_series(c, list(v), dtypes.get(c)) for c, v in zip(columns, cols, strict=True)]
    )


def flatten_record(record: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested objects become ``parent.child`` fields; arrays become JSON text."""
    out: dict[str, Any] = {}
    for k, v in record.items():
        name = f"{prefix}{k}"
        if isinstance(v, Mapping):
            out.update(flatten_record(v, f"{name}."))
        elif isinstance(v, list):
            out[name] = json.dumps(v, ensure_ascii=False)
        else:
            out[name] = v
    return out


def frame_from_records(records: Sequence[Mapping[str, Any]]) -> pl.DataFrame:
    """JSON objects -> frame; missing fields are null, mixed-type fields become text."""
    flat = [flatten_record(r) for r in records]
    names: dict[str, None] = {}
    for r in flat:
        names.update(dict.fromkeys(r))
    columns = list(names)
    rows = [tuple(r.get(c) for c in columns) for r in flat]
    return frame_from_rows(columns, rows)


class SchemaTracker:
    """Keeps dtypes stable across batches: an all-null batch column takes the earlier dtype."""

    def __init__(self) -> None:
        self.dtypes: dict[str, pl.DataType] = {}

    def stabilize(self, frame: pl.DataFrame) -> pl.DataFrame:
        casts = []
        for name, dtype in frame.schema.items():
            known = self.dtypes.get(name)
            if dtype == pl.Null and known is not None and known != pl.Null:
                casts.append(pl.col(name).cast(known))
            elif known is None or known == pl.Null:
                self.dtypes[name] = dtype
        return frame.with_columns(casts) if casts else frame


def json_safe(value: Any) -> Any:
    if value is None or isinstance(value, str | int | float | bool):
        return value
    if isinstance(value, dt.date | dt.datetime | dt.time):
        return value.isoformat()
    return _as_text(value)


def first_row(frame: pl.DataFrame) -> dict[str, Any] | None:
    if frame.height == 0:
        return None
    return {k: json_safe(v) for k, v in frame.row(0, named=True).items()}


def fetch_all(connector: Connector, batch_size: int = DEFAULT_BATCH_SIZE) -> pl.DataFrame:
    """All records in one frame; batches with drifting dtypes are relaxed to a supertype."""
    frames = list(connector.fetch(batch_size))
    if not frames:
        return pl.DataFrame()
    return pl.concat(frames, how="diagonal_relaxed")


# ---------------------------------------------------------------- base class


class BaseConnector:
    """Implements ``test()`` on top of a per-kind ``_probe()``; keeps secrets for scrubbing."""

    kind = "base"
    config_class: type  # each kind's frozen config dataclass, with from_dict()

    def __init__(self, config: Any, secrets: Mapping[str, Any], guard: GuardPolicy) -> None:
        self.config = config
        self.guard = guard
        self.key = config.key
        self._secrets = dict(secrets)

    @classmethod
    def from_config(
        cls, config: Mapping[str, Any], secrets: Mapping[str, Any], guard: GuardPolicy
    ) -> Self:
        return cls(cls.config_class.from_dict(config), secrets, guard)

    def _probe(self) -> pl.DataFrame:
        """Connect and return at most one record (with all columns)."""
        raise NotImplementedError

    def _errors(self, what: str) -> contextlib.AbstractContextManager[None]:
        return translate_errors(what, self._secrets)

    def test(self) -> ConnectionReport:
        start = time.perf_counter()
        try:
            frame = self._probe()
        except ConnectorError as exc:
            return ConnectionReport(False, _ms(start), error=scrub(exc.message, self._secrets))
        except Exception as exc:  # noqa: BLE001 - a report, never a crash
            message = scrub(f"Unexpected {type(exc).__name__}: {exc}", self._secrets)[:500]
            return ConnectionReport(False, _ms(start), error=message)
        latency = _ms(start)
        missing = [k for k in self.key if k not in frame.columns]
        if missing:
            return ConnectionReport(
                False,
                latency,
                fields=frame.columns,
                sample=first_row(frame),
                error=f"Key field(s) not found in the dataset: {', '.join(missing)}.",
            )
        return ConnectionReport(True, latency, fields=frame.columns, sample=first_row(frame))

    def fields(self) -> list[str]:
        return self._probe().columns


def _ms(start: float) -> float:
    return (time.perf_counter() - start) * 1000.0
