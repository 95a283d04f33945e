"""CSV files are sorted through disk and merged in key order, with the whole-table result.

Each case runs twice on the same stored uploads: streamed (the upload read from storage in
blocks) and held whole (the upload handed over as bytes), and the stages' figures and the
differences file must be the same.
"""

import csv
import io
import json
import os
import random
import subprocess
import sys
import textwrap

import pytest

from planner.connectors import csv_blocks, ndjson_blocks
from planner.runs import endpoints, spill
from planner.runs import service as validation
from tests.connectors import Reply, Request, loopback_only, serve  # noqa: F401 - autouse fixture
from tests.factories import (
    ConnectionFactory,
    FieldMappingFactory,
    ProjectFactory,
    SystemEndpointFactory,
    SystemFactory,
)

CHUNK = 13
CODES = ["a", "B", "b", "A", "é", "Z", "z", "aa", "AB", "ß", "日本", "Ä", "e\u0301", ""]


@pytest.fixture(autouse=True)
def media(settings, tmp_path, monkeypatch):
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.AETHON_RUN_CHUNK_ROWS = CHUNK
    settings.AETHON_RUN_FETCH_ROWS = 0
    monkeypatch.setattr(validation, "dispatch", lambda run: None)
    # Small sorted runs, read back in small pieces: the merge of many runs is exercised.
    monkeypatch.setattr(spill, "RUN_ROWS", 40)
    monkeypatch.setattr(spill, "MIN_PIECE_ROWS", 3)


def csv_of(header: list[str], rows: list[list]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    for row in rows:
        writer.writerow(["" if v is None else v for v in row])
    return out.getvalue()


def random_rows(rng: random.Random, n: int) -> list[list]:
    rows = []
    for i in range(n):
        code = None if rng.random() < 0.05 else rng.choice(CODES)
        number = None if rng.random() < 0.05 else rng.randint(0, 30)
        note = rng.choice(["plain", 'with "quotes"', "two\nlines", "comma, inside", "ü", None])
        amount = rng.choice([str(i), f"{i}.5", None])
        rows.append([code, number, note, amount])
    return rows


def connection_of(source_csv: str, target_csv: str, key: str, fields: list[str]):
    project = ProjectFactory()
    source = SystemFactory(project=project, name="Old CSV")
    target = SystemFactory(project=project, name="New CSV")
    SystemEndpointFactory(system=source, csv=source_csv, key_fields=key)
    SystemEndpointFactory(system=target, csv=target_csv, key_fields=key)
    connection = ConnectionFactory(project=project, source=source, target=target)
    for i, name in enumerate(fields):
        FieldMappingFactory(
            project=project,
            connection=connection,
            position=i,
            source_field=name,
            target_field=name,
            rule="identity",
            null_rule="skip",
        )
    return connection


def run_now(connection):
    run = validation.start_validation_run(connection, connection.project.owner)
    validation.execute_run(run.pk, heartbeat=False)
    run.refresh_from_db()
    return run


def outcome(run) -> tuple[dict, dict, str]:
    stages = {s.name: dict(s.figures) for s in run.stages.all()}
    reading = stages["reconciliation"].pop("reading")
    for stage in stages.values():
        for side in stage.get("sides", []):
            side.pop("latency_ms", None)
    text = run.differences_file.read().decode() if run.differences_file else ""
    return stages, reading, text


def streamed_and_whole(connection, monkeypatch):
    streamed = outcome(run_now(connection))
    with monkeypatch.context() as m:
        m.setattr(endpoints, "upload_file", lambda endpoint: None)
        whole = outcome(run_now(connection))
    return streamed, whole


@pytest.mark.parametrize("seed", [1, 2])
@pytest.mark.parametrize("key", ["code", "code, number"])
def test_random_csv_files_stream_with_the_whole_table_result(db, monkeypatch, seed, key):
    rng = random.Random(seed)
    header = ["code", "number", "note", "amount"]
    source = random_rows(rng, 150)
    target = [r[:] for r in source if rng.random() < 0.85] + random_rows(rng, 20)
    for row in rng.sample(target, 15):
        row[2] = "changed"
    rng.shuffle(source)
    rng.shuffle(target)
    connection = connection_of(
        csv_of(header, source), csv_of(header, target), key, ["code", "number", "note", "amount"]
    )
    (s_stages, s_reading, s_diff), (w_stages, w_reading, w_diff) = streamed_and_whole(
        connection, monkeypatch
    )
    assert s_reading["mode"] == "streamed", s_reading
    assert s_reading["key_ranges"] > 5
    assert w_reading["mode"] == "whole"
    assert "given as content" in w_reading["reason"]
    assert s_stages == w_stages
    assert s_diff == w_diff
    rec = s_stages["reconciliation"]
    # The cases the data was built for did occur: null keys, duplicates, differences.
    assert rec["null_keys_source"] > 0 and rec["duplicate_rows_source"] > 0
    assert rec["mismatched_count"] > 0 and rec["duplicate_rows_target"] > 0


def test_a_parallel_run_of_two_csv_outputs_streams_with_the_whole_table_result(db, monkeypatch):
    from planner.models import RunSchedule

    rng = random.Random(5)
    header = ["code", "number", "note", "amount"]
    old_rows = random_rows(rng, 120)
    new_rows = [r[:] for r in old_rows if rng.random() < 0.9] + random_rows(rng, 10)
    for row in rng.sample(new_rows, 10):
        row[3] = "9.75"
    fields = ["code", "number", "note", "amount"]
    connection = connection_of(csv_of(header, new_rows), csv_of(header, new_rows), "code", fields)
    old = SystemFactory(project=connection.project, name="Legacy output")
    SystemEndpointFactory(system=old, csv=csv_of(header, old_rows), key_fields="code")
    RunSchedule.objects.create(project=connection.project, connection=connection, baseline=old)

    def parallel_run():
        run = validation.start_validation_run(connection, None, kind="parallel")
        validation.execute_run(run.pk, heartbeat=False)
        run.refresh_from_db()
        figures = dict(run.stages.get(name="parallel").figures)
        return figures.pop("reading"), figures, run.differences_file.read().decode()

    streamed = parallel_run()
    with monkeypatch.context() as m:
        m.setattr(endpoints, "upload_file", lambda endpoint: None)
        whole = parallel_run()
    assert streamed[0]["mode"] == "streamed" and whole[0]["mode"] == "whole"
    assert streamed[1] == whole[1] and streamed[2] == whole[2]
    assert streamed[1]["mismatch_counts"]["amount"] > 0


def test_rows_read_for_the_sort_count_once_in_the_progress(db):
    rng = random.Random(9)
    header = ["code", "number", "note", "amount"]
    source, target = random_rows(rng, 70), random_rows(rng, 55)
    connection = connection_of(
        csv_of(header, source), csv_of(header, target), "code", ["code", "number"]
    )
    run = run_now(connection)
    assert run.stages.get(name="reconciliation").figures["reading"]["mode"] == "streamed"
    assert run.records_done == 70 + 55


def test_keys_sort_by_code_point_across_chunks(db, monkeypatch):
    codes = [*CODES, *(c + c for c in CODES)]
    source = [[c, i, "v"] for i, c in enumerate(codes)]
    target = [[c, i, "v" if c != "ß" else "w"] for i, c in enumerate(codes) if c != "Z"]
    target.append(["Q", 0, "v"])
    connection = connection_of(
        csv_of(["code", "n", "val"], list(reversed(source))),
        csv_of(["code", "n", "val"], target),
        "code",
        ["code", "n", "val"],
    )
    (stages, reading, _), (whole, _, _) = streamed_and_whole(connection, monkeypatch)
    rec = stages["reconciliation"]
    assert reading["mode"] == "streamed"
    assert rec["missing_in_target"] == [{"code": "Z"}]
    assert rec["extra_in_target"] == [{"code": "Q"}]
    assert rec["mismatch_counts"]["val"] == 1
    assert stages == whole


def test_the_run_page_says_a_file_was_sorted_on_disk_and_no_sample_taken(db):
    from django.urls import reverse

    from tests.conftest import client_for

    connection = connection_of("id,name\n2,B\n1,A\n", "id,name\n1,A\n", "id", ["id", "name"])
    run = validation.start_validation_run(connection, connection.project.owner, sample_percent=10)
    validation.execute_run(run.pk, heartbeat=False)
    page = client_for(run.project.owner).get(
        reverse("planner:run_show", args=[run.project_id, run.pk])
    )
    html = " ".join(page.content.decode().split())
    assert "sorted through temporary files first: Source (Old CSV), Target (New CSV)." in html
    assert (
        "A sample is taken only from SQL systems read in key order: every key was compared" in html
    )
    assert "Sample of 10% of keys" not in html


def test_an_xlsx_side_is_held_whole_and_the_run_says_so(db, monkeypatch):
    import openpyxl

    book = openpyxl.Workbook()
    book.active.append(["id", "name"])
    book.active.append([1, "Ada"])
    data = io.BytesIO()
    book.save(data)
    connection = connection_of("id,name\n1,Ada\n", "id,name\n1,Ada\n", "id", ["id", "name"])
    endpoint = connection.target.endpoint
    endpoint.upload.save("records.xlsx", io.BytesIO(data.getvalue()), save=False)
    endpoint.upload_name = "records.xlsx"
    endpoint.save()
    _, reading, _ = outcome(run_now(connection))
    assert reading == {
        "mode": "whole",
        "reason": "Target (New CSV) cannot be read in key order: XLSX files are parsed whole",
    }


def test_a_paged_http_source_is_read_page_by_page_and_sorted_on_disk(db, monkeypatch, settings):
    settings.AETHON_OUTBOUND_ALLOW_HOSTS = ["127.0.0.1"]
    rng = random.Random(7)
    records = []
    for i in range(90):
        code = None if i % 23 == 5 else rng.choice(CODES) + str(i % 40)
        # The first page has no values for 'amount': its column arrives all null.
        amount = None if i < 10 or i % 11 == 0 else i * 3
        records.append({"code": code, "amount": amount, "note": rng.choice(["x", "y\nz", "ü"])})
    rng.shuffle(records)
    target = [[r["code"], r["amount"], r["note"]] for r in records if rng.random() < 0.9]
    for row in rng.sample(target, 8):
        row[1] = (row[1] or 0) + 1
    pages: list[int] = []

    def api(req: Request) -> Reply:
        page = int(req.query.get("page", 1))
        pages.append(page)
        return Reply(body={"items": records[(page - 1) * 10 : page * 10]})

    with serve(api) as server:
        connection = connection_of(
            "code\n", csv_of(["code", "amount", "note"], target), "code", ["code", "amount", "note"]
        )
        endpoint = connection.source.endpoint
        endpoint.kind, endpoint.upload, endpoint.upload_name = "http_json", "", ""
        endpoint.config = {
            "base_url": server.url,
            "pagination": "page",
            "size_param": "per_page",
            "page_size": 10,
            "records_path": "$.items",
        }
        endpoint.dataset = "/records"
        endpoint.save()
        (stages, reading, diff), (whole, w_reading, w_diff) = streamed_and_whole(
            connection, monkeypatch
        )
    assert reading["mode"] == "streamed", reading
    assert w_reading["mode"] == "whole"
    assert stages == whole
    assert diff == w_diff
    rec = stages["reconciliation"]
    assert rec["null_keys_source"] == 4 and rec["mismatch_counts"]["amount"] > 0
    assert rec["missing_in_target_count"] > 0
    assert set(pages) == set(range(1, 11))  # 9 full pages and the empty one that ends it


def random_records(rng: random.Random, n: int, start: int = 0) -> list[dict]:
    """Records whose 'amount' is a whole number in early lines and a fraction in later ones,
    with a nested field and fields missing from some records."""
    records = []
    for i in range(start, start + n):
        record = {
            "code": None if rng.random() < 0.05 else rng.choice(CODES),
            "number": None if rng.random() < 0.05 else rng.randint(0, 30),
            "note": rng.choice(["plain", 'with "quotes"', "two\nlines", "\u2028", "ü", None]),
            "amount": i if i < 100 else i + 0.5,
            "meta": {"x": rng.choice([1, 2, None])},
        }
        if rng.random() < 0.1:
            del record["meta"]
        records.append(record)
    return records


def ndjson_of(records: list[dict]) -> bytes:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records).encode()


def upload(endpoint, name: str, data: bytes) -> None:
    endpoint.upload.save(name, io.BytesIO(data), save=False)
    endpoint.upload_name = name
    endpoint.save()


@pytest.mark.parametrize("key", ["code", "code, number"])
def test_random_ndjson_files_stream_in_many_blocks_with_the_whole_table_result(
    db, monkeypatch, key
):
    rng = random.Random(11)
    source = random_records(rng, 150)
    target = [dict(r) for r in source if rng.random() < 0.85] + random_records(rng, 20, 150)
    for record in rng.sample(target, 15):
        record["note"] = "changed"
    rng.shuffle(source)
    rng.shuffle(target)
    fields = ["code", "number", "note", "amount", "meta.x"]
    connection = connection_of("code\n", "code\n", key, fields)
    upload(connection.source.endpoint, "records.ndjson", ndjson_of(source))
    upload(connection.target.endpoint, "records.ndjson", ndjson_of(target))
    # Blocks of about six records: the files are read in many blocks.
    monkeypatch.setattr(csv_blocks, "BLOCK_BYTES", 600)
    blocks = []

    def counted_blocks(*args):
        for block in csv_blocks.raw_blocks(*args):
            blocks.append(block)
            yield block

    monkeypatch.setattr(ndjson_blocks, "raw_blocks", counted_blocks)
    (s_stages, s_reading, s_diff), (w_stages, w_reading, w_diff) = streamed_and_whole(
        connection, monkeypatch
    )
    assert s_reading["mode"] == "streamed", s_reading
    assert s_reading["sorted_on_disk"] == ["Source (Old CSV)", "Target (New CSV)"]
    assert len(blocks) > 4 * 20  # two passes over each of two files of 20+ blocks
    assert w_reading["mode"] == "whole"
    assert "the NDJSON file was given as content" in w_reading["reason"]
    assert s_stages == w_stages
    assert s_diff == w_diff
    rec = s_stages["reconciliation"]
    assert rec["null_keys_source"] > 0 and rec["duplicate_rows_source"] > 0
    assert rec["mismatch_counts"]["note"] > 0 and rec["duplicate_rows_target"] > 0


MEMORY_SCRIPT = """
import os, sys
import polars as pl
from planner.connectors.files import FileConnector
from planner.connectors.guard import GuardPolicy
from planner.runs.spill import sorted_chunks

path, mode = sys.argv[1], sys.argv[2]
guard = GuardPolicy(file_roots=(os.path.dirname(path),), max_file_bytes=10**9)
connector = FileConnector.from_config({"path": path, "key": "id"}, {}, guard)
rows = 0
if mode == "baseline":
    rows = connector.count()
elif mode == "whole":
    rows = connector.frame().sort("id").height
elif mode == "content":  # the file handed over as bytes: parsed whole, as before blocks
    with open(path, "rb") as handle:
        config = {"content": handle.read(), "filename": path, "key": "id"}
    rows = FileConnector.from_config(config, {}, guard).frame().sort("id").height
else:
    for chunk in sorted_chunks(connector.fetch(100_000), ["id"], 10_000):
        rows += chunk.height
# VmHWM, not ru_maxrss: the latter keeps the parent's peak across fork and exec.
with open("/proc/self/status") as status:
    peak = next(int(line.split()[1]) for line in status if line.startswith("VmHWM"))
print(rows, peak // 1024)
"""


def big_file(path, n: int) -> None:
    import polars as pl

    frame = pl.select(pl.int_range(0, n).alias("i")).select(
        ((pl.col("i") * 7919) % n).alias("id"),
        pl.format("name {} with a longer text to make the rows wide", pl.col("i")).alias("name"),
        (pl.col("i") * 3).alias("amount"),
    )
    if path.suffix == ".csv":
        frame.write_csv(path)
    else:
        frame.write_ndjson(path)


def peak_rss(path, n: int, mode: str) -> int:
    """Peak RSS in MB of a fresh process reading ``path`` as ``mode`` (checking its rows)."""
    env = os.environ | {"AETHON_FILE_LIMITS": "", "POLARS_MAX_THREADS": "2"}
    code = "from django.conf import settings\nsettings.configure(AETHON_FILE_LIMITS={'max_rows': 10**7})\n"
    code += textwrap.dedent(MEMORY_SCRIPT)
    done = subprocess.run(
        [sys.executable, "-c", code, str(path), mode],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
        check=True,
    )
    rows, megabytes = done.stdout.split()
    assert int(rows) == n
    return int(megabytes)


@pytest.mark.parametrize(
    "name, rows, whole_mode",
    [
        # 1.5M rows (about 100 MB): its parsed columns alone take more than the streamed
        # reader's whole peak.
        ("big.csv", 1_500_000, "whole"),
        # NDJSON read whole (content given as bytes) becomes Python objects first: a fifth of
        # the rows shows it; the sort's fixed buffers are most of the streamed peak.
        ("big.ndjson", 300_000, "content"),
    ],
)
def test_a_large_file_is_sorted_without_holding_it_whole(tmp_path, name, rows, whole_mode):
    path = tmp_path / name
    big_file(path, rows)
    # The interpreter, polars and the checking pass (which holds one block) are the baseline.
    base = peak_rss(path, rows, "baseline")
    whole = peak_rss(path, rows, whole_mode) - base
    streamed = peak_rss(path, rows, "streamed") - base
    assert streamed < 0.6 * whole, (base, streamed, whole)


def test_keys_and_codes_written_differently_are_different_values(db, monkeypatch):
    """Type inference never joins "007" with "7": a key is an identifier, and an integer
    column holding "007" is a column of codes, compared as written."""
    source = csv_of(["id", "code"], [["007", "x"], ["7", "7"], ["8", "8"]])
    typed_target = csv_of(["id", "code"], [["7", "007"], ["8", "008"], ["9", "9"]])
    connection = connection_of(source, typed_target, "id", ["id", "code"])
    (stages, _, diff), (whole, _, whole_diff) = streamed_and_whole(connection, monkeypatch)
    rec = stages["reconciliation"]
    assert rec["duplicate_rows_source"] == 0
    assert rec["missing_in_target"] == [{"id": "007"}]
    assert rec["extra_in_target"] == [{"id": "9"}]
    assert rec["mismatch_counts"]["code"] == 2  # "7" is not "007", "8" is not "008"
    assert stages == whole and diff == whole_diff

    text_target = csv_of(["id", "code"], [["7", "007"], ["08", "8"], ["9", "9"]])
    connection = connection_of(source, text_target, "id", ["id", "code"])
    (stages, reading, diff), (whole, _, whole_diff) = streamed_and_whole(connection, monkeypatch)
    rec = stages["reconciliation"]
    assert reading["mode"] == "streamed"
    assert rec["missing_in_target"] == [{"id": "007"}, {"id": "8"}]
    assert rec["extra_in_target"] == [{"id": "08"}, {"id": "9"}]
    assert rec["mismatch_counts"]["code"] == 1
    assert stages == whole and diff == whole_diff
