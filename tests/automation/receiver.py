"""A real HTTP receiver for webhook tests: an HTTP server in a thread, checking each delivery's signature
the way a team's receiver would (its own HMAC code, not the studio's)."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time

from tests.support.http import LocalServer, QuietHandler


class Receiver(LocalServer):
    def __init__(self, statuses: list[int] | None = None):
        self.secret = ""
        self.statuses = list(statuses or [])  # answered in order; 200 once they run out
        self.requests: list[dict] = []
        self.lock = threading.Lock()
        receiver = self

        class Handler(QuietHandler):
            def do_POST(self):
                body = self.read_body()
                with receiver.lock:
                    status = receiver.statuses.pop(0) if receiver.statuses else 200
                    receiver.requests.append(
                        {
                            "headers": dict(self.headers),
                            "body": body,
                            "json": json.loads(body),
                            "signature_ok": receiver.verify(self.headers.get("X-T2G-Signature", ""), body),
                            "status": status,
                            "at": time.monotonic(),
                        }
                    )
                self.send_body(status, b"ok")

        super().__init__(Handler)
        self.url = f"{self.origin}/hooks/t2g?team=ml"

    def verify(self, header: str, body: bytes) -> bool:
        fields = dict(part.split("=", 1) for part in header.split(",") if "=" in part)
        if "t" not in fields or "v1" not in fields or abs(time.time() - int(fields["t"])) > 300:
            return False
        expected = hmac.new(
            self.secret.encode(), f"{fields['t']}.".encode() + body, hashlib.sha256
        ).hexdigest()
        return hmac.compare_digest(expected, fields["v1"])
