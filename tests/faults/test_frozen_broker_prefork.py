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
    worker = deployed_worker("frozen", "interactive", concurrency=2, T2G_PROBE_EVERY_S="0")  # only our probes
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
        lambda: _finished(worker.log_path, "jobs.probe") >= 5,
        timeout=60,
        message=f"the worker to take and finish work after the freeze; its log:\n{worker.log_path.read_text()[-4000:]}",
    )
    assert worker.poll() is None
    # The freeze was felt (acks went unanswered) and the worker said what it does about it.
    assert "did not confirm the acknowledgement" in frozen_log
    assert "Couldn't ack" not in worker.log_path.read_text()


def test_healthz_says_a_lane_is_stalled_when_its_worker_beats_but_finishes_nothing(
    own_redis, fault_env, publish_to_own_redis, deployed_worker, settings
):
    """Liveness is "takes and finishes work", not "the process beats": with its pool processes stopped,
    the worker's main process still beats, and /healthz said ``interactive: up`` through a whole wedge."""
    import signal

    import psutil

    from jobs import health

    settings.T2G_PROBE_BOUND_S = 10
    worker = deployed_worker(
        "stall", "interactive", concurrency=2, T2G_PROBE_EVERY_S="2", T2G_PROBE_BOUND_S="10",
        T2G_EXIT_WHEN_STALLED="0",  # only report it here; the next test has it exit
    )  # fmt: skip
    wait_for(lambda: _finished(worker.log_path, "jobs.probe") >= 1, timeout=60, message="a first probe")
    assert health.report()["lanes"]["interactive"] == "up"
    children = psutil.Process(worker.pid).children()
    for child in children:
        child.send_signal(signal.SIGSTOP)
    try:
        wait_for(lambda: health.report()["lanes"]["interactive"] == "stalled", timeout=60, message="stalled")
        report = health.report()
        assert report["status"] == "degraded"
        assert health.liveness.lanes_status()["interactive"]["workers"]  # it does beat
    finally:
        for child in children:
            child.send_signal(signal.SIGCONT)
    wait_for(lambda: health.report()["lanes"]["interactive"] == "up", timeout=60, message="up again")


def test_a_worker_that_takes_no_work_exits_for_its_supervisor_to_start_a_fresh_one(
    own_redis, fault_env, publish_to_own_redis, deployed_worker
):
    """Whatever wedges a worker (pool processes stopped here), its own probe going unfinished while it
    runs nothing and the broker answers makes it exit; run.sh and compose start a fresh one."""
    import signal

    import psutil

    from jobs import liveness

    worker = deployed_worker(
        "wedged", "interactive", concurrency=2, T2G_PROBE_EVERY_S="2", T2G_PROBE_BOUND_S="10"
    )
    wait_for(lambda: _finished(worker.log_path, "jobs.probe") >= 1, timeout=60, message="a first probe")
    children = psutil.Process(worker.pid).children()
    for child in children:
        child.send_signal(signal.SIGSTOP)
    started = time.monotonic()
    worker.wait(timeout=90)
    assert worker.returncode == liveness.EXIT_WEDGED
    assert 10 <= time.monotonic() - started <= 60
    assert "This worker took no work for" in worker.log_path.read_text()
    _gone, alive = psutil.wait_procs(children, timeout=10)  # stopped children die with it (SIGKILL)
    assert alive == []
