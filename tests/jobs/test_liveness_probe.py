"""Liveness means "takes and finishes work": a lane whose workers beat but whose probe task waits past the
bound is ``stalled`` (/healthz degraded, the admins' header says so), unless it runs a job with a fresh
heartbeat. A worker that died and came back is shown to admins."""

from __future__ import annotations

import os
from datetime import timedelta

import pytest
from django.core.cache import cache
from django.utils import timezone

from jobs import health, liveness
from jobs.models import WorkerBeat
from training.models import GenerationJob

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _fresh_cache():
    cache.clear()
    yield
    cache.clear()


def _serve_every_lane(now):
    liveness.beat("all@test", ",".join(liveness.lanes_expected()), now - timedelta(minutes=5))


def _probe(lane: str, sent_ago_s: float, finished_ago_s: float, now) -> None:
    WorkerBeat.objects.update_or_create(
        name=f"probe:{lane}",
        defaults={"lanes": "", "pid": 1, "started_at": now - timedelta(seconds=sent_ago_s),
                  "seen_at": now - timedelta(seconds=finished_ago_s)},
    )  # fmt: skip


def test_a_lane_that_beats_but_does_not_finish_its_probe_is_stalled(settings):
    settings.T2G_PROBE_BOUND_S = 60
    now = timezone.now()
    _serve_every_lane(now)
    _probe("interactive", sent_ago_s=61, finished_ago_s=200, now=now)  # waiting past the bound
    _probe("generation", sent_ago_s=30, finished_ago_s=200, now=now)  # waiting, within the bound
    _probe("training", sent_ago_s=300, finished_ago_s=5, now=now)  # answered
    status = liveness.lanes_status(now)
    assert status["interactive"]["stalled"] and not status["interactive"]["up"]
    assert status["interactive"]["probe_waiting_s"] == 61
    assert status["generation"]["up"] and status["training"]["up"] and status["default"]["up"]
    report = health.report()
    assert report["lanes"]["interactive"] == "stalled" and report["status"] == "degraded"
    assert health.lanes_down_cached() == ["interactive"]
    liveness.probe_finished("interactive")
    assert liveness.lanes_status()["interactive"]["up"]


def test_a_lane_busy_with_a_live_job_is_not_stalled(settings, project):
    settings.T2G_PROBE_BOUND_S = 60
    now = timezone.now()
    _serve_every_lane(now)
    _probe("generation", sent_ago_s=600, finished_ago_s=900, now=now)
    job = GenerationJob.objects.create(project=project, status="running", heartbeat_at=now)
    assert liveness.lanes_status(now)["generation"]["up"]
    GenerationJob.objects.filter(pk=job.pk).update(
        heartbeat_at=now - timedelta(minutes=5)
    )  # its worker is gone
    assert liveness.lanes_status(now)["generation"]["stalled"]


@pytest.fixture
def probe_broker(tmp_path):
    """A redis-server of the test's own that probes are published to (no worker reads it)."""
    import shutil

    from celery import current_app

    from tests.faults.conftest import OwnRedis

    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed")
    redis_server = OwnRedis(tmp_path)
    redis_server.start()
    from tests.faults.conftest import reset_publisher

    previous = current_app.conf.get("broker_write_url")
    current_app.conf.broker_write_url = redis_server.url
    reset_publisher(current_app)
    yield redis_server
    current_app.conf.broker_write_url = previous
    reset_publisher(current_app)
    redis_server.stop()


def test_probes_are_sent_once_per_period_and_again_when_lost(settings, probe_broker):
    import json

    import redis

    settings.T2G_PROBE_BOUND_S = 60
    now = timezone.now()
    assert liveness.send_probe("interactive", now)  # first ever
    assert not liveness.send_probe("interactive", now + timedelta(seconds=20))  # outstanding
    assert liveness.send_probe("interactive", now + timedelta(seconds=61))  # lost: sent again
    row = WorkerBeat.objects.get(name="probe:interactive")
    assert row.started_at == now  # the oldest unanswered send is kept
    liveness.probe_finished("interactive")
    later = timezone.now()
    assert not liveness.send_probe("interactive", later + timedelta(seconds=5))  # answered just now
    assert liveness.send_probe("interactive", later + timedelta(seconds=liveness.PROBE_EVERY_S + 1))
    queued = [json.loads(raw) for raw in redis.Redis.from_url(probe_broker.url).lrange("interactive", 0, -1)]
    assert [m["headers"]["task"] for m in queued] == ["jobs.probe"] * 3
    assert all(m["headers"]["expires"] for m in queued)  # a probe nobody took in time is dropped


def test_a_worker_that_died_and_came_back_is_shown_to_admins(client, admin_user):
    now = timezone.now()
    WorkerBeat.objects.create(
        name="interactive@host", lanes="interactive,housekeeping", pid=os.getpid() + 1,
        started_at=now - timedelta(hours=1), seen_at=now - timedelta(seconds=95),
    )  # fmt: skip  # the process before, killed: its row stayed
    liveness.beat("interactive@host", "interactive,housekeeping", now)
    assert [(n["worker"], n["silent_s"]) for n in liveness.restarts()] == [("interactive@host", 95)]
    liveness.beat("interactive@host", "interactive,housekeeping", now)  # its next beat: no second notice
    assert len(liveness.restarts()) == 1
    client.force_login(admin_user)
    page = client.get("/projects/").content.decode()
    assert 'data-restart="interactive@host"' in page and "after 95 s without it" in page
    assert health.report()["restarts"][0]["worker"] == "interactive@host"


def test_a_clean_stop_is_not_a_restart():
    now = timezone.now()
    keeper = liveness.Housekeeper("default@host", "default,generation")
    liveness.beat(keeper.name, keeper.lanes, keeper.started_at)
    WorkerBeat.objects.filter(name=keeper.name).delete()  # what the housekeeper does when it stops
    liveness.beat("default@host", "default,generation", now)
    assert liveness.restarts() == []


def test_a_worker_busy_with_the_work_it_took_vouches_for_its_lanes(settings):
    """A generation worker (-c 1) in the middle of a long task (a campaign's generation) cannot take a
    probe; its housekeeping thread says the lane is busy instead."""
    from celery.worker import state

    settings.T2G_PROBE_BOUND_S = 60
    now = timezone.now()
    _serve_every_lane(now)
    _probe("generation", sent_ago_s=600, finished_ago_s=900, now=now)
    assert liveness.lanes_status()["generation"]["stalled"]
    keeper = liveness.Housekeeper("default@host", "default,generation", concurrency=1)
    assert not keeper._busy()

    class Request:  # what the worker's main process holds for a task a pool process runs (a weak set)
        pass

    request = Request()
    state.active_requests.add(request)
    try:
        assert keeper._busy()
        keeper._probe()
    finally:
        state.active_requests.discard(request)
    assert liveness.lanes_status()["generation"]["up"]
