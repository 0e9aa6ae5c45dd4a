"""Each worker process keeps a thread that, independent of the broker, records the worker as alive
(``WorkerBeat``), publishes what the outbox still holds and runs the reaper. /healthz and the admins'
page header read the beats: a lane with no recent beat has no live worker."""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
import time
from datetime import timedelta

from django.conf import settings
from django.db import close_old_connections, connection
from django.utils import timezone

from .models import WorkerBeat

logger = logging.getLogger(__name__)

BEAT_EVERY_S = 5
ALIVE_WITHIN_S = 30  # a worker not seen for this long is counted as down


def lanes_expected() -> list[str]:
    return list(getattr(settings, "T2G_LANES", ["interactive", "default", "generation", "training"]))


def beat(name: str, lanes: str, started_at, *, broker_ok: bool = True) -> None:
    WorkerBeat.objects.update_or_create(
        name=name,
        defaults={
            "lanes": lanes,
            "pid": os.getpid(),
            "started_at": started_at,
            "seen_at": timezone.now(),
            "broker_ok": broker_ok,
        },
    )


def lanes_status(now=None) -> dict[str, dict]:
    """For each expected lane: whether a worker serving it was seen recently, and which."""
    now = now or timezone.now()
    recent = list(WorkerBeat.objects.filter(seen_at__gte=now - timedelta(seconds=ALIVE_WITHIN_S)))
    status = {}
    for lane in lanes_expected():
        serving = [w.name for w in recent if lane in w.lanes.split(",")]
        status[lane] = {"up": bool(serving), "workers": serving}
    return status


def lanes_down() -> list[str]:
    return [lane for lane, state in lanes_status().items() if not state["up"]]


def broker_reachable(timeout_s: float = 1.5) -> bool:
    """One bounded connection attempt to the broker (never blocks a request for long)."""
    from celery import current_app

    if current_app.conf.task_always_eager:
        return True
    try:
        with current_app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, timeout=timeout_s, interval_start=0, interval_step=0)
            channel = conn.default_channel
            client = getattr(channel, "client", None)
            if client is not None and hasattr(client, "ping"):
                client.ping()
        return True
    except Exception:
        return False


class Housekeeper:
    """The worker's background thread: beat, relay and reap on their own clocks; every step tolerates
    the database or the broker being away."""

    def __init__(
        self, name: str, lanes: str, *, reap_every_s: float | None = None, relay_every_s: float = 3
    ) -> None:
        self.name, self.lanes = name, lanes
        self.reap_every_s = reap_every_s or float(getattr(settings, "T2G_REAP_JOBS_EVERY_S", 15))
        self.relay_every_s = relay_every_s
        self.started_at = timezone.now()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._loop, name="t2g-housekeeper", daemon=True)

    def start(self) -> Housekeeper:
        self.thread.start()
        return self

    def _loop(self) -> None:
        from . import dispatch, reaper

        next_relay = next_reap = next_beat = 0.0
        while not self.stop.is_set():
            now = time.monotonic()
            try:
                close_old_connections()
                if now >= next_beat:
                    beat(self.name, self.lanes, self.started_at)
                    next_beat = now + BEAT_EVERY_S
                if now >= next_relay:
                    dispatch.relay()
                    next_relay = now + self.relay_every_s
                if now >= next_reap:
                    reaper.sweep()
                    next_reap = now + self.reap_every_s
            except Exception:
                logger.warning("Worker housekeeping failed; trying again shortly", exc_info=True)
                connection.close()
            self.stop.wait(1.0)
        with contextlib.suppress(Exception):
            WorkerBeat.objects.filter(name=self.name, pid=os.getpid()).delete()
        connection.close()


def worker_name(hostname: str | None) -> str:
    return hostname or f"worker@{socket.gethostname()}:{os.getpid()}"
