"""Who is acting and from which address, for the request being served (set by the middleware), so the
services that record events need not be handed the request."""

from __future__ import annotations

import ipaddress
from contextvars import ContextVar
from dataclasses import dataclass

from django.conf import settings


@dataclass(frozen=True)
class Actor:
    request: object
    ip: str | None

    @property
    def user(self):
        # Read when an event is recorded, not when the request came in: DRF authenticates tokens in the
        # view and then sets the user on the HttpRequest too.
        return getattr(self.request, "user", None)


_current: ContextVar[Actor | None] = ContextVar("audit_actor", default=None)


def client_ip(request) -> str | None:
    """The client's address: one rule for the login limits, the API throttles and the audit log.

    With no trusted proxy (``NUM_PROXIES`` 0, the default unless ``BEHIND_TLS_PROXY``) it is the TCP peer
    and ``X-Forwarded-For`` is ignored: anyone can write that header. Behind ``NUM_PROXIES`` trusted
    proxies it is the entry the outermost of them appended, counted from the right of
    ``X-Forwarded-For``; entries left of it are the client's own and never read. A request with no (or a
    malformed) entry there falls back to the TCP peer.
    """
    peer = request.META.get("REMOTE_ADDR") or None
    proxies = settings.NUM_PROXIES
    if proxies <= 0:
        return peer
    entries = [entry.strip() for entry in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",")]
    entries = [entry for entry in entries if entry]
    if not entries:
        return peer
    candidate = entries[-min(proxies, len(entries))]
    try:
        return str(ipaddress.ip_address(candidate))
    except ValueError:
        return peer


def current() -> Actor | None:
    return _current.get()


class AuditContextMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        token = _current.set(Actor(request=request, ip=client_ip(request)))
        try:
            return self.get_response(request)
        finally:
            _current.reset(token)
