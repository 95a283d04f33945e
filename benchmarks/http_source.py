"""Throughput of the http_json connector against a local paginated API.

    .venv/bin/python benchmarks/http_source.py [--records 10000] [--page-size 100]

Serves ``--records`` JSON records from a threaded http.server on 127.0.0.1 with
cursor pagination, fetches them all through the connector (guard, pinned IP, size
cap and all) with 127.0.0.1 allow-listed, and prints records/s.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from planner.connectors import GuardPolicy, open_connector  # noqa: E402


def make_server(records: int, page_size: int) -> ThreadingHTTPServer:
    rows = [
        {
            "id": i,
            "email": f"user{i}@example.com",
            "name": f"Customer {i}",
            "balance": round(i * 1.37, 2),
            "active": i % 3 != 0,
            "address": {"city": f"City {i % 97}", "zip": f"{i % 100000:05d}"},
        }
        for i in range(1, records + 1)
    ]
    # Pre-encode every page so the server measures the client, not json.dumps.
    pages: dict[int, bytes] = {}
    for start in range(0, records, page_size):
        nxt = start + page_size if start + page_size < records else None
        pages[start] = json.dumps({"data": rows[start : start + page_size], "next": nxt}).encode()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: Any) -> None:
            pass

        def do_GET(self) -> None:  # noqa: N802 - http.server naming
            query = parse_qs(urlsplit(self.path).query)
            body = pages.get(int(query.get("cursor", ["0"])[0]), b'{"data": [], "next": null}')
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    return server


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=10_000)
    parser.add_argument("--page-size", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=3, help="report the best of N runs")
    args = parser.parse_args()

    server = make_server(args.records, args.page_size)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        connector = open_connector(
            "http_json",
            {
                "base_url": f"http://127.0.0.1:{server.server_address[1]}",
                "endpoint": "/customers",
                "pagination": "cursor",
                "cursor_param": "cursor",
                "cursor_path": "$.next",
                "records_path": "$.data",
                "max_pages": args.records // args.page_size + 10,
                "key": "id",
            },
            {},
            GuardPolicy(allow_hosts=frozenset({"127.0.0.1"})),
        )
        best = float("inf")
        for _ in range(args.repeat):
            start = time.perf_counter()
            total = sum(frame.height for frame in connector.fetch(batch_size=5_000))
            best = min(best, time.perf_counter() - start)
            assert total == args.records, total
    finally:
        server.shutdown()
        server.server_close()
    pages = -(-args.records // args.page_size)
    print(f"fetched {args.records:,} records in {pages} pages: {best:.3f}s (best of {args.repeat})")
    print(f"{args.records / best:,.0f} records/s, {pages / best:,.0f} pages/s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
