"""The container's health check: GET /healthz on the local gunicorn, as production serves it (DEBUG=0).

It sends a Host header the app accepts (the first ALLOWED_HOSTS entry), and /healthz is exempt from the
HTTPS redirect (SECURE_REDIRECT_EXEMPT), so the probe works without TLS in front. Exit 0 when healthy.
"""

from __future__ import annotations

import os
import sys
import urllib.error
import urllib.request


def probe_host() -> str:
    for entry in os.environ.get("ALLOWED_HOSTS", "").split(","):
        host = entry.strip().lstrip(".")
        if host and host != "*":
            return host
    return "localhost"


def main() -> int:
    port = os.environ.get("PORT", "8000")
    request = urllib.request.Request(f"http://127.0.0.1:{port}/healthz", headers={"Host": probe_host()})
    try:
        with urllib.request.urlopen(request, timeout=4) as response:
            return 0 if response.status == 200 else 1
    except (urllib.error.URLError, OSError) as exc:
        print(f"unhealthy: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
