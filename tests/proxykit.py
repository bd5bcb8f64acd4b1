"""A forward HTTP proxy for tests: what a cluster's ``proxy-url`` points at.

It takes requests in absolute form (``GET http://host:port/path``), forwards them to the server
they name and answers with the server's response, recording each (method, URL) it forwarded. No
CONNECT (https through the proxy) and no streaming: enough for clients that make plain calls.
"""

from __future__ import annotations

import http.client
import threading
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

HOP_BY_HOP = {"connection", "keep-alive", "proxy-authorization", "proxy-connection", "te", "trailer",
              "transfer-encoding", "upgrade"}  # fmt: skip


class Proxy:
    def __init__(self, server: ThreadingHTTPServer) -> None:
        self.server = server
        self.forwarded: list[tuple[str, str]] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"


@contextmanager
def forward_proxy() -> Iterator[Proxy]:
    proxy: Proxy

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _forward(self) -> None:
            target = urllib.parse.urlsplit(self.path)
            if target.scheme != "http" or not target.netloc:
                self.send_error(400, "absolute http:// URL expected")
                return
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else None
            headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
            upstream = http.client.HTTPConnection(target.netloc, timeout=30)
            try:
                path = urllib.parse.urlunsplit(("", "", target.path or "/", target.query, ""))
                upstream.request(self.command, path, body=body, headers=headers)
                response = upstream.getresponse()
                data = response.read()
            finally:
                upstream.close()
            proxy.forwarded.append((self.command, self.path))
            self.send_response(response.status, response.reason)
            for key, value in response.getheaders():
                if key.lower() not in HOP_BY_HOP | {"content-length"}:
                    self.send_header(key, value)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = _forward  # noqa: N815 (http.server names them)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    proxy = Proxy(server)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield proxy
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
