"""Timestamps read the faster way are the very values Django's own loader reads."""

import psycopg
import pytest
from django.db import DataError, connection, transaction
from psycopg.pq import Format

from planner import timestamps

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.skipif(
        connection.vendor != "postgresql", reason="the loader is psycopg's, for PostgreSQL"
    ),
]

OID = psycopg.postgres.types["timestamptz"].oid
VALUES = [
    "now()",
    "'2026-11-29 18:46:25.123456+00'",
    "'2026-11-29 18:46:25.1+00'",  # fewer digits of a second
    "'2026-11-29 18:46:25+00'",
    "'2024-10-27 01:30:00+01'",  # given with an offset, shown by the session in UTC
    "'0001-01-01 00:00:00+00'",
    "'9999-12-31 23:59:59.999999+00'",
]


def loaded(sql_values: list[str], django_own: bool) -> list:
    with connection.cursor() as cursor:
        if django_own:
            fast = cursor.cursor.adapters.get_loader(OID, Format.TEXT)
            original = next(k for k, v in timestamps._FAST.items() if v is fast)
            cursor.cursor.adapters.register_loader(OID, original)
        cursor.execute(f"SELECT {', '.join(f'{v}::timestamptz' for v in sql_values)}")  # noqa: S608
        return list(cursor.fetchone())


def test_new_connections_read_timestamps_the_faster_way():
    connection.ensure_connection()
    loader = connection.connection.adapters.get_loader(OID, Format.TEXT)
    assert loader in timestamps._FAST.values()


def test_the_values_and_their_time_zone_are_those_of_djangos_loader():
    fast, usual = loaded(VALUES, django_own=False), loaded(VALUES, django_own=True)
    assert [(v, v.tzinfo, v.fold) for v in fast] == [(v, v.tzinfo, v.fold) for v in usual]


def test_a_session_in_another_time_zone_still_reads_the_same_instants():
    """With an offset other than zero the value goes Django's way, and still compares equal."""
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("SET LOCAL TIME ZONE 'Asia/Kolkata'")
        near = VALUES[:-1]  # (the last one is past 9999 in Kolkata)
        fast, usual = loaded(near, django_own=False), loaded(near, django_own=True)
    assert [(v, v.tzinfo) for v in fast] == [(v, v.tzinfo) for v in usual]


def test_a_value_no_datetime_holds_fails_as_it_did():
    for django_own in (False, True):
        with pytest.raises(DataError), transaction.atomic():
            loaded(["'infinity'"], django_own)
