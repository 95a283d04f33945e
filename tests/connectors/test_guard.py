"""SSRF guard: address classes, DNS, allow-list, pinned connections, redirects, limits."""

from __future__ import annotations

import contextlib
import socket
import time
from pathlib import Path

import pytest

from planner.connectors import BlockedDestination, ConnectorError, GuardPolicy, http_get
from planner.connectors.guard import check_path, resolve_and_check
from tests.connectors import Reply, fake_dns, loopback_only, serve  # noqa: F401 - fixture

OPEN = GuardPolicy()
LOOPBACK = GuardPolicy(allow_hosts=frozenset({"127.0.0.1"}))


def test_metadata_address_refused() -> None:
    with pytest.raises(BlockedDestination, match="link-local"):
        resolve_and_check("169.254.169.254", 80, OPEN)


def test_private_address_refused() -> None:
    with pytest.raises(BlockedDestination, match="private"):
        resolve_and_check("10.0.0.1", 5432, OPEN)


@pytest.mark.parametrize(
    "ip",
    [
        "172.16.0.1",
        "172.31.255.254",
        "192.168.1.1",
        "127.0.0.1",
        "127.8.8.8",
        "0.0.0.0",
        "100.64.0.1",
        "224.0.0.1",
        "255.255.255.255",
        "::1",
        "::",
        "fd00::1",
        "fe80::1",
        "ff02::1",
        "::ffff:10.0.0.1",
        "::ffff:169.254.169.254",
        "::ffff:127.0.0.1",
        "2002:a00:1::1",  # 6to4 wrapping 10.0.0.1
        "64:ff9b::a9fe:a9fe",  # NAT64 wrapping 169.254.169.254
    ],
)
def test_non_public_addresses_refused(ip: str) -> None:
    with pytest.raises(BlockedDestination):
        resolve_and_check(ip, 443, OPEN)


def test_public_address_passes_without_connecting() -> None:
    assert resolve_and_check("93.184.216.34", 443, OPEN) == ["93.184.216.34"]
    assert resolve_and_check("2606:4700::1111", 443, OPEN) == ["2606:4700::1111"]


def test_name_resolving_to_loopback_refused() -> None:
    with pytest.raises(BlockedDestination, match="localhost"):
        resolve_and_check("localhost", 80, OPEN)


def test_checked_after_dns(monkeypatch: pytest.MonkeyPatch) -> None:
    fake_dns(
        monkeypatch,
        {
            "crm.example.com": [["10.1.2.3"]],
            "mixed.example.com": [["93.184.216.34", "192.168.0.10"]],
            "v6.example.com": [["fd12::5"]],
            "ok.example.com": [["93.184.216.34"]],
        },
    )
    with pytest.raises(BlockedDestination, match=r"crm\.example\.com \(10\.1\.2\.3\)"):
        resolve_and_check("crm.example.com", 443, OPEN)
    # One bad answer taints the host: a client could be steered to it.
    with pytest.raises(BlockedDestination, match="192.168.0.10"):
        resolve_and_check("mixed.example.com", 443, OPEN)
    with pytest.raises(BlockedDestination, match="unique-local"):
        resolve_and_check("v6.example.com", 443, OPEN)
    assert resolve_and_check("ok.example.com", 443, OPEN) == ["93.184.216.34"]


def test_allow_list_forms(monkeypatch: pytest.MonkeyPatch) -> None:
    fake_dns(monkeypatch, {"db.internal": [["10.9.0.5"]]})
    assert resolve_and_check(
        "db.internal", 5432, GuardPolicy(allow_hosts=frozenset({"db.internal"}))
    )
    port_only = GuardPolicy(allow_hosts=frozenset({"DB.Internal.:5432"}))
    assert resolve_and_check("db.internal", 5432, port_only) == ["10.9.0.5"]
    with pytest.raises(BlockedDestination):
        resolve_and_check("db.internal", 6432, port_only)
    cidr = GuardPolicy(allow_hosts=frozenset({"10.9.0.0/16"}))
    assert resolve_and_check("db.internal", 1, cidr) == ["10.9.0.5"]
    with pytest.raises(BlockedDestination):
        resolve_and_check("10.10.0.1", 1, cidr)
    v6 = GuardPolicy(allow_hosts=frozenset({"[::1]:8080"}))
    assert resolve_and_check("[::1]", 8080, v6) == ["::1"]
    with pytest.raises(BlockedDestination):
        resolve_and_check("::1", 8081, v6)


def test_policy_from_mapping() -> None:
    policy = GuardPolicy.from_mapping({"allow_hosts": ["Example.COM"], "read_timeout": 3})
    assert policy.allow_hosts == frozenset({"example.com"})
    assert policy.read_timeout == 3


def test_unix_socket_paths_refused() -> None:
    with pytest.raises(BlockedDestination):
        resolve_and_check("/var/run/postgresql", 5432, LOOPBACK)


# ---------------------------------------------------------------- HTTP client


def test_allow_list_lets_loopback_through() -> None:
    with serve(lambda req: Reply(body={"ok": True})) as srv:
        with pytest.raises(BlockedDestination):
            http_get(srv.url + "/x", OPEN)
        assert srv.requests == []
        response = http_get(srv.url + "/x", LOOPBACK)
    assert response.status == 200 and response.body == b'{"ok": true}'


def test_redirect_to_private_address_refused() -> None:
    """The first hop is allow-listed (by host:port); the redirect target is not."""
    with serve(lambda req: Reply(body=b"secret internal")) as internal:
        targets = {
            "/to-loopback": f"http://127.0.0.1:{internal.port}/admin",
            "/to-localhost": f"http://localhost:{internal.port}/admin",
            "/to-metadata": "http://169.254.169.254/latest/meta-data/",
            "/to-private": "http://10.0.0.1/",
        }
        with serve(lambda req: Reply(302, headers={"Location": targets[req.path]})) as front:
            policy = GuardPolicy(allow_hosts=frozenset({f"127.0.0.1:{front.port}"}))
            for path in targets:
                with pytest.raises(BlockedDestination):
                    http_get(front.url + path, policy)
            assert [r.path for r in front.requests] == list(targets)
        assert internal.requests == []  # nothing ever reached the internal service


def test_redirects_followed_and_credentials_dropped_across_origins() -> None:
    with serve(lambda req: Reply(body={"headers": req.headers})) as other:

        def front(req):  # type: ignore[no-untyped-def]
            if req.path == "/start":
                return Reply(301, headers={"Location": "/same-origin"})
            return Reply(307, headers={"Location": f"{other.url}/final"})

        with serve(front) as first:
            headers = {"Authorization": "Bearer tok", "X-Api-Key": "k", "X-Trace": "1"}
            response = http_get(first.url + "/start", LOOPBACK, headers, ["X-Api-Key"])
            assert first.requests[1].headers["authorization"] == "Bearer tok"
    assert response.status == 200
    final = other.requests[0].headers
    assert "authorization" not in final and "x-api-key" not in final
    assert final["x-trace"] == "1"


def test_too_many_redirects() -> None:
    with serve(lambda req: Reply(302, headers={"Location": "/again"})) as srv:
        with pytest.raises(ConnectorError, match="Too many redirects"):
            http_get(srv.url, GuardPolicy(allow_hosts=frozenset({"127.0.0.1"}), max_redirects=5))
        assert len(srv.requests) == 6


def test_connection_pinned_to_checked_ip(monkeypatch: pytest.MonkeyPatch) -> None:
    """A second DNS answer (rebinding) is never used: we dial the IP we checked."""
    calls = fake_dns(monkeypatch, {"api.test": [["127.0.0.1"], ["127.0.0.2"]]})
    with serve(lambda req: Reply(body={"host": req.headers["host"]})) as srv:
        policy = GuardPolicy(allow_hosts=frozenset({"api.test"}))
        response = http_get(f"http://api.test:{srv.port}/", policy)
    assert calls == ["api.test"]
    assert response.body == f'{{"host": "api.test:{srv.port}"}}'.encode()


def test_read_timeout() -> None:
    with serve(lambda req: Reply(body=b"late", delay=1.5)) as srv:
        policy = GuardPolicy(allow_hosts=frozenset({"127.0.0.1"}), read_timeout=0.3)
        start = time.monotonic()
        with pytest.raises(ConnectorError, match="did not answer within 0.3s"):
            http_get(srv.url, policy)
        assert time.monotonic() - start < 1.2


def test_connect_timeout() -> None:
    # A listener whose accept queue is full drops new SYNs, so connect() hangs.
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    fillers = []
    for _ in range(3):
        s = socket.socket()
        s.setblocking(False)
        with contextlib.suppress(BlockingIOError):
            s.connect(("127.0.0.1", port))
        fillers.append(s)
    time.sleep(0.1)
    try:
        policy = GuardPolicy(allow_hosts=frozenset({"127.0.0.1"}), connect_timeout=0.3)
        start = time.monotonic()
        with pytest.raises(ConnectorError, match="timed out"):
            http_get(f"http://127.0.0.1:{port}/", policy)
        assert time.monotonic() - start < 2
    finally:
        for s in fillers:
            s.close()
        listener.close()


def test_total_timeout_stops_trickling_server() -> None:
    body = b"x" * 200_000
    with serve(lambda req: Reply(body=body, chunked=True, delay=0.2)) as srv:
        policy = GuardPolicy(allow_hosts=frozenset({"127.0.0.1"}), total_timeout=0.1)
        with pytest.raises(ConnectorError, match="longer than"):
            http_get(srv.url, policy)


@pytest.mark.parametrize("chunked", [False, True])
def test_response_size_cap(chunked: bool) -> None:
    big = b"x" * 300_000
    with serve(
        lambda req: Reply(body=big if req.path == "/big" else b"y" * 1000, chunked=chunked)
    ) as srv:
        policy = GuardPolicy(allow_hosts=frozenset({"127.0.0.1"}), max_response_bytes=100_000)
        with pytest.raises(ConnectorError, match="larger than the limit of 100,000 bytes"):
            http_get(srv.url + "/big", policy)
        assert len(http_get(srv.url + "/small", policy).body) == 1000


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("ftp://example.com/x", "Only http"),
        ("http://user:pw@127.0.0.1/", "credentials"),
        ("http:///nohost", "no host"),
    ],
)
def test_bad_urls(url: str, message: str) -> None:
    with pytest.raises(ConnectorError, match=message):
        http_get(url, LOOPBACK)


# ---------------------------------------------------------------- file paths


def test_file_roots(tmp_path: Path) -> None:
    root = tmp_path / "uploads"
    root.mkdir()
    inside = root / "a.csv"
    inside.write_text("id\n1\n")
    outside = tmp_path / "secret.csv"
    outside.write_text("id\n2\n")
    (root / "link.csv").symlink_to(outside)
    policy = GuardPolicy(file_roots=(str(root),))
    assert check_path(str(inside), policy) == inside.resolve()
    with pytest.raises(BlockedDestination):
        check_path(str(outside), policy)
    with pytest.raises(BlockedDestination):
        check_path(str(root / "link.csv"), policy)
    with pytest.raises(BlockedDestination):
        check_path(str(root / ".." / "secret.csv"), policy)
    with pytest.raises(BlockedDestination, match="not enabled"):
        check_path(str(inside), GuardPolicy())
    with pytest.raises(ConnectorError, match="larger"):
        check_path(str(inside), GuardPolicy(file_roots=(str(root),), max_file_bytes=2))
