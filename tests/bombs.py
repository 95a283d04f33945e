"""XLSX files built by hand with zipfile: a valid workbook around whatever sheet XML a test needs,
including decompression bombs, and a way to measure what reading one costs in a fresh process."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import zipfile
from collections.abc import Iterable
from pathlib import Path

MAIN = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
REL = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
PKG = "http://schemas.openxmlformats.org/package/2006"
CT = "application/vnd.openxmlformats-officedocument"

CONTENT_TYPES = f"""<?xml version="1.0" encoding="UTF-8"?>
<Types xmlns="{PKG}/content-types">
<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>
<Default Extension="xml" ContentType="application/xml"/>
<Override PartName="/xl/workbook.xml" ContentType="{CT}.spreadsheetml.sheet.main+xml"/>
<Override PartName="/xl/worksheets/sheet1.xml" ContentType="{CT}.spreadsheetml.worksheet+xml"/>
<Override PartName="/xl/sharedStrings.xml" ContentType="{CT}.spreadsheetml.sharedStrings+xml"/>
</Types>"""
ROOT_RELS = f"""<?xml version="1.0" encoding="UTF-8"?>
<Relationships xmlns="{PKG}/relationships">
<Relationship Id="rId1" Type="{REL}/officeDocument" Target="xl/workbook.xml"/>
</Relationships>"""
WORKBOOK = f"""<?xml version="1.0" encoding="UTF-8"?>
<workbook xmlns="{MAIN}" xmlns:r="{REL}"><sheets>
<sheet name="Mapping" sheetId="1" r:id="rId1"/></sheets></workbook>"""
WORKBOOK_RELS = f"""<?xml version="1.0" encoding="UTF-8"?>
<Relationships xmlns="{PKG}/relationships">
<Relationship Id="rId1" Type="{REL}/worksheet" Target="worksheets/sheet1.xml"/>
<Relationship Id="rId2" Type="{REL}/sharedStrings" Target="sharedStrings.xml"/>
</Relationships>"""
SHEET_HEAD = f'<?xml version="1.0" encoding="UTF-8"?>\n<worksheet xmlns="{MAIN}"><sheetData>'
SHEET_TAIL = "</sheetData></worksheet>"
NO_STRINGS = f'<?xml version="1.0" encoding="UTF-8"?>\n<sst xmlns="{MAIN}" count="0"/>'


def inline(ref: str, text: str) -> str:
    return f'<c r="{ref}" t="inlineStr"><is><t>{text}</t></is></c>'


HEADER_ROW = '<row r="1">' + inline("A1", "Source field") + inline("B1", "Target field") + "</row>"


def xlsx(
    sheet: bytes | str | Iterable[bytes],
    strings: bytes | str = NO_STRINGS,
    compression: int = zipfile.ZIP_DEFLATED,
    content_types: str = CONTENT_TYPES,
    extra: dict[str, bytes] | None = None,
) -> bytes:
    """A workbook with one sheet whose XML is `sheet` (chunks are streamed into the zip)."""
    import io

    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression, compresslevel=9) as z:
        z.writestr("[Content_Types].xml", content_types)
        for name, data in (extra or {}).items():
            z.writestr(name, data)
        z.writestr("_rels/.rels", ROOT_RELS)
        z.writestr("xl/workbook.xml", WORKBOOK)
        z.writestr("xl/_rels/workbook.xml.rels", WORKBOOK_RELS)
        z.writestr("xl/sharedStrings.xml", strings)
        if isinstance(sheet, str | bytes):
            z.writestr("xl/worksheets/sheet1.xml", sheet)
        else:
            with z.open("xl/worksheets/sheet1.xml", "w", force_zip64=True) as part:
                for chunk in sheet:
                    part.write(chunk)
    return out.getvalue()


def sheet_xml(rows: str) -> str:
    return SHEET_HEAD + rows + SHEET_TAIL


def huge_inline_string(megabytes: int) -> Iterable[bytes]:
    """A sheet whose cell B2 holds `megabytes` MiB of 'A' (deflates about 1000 to 1)."""
    yield (
        SHEET_HEAD + HEADER_ROW + '<row r="2"><c r="A2" t="inlineStr"><is><t>x</t></is></c>'
        '<c r="B2" t="inlineStr"><is><t>'
    ).encode()
    block = b"A" * (1024 * 1024)
    for _ in range(megabytes):
        yield block
    yield ("</t></is></c></row>" + SHEET_TAIL).encode()


def many_cells(rows: int, per_row: int) -> Iterable[bytes]:
    """A header, then rows x per_row tiny numeric cells without references."""
    yield (SHEET_HEAD + HEADER_ROW).encode()
    row = b"<row>" + b"<c><v>1</v></c>" * per_row + b"</row>"
    for _ in range(0, rows, 1000):
        yield row * 1000
    yield SHEET_TAIL.encode()


def measure(code: str, path: Path, timeout: float = 120) -> dict:
    """Run `code` (which reads the bytes in `data` and may raise) in a fresh interpreter.

    Returns the CPU seconds taken (a bomb's cost is work, which a loaded machine's wall clock
    blurs), the growth of the peak resident set (VmHWM) in MB, and the error text.
    The child's address space is capped a little above what it had before, so that code which
    does expand the bomb fails with MemoryError instead of taking the machine down.
    """
    script = textwrap.dedent(
        """
        import json, resource, sys, time

        def status(key):
            for line in open("/proc/self/status"):
                if line.startswith(key + ":"):
                    return int(line.split()[1]) // 1024
            return 0

        data = open(sys.argv[1], "rb").read()
        SETUP
        before = status("VmHWM")
        cap = (status("VmSize") + 1536) * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
        start = time.process_time()
        error = ""
        try:
            CODE
        except MemoryError:
            error = "MemoryError"
        except Exception as exc:
            error = str(exc)
        print(json.dumps({"seconds": time.process_time() - start,
                          "grew_mb": status("VmHWM") - before, "error": error}))
        """
    )
    setup, _, body = code.partition("\n---\n")
    if not body:
        setup, body = "", setup
    script = script.replace("SETUP", setup).replace("CODE", body.replace("\n", "\n    "))
    done = subprocess.run(  # noqa: S603 - our own interpreter and script
        [sys.executable, "-c", script, str(path)],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=Path(__file__).resolve().parent.parent,
        env={"PATH": "/usr/bin:/bin", "PYTHONHASHSEED": "0", "POLARS_MAX_THREADS": "1"},
    )
    if done.returncode != 0:
        return {"seconds": float("inf"), "grew_mb": float("inf"), "error": done.stderr[-2000:]}
    return json.loads(done.stdout.strip().splitlines()[-1])
