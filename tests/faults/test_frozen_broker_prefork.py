"""A frozen broker (redis SIGSTOPped for 20 s, then continued) must not wedge a worker started as deployed
(scripts/run.sh, docker-compose.yml: the prefork pool with two processes, prefetch multiplier 1).

Kombu's redis acknowledgement kept a delivery counted against the prefetch limit when the broker did not
answer the ack; two such acks during the freeze and the worker never fetched a message again."""

from __future__ import annotations

import os
import signal
import time

import pytest
import redis
from celery import current_app

from tests.conftest import wait_for

pytestmark = [pytest.mark.faults, pytest.mark.worker, pytest.mark.django_db(transaction=True)]

FREEZE_S = 20


def _finished(log_path, task: str) -> int:
    return sum(
        1 for line in log_path.read_text().splitlines() if f"{task}[" in line and " succeeded in " in line
    )


def _wait_for_finished(worker, task: str, count: int, timeout: float, what: str) -> None:
    """Wait for ``count`` finished ``task`` s; a timeout says so with the worker's log as it is then."""
    try:
        wait_for(lambda: _finished(worker.log_path, task) >= count, timeout=timeout, message=what)
    except AssertionError as exc:
        raise AssertionError(f"{exc}; the worker's log:\n{worker.log_path.read_text()[-4000:]}") from None


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
    _wait_for_finished(worker, "jobs.probe", 5, timeout=60, what="the worker to take work after the freeze")
    log = worker.log_path.read_text()
    assert worker.poll() is None, log[-4000:]
    # The freeze was felt (acks went unanswered) and the worker said what it does about it; the logs go
    # with a failure, so that a rare one can be read (issue 29 saw one in about seven loaded runs).
    assert "did not confirm the acknowledgement" in frozen_log, frozen_log[-4000:]
    assert "Couldn't ack" not in log, log[-4000:]
    assert "Connection to broker lost" not in log, log[-4000:]


def _hand_a_message_to_the_stopped_worker(worker, broker: redis.Redis) -> None:
    """Stop the worker's main process while its ``BRPOP`` waits in Redis, and publish: Redis pops the
    message into the answer, which the worker has not read yet. Tried again when the worker was between two
    ``BRPOP`` s (the message then stays queued and the worker takes it once continued)."""
    for _attempt in range(40):
        os.kill(worker.pid, signal.SIGSTOP)
        if broker.info("clients")["blocked_clients"] >= 1:
            current_app.send_task("jobs.probe", args=["interactive", "popped"], queue="interactive")
            if broker.llen("interactive") == 0:
                return
        os.kill(worker.pid, signal.SIGCONT)
        time.sleep(0.3)
    raise AssertionError("the worker was never caught waiting in BRPOP")


def test_a_message_popped_just_before_the_freeze_runs_without_a_reconnect_or_a_stranded_copy(
    own_redis, fault_env, publish_to_own_redis, deployed_worker
):
    """The window the freeze test above hits only now and then (about one run in seven on a loaded
    machine), made certain: the broker answers the worker's ``BRPOP`` and freezes before the worker has
    written the message to its unacked index. Kombu let that write's timeout end the consumer's connection
    (a reconnect cycle), and the message, popped and not run, waited in the unacked index for
    ``visibility_timeout`` (6 hours by default)."""
    worker = deployed_worker("popped", "interactive", concurrency=2, T2G_PROBE_EVERY_S="0")
    broker = redis.Redis.from_url(own_redis.url)
    current_app.send_task("jobs.probe", args=["interactive", "first"], queue="interactive")
    wait_for(lambda: _finished(worker.log_path, "jobs.probe") >= 1, timeout=60, message="a first probe")
    _hand_a_message_to_the_stopped_worker(worker, broker)
    own_redis.freeze()
    os.kill(worker.pid, signal.SIGCONT)
    time.sleep(FREEZE_S)
    own_redis.thaw()
    for i in range(3):
        current_app.send_task("jobs.probe", args=["interactive", f"after-{i}"], queue="interactive")
    # The first, the popped one, three after.
    _wait_for_finished(worker, "jobs.probe", 5, timeout=60, what="the popped probe and three more")
    log = worker.log_path.read_text()
    assert "is in its unacked index" in log  # the freeze was felt where it was meant to be
    assert "Connection to broker lost" not in log
    wait_for(lambda: broker.hlen("unacked") == 0, timeout=10, message="no message left in the unacked index")
    assert worker.poll() is None


def test_short_freezes_under_a_stream_of_work_cost_no_reconnect_and_no_message(
    own_redis, fault_env, publish_to_own_redis, deployed_worker
):
    """Six freezes of 6 s (past the 5 s socket timeout, so the worker's waits time out) while it takes a
    stream of no-op tasks: each freeze lands somewhere in its cycle (acknowledging, popping, indexing).
    Before the fix about one freeze in eight caught a popped message unindexed (a reconnect, and that
    message stranded for ``visibility_timeout``). Now every task runs and the unacked index ends empty."""
    sent = 300
    worker = deployed_worker("stream", "interactive", concurrency=2, T2G_PROBE_EVERY_S="0")
    broker = redis.Redis.from_url(own_redis.url)
    for _ in range(sent):
        current_app.send_task("jobs.probe", args=["interactive", "stream"], queue="interactive")
    wait_for(lambda: _finished(worker.log_path, "jobs.probe") >= 4, timeout=90, message="the first tasks")
    for cycle in range(6):
        done = _finished(worker.log_path, "jobs.probe")
        own_redis.freeze()
        time.sleep(6)
        own_redis.thaw()
        _wait_for_finished(worker, "jobs.probe", done + 3, timeout=60, what=f"work after freeze {cycle + 1}")
    _wait_for_finished(worker, "jobs.probe", sent, timeout=180, what="every task")
    assert "Connection to broker lost" not in worker.log_path.read_text()
    wait_for(lambda: broker.hlen("unacked") == 0, timeout=10, message="no message left in the unacked index")


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
