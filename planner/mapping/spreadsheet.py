"""Mapping spreadsheets: read CSV/XLSX, match columns by header, validate, and write back.

Nothing is imported until every row is clean: `validate_rows` returns either rows or errors
that name the spreadsheet row and column. Export writes the same headers and vocabulary that
import reads, so a file round-trips unchanged.
"""

import csv
import io
import re
import zipfile
from dataclasses import dataclass

from .rules import check

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
    "direction": ("Direction", ("sync direction",)),
    "frequency": ("Sync frequency", ("frequency", "sync", "schedule")),
    "every_minutes": ("Every N minutes", ("minutes", "interval minutes")),
    "source_of_truth": ("Source of truth", ("sot", "system of record", "master")),
    "conflict_rule": ("Conflict rule", ("conflict", "conflict resolution")),
    "notes": ("Notes", ("notes and edge cases", "edge cases", "comments", "comment")),
}
HEADERS = [header for header, _ in COLUMNS.values()]

TYPES = ("string", "integer", "decimal", "boolean", "date", "datetime")
CHOICES: dict[str, dict[str, str]] = {
    "source_type": {t: t for t in TYPES}
    | {
        "text": "string",
        "int": "integer",
        "number": "decimal",
        "bool": "boolean",
        "timestamp": "datetime",
    },
    "null_rule": {
        "reject": "reject",
        "default": "default",
        "skip": "skip",
        "use a default value": "default",
        "skip the field": "skip",
        "reject the record": "reject",
    },
    "direction": {
        "one_way": "one_way",
        "one-way": "one_way",
        "one way": "one_way",
        "bidirectional": "bidirectional",
        "two-way": "bidirectional",
    },
    "frequency": {
        "real_time": "real_time",
        "real-time": "real_time",
        "realtime": "real_time",
        "minutes": "minutes",
        "every n minutes": "minutes",
        "daily": "daily",
        "daily batch": "daily",
    },
    "source_of_truth": {
        "source": "source",
        "target": "target",
        "source system": "source",
        "target system": "target",
    },
    "conflict_rule": {
        "truth_wins": "truth_wins",
        "source of truth wins": "truth_wins",
        "last_write": "last_write",
        "last write wins": "last_write",
        "manual": "manual",
        "manual review": "manual",
    },
}
CHOICES["target_type"] = CHOICES["source_type"]
YES = {"yes", "y", "true", "1", "required", "x"}
NO = {"no", "n", "false", "0", "", "optional"}
DEFAULTS = {"direction": "one_way", "frequency": "real_time", "source_of_truth": "source"}


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
    for field, (header, others) in COLUMNS.items()
    for name in (header, field, *others)
}


def read_sheet(data: bytes, filename: str) -> Sheet:
    """Read the first sheet of an XLSX file or a CSV file (UTF-8, any common delimiter)."""
    if not data.strip():
        raise SpreadsheetError([ImportProblem(None, "", "The file is empty.")])
    if filename.lower().endswith(".xlsx") or data[:2] == b"PK":
        table = _xlsx_rows(data)
    else:
        table = _csv_rows(data)
    numbered = [(n, row) for n, row in enumerate(table, start=1) if any(c.strip() for c in row)]
    if not numbered:
        raise SpreadsheetError([ImportProblem(None, "", "The file has no rows.")])
    header_row, headers = numbered[0]
    headers = [h.strip() for h in headers]
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
    rows = [(n, [c.strip() for c in (row + [""] * width)[:width]]) for n, row in numbered[1:]]
    return Sheet(headers, rows)


def _csv_rows(data: bytes) -> list[list[str]]:
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
    try:
        dialect = csv.Sniffer().sniff(text[:4096], delimiters=",;\t|")
    except csv.Error:
        dialect = csv.excel
    try:
        return [list(row) for row in csv.reader(io.StringIO(text), dialect)]
    except csv.Error as exc:
        raise SpreadsheetError([ImportProblem(None, "", f"Unreadable CSV: {exc}")]) from exc


def _xlsx_rows(data: bytes) -> list[list[str]]:
    from openpyxl import load_workbook

    try:
        book = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except (zipfile.BadZipFile, KeyError, OSError, ValueError) as exc:
        raise SpreadsheetError(
            [
                ImportProblem(
                    None,
                    "",
                    ("The file is not a readable XLSX workbook. Save it again as .xlsx or .csv."),
                )
            ]
        ) from exc
    sheet = book.worksheets[0]
    rows = [
        ["" if v is None else _cell_text(v) for v in row]
        for row in sheet.iter_rows(values_only=True)
    ]
    book.close()
    return rows


def _cell_text(value) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


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


def validate_rows(
    sheet: Sheet, columns: dict[int, str | None], existing_targets: dict[str, str] | None = None
) -> list[dict]:
    """Clean rows ready to save, or SpreadsheetError listing every problem (row and column).

    existing_targets: target field (lower-case) -> where it is already mapped, for appends.
    """
    problems: list[ImportProblem] = []
    chosen = {field: i for i, field in columns.items() if field}
    for needed in ("source_field", "target_field"):
        if needed not in chosen:
            problems.append(ImportProblem(None, COLUMNS[needed][0], "This column is required."))
    if problems:
        raise SpreadsheetError(problems)
    targets = dict(existing_targets or {})
    clean_rows = []
    for number, cells in sheet.rows:
        row, row_problems = _clean(number, cells, chosen, sheet.headers)
        target = row.get("target_field", "").lower()
        if target and target in targets:
            row_problems.append(
                ImportProblem(
                    number,
                    sheet.headers[chosen["target_field"]],
                    f"'{row['target_field']}' is already mapped ({targets[target]}).",
                )
            )
        elif target:
            targets[target] = f"row {number}"
        problems.extend(row_problems)
        clean_rows.append(row)
    if problems:
        raise SpreadsheetError(problems)
    return clean_rows


def _clean(number: int, cells: list[str], chosen: dict[str, int], headers: list[str]):
    row: dict = {}
    problems: list[ImportProblem] = []

    def bad(field: str, message: str) -> None:
        problems.append(ImportProblem(number, headers[chosen[field]], message))

    for field, i in chosen.items():
        value = cells[i]
        if field in CHOICES:
            if value == "":
                row[field] = DEFAULTS.get(field, "")
                continue
            code = CHOICES[field].get(value.strip().lower())
            if code is None:
                allowed = ", ".join(sorted(set(CHOICES[field].values())))
                bad(field, f"'{value}' is not one of: {allowed}.")
            row[field] = code or ""
        elif field in ("max_length", "every_minutes"):
            if value == "":
                row[field] = None
            elif value.isdigit() and int(value) > 0:
                row[field] = int(value)
            else:
                bad(field, f"'{value}' is not a whole number above 0.")
                row[field] = None
        elif field == "required":
            lowered = value.lower()
            if lowered not in YES | NO:
                bad(field, f"'{value}' is not yes or no.")
            row[field] = lowered in YES
        else:
            row[field] = value
    for field in ("source_field", "target_field"):
        if not row.get(field):
            bad(field, "This cell is empty; every row needs a source and a target field.")
    for error in check(row.get("rule", "")) if row.get("rule") else []:
        bad("rule", str(error))
    if row.get("frequency") == "minutes" and not row.get("every_minutes"):
        message = "Say how many minutes when the frequency is every N minutes."
        problems.append(ImportProblem(number, "Every N minutes", message))
    for field, default in DEFAULTS.items():
        row.setdefault(field, default)
    return row, problems


def _export_value(field: str, value) -> str:
    if value is None:
        return ""
    if field == "required":
        return "yes" if value else "no"
    return str(value)


def export_rows(mappings: list) -> list[list[str]]:
    """Header + one row per mapping (objects with the mapping's attributes)."""
    fields = list(COLUMNS)
    return [HEADERS] + [[_export_value(f, getattr(m, f)) for f in fields] for m in mappings]


def export_csv(mappings: list) -> bytes:
    out = io.StringIO()
    csv.writer(out, lineterminator="\r\n").writerows(export_rows(mappings))
    return out.getvalue().encode("utf-8-sig")  # the BOM lets Excel open it as UTF-8


def export_xlsx(mappings: list, title: str = "Mapping") -> bytes:
    from openpyxl import Workbook
    from openpyxl.styles import Font

    book = Workbook()
    sheet = book.active
    sheet.title = title[:31]
    for row in export_rows(mappings):
        sheet.append(row)
    for cell in sheet[1]:
        cell.font = Font(bold=True)
    sheet.freeze_panes = "A2"
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()
