"""Outbound-connection guard (SSRF protection) and a pinned-IP HTTP client.

Every connector resolves its host through :func:`resolve_and_check` and then connects
to one of the returned IP addresses, never to the name again, so a DNS answer cannot
change between the check and the connection (DNS rebinding).
"""

from __future__ import annotations

import contextlib
import http.client
import ipaddress
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit

from planner.connectors.names import ConnectorError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_NAT64 = ipaddress.ip_network("64:ff9b::/96")
# Ranges that ``is_global`` does not already exclude but that still reach shared or
# internal infrastructure.
_EXTRA_BLOCKED = [ipaddress.ip_network("100.64.0.0/10")]
REDIRECT_CODES = frozenset({301, 302, 303, 307, 308})
# How often a request looks at its caller's stop signal while waiting on the server.
STOP_POLL_SECONDS = 0.2

ShouldStop = Callable[[], bool]


class BlockedDestination(ConnectorError):
    """The destination resolves to an address that connectors may not reach."""


class Stopped(ConnectorError):
    """The caller asked the request to stop (a cancelled run) before it finished."""

    def __init__(self) -> None:
        super().__init__("The download was stopped before it finished (the run was cancelled).")


@dataclass(frozen=True)
class GuardPolicy:
    """Limits for every outbound connection a connector makes.

    ``allow_hosts`` entries are compared case-insensitively with the host the user
    typed, and may be ``host``, ``host:port`` (``[v6]:port`` for IPv6), an IP address
    or a CIDR network (matched against the resolved addresses).
    ``file_roots`` lists directories from which file/SQLite connectors may read paths;
    empty means no server paths at all (uploads are passed as bytes).
    """

    allow_hosts: frozenset[str] = frozenset()
    connect_timeout: float = 5.0
    read_timeout: float = 30.0
    max_response_bytes: int = 50 * 1024 * 1024
    max_redirects: int = 5
    total_timeout: float = 300.0
    file_roots: tuple[str, ...] = ()
    max_file_bytes: int = 200 * 1024 * 1024

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> GuardPolicy:
        """Build from a settings dict; lists are accepted where frozensets/tuples are stored."""
        kwargs = dict(values)
        if "allow_hosts" in kwargs:
            kwargs["allow_hosts"] = frozenset(str(h).strip().lower() for h in kwargs["allow_hosts"])
        if "file_roots" in kwargs:
            kwargs["file_roots"] = tuple(str(p) for p in kwargs["file_roots"])
        return cls(**kwargs)


@dataclass(frozen=True)
class _Allow:
    names: frozenset[tuple[str, int | None]] = field(default_factory=frozenset)
    networks: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()


def _split_host_port(entry: str) -> tuple[str, int | None]:
    """``host``, ``host:port``, ``[v6]``, ``[v6]:port`` or bare ``v6`` -> (host, port)."""
    entry = entry.strip()
    port: str | None = None
    if entry.startswith("["):
        host, _, rest = entry[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else None
    elif entry.count(":") == 1:
        host, port = entry.split(":")
    else:
        host = entry
    return host.lower().rstrip("."), int(port) if port and port.isdigit() else None


def _parse_allow(entries: Iterable[str]) -> _Allow:
    names, networks = set(), []
    for entry in entries:
        if not entry.strip():
            continue
        try:
            networks.append(ipaddress.ip_network(entry.strip().strip("[]"), strict=False))
        except ValueError:
            names.add(_split_host_port(entry))
    return _Allow(frozenset(names), tuple(networks))


def _host_allowed(host: str, port: int, allow: _Allow) -> bool:
    name = host.strip("[]").lower().rstrip(".")
    return (name, None) in allow.names or (name, port) in allow.names


def block_reason(ip: IPAddress) -> str | None:
    """Why ``ip`` must not be reached, or None if it is a public unicast address."""
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = ip.ipv4_mapped or ip.sixtofour
        if embedded is None and ip.teredo:
            embedded = ip.teredo[1]
        if embedded is None and ip in _NAT64:
            embedded = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
        if embedded is not None:
            inner = block_reason(embedded)
            return f"{inner} (IPv4 embedded in IPv6)" if inner else None
    if ip.is_unspecified:
        return "unspecified address"
    if ip.is_loopback:
        return "loopback address"
    if ip.is_link_local:
        return "link-local address (includes cloud metadata endpoints)"
    if ip.is_multicast:
        return "multicast address"
    if isinstance(ip, ipaddress.IPv6Address) and ip in ipaddress.ip_network("fc00::/7"):
        return "unique-local IPv6 address"
    if ip.is_private:
        return "private network address"
    if ip.is_reserved or any(ip in net for net in _EXTRA_BLOCKED) or not ip.is_global:
        return "reserved or non-public address"
    return None


def _resolve(host: str, port: int) -> list[IPAddress]:
    bare = host.strip("[]")
    try:
        return [ipaddress.ip_address(bare)]
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(bare, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise ConnectorError(f"Could not resolve host '{host}': {exc}") from None
    ips: list[IPAddress] = []
    for _family, _type, _proto, _canon, sockaddr in infos:
        ip = ipaddress.ip_address(str(sockaddr[0]).split("%")[0])
        if ip not in ips:
            ips.append(ip)
    if not ips:
        raise ConnectorError(f"Host '{host}' has no addresses.")
    return ips


def resolve_and_check(host: str, port: int, policy: GuardPolicy) -> list[str]:
    """Resolve ``host`` once and return the IPs a connector may connect to.

    All resolved addresses must be public unless the host (or ``host:port``) or the
    address itself is allow-listed; one bad address refuses the whole host, since
    a client could otherwise be steered to it.
    """
    if not host or host.startswith("/"):
        raise BlockedDestination("A network host name or address is required.")
    allow = _parse_allow(policy.allow_hosts)
    host_allowed = _host_allowed(host, port, allow)
    ips = _resolve(host, port)
    if not host_allowed:
        for ip in ips:
            if any(ip in net for net in allow.networks):
                continue
            reason = block_reason(ip)
            if reason:
                shown = host if host.strip("[]") == str(ip) else f"{host} ({ip})"
                raise BlockedDestination(
                    f"Connection to {shown} refused: {reason}. Ask an administrator "
                    "to add the host to the allow-list if this destination is intended."
                )
    return [str(ip) for ip in ips]


# ---------------------------------------------------------------- HTTP client


def _connect_socket(ip: str, port: int, timeout: float) -> socket.socket:
    """The one place that opens outbound sockets (tests wrap it as a safety net)."""
    return socket.create_connection((ip, port), timeout=timeout)


def _open_pinned(ips: list[str], port: int, policy: GuardPolicy) -> socket.socket:
    last: OSError | None = None
    for ip in ips:
        try:
            sock = _connect_socket(ip, port, policy.connect_timeout)
        except TimeoutError:
            last = TimeoutError(f"connection timed out after {policy.connect_timeout:g}s")
            continue
        except OSError as exc:
            last = exc
            continue
        sock.settimeout(policy.read_timeout)
        return sock
    raise ConnectorError(f"Could not connect: {last}")


class _PinnedHTTPConnection(http.client.HTTPConnection):
    def __init__(self, host: str, port: int, ips: list[str], policy: GuardPolicy) -> None:
        super().__init__(host, port, timeout=policy.read_timeout)
        self._ips, self._policy = ips, policy

    def connect(self) -> None:
        self.sock = _open_pinned(self._ips, self.port, self._policy)


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    def __init__(self, host: str, port: int, ips: list[str], policy: GuardPolicy) -> None:
        super().__init__(
            host, port, timeout=policy.read_timeout, context=ssl.create_default_context()
        )
        self._ips, self._policy = ips, policy

    def connect(self) -> None:
        sock = _open_pinned(self._ips, self.port, self._policy)
        # Certificate is verified against the host name, while the TCP peer is the pinned IP.
        self.sock = self._context.wrap_socket(sock, server_hostname=self.host)


@dataclass(frozen=True)
class HttpResponse:
    status: int
    headers: http.client.HTTPMessage
    body: bytes
    url: str

    def header(self, name: str) -> str | None:
        return self.headers.get(name)


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    return parts.scheme, (parts.hostname or "").lower(), parts.port


def http_get(
    url: str,
    policy: GuardPolicy,
    headers: Mapping[str, str] | None = None,
    sensitive_headers: Iterable[str] = (),
    *,
    should_stop: ShouldStop | None = None,
) -> HttpResponse:
    """GET ``url`` with SSRF checks on every hop, timeouts and a body size cap.

    Redirects are followed by hand (at most ``policy.max_redirects``); credentials
    (``Authorization`` and ``sensitive_headers``) are dropped when a redirect leaves
    the original scheme/host/port. Raises :class:`Stopped` within about a second of
    ``should_stop()`` turning true, even while the server is silent.
    """
    headers = dict(headers or {})
    drop = {"authorization", *(h.lower() for h in sensitive_headers)}
    deadline = time.monotonic() + policy.total_timeout
    first_origin = _origin(url)
    for _hop in range(policy.max_redirects + 1):
        response = _get_once(url, policy, headers, deadline, should_stop)
        location = response.header("Location")
        if response.status not in REDIRECT_CODES or not location:
            return response
        url = urljoin(url, location)
        if _origin(url) != first_origin:
            headers = {k: v for k, v in headers.items() if k.lower() not in drop}
    raise ConnectorError(f"Too many redirects (more than {policy.max_redirects}).")


def _get_once(
    url: str,
    policy: GuardPolicy,
    headers: Mapping[str, str],
    deadline: float,
    should_stop: ShouldStop | None = None,
) -> HttpResponse:
    headers = {"Accept-Encoding": "identity", "User-Agent": "Aethon/1", **headers}
    return _request_once(
        "GET", url, policy, headers, deadline, refuse_userinfo=True, should_stop=should_stop
    )


def http_post_json(url: str, payload: bytes, policy: GuardPolicy) -> HttpResponse:
    """POST a JSON body to ``url`` under the same checks as ``http_get`` (webhooks).

    Redirects are not followed: a webhook that answers with one is reported, not chased.
    """
    headers = {"Content-Type": "application/json", "User-Agent": "Aethon/1"}
    deadline = time.monotonic() + policy.total_timeout
    return _request_once("POST", url, policy, headers, deadline, payload)


def http_request(
    method: str,
    url: str,
    policy: GuardPolicy,
    headers: Mapping[str, str] | None = None,
    body: bytes | None = None,
) -> HttpResponse:
    """One request of any method under the same checks as ``http_get`` (the canary probe's
    writes). Redirects are not followed: a credential is never carried to where one points.
    """
    sent = {"User-Agent": "Aethon/1", "Accept-Encoding": "identity", **(headers or {})}
    deadline = time.monotonic() + policy.total_timeout
    return _request_once(method, url, policy, sent, deadline, body, refuse_userinfo=True)


def _request_once(
    method: str,
    url: str,
    policy: GuardPolicy,
    headers: Mapping[str, str],
    deadline: float,
    body: bytes | None = None,
    *,
    refuse_userinfo: bool = False,
    should_stop: ShouldStop | None = None,
) -> HttpResponse:
    """One request to a checked, pinned address: the only place a socket is opened."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise ConnectorError("Only http:// and https:// URLs are supported.")
    if not parts.hostname:
        raise ConnectorError("The URL has no host.")
    if refuse_userinfo and (parts.username or parts.password):
        raise ConnectorError("Put credentials in the authentication settings, not in the URL.")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise ConnectorError("The URL has an invalid port.") from None
    ips = resolve_and_check(parts.hostname, port, policy)
    conn_cls = _PinnedHTTPSConnection if parts.scheme == "https" else _PinnedHTTPConnection
    conn = conn_cls(parts.hostname, port, ips, policy)
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    with _stoppable(conn, should_stop):
        try:
            conn.request(method, path, body=body, headers=dict(headers))
            resp = conn.getresponse()
            length = resp.getheader("Content-Length")
            if length and length.isdigit() and int(length) > policy.max_response_bytes:
                raise ConnectorError(_too_big(policy))
            content = _read_capped(resp, policy, deadline, should_stop)
            return HttpResponse(resp.status, resp.headers, content, url)
        except TimeoutError:
            raise ConnectorError(
                f"The server did not answer within {policy.read_timeout:g}s."
            ) from None
        except (OSError, http.client.HTTPException) as exc:
            raise ConnectorError(f"HTTP request failed: {type(exc).__name__}: {exc}") from None
        finally:
            conn.close()


@contextlib.contextmanager
def _stoppable(conn: http.client.HTTPConnection, should_stop: ShouldStop | None) -> Iterator[None]:
    """Make ``should_stop()`` end the request, whatever it is blocked on, and raise Stopped.

    Checking between chunks stops a trickling server, but a silent one keeps a read blocked
    for up to ``read_timeout`` (30 s by default): so a watcher shuts the socket down, which
    wakes the blocked read at once. Only the connect itself (``connect_timeout``) is waited
    out.
    """
    if should_stop is None:
        yield
        return
    done = threading.Event()

    def watch() -> None:
        while not done.wait(STOP_POLL_SECONDS):
            if should_stop():
                sock = conn.sock
                if sock is not None:
                    with contextlib.suppress(OSError):
                        # socket.socket's own shutdown, not SSLSocket's: that one would drop
                        # the TLS object the reading thread is using.
                        socket.socket.shutdown(sock, socket.SHUT_RDWR)
                return

    watcher = threading.Thread(target=watch, name="http-stop-watcher", daemon=True)
    watcher.start()
    try:
        yield
    finally:
        done.set()
        watcher.join()
        # Whatever the interrupted read raised (or returned), the caller asked to stop.
        if should_stop():
            raise Stopped from None


def _read_capped(
    resp: http.client.HTTPResponse,
    policy: GuardPolicy,
    deadline: float,
    should_stop: ShouldStop | None = None,
) -> bytes:
    chunks, total = [], 0
    while True:
        # A server trickling bytes would never trip the per-read timeout.
        if time.monotonic() > deadline:
            raise ConnectorError(f"The download took longer than {policy.total_timeout:g}s.")
        if should_stop is not None and should_stop():
            raise Stopped
        chunk = resp.read1(65536) if hasattr(resp, "read1") else resp.read(65536)
        if not chunk:
            return b"".join(chunks)
        total += len(chunk)
        if total > policy.max_response_bytes:
            raise ConnectorError(_too_big(policy))
        chunks.append(chunk)


def _too_big(policy: GuardPolicy) -> str:
    return f"The response is larger than the limit of {policy.max_response_bytes:,} bytes."


# ---------------------------------------------------------------- local files


def check_path(path: str, policy: GuardPolicy) -> Path:
    """Resolve ``path`` (symlinks too) and require it to sit under ``policy.file_roots``."""
    if not policy.file_roots:
        raise BlockedDestination("Reading files from server paths is not enabled; upload the file.")
    resolved = Path(path).expanduser().resolve()
    for root in policy.file_roots:
        if resolved.is_relative_to(Path(root).expanduser().resolve()):
            if not resolved.is_file():
                raise ConnectorError(f"File not found: {Path(path).name}")
            if resolved.stat().st_size > policy.max_file_bytes:
                raise ConnectorError(
                    f"The file is larger than the limit of {policy.max_file_bytes:,} bytes."
                )
            return resolved
    raise BlockedDestination("That file is outside the directories connectors may read.")
