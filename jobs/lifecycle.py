"""Worker side of a job: claim, fenced writes, progress, heartbeat, cancel. One place for all kinds.

A run owns its job while the row is RUNNING *and* carries the ``attempts`` number its claim wrote. The
reaper requeues or fails a job whose heartbeat stopped; a run that was only slow then finds its writes
refused (they match no row) and stops at its next check, so a lost owner never writes.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from django.conf import settings
from django.db import close_old_connections, connection, transaction
from django.db.models import F
from django.utils import timezone

logger = logging.getLogger(__name__)


def heartbeat_every_s() -> float:
    return float(getattr(settings, "T2G_JOB_HEARTBEAT_S", 5))


def stale_after_s() -> float:
    """A RUNNING job whose heartbeat is older than this lost its worker (several missed beats)."""
    return float(getattr(settings, "T2G_JOB_STALE_AFTER_S", 45))


def identity() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def claim(model, pk: int):
    """QUEUED → RUNNING by conditional update; returns the claimed row, or None if it was not queued."""
    now = timezone.now()
    won = model.objects.filter(pk=pk, status=model.Status.QUEUED).update(
        status=model.Status.RUNNING,
        started_at=now,
        heartbeat_at=now,
        attempts=F("attempts") + 1,
        owner=identity()[:200],
        error="",
        finished_at=None,
    )
    return model.objects.get(pk=pk) if won else None


def owned(job):
    """The job's row while this run still owns it (RUNNING with the attempt number it claimed)."""
    model = type(job)
    return model.objects.filter(pk=job.pk, status=model.Status.RUNNING, attempts=job.attempts)


def still_ours(job) -> bool:
    return owned(job).exists()


def cancel_requested(job) -> bool:
    """True when someone asked to cancel, or the row is no longer this run's (cancelled, reaped)."""
    model = type(job)
    row = model.objects.filter(pk=job.pk).values("status", "attempts", "cancel_requested").first()
    return (
        row is None
        or row["cancel_requested"]
        or row["status"] != model.Status.RUNNING
        or row["attempts"] != job.attempts
    )


def progress(job, step: int, total: int | None = None, **fields) -> bool:
    values = {"progress_step": step, "heartbeat_at": timezone.now(), **fields}
    if total is not None:
        values["progress_total"] = total
    return bool(owned(job).update(**values))


def finish(job, status: str, **fields) -> bool:
    """End the run with ``status`` if it still owns the job; False means someone else decided."""
    return bool(owned(job).update(status=status, finished_at=timezone.now(), owner="", **fields))


def fail(job, reason: str) -> bool:
    return finish(job, type(job).Status.FAILED, error=reason[:10_000])


def cancelled(job, reason: str = "Cancelled by a user.") -> bool:
    return finish(job, type(job).Status.CANCELLED, error=reason)


def request_cancel(model, pk: int, reason: str = "Cancelled before it started.") -> bool:
    """A queued job ends at once; a running one is asked to stop at its next check. False if finished."""
    queued = model.objects.filter(pk=pk, status=model.Status.QUEUED).update(
        status=model.Status.CANCELLED, finished_at=timezone.now(), error=reason, cancel_requested=True
    )
    running = model.objects.filter(pk=pk, status=model.Status.RUNNING).update(cancel_requested=True)
    return bool(queued or running)


def requeue_ended(model, pk: int) -> bool:
    """A failed or cancelled job queued again, its error and cancel request cleared (the caller dispatches
    its task in the same transaction). False when the job is in any other state."""
    return bool(
        model.objects.filter(pk=pk, status__in=[model.Status.FAILED, model.Status.CANCELLED]).update(
            status=model.Status.QUEUED, error="", cancel_requested=False, finished_at=None
        )
    )


class Lost(Exception):
    """Raised inside a run that found its job no longer its own (the reaper requeued it, another run has
    it): ``running`` ends the run quietly, and it writes nothing more."""


class Stopped(Exception):
    """Raised inside a run that found a cancel request at one of its safe points: ``running`` ends the job
    cancelled with this message; if the job is no longer the run's by then, it is treated as ``Lost``."""

    reason = "Cancelled by a user."

    def __init__(self, reason: str | None = None) -> None:
        super().__init__(reason or self.reason)
        self.reason = reason or self.reason


class Run:
    lost = False  # the body raised Lost, or Stopped when the job was no longer its own
    cancelled = False  # the body raised Stopped and the job ended cancelled


@contextmanager
def running(job, name: str, *, ended: Callable[[object], None] | None = None) -> Iterator[Run]:
    """The body of a claimed run, with a heartbeat. ``Lost`` raised inside ends it quietly (``run.lost``
    is then true); ``Stopped`` ends the job cancelled (``run.cancelled``); any other error fails the job
    and is raised again, for the task's log and Celery. ``ended(job)`` is called once this run itself
    ended the job failed or cancelled (not when it was lost: the reaper's cleanup covers that), in the
    transaction that ended it, for what a kind must mark or announce beside the job row."""
    run = Run()
    try:
        with heartbeat(job):
            yield run
    except Lost:
        run.lost = True
        logger.warning("%s was taken over while this run worked on it; stopping", name)
    except Stopped as stop:
        with transaction.atomic():  # what ``ended`` records commits with the status, or neither does
            run.cancelled = cancelled(job, stop.reason)
            if run.cancelled and ended is not None:
                ended(job)
        if not run.cancelled:
            run.lost = True
            logger.warning("%s is no longer this run's; stopping", name)
    except Exception as exc:
        logger.exception("%s failed", name)
        try:
            with transaction.atomic():
                if fail(job, f"{type(exc).__name__}: {exc}") and ended is not None:
                    ended(job)
        except Exception:  # still RUNNING: the reaper ends it once its heartbeat is stale
            logger.exception("%s: recording its failure failed", name)
        raise


@contextmanager
def heartbeat(job, every_s: float | None = None) -> Iterator[threading.Event]:
    """Keep the job's ``heartbeat_at`` fresh from a background thread while the body runs (a long
    forward pass or a slow query does not look like a dead worker). Yields an event set once a beat
    found the row no longer ours; the run still checks ownership itself at its safe points."""
    every_s = heartbeat_every_s() if every_s is None else every_s
    stop = threading.Event()
    lost = threading.Event()

    def beat() -> None:
        try:
            while not stop.wait(every_s):
                try:
                    close_old_connections()
                    if not owned(job).update(heartbeat_at=timezone.now()):
                        lost.set()
                except Exception:  # the database may be restarting; the next beat tries again
                    logger.warning("Heartbeat of %s %s failed", type(job).__name__, job.pk, exc_info=True)
        finally:
            connection.close()

    thread = threading.Thread(target=beat, name=f"heartbeat-{type(job).__name__}-{job.pk}", daemon=True)
    thread.start()
    try:
        yield lost
    finally:
        stop.set()
        thread.join(timeout=every_s + 5)
