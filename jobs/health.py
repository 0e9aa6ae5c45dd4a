"""What /healthz reports: the database, the broker and the worker lanes, each bounded in time.

``ok``: everything answers. ``degraded``: the web app works (pages, submits), but background work waits:
the broker is away (work is kept in the outbox), a lane has no live worker (``down``), or its workers
beat but its probe task has not been taken and finished within ``T2G_PROBE_BOUND_S`` (``stalled``:
``jobs.liveness``). ``down``: the database does not answer; nothing works.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

from django.conf import settings
from django.core.cache import cache
from django.db import connection

from . import liveness
from .models import Outbox

logger = logging.getLogger(__name__)

BROKER_TIMEOUT_S = 1.0


def database_ok() -> bool:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        return True
    except Exception:
        logger.warning("Health: the database does not answer", exc_info=True)
        return False


def broker_ok() -> bool:
    """One connection attempt with a short timeout (a frozen broker answers nothing: a timeout)."""
    url = settings.CELERY_BROKER_URL
    if getattr(settings, "CELERY_TASK_ALWAYS_EAGER", False):
        return True
    if url.startswith("filesystem://"):
        options = getattr(settings, "CELERY_BROKER_TRANSPORT_OPTIONS", {})
        folder = Path(options.get("data_folder_in", "."))
        return folder.is_dir()
    if url.startswith(("redis://", "rediss://")):
        import redis

        try:
            client = redis.Redis.from_url(
                url, socket_timeout=BROKER_TIMEOUT_S, socket_connect_timeout=BROKER_TIMEOUT_S
            )
            try:
                return bool(client.ping())
            finally:
                client.close()
        except Exception:
            return False
    return liveness.broker_reachable(BROKER_TIMEOUT_S)


def report() -> dict:
    started = time.monotonic()
    database = database_ok()
    broker = broker_ok()
    result: dict = {"database": "ok" if database else "down", "broker": "ok" if broker else "down"}
    if database:
        lanes = liveness.lanes_status()
        result["lanes"] = {
            lane: "up" if state["up"] else "stalled" if state["stalled"] else "down"
            for lane, state in lanes.items()
        }
        result["restarts"] = [
            {**notice, "restarted_at": notice["restarted_at"].isoformat()} for notice in liveness.restarts()
        ]
        result["outbox_pending"] = Outbox.objects.filter(sent_at__isnull=True).count()
        healthy = broker and all(state["up"] for state in lanes.values())
        result["status"] = "ok" if healthy else "degraded"
    else:
        result["status"] = "down"
    result["checked_in_ms"] = round(1000 * (time.monotonic() - started))
    return result


def lanes_down_cached(ttl_s: int = 10) -> list[str]:
    """Lanes without a live worker or stalled, cached briefly: the admins' page header asks on every page."""
    key = "t2g:lanes-down"
    down = cache.get(key)
    if down is None:
        try:
            down = liveness.lanes_down()
        except Exception:
            down = []
        cache.set(key, down, ttl_s)
    return down


def restarts_cached(ttl_s: int = 10) -> list[dict]:
    """Workers that came back after dying in the last minutes (admins' page header), cached briefly."""
    key = "t2g:lane-restarts"
    notices = cache.get(key)
    if notices is None:
        try:
            notices = liveness.restarts()
        except Exception:
            notices = []
        cache.set(key, notices, ttl_s)
    return notices
