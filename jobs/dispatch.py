"""Hand work to the workers by task name, through a transactional outbox.

``enqueue`` writes an :class:`~jobs.models.Outbox` row in the caller's transaction, so the change and the
record that it needs work commit together (or not at all). After the commit the row is handed to a
background publisher thread: a request never waits on the broker, even a frozen one. Whatever the broker
did not take is published later by the relay (``relay``: a thread in every worker and a beat task). Tasks
are idempotent (a job's claim is a conditional update), so a message published twice does no harm.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import threading
import time
from datetime import timedelta

from celery import current_app
from django.db import close_old_connections, connection, transaction
from django.db.models import F
from django.utils import timezone

from .models import Outbox

logger = logging.getLogger(__name__)

RELAY_GRACE_S = 5  # the publisher thread normally sends a row within this; the relay takes older ones
RELAY_BATCH = 200
KEEP_SENT_FOR = timedelta(days=2)


def enqueue(task_name: str, *args: object, countdown: int = 0) -> Outbox:
    """Record that ``task_name(*args)`` must run, in the current transaction; publish it once that
    commits (at once outside one). ``countdown``: not before that many seconds (retry backoff).

    Tasks are named (``"training.train_round"``), so the caller imports no ``tasks`` module; routing
    follows ``CELERY_TASK_ROUTES`` by that name.
    """
    row = Outbox.objects.create(
        task_name=task_name, args=list(args), available_at=timezone.now() + timedelta(seconds=countdown)
    )
    transaction.on_commit(lambda: _after_commit(row.pk, task_name, list(args), countdown))
    return row


def _after_commit(pk: int, task_name: str, args: list, countdown: int) -> None:
    if current_app.conf.task_always_eager:
        current_app.tasks[task_name].apply(args=args)
        Outbox.objects.filter(pk=pk).update(sent_at=timezone.now())
        return
    if time.monotonic() < _state["broken_until"]:
        return  # the broker failed a moment ago: leave the row to the relay instead of piling up attempts
    with contextlib.suppress(queue.Full):  # a full queue: the relay publishes it
        _publisher().put_nowait((pk, task_name, args, countdown))


def send(task_name: str, *args: object, countdown: int = 0) -> None:
    """Publish now, without an outbox row (tools and tests); raises if the broker does not take it."""
    publish(task_name, list(args), countdown)


def publish(task_name: str, args: list, countdown: int = 0, *, connection=None) -> None:
    """One attempt, bounded in time (one connection try, the broker's socket timeouts); raises on
    failure. Kombu would otherwise retry a refused connection for ever."""
    app = current_app
    if app.conf.task_always_eager:
        app.tasks[task_name].apply(args=args)
        return
    if connection is not None:
        app.send_task(task_name, args=args, countdown=countdown or None, retry=False, connection=connection)
        return
    with broker_connection() as conn:
        app.send_task(task_name, args=args, countdown=countdown or None, retry=False, connection=conn)


@contextlib.contextmanager
def broker_connection():
    """A fresh broker connection, established with one bounded attempt (raises if the broker is away)."""
    conn = current_app.connection_for_write()
    try:
        timeout = float(current_app.conf.broker_connection_timeout or 2)
        conn.ensure_connection(max_retries=1, interval_start=0, interval_step=0, timeout=timeout)
        yield conn
    finally:
        conn.release()


# --- the publisher thread (one per process, started on first use) ---------------------------------
_lock = threading.Lock()
_state: dict = {"pid": None, "queue": None, "broken_until": 0.0}
BROKEN_PAUSE_S = 5


def _publisher() -> queue.Queue:
    with _lock:
        if _state["pid"] != os.getpid():  # first use in this process (or a fork of it)
            _state["queue"] = queue.Queue(maxsize=10_000)
            _state["pid"] = os.getpid()
            threading.Thread(
                target=_publish_loop, args=(_state["queue"],), name="outbox", daemon=True
            ).start()
        return _state["queue"]


def _publish_loop(items: queue.Queue) -> None:
    while True:
        pk, task_name, args, countdown = items.get()
        try:
            publish(task_name, args, countdown)
        except Exception as exc:  # the broker is down or frozen: the relay publishes it later
            logger.warning(
                "Broker did not take %s%s (%s); the outbox relay will", task_name, tuple(args), exc
            )
            _state["broken_until"] = time.monotonic() + BROKEN_PAUSE_S
            _note_failure([pk], exc)
            continue
        try:
            close_old_connections()
            Outbox.objects.filter(pk=pk, sent_at__isnull=True).update(sent_at=timezone.now())
        except Exception:
            logger.warning("Could not mark outbox row %s sent; the relay may publish it again", pk)
        finally:
            connection.close()


def _note_failure(pks: list[int], exc: BaseException) -> None:
    try:
        Outbox.objects.filter(pk__in=pks).update(attempts=F("attempts") + 1, last_error=str(exc)[:2000])
    except Exception:
        logger.warning("Could not record the publish failure of outbox rows %s", pks)
    finally:
        connection.close()


# --- the relay ------------------------------------------------------------------------------------
RELAY_LEASE_S = 30  # a row a relay is publishing is left alone by the others for this long
RELAY_RETRY_S = 3  # a row the broker refused is tried again after this


def relay(*, limit: int = RELAY_BATCH, grace_s: float = RELAY_GRACE_S) -> int:
    """Publish outbox rows not yet sent (older than ``grace_s``, and due); stop at the first broker
    failure. No transaction is held while the broker is asked (on SQLite that would hold the write lock
    for a socket timeout): the broker connection is made first, then each row is leased by a one-row
    conditional update, so relays running at once in several workers do not send the same row together.
    A row the broker refused is tried again a few seconds later. Returns how many were sent."""
    now = timezone.now()
    due = list(
        Outbox.objects.filter(
            sent_at__isnull=True, available_at__lte=now, created_at__lte=now - timedelta(seconds=grace_s)
        ).order_by("id")[:limit]
    )
    sent: list[int] = []
    current = None
    try:
        if due:
            with _relay_connection() as conn:
                for row in due:
                    leased = Outbox.objects.filter(
                        pk=row.pk, sent_at__isnull=True, available_at=row.available_at
                    ).update(available_at=now + timedelta(seconds=RELAY_LEASE_S))
                    if not leased:
                        continue  # another relay has it
                    current = row
                    publish(row.task_name, list(row.args), connection=conn)
                    sent.append(row.pk)
                    current = None
    except Exception as exc:
        logger.warning("Outbox relay: the broker is not taking work (%s); trying again shortly", exc)
        failed = current or due[0]
        Outbox.objects.filter(pk=failed.pk).update(
            attempts=F("attempts") + 1,
            last_error=str(exc)[:2000],
            available_at=now + timedelta(seconds=RELAY_RETRY_S),
        )
    Outbox.objects.filter(pk__in=sent).update(sent_at=timezone.now())
    Outbox.objects.filter(sent_at__lt=now - KEEP_SENT_FOR).delete()
    return len(sent)


@contextlib.contextmanager
def _relay_connection():
    if current_app.conf.task_always_eager:
        yield None
        return
    with broker_connection() as conn:
        yield conn


def pending() -> int:
    return Outbox.objects.filter(sent_at__isnull=True).count()
