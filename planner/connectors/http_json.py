"""JSON-over-HTTP connector: auth, pagination, record selection.

Record selector (``records_path``) is a small JSONPath subset, never evaluated as code:
``$`` (the document), ``.name`` / ``['name']`` (object member), ``[n]`` (array index),
``[*]`` (every array element). The leading ``$`` and ``$.`` are optional, so
``$.data.items``, ``data.items`` and ``$.data.items[*]`` all select the objects of the
``items`` array. When the selection ends on arrays, their elements are the records.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlencode, urljoin, urlsplit, urlunsplit

import polars as pl

from planner.connectors.base import (
    DEFAULT_BATCH_SIZE,
    BaseConnector,
    ConnectorError,
    SchemaTracker,
    frame_from_records,
    optional_int,
    optional_str,
    parse_key,
    require_str,
    scrub,
)
from planner.connectors.guard import GuardPolicy, HttpResponse, http_get
from planner.connectors.names import secret_header_key

AUTH_TYPES = ("none", "bearer", "basic", "api_key")
# Secrets that are custom request headers (``secret_headers``) are keyed by this prefix and
# the header name in lower case, e.g. "header:private-token".
PAGINATION_TYPES = ("none", "page", "offset", "cursor", "link")

_STEP = re.compile(
    r"""\.(?P<name>[A-Za-z_][\w\-]*)          # .name
      | \[\s*(?P<star>\*)\s*\]                 # [*]
      | \[\s*(?P<index>-?\d+)\s*\]             # [3]
      | \[\s*(?P<q>['"])(?P<qname>.*?)(?P=q)\s*\]  # ['name']
    """,
    re.VERBOSE,
)


def parse_path(path: str | None) -> list[tuple[str, Any]]:
    """Compile a selector into steps: ("name", str) | ("index", int) | ("star", None)."""
    text = (path or "$").strip()
    if text.startswith("$"):
        text = text[1:]
    elif text and not text.startswith(("[", ".")):
        text = "." + text
    steps: list[tuple[str, Any]] = []
    pos = 0
    while pos < len(text):
        m = _STEP.match(text, pos)
        if not m:
            raise ConnectorError(
                f"Unsupported record path '{path}'. Use forms like $.data.items or $.results[*]."
            )
        if m.group("name") is not None:
            steps.append(("name", m.group("name")))
        elif m.group("star"):
            steps.append(("star", None))
        elif m.group("index") is not None:
            steps.append(("index", int(m.group("index"))))
        else:
            steps.append(("name", m.group("qname")))
        pos = m.end()
    return steps


def select(document: Any, steps: list[tuple[str, Any]]) -> list[Any]:
    """All values the path selects (missing members select nothing)."""
    current = [document]
    for kind, arg in steps:
        nxt: list[Any] = []
        for item in current:
            if (kind == "name" and isinstance(item, dict) and arg in item) or (
                kind == "index" and isinstance(item, list) and -len(item) <= arg < len(item)
            ):
                nxt.append(item[arg])
            elif kind == "star" and isinstance(item, list):
                nxt.extend(item)
            elif kind == "star" and isinstance(item, dict):
                nxt.extend(item.values())
        current = nxt
    return current


def select_records(document: Any, steps: list[tuple[str, Any]]) -> list[dict[str, Any]]:
    found = select(document, steps)
    ends_on_star = bool(steps) and steps[-1][0] == "star"
    if found and not ends_on_star and all(isinstance(f, list) for f in found):
        found = [item for array in found for item in array]
    if any(not isinstance(r, dict) for r in found):
        raise ConnectorError("The record path must select JSON objects (one object per record).")
    return found


def select_value(document: Any, path: str) -> Any:
    found = select(document, parse_path(path))
    return found[0] if found else None


def parse_link_next(header: str | None) -> str | None:
    """The ``rel="next"`` target of an RFC 5988 Link header."""
    if not header:
        return None
    for m in re.finditer(r"<([^>]*)>((?:\s*;\s*[^;,]+)*)", header):
        for param in m.group(2).split(";"):
            name, _, value = param.strip().partition("=")
            if name.strip().lower() == "rel" and "next" in value.strip().strip('"').lower().split():
                return m.group(1).strip()
    return None


@dataclass(frozen=True)
class HttpJsonConfig:
    base_url: str
    endpoint: str = ""
    headers: dict[str, str] = field(default_factory=dict)
    params: dict[str, str] = field(default_factory=dict)
    # Headers whose values are secrets (e.g. Private-Token): names here, values in the secrets.
    secret_headers: tuple[str, ...] = ()
    auth: str = "none"
    username: str | None = None
    api_key_header: str = "X-API-Key"
    pagination: str = "none"
    page_param: str = "page"
    start_page: int = 1
    size_param: str | None = None
    page_size: int = 100
    offset_param: str = "offset"
    limit_param: str = "limit"
    cursor_param: str = "cursor"
    cursor_path: str = "next_cursor"
    records_path: str = "$"
    total_path: str | None = None
    max_pages: int = 1000
    key: list[str] = field(default_factory=list)

    @classmethod
    def from_dict(cls, config: Mapping[str, Any]) -> HttpJsonConfig:
        base_url = require_str(config, "base_url", "Base URL")
        if urlsplit(base_url).scheme not in ("http", "https"):
            raise ConnectorError("Base URL must start with http:// or https://.")
        auth = optional_str(config, "auth", "none") or "none"
        if auth not in AUTH_TYPES:
            raise ConnectorError(f"auth must be one of {', '.join(AUTH_TYPES)}.")
        pagination = optional_str(config, "pagination", "none") or "none"
        if pagination not in PAGINATION_TYPES:
            raise ConnectorError(f"pagination must be one of {', '.join(PAGINATION_TYPES)}.")
        records_path = optional_str(config, "records_path", "$") or "$"
        parse_path(records_path)  # fail early on a bad path
        for name in ("headers", "params"):
            if not isinstance(config.get(name) or {}, Mapping):
                raise ConnectorError(f"{name} must be a mapping of names to values.")
        secret_headers = config.get("secret_headers") or ()
        if not isinstance(secret_headers, list | tuple) or not all(
            isinstance(h, str) and h.strip() for h in secret_headers
        ):
            raise ConnectorError("secret_headers must be a list of header names.")
        return cls(
            base_url=base_url,
            endpoint=optional_str(config, "endpoint", "") or "",
            headers={str(k): str(v) for k, v in (config.get("headers") or {}).items()},
            params={str(k): str(v) for k, v in (config.get("params") or {}).items()},
            secret_headers=tuple(h.strip() for h in secret_headers),
            auth=auth,
            username=optional_str(config, "username"),
            api_key_header=optional_str(config, "api_key_header", "X-API-Key") or "X-API-Key",
            pagination=pagination,
            page_param=optional_str(config, "page_param", "page") or "page",
            start_page=optional_int(config, "start_page", 1),
            size_param=optional_str(config, "size_param"),
            page_size=optional_int(config, "page_size", 100, minimum=1),
            offset_param=optional_str(config, "offset_param", "offset") or "offset",
            limit_param=optional_str(config, "limit_param", "limit") or "limit",
            cursor_param=optional_str(config, "cursor_param", "cursor") or "cursor",
            cursor_path=optional_str(config, "cursor_path", "next_cursor") or "next_cursor",
            records_path=records_path,
            total_path=optional_str(config, "total_path"),
            max_pages=optional_int(config, "max_pages", 1000, minimum=1),
            key=parse_key(config.get("key")),
        )

    @property
    def url(self) -> str:
        if not self.endpoint:
            return self.base_url
        return self.base_url.rstrip("/") + "/" + self.endpoint.lstrip("/")


@dataclass
class _Page:
    records: list[dict[str, Any]]
    document: Any
    next_url: str | None


class HttpJsonConnector(BaseConnector):
    kind = "http_json"
    config_class = HttpJsonConfig
    config: HttpJsonConfig
    # Set by a validation run: every request ends (ConnectorError "Stopped") within about a
    # second of it turning true, instead of waiting out a slow server's timeouts.
    should_stop: Callable[[], bool] | None = None

    def __init__(self, config: HttpJsonConfig, secrets: Mapping[str, Any], guard: GuardPolicy):
        super().__init__(config, secrets, guard)
        self._steps = parse_path(config.records_path)
        self._headers, self._sensitive = self._auth_headers()

    def _auth_headers(self) -> tuple[dict[str, str], list[str]]:
        """Request headers with the credentials, and which of them a redirect must not carry
        to another origin."""
        cfg, headers = self.config, {"Accept": "application/json", **self.config.headers}
        secret = self._secrets
        for name in cfg.secret_headers:
            value = secret.get(secret_header_key(name))
            if not isinstance(value, str) or not value:
                raise ConnectorError(f"The value of the secret header '{name}' is required.")
            headers[name] = value
        sensitive = list(cfg.secret_headers)
        if cfg.auth == "bearer":
            headers["Authorization"] = f"Bearer {_need(secret, 'token')}"
        elif cfg.auth == "basic":
            if not cfg.username:
                raise ConnectorError("Basic authentication needs a username.")
            pair = f"{cfg.username}:{_need(secret, 'password')}".encode()
            headers["Authorization"] = "Basic " + base64.b64encode(pair).decode()
        elif cfg.auth == "api_key":
            headers[cfg.api_key_header] = _need(secret, "api_key")
            sensitive.append(cfg.api_key_header)
        return headers, sensitive

    # ------------------------------------------------------------ paging

    def _url(self, extra: Mapping[str, Any]) -> str:
        parts = urlsplit(self.config.url)
        query = dict(parse_qsl(parts.query, keep_blank_values=True))
        query.update(self.config.params)
        query.update({k: str(v) for k, v in extra.items()})
        return urlunsplit(parts._replace(query=urlencode(query)))

    def _get(self, url: str) -> HttpResponse:
        response = http_get(
            url, self.guard, self._headers, self._sensitive, should_stop=self.should_stop
        )
        if not 200 <= response.status < 300:
            snippet = scrub(response.body[:200].decode("utf-8", "replace"), self._secrets)
            raise ConnectorError(f"The API answered HTTP {response.status}: {snippet.strip()}")
        return response

    def _page(self, url: str) -> _Page:
        response = self._get(url)
        try:
            document = json.loads(response.body)
        except ValueError:
            raise ConnectorError("The API response is not valid JSON.") from None
        records = select_records(document, self._steps)
        next_url = None
        if self.config.pagination == "link":
            target = parse_link_next(response.header("Link"))
            if target:
                next_url = urljoin(response.url, target)
                if urlsplit(next_url)[:2] != urlsplit(response.url)[:2]:
                    # Credentials travel with every page; never to another origin.
                    raise ConnectorError("The next-page link points to a different server.")
        return _Page(records, document, next_url)

    def pages(self) -> Iterator[_Page]:
        """Every page in order; raises when ``max_pages`` is hit with more data pending."""
        cfg = self.config
        style = cfg.pagination
        if style == "page":
            extra: dict[str, Any] = {cfg.page_param: cfg.start_page}
            if cfg.size_param:
                extra[cfg.size_param] = cfg.page_size
        elif style == "offset":
            extra = {cfg.offset_param: 0, cfg.limit_param: cfg.page_size}
        else:
            extra = {}
        url: str | None = self._url(extra)
        seen_cursors: set[str] = set()
        for n in range(1, cfg.max_pages + 1):
            assert url is not None
            page = self._page(url)
            yield page
            got = len(page.records)
            url = None
            if style == "page":
                full = got >= cfg.page_size if cfg.size_param else got > 0
                if full:
                    extra[cfg.page_param] = int(extra[cfg.page_param]) + 1
                    url = self._url(extra)
            elif style == "offset":
                if got >= cfg.page_size:
                    extra[cfg.offset_param] = int(extra[cfg.offset_param]) + got
                    url = self._url(extra)
            elif style == "cursor":
                cursor = select_value(page.document, cfg.cursor_path)
                if cursor not in (None, "", False) and str(cursor) not in seen_cursors:
                    seen_cursors.add(str(cursor))
                    url = self._url({cfg.cursor_param: cursor})
            elif style == "link":
                url = page.next_url
            if url is None:
                return
            if n == cfg.max_pages:
                raise ConnectorError(
                    f"Stopped after {cfg.max_pages} pages and the API still has more. "
                    "Raise the page limit or narrow the endpoint."
                )

    # ------------------------------------------------------------ Connector API

    def _probe(self) -> pl.DataFrame:
        page = next(iter(self.pages()))
        return frame_from_records(page.records)

    def fetch(self, batch_size: int = DEFAULT_BATCH_SIZE) -> Iterator[pl.DataFrame]:
        tracker = SchemaTracker()
        buffer: list[dict[str, Any]] = []
        for page in self.pages():
            buffer.extend(page.records)
            while len(buffer) >= batch_size:
                chunk, buffer = buffer[:batch_size], buffer[batch_size:]
                yield tracker.stabilize(frame_from_records(chunk))
        if buffer:
            yield tracker.stabilize(frame_from_records(buffer))

    def count(self) -> int | None:
        if not self.config.total_path:
            return None
        page = next(iter(self.pages()))
        value = select_value(page.document, self.config.total_path)
        try:
            return int(value)
        except (TypeError, ValueError):
            return None


def _need(secrets: Mapping[str, Any], name: str) -> str:
    value = secrets.get(name)
    if not isinstance(value, str) or not value:
        raise ConnectorError(f"The secret '{name}' is required for this authentication type.")
    return value
