"""DRF's throttles keyed by the one client-address rule (``audit.context.client_ip``), never by the raw
``X-Forwarded-For`` a client writes. Kept out of ``annotations.api`` so the settings can name them
without importing the API's views."""

from __future__ import annotations

from rest_framework.throttling import AnonRateThrottle, UserRateThrottle

from audit.context import client_ip


class _ClientAddress:
    def get_ident(self, request) -> str:
        return client_ip(request) or "unknown"


class UserThrottle(_ClientAddress, UserRateThrottle):
    """Per user; an anonymous request per client address."""


class AnonThrottle(_ClientAddress, AnonRateThrottle):
    """Anonymous requests per client address."""
