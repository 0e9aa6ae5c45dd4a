"""A SIGKILLed worker takes its pool children with it: the prefork pool as run.sh and compose start it.

Before, the children were re-parented to pid 1 and ran on (one for 10 minutes, holding its model and an
unacknowledged task); run.sh's cleanup, which signalled only its own children, did not reach them."""

from __future__ import annotations

import os
import signal

import psutil
import pytest

from tests.conftest import wait_for

pytestmark = [pytest.mark.faults, pytest.mark.worker, pytest.mark.django_db(transaction=True)]


def test_pool_children_exit_when_the_main_process_is_killed(own_redis, fault_env, deployed_worker):
    worker = deployed_worker("pool", "interactive", concurrency=2)
    main = psutil.Process(worker.pid)
    children = wait_for(lambda: main.children() if len(main.children()) == 2 else None, timeout=30,
                        message="two pool processes")  # fmt: skip
    assert os.getpgid(worker.pid) == worker.pid  # a group of its own, as run.sh starts it (setsid)
    os.kill(worker.pid, signal.SIGKILL)
    worker.wait(timeout=10)
    gone, alive = psutil.wait_procs(children, timeout=10)
    assert alive == [], f"pool processes outlived their main process: {[p.pid for p in alive]}"
    assert {p.pid for p in gone} == {p.pid for p in children}
