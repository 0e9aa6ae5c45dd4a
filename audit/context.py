"""Who is acting and from which address, for the request being served (set by the middleware), so the
services that record events need not be handed the request."""

from __future__ import annotations

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
    """The TCP peer, or the first X-Forwarded-For address behind a TLS proxy (BEHIND_TLS_PROXY)."""
    if settings.SECURE_PROXY_SSL_HEADER and request.META.get("HTTP_X_FORWARDED_FOR"):
        return request.META["HTTP_X_FORWARDED_FOR"].split(",")[0].strip()[:45] or None
    return request.META.get("REMOTE_ADDR") or None


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
