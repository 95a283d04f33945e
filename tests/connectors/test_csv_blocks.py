"""A CSV file read in blocks of whole records gives what reading it whole gives."""

import csv
import io
import random

import polars as pl
import pytest

from planner.connectors.csv_blocks import CsvBlocks
from planner.connectors.names import ConnectorError
from planner.filesafety import FileLimits, FileRefused

VALUES = ["", "a", "B", "é", "日本", 'say "hi"', "two\nlines", "comma, here", "  pad  ", "\r\n"]


def random_csv(rng: random.Random, rows: int) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["id", "text", "number", "mixed", "late", "flag"])
    for i in range(rows):
        writer.writerow(
            [
                rng.choice([str(i), ""]),
                rng.choice(VALUES),
                rng.choice([str(i), f"{i}.25", ""]),
                rng.choice([str(i), "n/a"]) if i > rows // 2 else str(i),
                # Empty in the first half: a block that sees none must not decide the type.
                "" if i < rows // 2 else str(i),
                rng.choice(["true", "false", ""]),
            ]
        )
    return out.getvalue().encode()


def blocks_of(tmp_path, data: bytes, block: int, **limits) -> CsvBlocks:
    path = tmp_path / "data.csv"
    path.write_bytes(data)
    return CsvBlocks(path, ",", True, FileLimits(**limits), block_bytes=block)


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("block", [64, 1000, 1 << 20])
def test_blocks_give_the_whole_file(tmp_path, seed, block):
    data = random_csv(random.Random(seed), 300)
    whole = pl.read_csv(data, infer_schema_length=None)
    reader = blocks_of(tmp_path, data, block)
    reader.check()
    joined = pl.concat(list(reader.frames()))
    assert reader.schema == dict(whole.schema)
    assert joined.equals(whole)
    assert reader.rows == whole.height
    assert pl.concat(list(reader.batches(7))).equals(whole)


def test_an_empty_body_has_the_header_columns(tmp_path):
    reader = blocks_of(tmp_path, b"id,name\n", 64)
    reader.check()
    assert reader.rows == 0 and list(reader.schema) == ["id", "name"]


def test_a_broken_record_in_a_later_block_is_named_by_its_line(tmp_path):
    lines = ["id,name"] + [f"{i},n{i}" for i in range(200)]
    lines[150] = "150,n150,surplus"
    reader = blocks_of(tmp_path, ("\n".join(lines) + "\n").encode(), 256)
    with pytest.raises(
        ConnectorError, match=r"Line 151, column 3: 3 fields where the header has 2"
    ):
        reader.check()


def test_limits_hold_across_blocks(tmp_path):
    long_line = b"id,name\n1,a\n2," + b"x" * 5000 + b"\n3,c\n"
    # Measured to its end, though it runs past the blocks read when it is found.
    with pytest.raises(FileRefused, match="Line 3 is 4.9 KB long; the limit is 1000 bytes"):
        blocks_of(tmp_path, long_line, 256, max_line_bytes=1000).check()
    rows = b"id\n" + b"".join(b"%d\n" % i for i in range(50))
    with pytest.raises(FileRefused, match="the limit is 40 rows"):
        blocks_of(tmp_path, rows, 64, max_rows=40).check()


CODED = b"id,ref,code,count,amount\n007,1.0,007,1,10.50\n7,1,12,2,7\n8,2.0,+3,,2.5\n"


@pytest.mark.parametrize("block", [16, 1 << 20])
def test_inference_keeps_the_text_of_keys_and_codes(tmp_path, block):
    """A key is an identifier: "007" and "7", "1.0" and "1" are different records. An
    integer column with a value not written as its number writes it ("007", "+3") is a code."""
    path = tmp_path / "data.csv"
    path.write_bytes(CODED)
    reader = CsvBlocks(path, ",", True, FileLimits(), block_bytes=block, key=("id", "ref"))
    reader.check()
    assert reader.schema == {
        "id": pl.String,
        "ref": pl.String,
        "code": pl.String,
        "count": pl.Int64,  # every value written as its integer: still a number
        "amount": pl.Float64,  # a measure: 10.50 and 10.5 are one amount
    }
    frame = pl.concat(list(reader.frames()))
    assert frame["id"].to_list() == ["007", "7", "8"]
    assert frame["ref"].to_list() == ["1.0", "1", "2.0"]
    assert frame["code"].to_list() == ["007", "12", "+3"]


def test_a_key_of_integers_written_plainly_stays_a_number(tmp_path):
    path = tmp_path / "data.csv"
    path.write_bytes(b"id,n\n7,1\n-12,2\n,3\n")
    reader = CsvBlocks(path, ",", True, FileLimits(), block_bytes=8, key=("id",))
    reader.check()
    assert reader.schema == {"id": pl.Int64, "n": pl.Int64}
