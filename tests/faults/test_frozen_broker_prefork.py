"""A frozen broker (redis SIGSTOPped for 20 s, then continued) must not wedge a worker started as deployed
(scripts/run.sh, docker-compose.yml: the prefork pool with two processes, prefetch multiplier 1).

Kombu's redis acknowledgement kept a delivery counted against the prefetch limit when the broker did not
answer the ack; two such acks during the freeze and the worker never fetched a message again."""

from __future__ import annotations

import time

import pytest
from celery import current_app

from tests.conftest import wait_for

pytestmark = [pytest.mark.faults, pytest.mark.worker, pytest.mark.django_db(transaction=True)]

FREEZE_S = 20


def _finished(log_path, task: str) -> int:
    return sum(
        1 for line in log_path.read_text().splitlines() if f"{task}[" in line and " succeeded in " in line
    )


def test_a_prefork_worker_takes_work_again_after_the_broker_was_frozen_under_it(
    own_redis, fault_env, publish_to_own_redis, deployed_worker
):
    worker = deployed_worker("frozen", "interactive", concurrency=2)
    for _ in range(60):  # a backlog, so that tasks finish (and are acknowledged) while the broker is frozen
        current_app.send_task("jobs.sweep", queue="interactive")
    wait_for(lambda: _finished(worker.log_path, "jobs.sweep") >= 4, timeout=90, message="the first sweeps")
    own_redis.freeze()
    time.sleep(FREEZE_S)
    own_redis.thaw()
    frozen_log = worker.log_path.read_text()
    for i in range(5):
        current_app.send_task("jobs.probe", args=["interactive", f"after-{i}"], queue="interactive")
    wait_for(
        lambda: _finished(worker.log_path, "jobs.probe") == 5,
        timeout=60,
        message=f"the worker to take and finish work after the freeze; its log:\n{worker.log_path.read_text()[-4000:]}",
    )
    assert worker.poll() is None
    # The freeze was felt (acks went unanswered) and the worker said what it does about it.
    assert "did not confirm the acknowledgement" in frozen_log
    assert "Couldn't ack" not in worker.log_path.read_text()
