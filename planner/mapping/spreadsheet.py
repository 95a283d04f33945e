"""Mapping spreadsheets: read CSV/XLSX, match columns by header, validate, and write back.

Nothing is imported until every row is clean: `validate_rows` returns either rows or errors
that name the spreadsheet row and column. Export writes the same headers and vocabulary that
import reads, so a file round-trips unchanged.
"""

import csv
import io
import re
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass

from ..filesafety import (
    UNREADABLE,
    FileLimits,
    FileRefused,
    check_xlsx,
    neutralise,
    safe_csv,
    unneutralise,
)
from .checks import rule_errors
from .rules import RuleError
from .tolerance import tolerance_problem
from .vocabulary import ACCEPTED, VOCABULARY_FIELDS, interpret, value_key

# A mapping is at most a few thousand rows of a dozen columns; anything far larger is refused
# before it is parsed. The web page and the API pass the limits from settings.
IMPORT_LIMITS = FileLimits(
    max_uncompressed_bytes=50 * 1024 * 1024, max_rows=20_000, max_columns=100, max_cells=1_000_000
)

# field name -> (canonical header, other names people use for it)
COLUMNS: dict[str, tuple[str, tuple[str, ...]]] = {
    "source_field": (
        "Source field",
        ("source", "from", "source column", "src field", "from field"),
    ),
    "source_type": ("Source type", ("src type", "from type")),
    "target_field": (
        "Target field",
        ("target", "to", "destination", "target column", "dest field"),
    ),
    "target_type": ("Target type", ("to type", "destination type", "dest type")),
    "max_length": ("Target max length", ("max length", "maxlength", "length", "max len")),
    "required": ("Required", ("mandatory", "not null")),
    "null_rule": ("Null rule", ("null handling", "when null", "nulls")),
    "null_default": ("Default value", ("default", "null default")),
    "rule": ("Transformation", ("transformation rule", "transform", "rule", "mapping rule")),
    "tolerance": ("Tolerance", ("allowed difference", "tolerance allowed")),
    "direction": ("Direction", ("sync direction",)),
    "frequency": ("Sync frequency", ("frequency", "sync", "schedule")),
    "every_minutes": ("Every N minutes", ("minutes", "interval minutes")),
    "source_of_truth": ("Source of truth", ("sot", "system of record", "master")),
    "conflict_rule": ("Conflict rule", ("conflict", "conflict resolution")),
    "notes": ("Notes", ("notes and edge cases", "edge cases", "comments", "comment")),
}
HEADERS = [header for header, _ in COLUMNS.values()]

# Columns that say which connection a row belongs to; they fill no mapping field.
ROUTING: dict[str, tuple[str, tuple[str, ...]]] = {
    "source_system": ("Source System", ("from system", "source application", "source app")),
    "target_system": ("Target System", ("to system", "target application", "target app")),
}
DEFAULTS = {"direction": "one_way", "frequency": "real_time", "source_of_truth": "source"}
# The FieldMapping model's lengths for free-text CharFields (tests compare the two).
MAX_LENGTHS = {"source_field": 200, "target_field": 200, "null_default": 200, "tolerance": 40}
MAX_WHOLE_NUMBER = 2_147_483_647  # PositiveIntegerField in PostgreSQL
# Names and types mean the same with or without surrounding spaces, so only they are trimmed
# (vocabulary cells are matched ignoring case and spacing); every other cell is kept exactly.
TRIMMED = frozenset({"source_field", "target_field", "source_type", "target_type"})
TRIMMED_NOTE = (
    "Field names and types are trimmed of surrounding spaces; every other cell is kept "
    "exactly as written (spaces, line breaks, any characters)."
)


@dataclass(frozen=True)
class ImportProblem:
    row: int | None  # 1-based spreadsheet row (the header is row 1); None for the whole file
    column: str  # header text as in the file, or ""
    message: str

    def __str__(self) -> str:
        where = []
        if self.row is not None:
            where.append(f"row {self.row}")
        if self.column:
            where.append(f"column '{self.column}'")
        return f"{', '.join(where)}: {self.message}" if where else self.message


class SpreadsheetError(ValueError):
    def __init__(self, problems: list[ImportProblem]) -> None:
        super().__init__("; ".join(str(p) for p in problems))
        self.problems = problems


@dataclass
class Sheet:
    headers: list[str]
    rows: list[tuple[int, list[str]]]  # (spreadsheet row number, cells)


def _norm(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", " ", text.lower()).strip()


_LOOKUP = {
    _norm(name): field
    for field, (header, others) in (COLUMNS | ROUTING).items()
    for name in (header, field, *others)
}


def read_sheet(
    data: bytes, filename: str, limits: FileLimits | None = None, *, headerless: bool = False
) -> Sheet:
    """Read the first sheet of an XLSX file or a CSV file (UTF-8, any common delimiter).

    headerless: rows copied from a spreadsheet without their header row are read in the
    export's column order (a paste into the editor's grid).

    The file is checked against `limits` (IMPORT_LIMITS by default) before any parser runs, and
    rows are read as a stream, so an oversized or malicious file is refused at once.
    """
    limits = limits or IMPORT_LIMITS
    if not data.strip():
        raise SpreadsheetError([ImportProblem(None, "", "The file is empty.")])
    try:
        workbook = filename.lower().endswith(".xlsx") or data[:2] == b"PK"
        table = _xlsx_rows(data, limits) if workbook else _csv_rows(data, limits)
        numbered = _filled_rows(table, limits)
    except FileRefused as exc:
        raise SpreadsheetError([ImportProblem(None, "", str(exc))]) from exc
    if not numbered:
        raise SpreadsheetError([ImportProblem(None, "", "The file has no rows.")])
    header_row, headers = numbered[0]
    headers = [h.strip() for h in headers]
    if headerless and not any(_norm(h) in _LOOKUP for h in headers):
        width = max(len(row) for _, row in numbered)
        named = HEADERS[:width] + [""] * (width - len(HEADERS))  # extra columns: shown, ignored
        return Sheet(named, [(n, (row + [""] * width)[:width]) for n, row in numbered])
    if not any(_norm(h) in _LOOKUP for h in headers):
        shown = ", ".join(f"'{h}'" for h in headers if h) or "(blank)"
        raise SpreadsheetError(
            [
                ImportProblem(
                    header_row,
                    "",
                    (
                        f"The first row must name the columns (e.g. {', '.join(HEADERS[:3])}); "
                        f"none of {shown} is a known column."
                    ),
                )
            ]
        )
    width = len(headers)
    # In text, a filled cell right of the last header belongs to no column: dropping it would
    # lose text without a word (typically a comma inside a cell that was not quoted). A
    # workbook's cells beside the table are notes, like those under a blank header.
    overflow = (
        []
        if workbook
        else [
            ImportProblem(
                n,
                "",
                f"this row has {last} cells but the first row names {width} columns; a cell with"
                " a comma (or the file's delimiter) must be quoted.",
            )
            for n, row in numbered[1:]
            if (last := max((i + 1 for i, c in enumerate(row) if c.strip()), default=0)) > width
        ]
    )
    if overflow:
        raise SpreadsheetError(overflow)
    # Cells keep their exact text (a note may start or end with spaces); fields that are names
    # or codes are trimmed when they are cleaned.
    rows = [(n, (row + [""] * width)[:width]) for n, row in numbered[1:]]
    return Sheet(headers, rows)


def _filled_rows(table: Iterator[list[str]], limits: FileLimits) -> list[tuple[int, list[str]]]:
    numbered = []
    for n, row in enumerate(table, start=1):
        if any(c.strip() for c in row):
            if len(numbered) == limits.max_rows:
                raise FileRefused(f"Row {n:,}: the limit is {limits.max_rows:,} rows.")
            numbered.append((n, row))
    return numbered


def _csv_rows(data: bytes, limits: FileLimits) -> Iterator[list[str]]:
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise SpreadsheetError(
            [
                ImportProblem(
                    line,
                    "",
                    (
                        f"The file is not UTF-8 text (byte 0x{data[exc.start]:02x}). "
                        "Save it as 'CSV UTF-8' or as XLSX and upload again."
                    ),
                )
            ]
        ) from exc
    # Only the delimiter is guessed, from the header line: cells below may hold any text, which
    # could mislead the guess, and the rest of the dialect is Excel's (doubled quotes).
    try:
        delimiter = csv.Sniffer().sniff(text[:4096].partition("\n")[0], ",;\t|").delimiter
    except csv.Error:
        delimiter = ","
    return _csv_records(csv.reader(io.StringIO(text, newline=""), delimiter=delimiter), limits)


def _csv_records(reader, limits: FileLimits) -> Iterator[list[str]]:
    row = 0
    while True:
        row += 1
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            if "field larger than field limit" in str(exc):
                raise FileRefused(
                    f"Row {row:,} holds a cell of more than {csv.field_size_limit():,} "
                    f"characters; the limit is {limits.max_cell_chars:,}."
                ) from exc
            raise SpreadsheetError([ImportProblem(None, "", f"Unreadable CSV: {exc}")]) from exc
        if len(cells) > limits.max_columns:
            raise FileRefused(
                f"Row {row:,} has {len(cells):,} columns; the limit is {limits.max_columns:,}."
            )
        for i, cell in enumerate(cells, start=1):
            if len(cell) > limits.max_cell_chars:
                raise FileRefused(
                    f"Row {row:,}, column {i:,} holds {len(cell):,} characters; "
                    f"the limit is {limits.max_cell_chars:,}."
                )
        yield [unneutralise(c) for c in cells]


def _xlsx_rows(data: bytes, limits: FileLimits) -> Iterator[list[str]]:
    from openpyxl import load_workbook

    check_xlsx(data, limits)
    try:
        book = load_workbook(io.BytesIO(data), read_only=True, data_only=True, keep_links=False)
    except _BROKEN_XLSX as exc:
        raise SpreadsheetError([ImportProblem(None, "", UNREADABLE)]) from exc
    return _xlsx_values(book)


# What openpyxl raises for parts that are missing, malformed or point at nothing.
_BROKEN_XLSX = (
    zipfile.BadZipFile,
    zlib.error,
    EOFError,
    KeyError,
    IndexError,
    OSError,
    ValueError,
    TypeError,
    AttributeError,
    RuntimeError,
    NotImplementedError,
)


def _xlsx_values(book) -> Iterator[list[str]]:
    try:
        if not book.worksheets:
            raise SpreadsheetError([ImportProblem(None, "", UNREADABLE)])
        sheet = book.worksheets[0]
        # The size a sheet claims is not trusted: readers would pad every row out to it.
        sheet.reset_dimensions()
        for row in sheet.iter_rows(values_only=True):
            yield ["" if v is None else _cell_text(v) for v in row]
    except _BROKEN_XLSX as exc:
        raise SpreadsheetError([ImportProblem(None, "", UNREADABLE)]) from exc
    finally:
        book.close()


def _cell_text(value) -> str:
    if isinstance(value, str):
        return unneutralise(xlsx_unescape(value))
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


# XML cannot carry most control characters, and parsers turn a carriage return into a newline;
# OOXML writes such a character as _xHHHH_, and a literal "_xHHHH_" with its "_" as _x005F_.
_XLSX_ESCAPE = re.compile(r"[\x00-\x08\x0b-\x1f\ufffe\uffff]|_(?=x[0-9A-Fa-f]{4}_)")
_XLSX_UNESCAPE = re.compile(r"_x([0-9A-Fa-f]{4})_")


def xlsx_escape(text: str) -> str:
    return _XLSX_ESCAPE.sub(lambda m: f"_x{ord(m.group()):04X}_", text)


def xlsx_unescape(text: str) -> str:
    return _XLSX_UNESCAPE.sub(lambda m: chr(int(m.group(1), 16)), text) if "_x" in text else text


def match_columns(headers: list[str]) -> dict[int, str | None]:
    """Column index -> mapping field, by header name; unknown headers map to None."""
    seen: set[str] = set()
    out: dict[int, str | None] = {}
    for i, header in enumerate(headers):
        field = _LOOKUP.get(_norm(header))
        out[i] = field if field and field not in seen else None
        if field:
            seen.add(field)
    return out


@dataclass(frozen=True)
class UnknownValue:
    """A vocabulary value the importer does not understand, shown once in value matching."""

    field: str
    key: str  # value_key(text): what the choice is remembered under
    text: str  # as first written
    header: str
    rows: tuple[int, ...]

    def problem(self) -> ImportProblem:
        label = COLUMNS[self.field][0].lower()
        single = len(self.rows) == 1
        rows = "" if single else f" (rows {_row_list(self.rows)})"
        return ImportProblem(
            self.rows[0] if single else None,
            self.header,
            f"'{_shown(self.text)}'{rows} is not a {label} the importer knows. "
            f"Write one of: {ACCEPTED[self.field]}; or choose its meaning when matching values.",
        )


@dataclass
class CheckedRow:
    number: int  # the row as the spreadsheet shows it
    values: dict  # FieldMapping field -> value
    systems: tuple[str, str]  # Source System / Target System as written (trimmed), or ""
    headers: dict  # field -> the header of the column it came from, for messages


@dataclass
class Checked:
    rows: list[CheckedRow]
    problems: list[ImportProblem]
    unknown: list[UnknownValue]


def check_rows(
    sheet: Sheet, columns: dict[int, str | None], meanings: dict[tuple[str, str], str] | None = None
) -> Checked:
    """Read every row into mapping values; nothing raises, everything is collected.

    meanings: (field, value_key) -> a word `interpret` understands, chosen by the user for a
    value the vocabulary does not know. An unknown value with no meaning is listed once in
    `unknown` (never replaced by a default).
    """
    problems: list[ImportProblem] = []
    chosen = {field: i for i, field in columns.items() if field}
    for needed in ("source_field", "target_field"):
        if needed not in chosen:
            problems.append(ImportProblem(None, COLUMNS[needed][0], "This column is required."))
    if problems:
        return Checked([], problems, [])
    meanings = meanings or {}
    unknown: dict[tuple[str, str], tuple[str, str, list[int]]] = {}
    rows = [
        _clean(number, cells, chosen, sheet.headers, meanings, unknown, problems)
        for number, cells in sheet.rows
    ]
    return Checked(
        rows,
        problems,
        [UnknownValue(f, k, t, h, tuple(at)) for (f, k), (t, h, at) in unknown.items()],
    )


def validate_rows(
    sheet: Sheet,
    columns: dict[int, str | None],
    existing_targets: dict[str, str] | None = None,
    meanings: dict[tuple[str, str], str] | None = None,
) -> list[dict]:
    """Clean rows ready to save, or SpreadsheetError listing every problem (row and column).

    existing_targets: target field (lower-case) -> where it is already mapped, for appends.
    """
    checked = check_rows(sheet, columns, meanings)
    problems = list(checked.problems)
    problems += [u.problem() for u in checked.unknown]
    problems += duplicate_problems(checked.rows, existing_targets or {})
    if problems:
        raise SpreadsheetError(sorted(problems, key=problem_order))
    return [r.values for r in checked.rows]


def duplicate_problems(rows: list[CheckedRow], existing: dict[str, str]) -> list[ImportProblem]:
    """A target field mapped twice (in the file, or already, for an append)."""
    targets = dict(existing)
    problems = []
    for row in rows:
        target = row.values.get("target_field", "").lower()
        if target and target in targets:
            problems.append(
                ImportProblem(
                    row.number,
                    row.headers["target_field"],
                    f"'{row.values['target_field']}' is already mapped ({targets[target]}).",
                )
            )
        elif target:
            targets[target] = f"row {row.number}"
    return problems


def problem_order(p: ImportProblem) -> tuple:
    return (p.row or 0, p.column)


def _row_list(rows: tuple[int, ...], limit: int = 5) -> str:
    shown = ", ".join(str(r) for r in rows[:limit])
    return shown + (f" and {len(rows) - limit} more" if len(rows) > limit else "")


def rule_message(error: RuleError) -> str:
    """A rule problem located by its character in the cell, counted from 1."""
    if "at character" in error.message:
        return error.message
    return f"at character {error.position + 1}: {error.message}"


def _clean(number, cells, chosen, headers, meanings, unknown, problems) -> CheckedRow:
    row: dict = {}
    implied_by_words: dict = {}  # what vocabulary cells imply (varchar(80) -> max_length 80)
    header_of = {field: headers[i] for field, i in chosen.items()}

    def bad(field: str, message: str) -> None:
        problems.append(ImportProblem(number, header_of.get(field, column_header(field)), message))

    systems = ["", ""]
    for field, i in chosen.items():
        raw = cells[i]
        value = raw.strip() if field in TRIMMED or field in ROUTING else raw
        if "\x00" in value:
            bad(field, "The cell holds a NUL character (0x00), which cannot be stored.")
            value = value.replace("\x00", "")
        if field in ROUTING:
            systems[field == "target_system"] = value
            continue
        if field in MAX_LENGTHS and len(value) > MAX_LENGTHS[field]:
            bad(field, f"{len(value):,} characters; the limit is {MAX_LENGTHS[field]:,}.")
        if field in VOCABULARY_FIELDS:
            meaning = interpret(field, value)
            if meaning is None and (field, value_key(value)) in meanings:
                meaning = interpret(field, meanings[field, value_key(value)])
            if meaning is None:
                seen = unknown.setdefault((field, value_key(value)), (value, header_of[field], []))
                seen[2].append(number)
                continue
            for name, implied in meaning.items():
                if name == field:
                    row[name] = implied
                else:
                    implied_by_words[name] = (implied, field, value)
        elif field in ("max_length", "every_minutes"):
            row[field] = None
            digits = value.strip()
            if digits == "":
                pass
            elif not (digits.isascii() and digits.isdigit()) or int(digits) == 0:
                bad(field, f"'{_shown(value)}' is not a whole number above 0.")
            elif int(digits) > MAX_WHOLE_NUMBER:
                bad(field, f"'{_shown(value)}' is larger than {MAX_WHOLE_NUMBER:,}.")
            else:
                row[field] = int(digits)
        else:
            row[field] = value
    for name, (implied, field, value) in implied_by_words.items():
        given = row.get(name)
        if given in (None, "") or given == implied:
            row[name] = implied
        else:
            bad(
                field,
                f"'{_shown(value)}' means {column_header(name).lower()} {implied}, but column "
                f"'{header_of.get(name, column_header(name))}' says {given}.",
            )
    for field in ("source_field", "target_field"):
        if not row.get(field):
            bad(field, "This cell is empty; every row needs a source and a target field.")
    if row.get("rule", "").strip():
        for error in rule_errors(row["rule"], row.get("target_type") or ""):
            bad("rule", rule_message(error))
    if row.get("tolerance"):
        problem = tolerance_problem(row["tolerance"], row.get("target_type") or None)
        if problem:
            bad("tolerance", problem)
    if row.get("frequency") == "minutes" and not row.get("every_minutes"):
        bad("every_minutes", "Say how many minutes when the frequency is every N minutes.")
    for field, default in DEFAULTS.items():
        row.setdefault(field, default)
    for field in ("source_type", "target_type", "null_rule", "conflict_rule"):
        row.setdefault(field, "")
    for field in ("null_default", "notes", "rule"):
        row.setdefault(field, "")
    row.setdefault("required", False)
    row.setdefault("max_length", None)
    row.setdefault("every_minutes", None)
    return CheckedRow(number, row, (systems[0], systems[1]), header_of)


def column_header(field: str) -> str:
    return (COLUMNS | ROUTING)[field][0]


def _shown(value: str, limit: int = 60) -> str:
    return value if len(value) <= limit else value[: limit - 1] + "…"


def _export_value(field: str, value) -> str:
    if value is None:
        return ""
    if field == "required":
        return "yes" if value else "no"
    return str(value)


def export_rows(mappings: list) -> list[list[str]]:
    """Header + one row per mapping (objects with the mapping's attributes), as plain text."""
    fields = list(COLUMNS)
    return [HEADERS] + [[_export_value(f, getattr(m, f)) for f in fields] for m in mappings]


def export_csv(mappings: list) -> bytes:
    header, *rows = export_rows(mappings)
    # The BOM lets Excel open it as UTF-8; every cell is neutralised, so none runs as a formula.
    return safe_csv(header, rows, bom=True, newline="\r\n")


XLSX_CELL_CHARS = 32_767  # openpyxl would cut a longer text short without a word


def export_xlsx(mappings: list, title: str = "Mapping") -> bytes:
    """The mapping as an XLSX workbook; every cell is stored as text, never as a formula.

    SpreadsheetError if a text is too long for an XLSX cell (nothing would be lost in CSV).
    """
    from openpyxl import Workbook
    from openpyxl.styles import Font

    book = Workbook()
    sheet = book.active
    sheet.title = sheet_title(title)
    too_long = []
    for number, row in enumerate(export_rows(mappings), start=1):
        for column, text in enumerate(row, start=1):
            text = xlsx_escape(neutralise(text))
            if len(text) > XLSX_CELL_CHARS:
                too_long.append(
                    ImportProblem(
                        number,
                        HEADERS[column - 1],
                        (
                            f"{len(text):,} characters; an XLSX cell holds at most "
                            f"{XLSX_CELL_CHARS:,}. Export as CSV instead."
                        ),
                    )
                )
                continue
            if text:
                cell = sheet.cell(row=number, column=column, value=text)
                cell.data_type = "s"  # text, even when it looks like a formula or a number
    if too_long:
        raise SpreadsheetError(too_long)
    for cell in sheet[1]:
        cell.font = Font(bold=True)
    sheet.freeze_panes = "A2"
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


_TITLE_FORBIDDEN = re.compile(r"[\\/?*\[\]:\x00-\x1f]+")


def sheet_title(text: str) -> str:
    """A valid sheet title: none of \\ / ? * [ ] :, no quote at either end, at most 31 long."""
    title = _TITLE_FORBIDDEN.sub("-", text).strip().strip("'")[:31].strip().strip("'")
    if not title or title.lower() == "history":  # Excel reserves "History"
        return "Mapping"
    return title
