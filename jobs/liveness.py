"""Each worker process keeps a thread that, independent of the broker, records the worker as alive
(``WorkerBeat``), publishes what the outbox still holds and runs the reaper. /healthz and the admins'
page header read the beats: a lane with no recent beat has no live worker.

A beat says only that the process runs. That a lane *takes and finishes work* is shown by a probe: the
housekeeping thread sends a no-op task (``jobs.probe``) through each lane it serves every
``T2G_PROBE_EVERY_S`` (15 s), and the task records when it finished. A lane whose probe has been waiting longer than
``T2G_PROBE_BOUND_S`` is ``stalled`` (a worker that beats but takes nothing: the wedge a frozen broker used
to leave), unless one of its jobs is running with a fresh heartbeat (a busy lane, not a stuck one).

Probes and restarts are kept as ``WorkerBeat`` rows of their own, named ``probe:<lane>`` and
``restart:<worker>``, with empty ``lanes`` (so they never count as a worker serving a lane):
``probe:<lane>``: ``started_at`` = when the oldest unanswered probe was sent, ``seen_at`` = when a probe
last finished (before ``started_at``: one is outstanding). ``restart:<worker>``: a worker came back after
dying without its clean stop; ``started_at`` = last seen before, ``seen_at`` = when it came back."""

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
PROBE_EVERY_S = 15  # the default of T2G_PROBE_EVERY_S
PROBE_PREFIX = "probe:"
RESTART_PREFIX = "restart:"
RESTART_NOTICE_S = 15 * 60  # admins see a restart this long
EXIT_WEDGED = 75  # the exit status of a worker that found itself taking no work (EX_TEMPFAIL)


def probe_bound_s() -> int:
    return int(getattr(settings, "T2G_PROBE_BOUND_S", 120))


def lanes_expected() -> list[str]:
    return list(getattr(settings, "T2G_LANES", ["interactive", "default", "generation", "training"]))


def beat(name: str, lanes: str, started_at, *, broker_ok: bool = True) -> None:
    previous = WorkerBeat.objects.filter(name=name).exclude(started_at=started_at).first()
    if previous is not None and previous.pid != os.getpid():
        # The last process of this name did not stop cleanly (a clean stop deletes its row): it died, and
        # this one replaces it. Admins are told (``restarts``).
        WorkerBeat.objects.update_or_create(
            name=f"{RESTART_PREFIX}{name}",
            defaults={
                "lanes": "",
                "pid": os.getpid(),
                "started_at": previous.seen_at,
                "seen_at": timezone.now(),
            },
        )
        logger.warning("Worker %s restarted (last seen %s)", name, previous.seen_at.isoformat())
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


def _busy(lane: str, now) -> bool:
    """A job of this lane is running and its heartbeat is fresh: the lane works, it is just occupied."""
    from . import registry

    fresh = now - timedelta(seconds=int(getattr(settings, "T2G_JOB_STALE_AFTER_S", 45)))
    for kind in registry.KINDS.values():
        if registry.lane_of(kind.task) != lane:
            continue
        model = kind.model
        if model.objects.filter(status=model.Status.RUNNING, heartbeat_at__gte=fresh).exists():
            return True
    return False


def lanes_status(now=None) -> dict[str, dict]:
    """For each expected lane: whether a worker serving it was seen recently (which), and whether the lane
    takes and finishes work (``stalled``: its probe has waited longer than the bound)."""
    now = now or timezone.now()
    recent = list(WorkerBeat.objects.filter(seen_at__gte=now - timedelta(seconds=ALIVE_WITHIN_S)))
    probes = {
        row.name[len(PROBE_PREFIX) :]: row for row in WorkerBeat.objects.filter(name__startswith=PROBE_PREFIX)
    }
    status = {}
    for lane in lanes_expected():
        serving = [w.name for w in recent if lane in w.lanes.split(",")]
        probe = probes.get(lane)
        waiting_s = (
            (now - probe.started_at).total_seconds()
            if probe is not None and probe.seen_at < probe.started_at
            else 0.0
        )
        stalled = bool(serving) and waiting_s > probe_bound_s() and not _busy(lane, now)
        status[lane] = {
            "up": bool(serving) and not stalled,
            "workers": serving,
            "stalled": stalled,
            "probe_waiting_s": round(waiting_s),
        }
    return status


def restarts(now=None) -> list[dict]:
    """Workers that came back after dying, within the last ``RESTART_NOTICE_S``: what admins are told."""
    now = now or timezone.now()
    rows = WorkerBeat.objects.filter(
        name__startswith=RESTART_PREFIX, seen_at__gte=now - timedelta(seconds=RESTART_NOTICE_S)
    )
    notices = []
    for row in rows:
        name = row.name[len(RESTART_PREFIX) :]
        current = WorkerBeat.objects.filter(name=name).first()
        notices.append(
            {
                "worker": name,
                "lanes": current.lanes.split(",") if current is not None else [],
                "restarted_at": row.seen_at,
                "silent_s": max(0, round((row.seen_at - row.started_at).total_seconds())),
            }
        )
    return notices


def send_probe(lane: str, now=None) -> bool:
    """Send a probe through ``lane`` unless one is outstanding (then only again once the bound passed:
    a probe lost with a broker restart is replaced). The oldest unanswered send is kept, so a lane that
    never answers shows how long it has not. Returns whether a probe was sent."""
    from celery import current_app
    from django.db.models import F

    now = now or timezone.now()
    name = f"{PROBE_PREFIX}{lane}"
    row, created = WorkerBeat.objects.get_or_create(
        name=name,
        defaults={"lanes": "", "pid": os.getpid(), "started_at": now, "seen_at": now - timedelta(seconds=1)},
    )
    if not created:
        answered = WorkerBeat.objects.filter(
            name=name,
            seen_at__gte=F("started_at"),
            seen_at__lte=now - timedelta(seconds=int(getattr(settings, "T2G_PROBE_EVERY_S", PROBE_EVERY_S))),
        ).update(started_at=now)
        lost = (now - row.started_at).total_seconds() > probe_bound_s() and row.seen_at < row.started_at
        if not answered and not lost:
            return False
    current_app.send_task(
        "jobs.probe", args=[lane, now.isoformat()], queue=lane, expires=probe_bound_s(), retry=False
    )
    return True


def vouch_busy(lane: str) -> None:
    """A worker of ``lane`` is busy with work it took: the lane counts as answering (its probe, if one
    waits, is not overdue)."""
    now = timezone.now()
    WorkerBeat.objects.filter(name=f"{PROBE_PREFIX}{lane}").update(started_at=now, seen_at=now)


def probe_finished(lane: str, token: str = "") -> None:
    WorkerBeat.objects.filter(name=f"{PROBE_PREFIX}{lane}").update(seen_at=timezone.now())


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
        self,
        name: str,
        lanes: str,
        *,
        reap_every_s: float | None = None,
        relay_every_s: float = 3,
        concurrency: int = 1,
    ) -> None:
        self.name, self.lanes, self.concurrency = name, lanes, max(1, concurrency)
        self.reap_every_s = reap_every_s or float(getattr(settings, "T2G_REAP_JOBS_EVERY_S", 15))
        self.relay_every_s = relay_every_s
        self.probe_every_s = int(getattr(settings, "T2G_PROBE_EVERY_S", PROBE_EVERY_S))
        self.sent: dict = {}  # lane -> when this worker handed it the oldest probe not yet finished
        self.started_at = timezone.now()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._loop, name="t2g-housekeeper", daemon=True)

    def start(self) -> Housekeeper:
        self.thread.start()
        return self

    def _busy(self) -> bool:
        """Every pool process of this worker runs a task it took (a long generation, a campaign): its
        lanes take work, a probe would only wait behind it. A wedged worker runs nothing."""
        from celery.worker import state

        return len(state.active_requests) >= self.concurrency

    def _probe(self) -> None:
        if not self.probe_every_s:
            return
        if self._busy():
            for lane in _probe_lanes(self.lanes):
                vouch_busy(lane)
            return
        self._forget_answered()
        for lane in _probe_lanes(self.lanes):
            sent_at = timezone.now()  # before the publish: a probe finished at once is still later
            try:
                if send_probe(lane, sent_at):
                    self.sent.setdefault(lane, sent_at)
            except Exception:
                logger.info("Could not send the %s lane's probe (broker away?)", lane, exc_info=True)
        self._exit_if_wedged()

    def _forget_answered(self) -> None:
        for lane, sent_at in list(self.sent.items()):
            probe = WorkerBeat.objects.filter(name=f"{PROBE_PREFIX}{lane}").first()
            if probe is None or probe.seen_at >= sent_at:
                del self.sent[lane]  # finished (or vouched for) since

    def _exit_if_wedged(self) -> None:
        """A probe this worker handed to the broker has not been finished within the bound by any worker
        of its lane, while this worker runs nothing and the broker answers: this worker takes no work
        (whatever wedged it). It exits, so that its supervisor (run.sh, compose's restart policy) starts
        a fresh one; admins are told of the restart. ``T2G_EXIT_WHEN_STALLED=0`` only reports it."""
        from celery.worker import state

        if not getattr(settings, "T2G_EXIT_WHEN_STALLED", True) or state.active_requests:
            return
        self._forget_answered()
        now = timezone.now()
        for lane, sent_at in list(self.sent.items()):
            waited = (now - sent_at).total_seconds()
            if waited <= probe_bound_s() or not broker_reachable():
                continue
            logger.error(
                "This worker took no work for %d s although the broker answers and it runs nothing (the %s "
                "lane's probe is not finished): exiting so that its supervisor starts a fresh one",
                waited,
                lane,
            )
            for handler in logging.getLogger().handlers:
                with contextlib.suppress(Exception):
                    handler.flush()
            os._exit(EXIT_WEDGED)  # a warm shutdown could wait on what wedged it; acks_late redelivers

    def _loop(self) -> None:
        from . import dispatch, reaper

        next_relay = next_reap = next_beat = next_probe = 0.0
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
                if now >= next_probe:
                    next_probe = now + (self.probe_every_s or 3600)
                    self._probe()
            except Exception:
                logger.warning("Worker housekeeping failed; trying again shortly", exc_info=True)
                connection.close()
            self.stop.wait(1.0)
        with contextlib.suppress(Exception):
            WorkerBeat.objects.filter(name=self.name, pid=os.getpid()).delete()
        connection.close()


def _probe_lanes(lanes: str) -> list[str]:
    return [lane for lane in lanes.split(",") if lane in lanes_expected()]


def worker_name(hostname: str | None) -> str:
    return hostname or f"worker@{socket.gethostname()}:{os.getpid()}"
