"""Throttles, pagination and renderers shared by the endpoints."""

from __future__ import annotations

import json

from django.conf import settings
from rest_framework import renderers
from rest_framework.pagination import CursorPagination

from ..throttling import AnonThrottle, UserThrottle


class _SettingsRateThrottle(UserThrottle):
    """A scoped throttle whose rate comes from REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"][scope] if set."""

    default_rate = "60/hour"

    def get_rate(self) -> str:
        rates = getattr(settings, "REST_FRAMEWORK", {}).get("DEFAULT_THROTTLE_RATES", {})
        return rates.get(self.scope) or self.default_rate


class ExportRateThrottle(_SettingsRateThrottle):
    scope = "exports"
    default_rate = "120/hour"


class ImportRateThrottle(_SettingsRateThrottle):
    scope = "imports"
    default_rate = "60/hour"


class LoginRateThrottle(AnonThrottle):
    scope = "login"

    def get_rate(self) -> str:
        rates = getattr(settings, "REST_FRAMEWORK", {}).get("DEFAULT_THROTTLE_RATES", {})
        return rates.get(self.scope) or "20/min"


class IdCursorPagination(CursorPagination):
    ordering = "id"
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 500


class NewestFirstPagination(IdCursorPagination):
    ordering = "-id"


class PassthroughRenderer(renderers.BaseRenderer):
    """Lets a file download answer any Accept header; errors are still JSON."""

    media_type = "*/*"
    format = "file"

    def render(self, data, accepted_media_type=None, renderer_context=None) -> bytes:
        return json.dumps(data).encode() if isinstance(data, dict | list) else (data or b"")
