"""The first structural problem of a CSV file, said as a person would: line, column, what.

The engine's own errors name its tuning options (`infer_schema_length`, `schema_overrides`)
instead of the line at fault, so a file is checked here at upload, and again whenever the
engine refuses a stored file, to say what is wrong with it.
"""

import csv
import io

HINT = "check the delimiter and the quoting"


def csv_problem(data: bytes, delimiter: str = ",", encoding: str = "utf-8") -> str | None:
    """None when every record has the header's number of fields; else the first problem."""
    try:
        text = data.decode(encoding)
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        column = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        return f"Line {line}, character {column}: not valid {encoding.upper()} text."
    except LookupError:
        return f"Unknown text encoding '{encoding}'."
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter or ",", strict=True)
    width, start = None, 1
    try:
        for row in reader:
            if row and width is None:
                width = len(row)
            elif row and len(row) != width:
                if len(row) > width:
                    return (
                        f"Line {start}, column {width + 1}: {len(row)} fields where the header "
                        f"has {width}; {HINT}."
                    )
                return (
                    f"Line {start}: {len(row)} field{'s' if len(row) != 1 else ''} where the "
                    f"header has {width}; {HINT}."
                )
            start = reader.line_num + 1
    except csv.Error as exc:
        if "EOF" in str(exc) or "end of data" in str(exc):
            return f"Line {start}: a quoted field is never closed; {HINT}."
        return f"Line {reader.line_num}: {exc}; {HINT}."
    if width is None:
        return "The file is empty: it needs a header row."
    return None


def engine_summary(exc: Exception) -> str:
    """The engine's first sentence, without its advice on its own options."""
    first = next((line.strip() for line in str(exc).splitlines() if line.strip()), "")
    first = first.replace("Schema", "header").replace("'header'", "the header")
    return (
        (first[:1].upper() + first[1:]).rstrip(".") + f"; {HINT}."
        if first
        else HINT.capitalize() + "."
    )
