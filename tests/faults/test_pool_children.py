"""A SIGKILLed worker takes its pool children with it: the prefork pool as run.sh and compose start it.

A pool child busy with a task must not run on, re-parented to pid 1, holding its model and a task nobody
will acknowledge. Celery's prefork pool asks the kernel for SIGKILL on parent death in each child
(PR_SET_PDEATHSIG); what a child starts itself (torchrun ranks with T2G_TRAIN_PROCS > 1) is not covered by
that, and is stopped with the worker's process group (scripts/run.sh starts each worker with setsid and
kills the group when its main process dies; tests/faults/test_supervision.py)."""

from __future__ import annotations

import os
import signal

import psutil
import pytest
from celery import current_app
from django.db import connection, transaction
from django.utils import timezone

from jobs.models import WorkerBeat
from tests.conftest import wait_for

pytestmark = [pytest.mark.faults, pytest.mark.worker, pytest.mark.django_db(transaction=True)]


def _lock_waiters() -> int:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid"
            " WHERE NOT l.granted AND a.datname = current_database()"
        )
        return cursor.fetchone()[0]


def test_a_busy_pool_child_exits_when_its_main_process_is_killed(
    own_redis, fault_env, publish_to_own_redis, deployed_worker
):
    worker = deployed_worker("pool", "interactive", concurrency=2)
    main = psutil.Process(worker.pid)
    children = wait_for(lambda: main.children() if len(main.children()) == 2 else None, timeout=30,
                        message="two pool processes")  # fmt: skip
    assert os.getpgid(worker.pid) == worker.pid  # a group of its own, as run.sh starts it (setsid)
    now = timezone.now()
    WorkerBeat.objects.update_or_create(
        name="probe:interactive", defaults={"lanes": "", "pid": 1, "started_at": now, "seen_at": now}
    )
    with transaction.atomic():
        # Hold the probe's row: the pool child that takes the probe blocks on it, busy with a task.
        WorkerBeat.objects.select_for_update().get(name="probe:interactive")
        current_app.send_task("jobs.probe", args=["interactive"], queue="interactive")
        wait_for(lambda: _lock_waiters() >= 1, timeout=30, message="a pool child busy with the probe")
        os.kill(worker.pid, signal.SIGKILL)
        worker.wait(timeout=10)
        gone, alive = psutil.wait_procs(children, timeout=10)
    assert alive == [], f"pool processes outlived their main process: {[p.pid for p in alive]}"
    assert {p.pid for p in gone} == {p.pid for p in children}
