"""The key-ordered chunk merge gives the in-memory report, whatever the chunk size."""

import random
import threading

import polars as pl
import pytest

from planner.runs.chunked import (
    MergeState,
    NotInKeyOrder,
    compare_pairs,
    in_background,
    merge_compare,
)
from planner.runs.reconcile import reconcile


def chunks(frame: pl.DataFrame, key: list[str], size: int):
    """The frame as a SQL connector's fetch_ordered sends it: key order, NULLs last."""
    ordered = frame.sort(key, nulls_last=True, maintain_order=True)
    for offset in range(0, max(ordered.height, 1), size):
        part = ordered.slice(offset, size)
        if part.height:
            yield part


def same_report(a, b) -> None:
    assert a.summary(max_keys=10_000) == b.summary(max_keys=10_000)
    for name in ("source_count", "target_count", "matched_count", "equal_count"):
        assert getattr(a, name) == getattr(b, name), name
    for name in ("null_keys_source", "null_keys_target"):
        assert getattr(a, name) == getattr(b, name), name
    for name in ("duplicate_rows_source", "duplicate_rows_target"):
        assert getattr(a, name) == getattr(b, name), name
    assert a.mismatch_counts == b.mismatch_counts
    assert a.missing_in_target.sort(a.key).equals(b.missing_in_target.sort(b.key))
    assert a.extra_in_target.sort(a.key).equals(b.extra_in_target.sort(b.key))
    assert a.mismatches.sort([*a.key, "field"]).equals(b.mismatches.sort([*b.key, "field"]))


def compare_both(source, target, key, fields, size, **kwargs):
    whole = reconcile(source, target, key, fields)
    merged = merge_compare(
        chunks(source, key, size), chunks(target, key, size), key, fields, **kwargs
    )
    same_report(merged, whole)
    return merged


@pytest.mark.parametrize("size", [1, 2, 3, 5, 1000])
def test_duplicates_split_by_a_chunk_boundary_are_judged_together(size):
    # Key 2 occurs three times in the source: any chunk size splits it somewhere.
    source = pl.DataFrame({"id": [1, 2, 2, 2, 3, 4], "v": ["a", "b", "x", "y", "c", "d"]})
    target = pl.DataFrame({"id": [1, 2, 3, 3, 5], "v": ["a", "b", "c", "z", "e"]})
    report = compare_both(source, target, ["id"], ["v"], size)
    assert report.duplicate_rows_source == 2 and report.duplicate_rows_target == 1
    assert report.missing_in_target.get_column("id").to_list() == [4]
    assert report.extra_in_target.get_column("id").to_list() == [5]


@pytest.mark.parametrize("size", [1, 2, 4])
def test_null_keys_are_counted_and_never_compared(size):
    source = pl.DataFrame({"id": [1, None, 2, None], "v": ["a", "n1", "b", "n2"]})
    target = pl.DataFrame({"id": [None, 1, 2], "v": ["n", "a", "B"]})
    report = compare_both(source, target, ["id"], ["v"], size)
    assert (report.null_keys_source, report.null_keys_target) == (2, 1)
    assert report.mismatch_counts == {"v": 1}


@pytest.mark.parametrize("size", [1, 3, 7])
def test_compound_keys_in_lexicographic_order(size):
    source = pl.DataFrame(
        {"a": [1, 1, 1, 2, 2, 3], "b": ["x", "y", "z", "x", "y", "x"], "v": [1, 2, 3, 4, 5, 6]}
    )
    target = pl.DataFrame(
        {"a": [1, 1, 2, 2, 2, 4], "b": ["x", "z", "a", "x", "y", "x"], "v": [1, 3, 0, 4, 9, 6]}
    )
    report = compare_both(source, target, ["a", "b"], ["v"], size)
    assert report.missing_in_target.rows() == [(1, "y"), (3, "x")]
    assert report.extra_in_target.rows() == [(2, "a"), (4, "x")]
    assert report.mismatch_counts == {"v": 1}


@pytest.mark.parametrize("size", [1, 2, 3])
def test_keys_of_mixed_case_are_distinct_and_ordered_by_code_point(size):
    source = pl.DataFrame({"code": ["a", "B", "b", "A", "é"], "v": [1, 2, 3, 4, 5]})
    target = pl.DataFrame({"code": ["A", "b", "a", "E", "é"], "v": [4, 3, 0, 9, 5]})
    report = compare_both(source, target, ["code"], ["v"], size)
    assert report.missing_in_target.get_column("code").to_list() == ["B"]
    assert report.extra_in_target.get_column("code").to_list() == ["E"]
    assert report.mismatch_counts == {"v": 1}


def test_random_tables_agree_with_the_in_memory_report_at_every_chunk_size():
    rng = random.Random(7)
    ids = rng.sample(range(2_000), 600)
    source = pl.DataFrame(
        {
            "k1": [i % 37 if i % 50 else None for i in ids],
            "k2": [f"K{i % 11}" if i % 3 else f"k{i % 11}" for i in ids],
            "amount": [float(i % 13) for i in ids],
            "name": [f"n{i % 5}" for i in ids],
        }
    )
    target = source.sample(fraction=0.9, seed=1).with_columns(
        pl.when(pl.col("amount") > 10)
        .then(pl.col("amount") + 1)
        .otherwise("amount")
        .alias("amount")
    )
    extra = source.head(20).with_columns(pl.col("k1") + 100)
    target = pl.concat([target, extra])
    for size in (1, 17, 64, 5000):
        compare_both(source, target, ["k1", "k2"], ["amount", "name"], size)


def test_memory_is_bounded_by_the_chunk_not_the_table():
    n = 50_000
    source = pl.DataFrame({"id": range(n), "v": [i % 7 for i in range(n)]})
    target = source.with_columns(
        pl.when(pl.col("id") % 1000 == 0).then(-1).otherwise("v").alias("v")
    )
    state = MergeState()
    report = compare_both(source, target, ["id"], ["v"], 1000, state=state)
    assert report.mismatch_counts == {"v": 50}
    assert state.peak_buffer_rows <= 2 * 1000


def test_a_side_not_in_key_order_is_refused():
    source = pl.DataFrame({"id": [3, 1, 2], "v": [1, 1, 1]})
    target = pl.DataFrame({"id": [1, 2, 3], "v": [1, 1, 1]})
    with pytest.raises(NotInKeyOrder):
        merge_compare(iter([source]), chunks(target, ["id"], 2), ["id"], ["v"])
    # Also across a chunk boundary.
    with pytest.raises(NotInKeyOrder):
        merge_compare(iter([target[1:], target[:1]]), iter([target]), ["id"], ["v"])


def test_stop_after_n_differences():
    n = 10_000
    source = pl.DataFrame({"id": range(n), "v": [0] * n})
    target = source.with_columns(pl.when(pl.col("id") % 10 == 0).then(1).otherwise(0).alias("v"))
    state = MergeState()
    report = merge_compare(
        chunks(source, ["id"], 500),
        chunks(target, ["id"], 500),
        ["id"],
        ["v"],
        max_differences=25,
        state=state,
    )
    assert state.stopped_early
    assert 25 <= report.mismatched_count < 1000
    assert report.source_count < n


def test_keys_of_different_types_are_refused_not_misordered():
    source = pl.DataFrame({"id": [9, 10], "v": [1, 1]})
    target = pl.DataFrame({"id": ["10", "9"], "v": [1, 1]})
    with pytest.raises(NotInKeyOrder, match="id"):
        merge_compare(iter([source]), iter([target]), ["id"], ["v"])


def test_prefetch_hands_over_every_chunk_and_errors_and_stops_its_producer():
    from planner.runs.streamed import prefetch

    frames = [pl.DataFrame({"id": [i]}) for i in range(50)]
    assert [f.item() for f in prefetch(iter(frames))] == list(range(50))

    def failing():
        yield frames[0]
        raise RuntimeError("server went away")

    got = prefetch(failing())
    assert next(got).item() == 0
    with pytest.raises(RuntimeError, match="server went away"):
        next(got)

    closed = []

    def endless():
        try:
            i = 0
            while True:
                yield pl.DataFrame({"id": [i]})
                i += 1
        finally:
            closed.append(True)

    reader = prefetch(endless())
    assert next(reader).item() == 0
    reader.close()  # the consumer stops early: the producer closes its source
    assert closed == [True]


def test_pairs_complete_for_their_keys_give_the_in_memory_report():
    rng = random.Random(7)
    source = pl.DataFrame(
        {"id": [rng.choice([None, *range(40)]) for _ in range(60)], "v": list(range(60))}
    ).unique(subset="id", keep="first", maintain_order=True)
    target = source.sample(fraction=0.8, seed=3).with_columns(
        pl.when(pl.col("v") % 5 == 0).then(-1).otherwise(pl.col("v")).alias("v")
    )
    expected = reconcile(source, target, ["id"], ["v"])
    # Pairs of a few keys each, in key order (as a join sorted by key sends them), each
    # holding both sides of its keys.
    keys = pl.concat([source["id"], target["id"]]).unique().sort(nulls_last=True).to_list()
    pairs = []
    for i in range(0, len(keys), 7):
        part = keys[i : i + 7]
        pick = pl.col("id").is_in([k for k in part if k is not None])
        if None in part:
            pick = pick | pl.col("id").is_null()
        pairs.append((source.filter(pick), target.filter(pick)))
    got = compare_pairs(iter(pairs), ["id"], ["v"], source.clear())
    same_report(got, expected)


def test_a_background_producer_stops_when_closed_before_anything_is_taken():
    stopped = threading.Event()

    def endless():
        try:
            while True:
                yield 1
        finally:
            stopped.set()

    items = in_background(endless())
    items.close()
    assert stopped.wait(5)
    assert list(items) == []


def test_a_background_producer_hands_over_its_error():
    def failing():
        yield 1
        raise ValueError("boom")

    items = in_background(failing())
    assert next(items) == 1
    with pytest.raises(ValueError, match="boom"):
        next(items)
