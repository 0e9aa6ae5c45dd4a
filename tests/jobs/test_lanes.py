"""Lanes: what a person waits for runs on the interactive queue, and every lane has a worker in `make run`
(scripts/run.sh) and in compose, with restart policies and without the options that crash on outages."""

from __future__ import annotations

import re

import yaml
from django.conf import settings

from jobs import registry
from tests.conftest import REPO

INTERACTIVE = ["training.compute_rewards", "training.align_critique", "annotations.export_run", "jobs.sweep"]


def test_interactive_work_has_its_own_lane():
    assert {registry.lane_of(task) for task in INTERACTIVE} == {"interactive"}
    assert registry.lane_of("training.generate") == "generation"
    assert registry.lane_of("training.train_round") == "training"


def _queues(command: str) -> set[str]:
    found = re.search(r"-Q\s+(\S+)", command)
    return set(found.group(1).split(",")) if found else set()


def test_run_sh_starts_a_supervised_worker_for_every_lane():
    script = (REPO / "scripts" / "run.sh").read_text()
    lines = [line for line in script.splitlines() if line.strip().startswith(("supervise ", '"${CELERY'))]
    served = set().union(*(_queues(line) for line in lines))
    assert served >= set(settings.T2G_LANES)
    assert "--without-gossip --without-mingle --without-heartbeat" in script
    assert "wait -n" not in script  # a dying worker no longer stops the web server


def test_compose_serves_every_lane_and_restarts_what_dies():
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    services = compose["services"]
    # One-shot jobs (migrate, minio-bucket) that others wait for to complete must not be restarted.
    one_shot = {
        needed
        for service in services.values()
        for needed, condition in (service.get("depends_on") or {}).items()
        if condition.get("condition") == "service_completed_successfully"
    }
    assert one_shot == {"migrate", "minio-bucket"}
    served = set()
    for name, service in services.items():
        command = " ".join(service.get("command", []))
        if "worker" in command:
            served |= _queues(command)
            assert "--without-gossip" in command and "--without-heartbeat" in command, name
        if name in one_shot:
            assert service.get("restart") == "no", name
        else:
            assert service.get("restart") == "unless-stopped", name
    assert served >= set(settings.T2G_LANES)


HOUSEKEEPING = ["training.collect_orphan_versions", "annotations.expire_exports"]


def test_housekeeping_has_a_queue_no_busy_lane_holds_up():
    """The beat's ticks went to ``default``, which only the busy generation worker reads (74 reaper ticks
    piled up behind a generation job): every tick now goes to ``housekeeping``, read by the interactive
    worker in run.sh and compose, and expires instead of piling up."""
    import json

    import redis
    from celery import current_app
    from celery.beat import Scheduler

    assert {registry.lane_of(task) for task in HOUSEKEEPING} == {"housekeeping"}
    client = redis.Redis.from_url(settings.CELERY_BROKER_URL)
    client.delete("housekeeping")
    scheduler = Scheduler(current_app, lazy=True)
    scheduler.setup_schedule()
    entries = [entry for name, entry in scheduler.schedule.items() if not name.startswith("celery.")]
    assert {entry.task for entry in entries} >= {*HOUSEKEEPING, "jobs.sweep", "jobs.relay_outbox"}
    try:
        with current_app.producer_or_acquire() as producer:
            for entry in entries:
                scheduler.apply_async(entry, producer=producer)
        published = [json.loads(raw) for raw in client.lrange("housekeeping", 0, -1)]
    finally:
        client.delete("housekeeping")
    assert sorted(m["headers"]["task"] for m in published) == sorted(entry.task for entry in entries)
    assert all(m["headers"]["expires"] for m in published)  # a tick nobody took in time is dropped
    script = (REPO / "scripts" / "run.sh").read_text()
    interactive = next(line for line in script.splitlines() if '-n "interactive@%h"' in line)
    assert "housekeeping" in _queues(interactive) and " -B " in interactive
