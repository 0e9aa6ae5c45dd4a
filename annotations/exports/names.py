"""Annotators in exports: a stable, non-reversible pseudonym unless an admin asks for usernames."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable
from functools import lru_cache

from django.conf import settings

from .query import ExportQuery


def pseudonym(user_id: int) -> str:
    """A stable, non-reversible name for an annotator: an HMAC of the user id keyed by SECRET_KEY."""
    return _pseudonym(settings.SECRET_KEY, user_id)


@lru_cache(maxsize=4096)
def _pseudonym(secret: str, user_id: int) -> str:
    digest = hmac.new(secret.encode(), f"annotator:{user_id}".encode(), hashlib.sha256).hexdigest()
    return f"annotator-{digest[:16]}"


def annotator_names(query: ExportQuery) -> Callable[[int, str], str]:
    if query.identify_annotators:
        return lambda _user_id, username: username
    secret = settings.SECRET_KEY
    return lambda user_id, _username: _pseudonym(secret, user_id)
