"""A test's own HTTP server on 127.0.0.1: a webhook receiver, an OpenAI-compatible chat server, a reverse
proxy. Each is a real ``ThreadingHTTPServer`` on a free port, served from a daemon thread while the test
uses it, with a request handler that keeps the test's output quiet."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class QuietHandler(BaseHTTPRequestHandler):
    """A handler that logs nothing and answers with one whole body (its ``Content-Length`` set)."""

    def log_message(self, *args) -> None:
        pass

    def read_body(self) -> bytes:
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def send_body(self, status: int, data: bytes, headers: Iterable[tuple[str, str]] = ()) -> None:
        """``headers`` as pairs, so that a name may repeat (``Set-Cookie``)."""
        self.send_response(status)
        for key, value in headers:
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def send_json(self, status: int, payload: object) -> None:
        self.send_body(status, json.dumps(payload).encode("utf-8"), [("Content-Type", "application/json")])


class LocalServer:
    """``handler`` served on a free port of 127.0.0.1 from a daemon thread: ``with server: ...`` (or
    ``start()`` and ``close()``). Requests are handled in threads of their own, which never hold the test
    process up at its end."""

    def __init__(self, handler: type[BaseHTTPRequestHandler]) -> None:
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.port = self.httpd.server_address[1]
        self.origin = f"http://127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def start(self):
        self.thread.start()
        return self

    def close(self) -> None:
        if self.thread.is_alive():  # shutdown() waits for serve_forever, for ever if it never ran
            self.httpd.shutdown()
        self.httpd.server_close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()
