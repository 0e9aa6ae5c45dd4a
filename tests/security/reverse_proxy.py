"""A small reverse proxy for tests, doing what nginx's ``proxy_add_x_forwarded_for`` does: it forwards each
request to a backend, appends the TCP peer's address to the ``X-Forwarded-For`` the client sent, and says
``X-Forwarded-Proto: https`` (the TLS it stands for). Standard library only."""

from __future__ import annotations

import http.client
from urllib.parse import urlsplit

from tests.support.http import LocalServer, QuietHandler

HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "proxy-connection"}


class ReverseProxy(LocalServer):
    def __init__(self, backend_url: str):
        backend = urlsplit(backend_url)
        self.backend = (backend.hostname, backend.port)
        proxy = self

        class Handler(QuietHandler):
            protocol_version = "HTTP/1.1"

            def _forward(self) -> None:
                body = self.read_body() or None
                headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
                sent = self.headers.get("X-Forwarded-For")
                peer = self.client_address[0]
                headers["X-Forwarded-For"] = f"{sent}, {peer}" if sent else peer
                headers["X-Forwarded-Proto"] = "https"
                upstream = http.client.HTTPConnection(*proxy.backend, timeout=60)
                try:
                    upstream.request(self.command, self.path, body=body, headers=headers)
                    answer = upstream.getresponse()
                    kept = [
                        (key, value)
                        for key, value in answer.getheaders()
                        if key.lower() not in HOP_BY_HOP and key.lower() != "content-length"
                    ]
                    self.send_body(answer.status, answer.read(), kept)
                finally:
                    upstream.close()

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _forward

        super().__init__(Handler)
        self.url = self.origin
