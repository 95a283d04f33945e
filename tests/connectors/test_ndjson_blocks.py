"""An NDJSON file read in blocks of whole lines gives what reading it whole gives."""

import json
import random

import polars as pl
import pytest

from planner.connectors import open_connector as open_
from planner.connectors.base import fetch_all
from planner.connectors.guard import GuardPolicy
from planner.connectors.names import ConnectorError
from planner.connectors.ndjson_blocks import NdjsonBlocks
from planner.filesafety import FileLimits, FileRefused

TEXTS = ["", "a", "é", "日本", 'say "hi"', "two\nlines", "tab\there", "\u2028 and \u2029", "🙂"]


def random_record(rng: random.Random, i: int, rows: int) -> dict:
    """Columns built to change type between blocks: a block that sees only some of a
    column's kinds must not decide its type."""
    late = i > rows * 3 // 4
    record = {
        "id": i,
        "text": rng.choice(TEXTS),
        "amount": rng.choice([i, i + 0.25, None]),
        "int_then_float": i * 1.5 if late and i % 3 == 0 else i,
        "int_then_text": "n/a" if late and i % 5 == 0 else i,
        "flag": rng.choice([True, False, None]),
        "bool_then_int": (i if late else i % 2 == 0),
        "huge": 2**63 + i if late and i % 7 == 0 else i,
        "nested": {"a": {"b": rng.choice([1, "x", None])}, "c": rng.choice([[1, 2], []])},
        "list": rng.choice([[1, "two", None], [{"k": "v"}], None]),
        "always_null": None,
    }
    if rng.random() < 0.3:
        del record["amount"]  # missing in some records
    if i > rows // 2 and rng.random() < 0.2:
        record["sparse_late"] = rng.choice(["late", 7])  # a column first seen late
    if rng.random() < 0.1:
        record["nested"] = "flat"  # a scalar where others nest
    keys = list(record)
    rng.shuffle(keys)
    return {k: record[k] for k in keys}


def random_ndjson(rng: random.Random, rows: int) -> bytes:
    lines = []
    for i in range(rows):
        lines.append(json.dumps(random_record(rng, i, rows), ensure_ascii=rng.random() < 0.5))
        if rng.random() < 0.05:
            lines.append(rng.choice(["", "   ", "\t"]))  # blank lines are skipped
    return ("\n".join(lines) + rng.choice(["", "\n"])).encode()


def whole_frame(data: bytes, **config) -> pl.DataFrame:
    conn = open_("file", {"content": data, "filename": "x.ndjson", **config}, {}, GuardPolicy())
    assert conn.whole_reason() == "the NDJSON file was given as content, not as a file on disk"
    return conn.frame()


def blocks_of(tmp_path, data: bytes, block: int, infer: bool = True, **limits) -> NdjsonBlocks:
    path = tmp_path / "data.ndjson"
    path.write_bytes(data)
    return NdjsonBlocks(path, infer, FileLimits(**limits), block_bytes=block)


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("block", [64, 700, 1 << 20])
def test_blocks_give_the_whole_file(tmp_path, seed, block):
    data = random_ndjson(random.Random(seed), 300)
    whole = whole_frame(data)
    reader = blocks_of(tmp_path, data, block)
    reader.check()
    frames = list(reader.frames())
    assert len(frames) > (20 if block < 1000 else 0)
    joined = pl.concat(frames)
    assert reader.schema == dict(whole.schema)
    assert joined.equals(whole)
    assert reader.rows == whole.height
    assert pl.concat(list(reader.batches(7))).equals(whole)
    # The cases the data was built for are in the file's types.
    types = whole.schema
    assert (types["int_then_float"], types["int_then_text"]) == (pl.Float64, pl.String)
    assert (types["bool_then_int"], types["huge"], types["always_null"]) == (
        pl.Int64,
        pl.UInt64,
        pl.Null,
    )
    assert types["nested.a.b"] == pl.String and "sparse_late" in types


def test_without_type_inference_every_column_is_text(tmp_path):
    data = random_ndjson(random.Random(7), 120)
    whole = whole_frame(data, infer_types=False)
    reader = blocks_of(tmp_path, data, 200, infer=False)
    assert pl.concat(list(reader.frames())).equals(whole)
    assert set(reader.schema.values()) == {pl.String}


@pytest.mark.parametrize(
    "first, later",
    [
        ([1, 2], [2.5]),
        ([1, 2], ["x"]),
        ([True], [1]),
        ([1], [True]),
        ([2**63], [True]),
        ([True], [2**63]),
        ([2**63], [-1]),
        ([None], [None]),
        ([2**64], [1.5]),
        ([-(2**127) - 1], [1]),
    ],
)
def test_a_column_typed_by_its_first_block_takes_the_whole_file_type(tmp_path, first, later):
    # One record a block: each block alone would type the column by its own values.
    lines = [json.dumps({"v": v}) for v in [*first, *later]]
    data = ("\n".join(lines) + "\n").encode()
    reader = blocks_of(tmp_path, data, 8)
    joined = pl.concat(list(reader.frames()))
    whole = whole_frame(data)
    assert joined.schema == whole.schema
    assert joined.equals(whole)


def test_the_connector_reads_a_file_on_disk_in_blocks_as_it_reads_its_content(tmp_path):
    data = random_ndjson(random.Random(3), 200)
    (tmp_path / "records.ndjson").write_bytes(data)
    guard = GuardPolicy(file_roots=(str(tmp_path),))
    on_disk = open_("file", {"path": str(tmp_path / "records.ndjson"), "key": "id"}, {}, guard)
    content = open_("file", {"content": data, "filename": "records.ndjson", "key": "id"}, {}, guard)
    assert on_disk.whole_reason() is None and on_disk.blocks() is not None
    assert on_disk.count() == content.count() == 200
    assert fetch_all(on_disk, 17).equals(fetch_all(content, 17))
    assert on_disk.frame().equals(content.frame())
    assert on_disk.test().to_dict() | {"latency_ms": 0} == content.test().to_dict() | {
        "latency_ms": 0
    }


def test_a_json_document_is_still_parsed_whole(tmp_path):
    (tmp_path / "records.json").write_text('[{"id": 1}]')
    guard = GuardPolicy(file_roots=(str(tmp_path),))
    conn = open_("file", {"path": str(tmp_path / "records.json")}, {}, guard)
    assert conn.whole_reason() == "JSON files are parsed whole"
    assert conn.blocks() is None and conn.frame().to_dicts() == [{"id": 1}]


def test_separators_inside_strings_crlf_and_a_byte_order_mark(tmp_path):
    # U+2028 and U+0085 may stand unescaped inside a JSON string: only \n ends a record.
    data = b'\xef\xbb\xbf{"id": 1, "t": "a\xe2\x80\xa8b\xc2\x85c"}\r\n\r\n{"id": 2, "t": "e"}\r\n'
    reader = blocks_of(tmp_path, data, 16)
    expected = [{"id": 1, "t": "a\u2028b\x85c"}, {"id": 2, "t": "e"}]
    assert pl.concat(list(reader.frames())).to_dicts() == expected
    assert whole_frame(data).to_dicts() == expected


def _line_20(text: bytes) -> bytes:
    lines = [b'{"id": %d, "name": "n%d"}' % (i, i) for i in range(1, 40)]
    lines[19] = text
    return b"\n".join(lines) + b"\n"


@pytest.mark.parametrize(
    "data, message",
    [
        (_line_20(b'{"id": 20, "name": '), "Line 20 is not valid JSON: Expecting value"),
        (_line_20(b"[1, 2]"), "Line 20 is not a JSON object."),
        (_line_20(b'{"id": "\xff"}'), "Line 20 is not valid UTF-8 text."),
        (_line_20(b'{"a": ' + b"[" * 70 + b"]" * 70 + b"}"), "Line 20 nests deeper than 64"),
        (_line_20(b'{"a": ' + b"[" * 2000 + b"]" * 2000 + b"}"), "Line 20 nests deeper"),
        (_line_20(b'{"a": {"b": 1, "c": 2, "d": 3}}'), "Line 20 brings the fields to more than 4"),
        (_line_20(b'{"a": "' + b"x" * 5000 + b'"}'), "Line 20 is 4.9 KB long; the limit is"),
        (_line_20(b'{"id": 20}') + b'{"id": 40}\n', "Line 40 holds record 40; the limit is 39"),
    ],
)
def test_every_problem_names_its_line_read_whole_or_in_blocks(tmp_path, monkeypatch, data, message):
    limits = {"max_columns": 4, "max_line_bytes": 4096, "max_rows": 39}
    with pytest.raises((ConnectorError, FileRefused)) as in_blocks:
        blocks_of(tmp_path, data, 64, **limits).check()
    got = getattr(in_blocks.value, "message", None) or str(in_blocks.value)
    assert message in got
    monkeypatch.setattr("planner.connectors.files.configured_limits", lambda: FileLimits(**limits))
    with pytest.raises(ConnectorError) as whole:
        whole_frame(data)
    assert whole.value.message == got


def test_an_empty_file_has_no_columns(tmp_path):
    reader = blocks_of(tmp_path, b"\n  \n", 64)
    reader.check()
    assert reader.rows == 0 and reader.schema == {} and list(reader.frames()) == []
    assert whole_frame(b"\n  \n").shape == (0, 0)


def test_a_file_in_another_encoding_is_read_in_blocks_as_its_content_is(tmp_path):
    data = "".join(
        json.dumps({"id": i, "name": f"Zoë {i}", "price": i * 0.5}, ensure_ascii=False) + "\n"
        for i in range(100)
    ).encode("latin-1")
    (tmp_path / "records.ndjson").write_bytes(data)
    guard = GuardPolicy(file_roots=(str(tmp_path),))
    config = {"encoding": "latin-1", "key": "id"}
    on_disk = open_("file", {"path": str(tmp_path / "records.ndjson"), **config}, {}, guard)
    content = open_("file", {"content": data, "filename": "x.ndjson", **config}, {}, guard)
    assert on_disk.blocks() is not None
    assert on_disk.frame().equals(content.frame())
    assert on_disk.frame()["name"][3] == "Zoë 3"
