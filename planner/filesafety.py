"""Uploaded spreadsheets checked before any parser opens them, and formula-safe cell text.

Inbound: a few hundred kilobytes of XLSX can expand to gigabytes (one huge string, millions of
tiny cells, rows numbered a million apart that a reader pads out). `check_xlsx` reads only the
zip directory and streams each sheet's XML through expat, counting, so refusing a bomb costs
neither time nor memory; openpyxl runs only on a file that passed. `check_lines` does the same
for line-based text (CSV, NDJSON).

Outbound: a cell that starts with = + - @, tab or carriage return is a formula to Excel and
LibreOffice (CSV injection). Every export passes text through `neutralise`, which prefixes a
single quote, and the importer passes it back through `unneutralise`, so a round trip returns
exactly the original text.

Nothing here imports Django; `configured_limits` reads the settings when Django is set up.
"""

from __future__ import annotations

import csv
import io
import posixpath
import re
import struct
import xml.etree.ElementTree as ET  # noqa: S405 - only parts already capped in size; no DTDs
import zipfile
import zlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any
from xml.parsers import expat

# ---------------------------------------------------------------- formulas in exports

FORMULA_START = frozenset("=+-@\t\r")


def _is_formula_like(text: str) -> bool:
    # Leading quotes are looked through so that text which really starts with a quote before a
    # dangerous character ("'=x") gets one more quote, and unneutralise can tell the two apart.
    return text.lstrip("'")[:1] in FORMULA_START


def neutralise(text: str) -> str:
    """Text safe to put in a spreadsheet cell: never read as a formula."""
    return "'" + text if _is_formula_like(text) else text


def unneutralise(text: str) -> str:
    """The original text of a cell written by `neutralise` (other text comes back unchanged)."""
    return text[1:] if text[:1] == "'" and _is_formula_like(text[1:]) else text


def safe_csv(
    header: Sequence[str], rows: Iterable[Sequence[Any]], *, bom: bool = False, newline: str = "\n"
) -> bytes:
    """UTF-8 CSV with every cell neutralised; None is an empty cell."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator=newline)
    writer.writerow([neutralise(str(h)) for h in header])
    writer.writerows(["" if v is None else neutralise(str(v)) for v in row] for row in rows)
    return out.getvalue().encode("utf-8-sig" if bom else "utf-8")


# ---------------------------------------------------------------- limits

MiB = 1024 * 1024
# Parts of a workbook other than sheets and the shared strings (styles, relationships, document
# properties, charts) are parsed whole into element trees; real ones are well under a megabyte.
METADATA_PART_BYTES = 16 * MiB
# Below this size a member's compression ratio is not worth judging (tiny XML compresses well).
RATIO_FROM_BYTES = 1 * MiB
# The format's own bounds: readers pad rows and columns up to the numbers a sheet claims.
XLSX_MAX_ROW, XLSX_MAX_COLUMN = 1_048_576, 16_384


@dataclass(frozen=True)
class FileLimits:
    max_uncompressed_bytes: int = 200 * MiB
    max_compression_ratio: int = 100
    max_parts: int = 1_000
    max_rows: int = 1_000_000
    max_columns: int = 1_000
    max_cells: int = 5_000_000
    max_cell_chars: int = 32_767  # Excel's own limit for one cell
    max_line_bytes: int = 1 * MiB
    max_json_depth: int = 64

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> FileLimits:
        known = {f.name for f in fields(cls)}
        return cls(**{k: int(v) for k, v in values.items() if k in known})


def configured_limits(name: str = "AETHON_FILE_LIMITS") -> FileLimits:
    """The limits in Django settings `name` (a dict of FileLimits fields), else the defaults."""
    values: Mapping[str, Any] = {}
    try:
        from django.conf import settings
    except ImportError:  # pragma: no cover - Django is a dependency; benchmarks may run bare
        return FileLimits()
    if settings.configured:
        values = getattr(settings, name, None) or {}
    return FileLimits.from_mapping(values)


class FileRefused(ValueError):
    """The file breaks a limit (the message names it) or cannot be read safely."""


def size_text(n: int) -> str:
    """1.9 GB, 200 MB, 12 KB: how people read sizes (units of 1024)."""
    for unit, size in (("GB", 1024**3), ("MB", MiB), ("KB", 1024)):
        if n >= size:
            value = n / size
            shown = f"{value:.1f}".removesuffix(".0") if value < 10 else f"{n // size}"
            return f"{shown} {unit}"
    return f"{n} bytes"


# ---------------------------------------------------------------- line-based text


def check_lines(data: bytes, limits: FileLimits, first_line: int = 1) -> None:
    """Refuse a line longer than max_line_bytes before a parser buffers it whole.

    ``first_line`` numbers the first line of ``data`` when it is a later block of a file.

    Any line longer than the limit covers a whole block of half the limit, so only blocks
    without a line break need a closer look: a few hundred C-speed searches for 200 MB.
    """
    cap = limits.max_line_bytes
    block = max(cap // 2, 1)
    at, end = 0, len(data)
    while at < end:
        if data.find(b"\n", at, at + block) >= 0:
            at += block
            continue
        start = data.rfind(b"\n", 0, at) + 1
        stop = data.find(b"\n", at)
        stop = end if stop < 0 else stop
        if stop - start > cap:
            raise line_too_long(data.count(b"\n", 0, start) + first_line, stop - start, cap)
        at = stop + 1


def line_too_long(number: int, length: int, cap: int) -> FileRefused:
    return FileRefused(
        f"Line {number:,} is {size_text(length)} long; the limit is {size_text(cap)}."
    )


# ---------------------------------------------------------------- XLSX (zip) checks

UNREADABLE = "The file is not a readable XLSX workbook. Save it again as .xlsx or .csv."
_WORKSHEET_TYPE = "/worksheet"
_SHARED_STRINGS = "application/vnd.openxmlformats-officedocument.spreadsheetml.sharedStrings+xml"
_WORKBOOK_TYPES = {
    f"application/vnd.{kind}.main+xml"
    for kind in (
        "openxmlformats-officedocument.spreadsheetml.sheet",
        "openxmlformats-officedocument.spreadsheetml.template",
        "ms-excel.sheet.macroEnabled",
        "ms-excel.template.macroEnabled",
    )
}
_COLUMN_REF = re.compile(r"\$?([A-Za-z]{1,3})\$?(\d+)")


def check_xlsx(data: bytes, limits: FileLimits) -> None:
    """Refuse an XLSX file whose parts or sheets break `limits`, reading it as a stream.

    Python's zipfile never returns more than a member's recorded size (it stops there and then
    fails the CRC), so the sizes in the zip directory are the sizes any zipfile-based reader
    (openpyxl) will see.
    """
    _check_entry_count(data, limits)
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, OSError) as exc:
        raise FileRefused(UNREADABLE) from exc
    with archive:
        infos = archive.infolist()
        _check_sizes(infos, limits)
        sheets, strings = _sheet_parts(archive)
        metadata_cap = min(METADATA_PART_BYTES, limits.max_uncompressed_bytes)
        for info in infos:
            name = info.filename
            if name in sheets:
                # Name the sheet only when there is a choice of sheets.
                label = (sheets[name] or name) if len(sheets) > 1 else ""
                _scan(archive, info, limits, strings=False, label=label)
            if name in strings:  # a part claimed as both is read as both, so checked as both
                _scan(archive, info, limits, strings=True, label="")
            if name not in sheets and name not in strings and info.file_size > metadata_cap:
                raise FileRefused(
                    f"The part {name} expands to {size_text(info.file_size)}; parts other than "
                    f"sheets are limited to {size_text(METADATA_PART_BYTES)}."
                )


def _check_entry_count(data: bytes, limits: FileLimits) -> None:
    """Count the zip's members from its end record, before zipfile builds one object each."""
    tail_start = max(0, len(data) - (22 + 65_535))
    at = data.rfind(b"PK\x05\x06", tail_start)
    if at < 0 or len(data) < at + 22:
        raise FileRefused(UNREADABLE)
    entries = struct.unpack_from("<H", data, at + 10)[0]
    if entries == 0xFFFF and at >= 20 and data[at - 20 : at - 16] == b"PK\x06\x07":
        offset = struct.unpack_from("<Q", data, at - 12)[0]
        if data[offset : offset + 4] != b"PK\x06\x06" or len(data) < offset + 40:
            raise FileRefused(UNREADABLE)
        entries = struct.unpack_from("<Q", data, offset + 32)[0]
    if entries > limits.max_parts:
        raise FileRefused(f"The file holds {entries:,} parts; the limit is {limits.max_parts:,}.")


def _check_sizes(infos: list[zipfile.ZipInfo], limits: FileLimits) -> None:
    if len(infos) > limits.max_parts:
        raise FileRefused(
            f"The file holds {len(infos):,} parts; the limit is {limits.max_parts:,}."
        )
    cap, ratio = limits.max_uncompressed_bytes, limits.max_compression_ratio
    total = sum(info.file_size for info in infos)
    if total > cap:
        raise FileRefused(
            f"The file expands to {size_text(total)} uncompressed; the limit is {size_text(cap)}."
        )
    for info in infos:
        packed = max(info.compress_size, 1)
        if info.file_size > RATIO_FROM_BYTES and info.file_size > ratio * packed:
            raise FileRefused(
                f"The part {info.filename} is compressed {info.file_size // packed:,} to 1 "
                f"({size_text(info.compress_size)} expanding to {size_text(info.file_size)}); "
                f"the limit is {ratio:,} to 1."
            )


def _read_small(archive: zipfile.ZipFile, name: str) -> ET.Element | None:
    """A small XML part (content types, relationships, workbook) as a tree, or None."""
    try:
        info = archive.getinfo(name)
    except KeyError:
        return None
    if info.file_size > METADATA_PART_BYTES:
        return None  # check_xlsx refuses it by size
    try:
        raw = archive.read(info)
    except (zipfile.BadZipFile, zlib.error, EOFError, RuntimeError, NotImplementedError) as exc:
        raise FileRefused(UNREADABLE) from exc
    if b"<!DOCTYPE" in raw:
        raise FileRefused(f"{UNREADABLE} (the part {name} declares a DTD)")
    try:
        return ET.fromstring(raw)  # noqa: S314 - size-capped, DTDs refused above
    except ET.ParseError:
        return None


def _local(tag: str) -> str:
    return tag.rpartition("}")[2].rpartition(":")[2]


def _sheet_parts(archive: zipfile.ZipFile) -> tuple[dict[str, str], set[str]]:
    """Worksheet part -> sheet name, and the shared-string parts, found as openpyxl finds them
    (content types, then the workbook's relationships); anything under worksheets/ counts too."""
    names = set(archive.namelist())
    sheets = {n: "" for n in names if "worksheets/" in n and not n.endswith(".rels")}
    strings = {n for n in names if n.lower().endswith("sharedstrings.xml")}
    workbook = "xl/workbook.xml"
    types = _read_small(archive, "[Content_Types].xml")
    for node in types.iter() if types is not None else ():
        if _local(node.tag) == "Override":
            part, kind = node.get("PartName", "").lstrip("/"), node.get("ContentType", "")
            if kind == _SHARED_STRINGS:
                strings.add(part)
            elif kind in _WORKBOOK_TYPES:
                workbook = part
    folder, base = posixpath.split(workbook)
    rels = _read_small(archive, posixpath.join(folder, "_rels", f"{base}.rels"))
    targets: dict[str, str] = {}
    for node in rels.iter() if rels is not None else ():
        if _local(node.tag) != "Relationship":
            continue
        target = node.get("Target", "")
        target = target[1:] if target.startswith("/") else posixpath.join(folder, target)
        target = posixpath.normpath(target)
        if node.get("Type", "").endswith(_WORKSHEET_TYPE):
            sheets.setdefault(target, "")
            targets[node.get("Id", "")] = target
    book = _read_small(archive, workbook)
    for node in book.iter() if book is not None else ():
        if _local(node.tag) == "sheet":
            rel = next((v for k, v in node.attrib.items() if _local(k) == "id"), "")
            if rel in targets:
                sheets[targets[rel]] = node.get("name", "")
    return sheets, strings


def _column_number(letters: str) -> int:
    number = 0
    for ch in letters.upper():
        number = number * 26 + ord(ch) - 64
    return number


class _Scan:
    """Counts one sheet's (or the shared strings') XML as expat streams it; raises on a limit.

    The handlers run once per element of files with millions of them, so they stay lean.
    """

    def __init__(self, limits: FileLimits, where: str, strings: bool) -> None:
        self.limits, self.where = limits, where
        self.max_columns = min(limits.max_columns, XLSX_MAX_COLUMN)
        self.row = 0  # current row number as a reader numbers it
        self.data_rows = 0  # rows holding at least one value
        self.column = 0
        self.width = 0  # the widest column of the current row, as a reader pads it
        self.cells_in_row = 0
        self.cells = 0
        self.ref = ""
        self.in_cell = False
        self.cell_chars = 0
        self.row_has_data = False
        self.run = 0  # one text run, anywhere in the part
        self.names: dict[str, str] = {}  # element name -> local name, computed once each
        self.unit = "si" if strings else "c"
        self.start = self._start_string if strings else self._start_sheet

    def refuse(self, message: str) -> None:
        raise FileRefused(f"{self.where}{message[:1].upper()}{message[1:]}")

    def local(self, name: str) -> str:
        tag = self.names.get(name)
        if tag is None:
            tag = self.names[name] = name.rpartition(":")[2]
        return tag

    def _start_string(self, name: str, attrs: dict[str, str]) -> None:
        self.run = 0
        if self.local(name) == "si":
            self.cells += 1
            if self.cells > self.limits.max_cells:
                self.refuse(
                    f"more than {self.limits.max_cells:,} distinct strings; the "
                    f"limit is {self.limits.max_cells:,} cells."
                )
            self.in_cell, self.cell_chars, self.ref = True, 0, f"{self.cells:,}"

    def _start_sheet(self, name: str, attrs: dict[str, str]) -> None:
        self.run = 0
        tag = self.local(name)
        if tag == "c":
            ref = attrs.get("r")
            if ref:
                match = _COLUMN_REF.fullmatch(ref)
                if match is None:
                    self.refuse(f"'{ref[:20]}' is not a cell reference.")
                self.column = _column_number(match.group(1))
            else:
                self.column += 1
            if self.column > self.max_columns:
                ref = ref or f"row {self.row:,}, column {self.column:,}"
                self.refuse(
                    f"Column {self.column:,} (cell {ref}): the limit is "
                    f"{self.limits.max_columns:,} columns."
                )
            self.cells_in_row += 1
            if self.cells_in_row > self.max_columns:
                most = self.limits.max_columns
                self.refuse(
                    f"row {self.row:,} holds more than {most:,} cells; the limit is "
                    f"{most:,} columns."
                )
            if self.column > self.width:
                self.width = self.column
            self.ref = ref
            self.in_cell, self.cell_chars = True, 0
        elif tag == "row":
            self._start_row(attrs.get("r"))

    def _start_row(self, number: str | None) -> None:
        if number is None:
            self.row += 1
        else:
            try:
                value = float(number)
            except ValueError:
                self.refuse(f"row number '{number[:20]}' is not a number.")
            if not value.is_integer() or value < 1:
                self.refuse(f"row number '{number[:20]}' is not a whole number above 0.")
            self.row = int(value)
        if self.row > XLSX_MAX_ROW:
            self.refuse(f"row {self.row:,} is past the last row an XLSX sheet can have.")
        self.column = self.width = self.cells_in_row = 0
        self.row_has_data = False

    def end(self, name: str) -> None:
        self.run = 0
        tag = self.local(name)
        if tag == self.unit:
            self.in_cell = False
        elif tag == "row":
            self.cells += self.width
            if self.cells > self.limits.max_cells:
                self.refuse(
                    f"more than {self.limits.max_cells:,} cells up to row {self.row:,} "
                    f"(empty cells between filled ones count, as readers fill them in); "
                    f"the limit is {self.limits.max_cells:,}."
                )

    def text(self, data: str) -> None:
        limit = self.limits.max_cell_chars
        self.run += len(data)
        if self.in_cell:
            self.cell_chars += len(data)
            if self.cell_chars > limit:
                what = "String" if self.unit == "si" else "Cell"
                ref = self.ref or f"in row {self.row:,}, column {self.column:,}"
                self.refuse(
                    f"{what} {ref} holds more than {limit:,} characters; the limit is {limit:,}."
                )
            if not self.row_has_data and self.unit == "c" and not data.isspace():
                self.row_has_data = True
                self.data_rows += 1
                if self.data_rows > self.limits.max_rows:
                    self.refuse(f"Row {self.row:,}: the limit is {self.limits.max_rows:,} rows.")
        elif self.run > limit:
            self.refuse(f"a text of more than {limit:,} characters; the limit is {limit:,}.")

    def doctype(self, *_args) -> None:
        self.refuse("the part declares a DTD, which spreadsheets never need.")


def _scan(
    archive: zipfile.ZipFile,
    info: zipfile.ZipInfo,
    limits: FileLimits,
    *,
    strings: bool,
    label: str,
) -> None:
    where = f"Sheet '{label}': " if label and not strings else ""
    scan = _Scan(limits, where, strings)
    parser = expat.ParserCreate()
    parser.StartElementHandler = scan.start
    parser.EndElementHandler = scan.end
    parser.CharacterDataHandler = scan.text
    parser.StartDoctypeDeclHandler = scan.doctype
    try:
        with archive.open(info) as stream:
            while chunk := stream.read(64 * 1024):
                parser.Parse(chunk, False)
        parser.Parse(b"", True)
    except (
        expat.ExpatError,
        zipfile.BadZipFile,
        zlib.error,
        EOFError,
        RuntimeError,
        NotImplementedError,
    ) as exc:
        raise FileRefused(f"{UNREADABLE} ({info.filename}: {exc})") from exc
