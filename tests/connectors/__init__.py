"""Shared helpers for connector tests: local HTTP servers, PostgreSQL/MySQL access, and a
safety net that fails any test whose code would open a socket to a non-loopback address."""

from __future__ import annotations

import contextlib
import ipaddress
import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from planner.connectors import guard

PG_DSN = "host=127.0.0.1 port=5432 user=postgres connect_timeout=3"


@dataclass
class Request:
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    method: str = "GET"
    body: bytes = b""


@dataclass
class Reply:
    status: int = 200
    body: bytes | Any = b""
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    chunked: bool = False

    def payload(self) -> bytes:
        if isinstance(self.body, bytes):
            return self.body
        return json.dumps(self.body).encode()


Handler = Callable[[Request], Reply]


class LocalServer:
    """A threaded HTTP server on 127.0.0.1 driven by a function Request -> Reply."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.requests: list[Request] = []
        outer = self

        class _H(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:  # keep test output quiet
                pass

            def do_GET(self) -> None:  # noqa: N802 - http.server naming
                parts = urlsplit(self.path)
                query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
                length = int(self.headers.get("Content-Length") or 0)
                req = Request(
                    parts.path,
                    query,
                    {k.lower(): v for k, v in self.headers.items()},
                    self.command,
                    self.rfile.read(length) if length else b"",
                )
                outer.requests.append(req)
                reply = outer.handler(req)
                if reply.delay:
                    time.sleep(reply.delay)
                body = reply.payload()
                try:
                    self.send_response(reply.status)
                    for k, v in reply.headers.items():
                        self.send_header(k, v)
                    if reply.chunked:
                        self.send_header("Transfer-Encoding", "chunked")
                        self.end_headers()
                        for i in range(0, len(body), 8192):
                            piece = body[i : i + 8192]
                            self.wfile.write(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
                        self.wfile.write(b"0\r\n\r\n")
                    else:
                        self.send_header("Content-Length", str(len(body)))
                        self.end_headers()
                        self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            do_POST = do_DELETE = do_GET  # noqa: N815 - the handler sees req.method

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), _H)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        # A short poll interval keeps shutdown() (and so each test) fast.
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> LocalServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@contextlib.contextmanager
def serve(handler: Handler) -> Iterator[LocalServer]:
    with LocalServer(handler) as server:
        yield server


@pytest.fixture(autouse=True)
def loopback_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """Safety net: a guard bug must fail the test, not send traffic off this machine."""
    real = guard._connect_socket

    def checked(ip: str, port: int, timeout: float) -> Any:
        assert ipaddress.ip_address(ip).is_loopback, f"test tried to connect to {ip}"
        return real(ip, port, timeout)

    monkeypatch.setattr(guard, "_connect_socket", checked)


def fake_dns(monkeypatch: pytest.MonkeyPatch, table: dict[str, list[list[str]]]) -> list[str]:
    """Answer getaddrinfo for names in ``table``: call n gets answer n (the last repeats).

    Returns the list of names looked up, to count resolutions.
    """
    import socket

    real = socket.getaddrinfo
    calls: list[str] = []

    def getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        if host not in table:
            return real(host, port, *args, **kwargs)
        calls.append(host)
        answers = table[host]
        ips = answers[min(calls.count(host), len(answers)) - 1]
        out = []
        for ip in ips:
            if ":" in ip:
                out.append((socket.AF_INET6, socket.SOCK_STREAM, 6, "", (ip, port or 0, 0, 0)))
            else:
                out.append((socket.AF_INET, socket.SOCK_STREAM, 6, "", (ip, port or 0)))
        return out

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return calls


def pg_admin() -> Any:
    """An autocommit connection to the local server's ``postgres`` DB, or skip."""
    psycopg = pytest.importorskip("psycopg")
    try:
        return psycopg.connect(PG_DSN + " dbname=postgres", autocommit=True)
    except psycopg.OperationalError as exc:
        pytest.skip(f"PostgreSQL on 127.0.0.1:5432 is unreachable: {str(exc).strip()[:120]}")


@contextlib.contextmanager
def pg_database(name: str) -> Iterator[str]:
    """Create a throwaway database and drop it afterwards."""
    admin = pg_admin()
    try:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.execute(f'CREATE DATABASE "{name}"')
        yield name
    finally:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


LIFETIME = 60.0  # seconds a slow answer lasts at most, so a failing test still ends
MODES = ("trickle", "silent body", "no answer")


class SlowServer:
    """A server on 127.0.0.1 whose every answer is slow, in one of three ways:

    - "trickle": headers, then one byte of the body every 0.5 s (never trips a read timeout);
    - "silent body": headers, then nothing;
    - "no answer": not even the status line.

    Each answer lasts at most LIFETIME seconds, and leaving the `with` block ends them all.
    """

    def __init__(self, mode: str) -> None:
        self.mode = mode
        self.stop = threading.Event()
        self.requests = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:  # noqa: N802 - http.server naming
                outer.requests += 1
                until = time.monotonic() + LIFETIME
                try:
                    if outer.mode != "no answer":
                        self.send_response(200)
                        self.send_header("Content-Type", "application/json")
                        self.send_header("Content-Length", "100000")
                        self.end_headers()
                        self.wfile.flush()
                    while time.monotonic() < until and not outer.stop.wait(0.5):
                        if outer.mode == "trickle":
                            self.wfile.write(b" ")  # JSON whitespace, one byte at a time
                            self.wfile.flush()
                except OSError:
                    pass  # the client went away: what a cancelled download does
                self.close_connection = True

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    def __enter__(self) -> SlowServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop.set()
        self.httpd.shutdown()
        self.httpd.server_close()
