"""Recording audit events. ``audit_record`` is the one write; it never changes an existing row."""

from __future__ import annotations

import ipaddress
import json
import logging

from django.db import transaction

from . import context
from .models import AuditEvent

logger = logging.getLogger(__name__)
MAX_DETAILS_CHARS = 8_000


def _valid_ip(value: str | None) -> str | None:
    try:
        return str(ipaddress.ip_address(value)) if value else None
    except ValueError:
        return None


def _bounded(details: dict) -> dict:
    text = json.dumps(details, default=str)
    if len(text) <= MAX_DETAILS_CHARS:
        return json.loads(text)
    return {"truncated": text[:MAX_DETAILS_CHARS]}


def audit_record(
    *,
    action: str,
    actor=None,
    obj=None,
    object_type: str = "",
    object_id: str | int = "",
    details: dict | None = None,
    ip: str | None = None,
) -> AuditEvent:
    """Append one event. The actor and the address default to the current request's (none: the system).

    It joins the caller's transaction: an action that rolls back leaves no event behind.
    """
    current = context.current()
    if actor is None and current is not None and getattr(current.user, "is_authenticated", False):
        actor = current.user
    if ip is None and current is not None:
        ip = current.ip
    if obj is not None:
        object_type = object_type or obj._meta.label_lower
        object_id = object_id or obj.pk
    with transaction.atomic():
        return AuditEvent.objects.create(
            action=action[:64],
            actor_id=getattr(actor, "pk", None),
            actor_username=(actor.get_username() if actor is not None else "")[:150],
            object_type=str(object_type)[:64],
            object_id=str(object_id)[:64],
            ip=_valid_ip(ip),
            details=_bounded(details or {}),
        )
