"""HTTP JSON connector against a local threaded server: pagination, auth, selectors."""

from __future__ import annotations

import base64
from typing import Any

import polars as pl
import pytest

from planner.connectors import ConnectorError, GuardPolicy, fetch_all, open_connector
from planner.connectors.http_json import parse_link_next, parse_path, select_records
from tests.connectors import Reply, Request, loopback_only, serve  # noqa: F401 - fixture

POLICY = GuardPolicy(allow_hosts=frozenset({"127.0.0.1"}))
RECORDS = [
    {"id": i, "name": f"n{i}", "address": {"city": f"c{i % 3}"}, "tags": ["a"] if i % 2 else []}
    for i in range(1, 251)
]


def api(req: Request) -> Reply:
    """One fake API, one path per pagination style."""
    q = req.query
    if req.path == "/page":
        size = int(q.get("per_page", 20))
        page = int(q.get("page", 1))
        rows = RECORDS[(page - 1) * size : page * size]
        return Reply(body={"data": {"items": rows}, "meta": {"total": len(RECORDS)}})
    if req.path == "/page-nosize":
        page = int(q.get("page", 1))
        return Reply(body={"results": RECORDS[(page - 1) * 40 : page * 40]})
    if req.path == "/offset":
        off, lim = int(q["offset"]), int(q["limit"])
        return Reply(body=RECORDS[off : off + lim])
    if req.path == "/cursor":
        start = int(q.get("cursor", 0))
        nxt = start + 30 if start + 30 < len(RECORDS) else None
        return Reply(body={"items": RECORDS[start : start + 30], "paging": {"next": nxt}})
    if req.path == "/link":
        page = int(q.get("p", 1))
        headers = {}
        if page * 60 < len(RECORDS):
            headers["Link"] = f'</link?p={page + 1}>; rel="next", </link?p=5>; rel="last"'
        return Reply(body={"results": RECORDS[(page - 1) * 60 : page * 60]}, headers=headers)
    if req.path == "/link-away":
        return Reply(body=[{"id": 1}], headers={"Link": '<http://127.0.0.2/x>; rel="next"'})
    if req.path == "/loop":
        return Reply(body={"items": [{"id": 1}], "next": "same"})
    if req.path == "/auth":
        return Reply(
            body=[{"auth": req.headers.get("authorization"), "key": req.headers.get("x-key")}]
        )
    if req.path == "/denied":
        return Reply(401, body=f"bad token {req.headers.get('authorization')}".encode())
    if req.path == "/notjson":
        return Reply(body=b"<html>")
    return Reply(404, body=b"nope")


@pytest.fixture(scope="module")
def server() -> Any:
    with serve(api) as srv:
        yield srv


def connector(server: Any, **config: Any) -> Any:
    secrets = config.pop("secrets", {})
    return open_connector("http_json", {"base_url": server.url, **config}, secrets, POLICY)


@pytest.mark.parametrize(
    "config",
    [
        {
            "endpoint": "/page",
            "pagination": "page",
            "size_param": "per_page",
            "page_size": 25,
            "records_path": "$.data.items",
        },
        {"endpoint": "page-nosize", "pagination": "page", "records_path": "$.results[*]"},
        {"endpoint": "/offset", "pagination": "offset", "page_size": 100},
        {
            "endpoint": "/cursor",
            "pagination": "cursor",
            "cursor_path": "$.paging.next",
            "records_path": "items",
        },
        {"endpoint": "/link", "pagination": "link", "records_path": "$['results']"},
    ],
    ids=["page", "page-until-empty", "offset", "cursor", "link"],
)
def test_pagination_styles_fetch_every_record_once(server: Any, config: dict[str, Any]) -> None:
    frame = fetch_all(connector(server, key="id", **config), batch_size=64)
    assert frame.height == len(RECORDS)
    assert frame.get_column("id").to_list() == list(range(1, 251))
    assert frame.get_column("address.city").to_list()[:3] == ["c1", "c2", "c0"]
    assert frame.get_column("tags").to_list()[:2] == ['["a"]', "[]"]


def test_fetch_batches_and_requests(server: Any) -> None:
    before = len(server.requests)
    conn = connector(
        server,
        endpoint="/cursor",
        pagination="cursor",
        cursor_path="paging.next",
        records_path="items",
    )
    sizes = [b.height for b in conn.fetch(batch_size=100)]
    assert sizes == [100, 100, 50]
    assert len(server.requests) - before == 9  # ceil(250 / 30) pages


def test_test_report_and_count(server: Any) -> None:
    conn = connector(
        server,
        endpoint="/page",
        pagination="page",
        size_param="per_page",
        records_path="data.items",
        total_path="$.meta.total",
        key="id",
    )
    report = conn.test()
    assert report.ok, report.error
    assert report.fields == ["id", "name", "address.city", "tags"]
    assert report.sample == {"id": 1, "name": "n1", "address.city": "c1", "tags": '["a"]'}
    assert report.latency_ms > 0
    assert conn.count() == 250
    assert conn.fields() == report.fields
    assert connector(server, endpoint="/offset", pagination="offset").count() is None


def test_test_report_flags_missing_key(server: Any) -> None:
    report = connector(server, endpoint="/offset", pagination="offset", key="customer_id").test()
    assert not report.ok and "customer_id" in (report.error or "")


def test_max_pages_guard(server: Any) -> None:
    conn = connector(server, endpoint="/offset", pagination="offset", page_size=10, max_pages=3)
    with pytest.raises(ConnectorError, match="Stopped after 3 pages"):
        fetch_all(conn)


def test_cursor_loop_stops(server: Any) -> None:
    conn = connector(
        server, endpoint="/loop", pagination="cursor", cursor_path="next", records_path="items"
    )
    assert fetch_all(conn).height == 2  # first page, then the repeated cursor ends it


def test_link_to_other_origin_refused(server: Any) -> None:
    conn = connector(server, endpoint="/link-away", pagination="link")
    with pytest.raises(ConnectorError, match="different server"):
        fetch_all(conn)


@pytest.mark.parametrize(
    ("config", "secrets", "auth", "key"),
    [
        ({"auth": "bearer"}, {"token": "t0k3n"}, "Bearer t0k3n", None),
        (
            {"auth": "basic", "username": "ann"},
            {"password": "pw!"},
            "Basic " + base64.b64encode(b"ann:pw!").decode(),
            None,
        ),
        ({"auth": "api_key", "api_key_header": "X-Key"}, {"api_key": "k-123"}, None, "k-123"),
        ({"auth": "none"}, {}, None, None),
    ],
)
def test_auth(
    server: Any, config: dict[str, Any], secrets: dict[str, str], auth: Any, key: Any
) -> None:
    frame = fetch_all(connector(server, endpoint="/auth", secrets=secrets, **config))
    assert frame.row(0, named=True) == {"auth": auth, "key": key}


def test_missing_secret(server: Any) -> None:
    with pytest.raises(ConnectorError, match="'token' is required"):
        connector(server, endpoint="/auth", auth="bearer")


def test_http_error_does_not_leak_secret(server: Any) -> None:
    conn = connector(server, endpoint="/denied", auth="bearer", secrets={"token": "very-secret"})
    report = conn.test()
    assert not report.ok
    assert "HTTP 401" in report.error and "very-secret" not in report.error


def test_not_json(server: Any) -> None:
    assert "not valid JSON" in (connector(server, endpoint="/notjson").test().error or "")


def test_blocked_without_allow_list(server: Any) -> None:
    conn = open_connector("http_json", {"base_url": server.url}, {}, GuardPolicy())
    report = conn.test()
    assert not report.ok and "loopback" in report.error
    assert pytest.raises(ConnectorError, fetch_all, conn)


def test_static_params_and_headers(server: Any) -> None:
    before = len(server.requests)
    conn = connector(
        server,
        endpoint="/offset?x=1",
        pagination="offset",
        page_size=200,
        params={"filter": "active"},
        headers={"X-Tenant": "t1"},
    )
    assert fetch_all(conn).height == 250
    req = server.requests[before]
    assert req.query == {"x": "1", "filter": "active", "offset": "0", "limit": "200"}
    assert req.headers["x-tenant"] == "t1"


def test_secret_headers_are_sent_from_the_secrets_and_never_across_origins() -> None:
    secrets = {"header:private-token": "pt-secret", "api_key": "k-1"}
    with serve(lambda req: Reply(body=[{"id": 1}])) as other:

        def front(req: Request) -> Reply:
            if req.path == "/start":
                return Reply(body=[{"id": 1}])
            if req.path == "/denied":
                return Reply(401, body=f"no: {req.headers.get('private-token')}".encode())
            return Reply(307, headers={"Location": f"{other.url}/final"})

        with serve(front) as first:
            config = {
                "base_url": first.url,
                "endpoint": "/start",
                "auth": "api_key",
                "headers": {"X-Tenant": "t1"},
                "secret_headers": ["Private-Token"],
            }
            assert fetch_all(open_connector("http_json", config, secrets, POLICY)).height == 1
            moved = {**config, "endpoint": "/moved"}
            fetch_all(open_connector("http_json", moved, secrets, POLICY))
            denied = open_connector("http_json", {**config, "endpoint": "/denied"}, secrets, POLICY)
            report = denied.test()
    sent = first.requests[0].headers
    assert (sent["private-token"], sent["x-api-key"], sent["x-tenant"]) == (
        "pt-secret",
        "k-1",
        "t1",
    )
    final = other.requests[0].headers
    assert "private-token" not in final and "x-api-key" not in final  # another origin
    assert final["x-tenant"] == "t1"
    assert "HTTP 401" in report.error and "pt-secret" not in report.error


def test_a_secret_header_without_its_value_is_an_error(server: Any) -> None:
    with pytest.raises(ConnectorError, match="value of the secret header 'Private-Token'"):
        connector(server, endpoint="/auth", secret_headers=["Private-Token"])
    with pytest.raises(ConnectorError, match="secret_headers must be a list of header names"):
        connector(server, secret_headers="Private-Token")


def test_config_validation() -> None:
    for bad, message in [
        ({}, "Base URL"),
        ({"base_url": "file:///etc/passwd"}, "http"),
        ({"base_url": "http://x", "pagination": "magic"}, "pagination"),
        ({"base_url": "http://x", "auth": "oauth"}, "auth"),
        ({"base_url": "http://x", "records_path": "$..items"}, "record path"),
        ({"base_url": "http://x", "records_path": "$.a[?(@.x)]"}, "record path"),
    ]:
        with pytest.raises(ConnectorError, match=message):
            open_connector("http_json", bad, {}, POLICY)


# ---------------------------------------------------------------- selector & Link parsing


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("$", [{"id": 0}]),
        ("$.data.items", [{"id": 1}, {"id": 2}]),
        ("data.items", [{"id": 1}, {"id": 2}]),
        ("$.data.items[*]", [{"id": 1}, {"id": 2}]),
        ("$.data['items'][1]", [{"id": 2}]),
        ("$.data.items[-1]", [{"id": 2}]),
        ("$.groups[*].rows", [{"id": 3}, {"id": 4}, {"id": 5}]),
        ("$.groups[*].rows[*]", [{"id": 3}, {"id": 4}, {"id": 5}]),
        ("$.missing", []),
    ],
)
def test_record_selector(path: str, expected: list[dict[str, int]]) -> None:
    doc: Any = {
        "data": {"items": [{"id": 1}, {"id": 2}]},
        "groups": [{"rows": [{"id": 3}]}, {"rows": [{"id": 4}, {"id": 5}]}],
    }
    if path == "$":
        doc = [{"id": 0}]
    assert select_records(doc, parse_path(path)) == expected


def test_selector_rejects_non_objects() -> None:
    with pytest.raises(ConnectorError, match="JSON objects"):
        select_records({"a": [1, 2]}, parse_path("a"))


def test_link_header_parsing() -> None:
    assert parse_link_next(
        '<https://a/x?page=2>; rel="next", <https://a/x?page=9>; rel="last"'
    ) == ("https://a/x?page=2")
    assert parse_link_next('<https://a/1>; rel="prev", <https://a/3>; rel=next') == "https://a/3"
    assert parse_link_next('<https://a/3>; title="x"; rel="next last"') == "https://a/3"
    assert parse_link_next('<https://a/1>; rel="prev"') is None
    assert parse_link_next(None) is None


def test_mixed_types_become_text() -> None:
    from planner.connectors.base import frame_from_records

    frame = frame_from_records([{"a": 1}, {"a": "x"}, {"b": None}])
    assert frame.schema == pl.Schema({"a": pl.String, "b": pl.Null})
