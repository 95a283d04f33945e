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
import sqlglot
from sqlglot import exp
from sqlglot.errors import ParseError, TokenError
from sqlglot.tokens import Token, TokenType

if TYPE_CHECKING:
    from planner.connectors.guard import GuardPolicy

from planner.connectors.names import ConnectorError  # noqa: E402 - re-exported

KINDS = ("postgres", "mysql", "sqlite", "file", "http_json")
DEFAULT_BATCH_SIZE = 10_000


@dataclass(frozen=True)
class ConnectionReport:
    ok: bool
    latency_ms: float
    fields: list[str] = field(default_factory=list)
    sample: dict[str, Any] | None = None
    error: str | None = None
    # Risks worth telling the user even when the test passed (e.g. a superuser role).
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form, e.g. for a Django JSONField."""
        return {
            "ok": self.ok,
            "latency_ms": round(self.latency_ms, 1),
            "fields": list(self.fields),
            "sample": self.sample,
            "error": self.error,
            "warnings": list(self.warnings),
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


def sql_dataset(config: Mapping[str, Any], dialect: str) -> dict[str, Any]:
    """The table or checked query and the key of a SQL kind's config, as dataclass fields."""
    table, query = dataset_choice(config)
    return {
        "table": table,
        "query": check_select_query(query, dialect) if query else None,
        "key": parse_key(config.get("key")),
    }


def server_address(config: Mapping[str, Any], default_port: int) -> dict[str, Any]:
    """Host, database, user and port of a database server's config, as dataclass fields."""
    return {
        "host": require_str(config, "host", "Host"),
        "database": require_str(config, "database", "Database"),
        "user": require_str(config, "user", "User"),
        "port": optional_int(config, "port", default_port, minimum=1),
    }


def one_of(config: Mapping[str, Any], name: str, options: Sequence[str], default: str) -> str:
    value = optional_str(config, name, default) or default
    if value not in options:
        raise ConnectorError(f"{name} must be one of {', '.join(options)}.")
    return value


def utc_text(value: dt.datetime) -> str:
    """An instant as naive UTC text with microseconds, for a time filter a database reads."""
    if value.tzinfo is not None:
        value = value.astimezone(dt.UTC).replace(tzinfo=None)
    return value.isoformat(sep=" ", timespec="microseconds")


def quote_ident(name: str, quote: str = '"') -> str:
    """Quote one identifier with `quote`, doubling it inside."""
    if not name or "\x00" in name:
        raise ConnectorError("Invalid identifier.")
    return quote + name.replace(quote, quote * 2) + quote


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

# The parser is a first filter with readable messages. What actually keeps a query from
# writing is the session each connector opens: one statement per request, a read-only
# session, a statement timeout and a rollback after the read (see docs/connectors.md).
_SQLGLOT_DIALECTS = {"postgres": "postgres", "mysql": "mysql", "sqlite": "sqlite"}

# Statement kinds that write, change the session or reach outside the database; refused
# wherever they appear in the tree (e.g. ``WITH d AS (DELETE …) SELECT …``).
_FORBIDDEN_NODES: tuple[type[exp.Expression], ...] = (
    exp.DML,
    exp.DDL,
    exp.Insert,
    exp.Update,
    exp.Delete,
    exp.Merge,
    exp.Copy,
    exp.Create,
    exp.Drop,
    exp.Alter,
    exp.TruncateTable,
    exp.Command,
    exp.Set,
    exp.Pragma,
    exp.Attach,
    exp.Detach,
    exp.Transaction,
    exp.Commit,
    exp.Rollback,
    exp.Use,
    exp.LoadData,
    exp.Grant,
    exp.Revoke,
    exp.Kill,
    exp.Declare,
    exp.Execute,
)
_NODE_NAMES = {"truncatetable": "TRUNCATE", "loaddata": "LOAD DATA", "command": "COMMAND"}

# Functions a SELECT may call that read or write server files, run SQL text the parser
# never sees, or change the session's own limits (statement timeout, read-only default).
_FORBIDDEN_FUNCTIONS = frozenset(
    {
        # PostgreSQL
        *("set_config", "query_to_xml", "query_to_xmlschema", "query_to_xml_and_xmlschema"),
        *("dblink", "dblink_exec", "dblink_open", "dblink_send_query", "dblink_connect"),
        *("dblink_connect_u", "pg_read_file", "pg_read_binary_file", "pg_stat_file"),
        *("pg_ls_dir", "pg_ls_logdir", "pg_ls_waldir", "pg_ls_tmpdir", "pg_ls_archive_statusdir"),
        *("pg_file_write", "pg_file_rename", "pg_file_unlink", "pg_file_sync", "pg_logdir_ls"),
        *("lo_import", "lo_export", "lo_create", "lo_creat", "lo_from_bytea", "lo_put"),
        *("lo_unlink", "lo_open", "lowrite", "lo_truncate", "lo_truncate64"),
        *("pg_terminate_backend", "pg_cancel_backend", "pg_reload_conf", "pg_rotate_logfile"),
        *("pg_promote", "pg_switch_wal", "pg_create_restore_point", "pg_backup_start"),
        *("pg_backup_stop", "pg_start_backup", "pg_stop_backup"),
        # MySQL / MariaDB
        *("load_file", "sys_exec", "sys_eval"),
        # SQLite
        *("load_extension", "readfile", "writefile", "fts3_tokenizer"),
    }
)

# MySQL runs the text of ``/*! … */`` (MariaDB also ``/*M! … */``) as SQL, and optimizer
# hints ``/*+ … */`` can lift limits such as MAX_EXECUTION_TIME.
_MYSQL_EXECUTABLE_COMMENT = re.compile(r"/\*\s*M?!", re.IGNORECASE)
_MYSQL_HINT = re.compile(r"/\*\+")

_NOT_ONE_SELECT = "The query must be a single SELECT statement"


def _node_name(node: exp.Expression) -> str:
    if isinstance(node, exp.Command):
        return str(node.this or "COMMAND").split()[0].upper()
    return _NODE_NAMES.get(node.key, node.key.upper())


def _tokens(sql: str, dialect: str) -> list[Token]:
    try:
        return sqlglot.tokenize(sql, read=dialect)
    except (TokenError, RecursionError):
        raise ConnectorError(
            f"{_NOT_ONE_SELECT}: it could not be read (is a string, quoted name or comment"
            " left open?)."
        ) from None


def _check_mysql_comments(sql: str, tokens: list[Token]) -> None:
    """Comments live between tokens; look there, so ``'/*!'`` inside a string is fine."""
    edges = [-1, *(i for t in tokens for i in (t.start, t.end)), len(sql)]
    gaps = (sql[edges[i] + 1 : edges[i + 1]] for i in range(0, len(edges), 2))
    for gap in gaps:
        if _MYSQL_EXECUTABLE_COMMENT.search(gap):
            raise ConnectorError("The query may not contain MySQL executable comments (/*! … */).")
        if _MYSQL_HINT.search(gap):
            raise ConnectorError("The query may not contain optimizer hints (/*+ … */).")
    if any(t.token_type == TokenType.HINT for t in tokens):
        raise ConnectorError("The query may not contain optimizer hints (/*+ … */).")


def _check_tokens(tokens: list[Token]) -> None:
    for token, following in zip(tokens, tokens[1:], strict=False):
        if token.token_type == TokenType.INTO:
            raise ConnectorError("The query may only read data (INTO is not allowed).")
        name = token.text.lower()
        if name in _FORBIDDEN_FUNCTIONS and following.token_type == TokenType.L_PAREN:
            raise ConnectorError(
                f"The query may only read data (the function {name}() is not allowed)."
            )
    if tokens and tokens[-1].token_type == TokenType.INTO:
        raise ConnectorError("The query may only read data (INTO is not allowed).")


def _parse_error(exc: ParseError) -> ConnectorError:
    first = exc.errors[0] if exc.errors else {}
    near = " ".join(str(first.get("highlight") or "").split())[:40]
    where = f" near '{near}'" if near else ""
    if first.get("line"):
        where += f" (line {first['line']}, column {first.get('col')})"
    return ConnectorError(f"{_NOT_ONE_SELECT}: it could not be parsed{where}.")


def check_select_query(sql: str, dialect: str = "postgres") -> str:
    """Return the query without a trailing ``;`` if it is one read-only SELECT.

    ``dialect`` is "postgres", "mysql" or "sqlite". Accepts ``SELECT``, ``WITH … SELECT``
    and set operations of selects; refuses anything else, anything that does not parse,
    locking clauses, ``INTO`` and functions that reach server files or session settings.
    """
    read = _SQLGLOT_DIALECTS.get(dialect)
    if read is None:
        raise ConnectorError(f"Unknown SQL dialect '{dialect}'.")
    tokens = _tokens(sql, read)
    if dialect == "mysql":
        _check_mysql_comments(sql, tokens)
    try:
        statements = [s for s in sqlglot.parse(sql, read=read) if s is not None]
    except ParseError as exc:
        _check_tokens(tokens)  # a clearer reason when there is one (INTO OUTFILE, …)
        raise _parse_error(exc) from None
    except (TokenError, RecursionError):
        raise ConnectorError(f"{_NOT_ONE_SELECT}: it could not be parsed.") from None
    if not statements:
        raise ConnectorError(f"{_NOT_ONE_SELECT}: it is empty.")
    if len(statements) > 1:
        raise ConnectorError(
            f"{_NOT_ONE_SELECT}. It has {len(statements)} statements (separated by ';')."
        )
    root = statements[0]
    while isinstance(root, exp.Subquery):
        root = root.this
    if not isinstance(root, exp.Select | exp.SetOperation):
        raise ConnectorError(
            f"The query must be a SELECT statement ({_node_name(root)} is not allowed)."
        )
    for node in root.walk():
        if isinstance(node, exp.Lock):
            raise ConnectorError("The query may only read data (FOR UPDATE/SHARE is not allowed).")
        if isinstance(node, exp.Into):
            raise ConnectorError("The query may only read data (INTO is not allowed).")
        if isinstance(node, _FORBIDDEN_NODES):
            raise ConnectorError(
                f"The query may only read data ({_node_name(node)} is not allowed)."
            )
    _check_tokens(tokens)
    end = len(tokens)
    while end and tokens[end - 1].token_type == TokenType.SEMICOLON:
        end -= 1
    return sql[: tokens[end].start].strip() if end < len(tokens) else sql.strip()


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


def frame_from_records(
    records: Sequence[Mapping[str, Any]], lead: Mapping[str, Sequence[Any]] | None = None
) -> pl.DataFrame:
    """JSON objects -> frame; missing fields are null, mixed-type fields become text.

    ``lead``: the columns (in order), each with values its type is inferred with but which
    are not rows. Polars types a column by its values' kinds and the order they first come
    in, so a block of a file led by the first value of each kind the whole file holds is
    typed as the whole file is (see :mod:`planner.connectors.ndjson_blocks`).
    """
    flat = [flatten_record(r) for r in records]
    if lead is not None:
        return pl.DataFrame(
            [
                _series(name, [*first, *(r.get(name) for r in flat)], None).slice(len(first))
                for name, first in lead.items()
            ]
        )
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
        # No records, but a table still names its columns (an empty target is all missing).
        empty = getattr(connector, "empty_frame", None)
        return empty() if empty is not None else pl.DataFrame()
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

    def _probe_report(self) -> tuple[pl.DataFrame, list[str]]:
        """``_probe()`` plus warnings about the account used (kinds that can check)."""
        return self._probe(), []

    def _errors(self, what: str) -> contextlib.AbstractContextManager[None]:
        return translate_errors(what, self._secrets)

    def test(self) -> ConnectionReport:
        start = time.perf_counter()
        try:
            frame, warnings = self._probe_report()
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
                warnings=warnings,
            )
        return ConnectionReport(
            True, latency, fields=frame.columns, sample=first_row(frame), warnings=warnings
        )

    def fields(self) -> list[str]:
        return self._probe().columns

    def empty_frame(self) -> pl.DataFrame:
        """The dataset's columns without rows, typed as far as the connector can tell (an
        empty table still names its columns; an empty HTTP answer names none)."""
        return self._probe().clear()


def _ms(start: float) -> float:
    return (time.perf_counter() - start) * 1000.0
