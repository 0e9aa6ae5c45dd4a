"""Broker outages during submits and export creation, against real processes: a gunicorn web server and a
Celery worker on a redis-server of the test's own, which the test stops or freezes (SIGSTOP) by pid.

Requests must answer within their normal time while the broker is away (the work waits in the outbox),
and once it is back every submitted annotation gets its token rewards and every export finishes."""

from __future__ import annotations

from pathlib import Path

import pytest
import requests
from rest_framework.authtoken.models import Token

from annotations.models import Annotation, DatasetExport
from jobs.models import Outbox
from tests.conftest import _make_user, wait_for
from training.models import TokenReward

from .conftest import timed

pytestmark = [pytest.mark.faults, pytest.mark.worker, pytest.mark.django_db(transaction=True)]

SUBMITS = 6
EXPORTS = 2
SLOW_S = 2.0


def _drafts(project, make_generation, django_user_model, count: int) -> list[tuple[Annotation, str]]:
    drafts = []
    for i in range(count):
        generation = make_generation(project, f"Output {i}: the cat sat on the mat. Water boils at 100 C.")
        user = _make_user(django_user_model, f"outage-ann{i}", "annotator")
        annotation = Annotation.objects.create(generation=generation, annotator=user, status="draft")
        drafts.append((annotation, Token.objects.create(user=user).key))
    return drafts


def _assert_recovered(var_dir: Path, annotation_ids: list[int], export_ids: list[int]) -> None:
    wait_for(
        lambda: (
            TokenReward.objects.filter(annotation_id__in=annotation_ids)
            .values("annotation_id")
            .distinct()
            .count()
            == len(annotation_ids)
        ),
        timeout=120,
        message="token rewards of every submitted annotation",
    )
    wait_for(
        lambda: all(e.is_finished for e in DatasetExport.objects.filter(pk__in=export_ids)),
        timeout=120,
        message="every export to finish",
    )
    for export in DatasetExport.objects.filter(pk__in=export_ids):
        assert export.status == "succeeded" or export.error, export
    assert not list((var_dir / "exports").glob("*.part")) if (var_dir / "exports").exists() else True
    assert not list((var_dir / "exports").glob(".*.part")) if (var_dir / "exports").exists() else True
    assert not DatasetExport.objects.filter(status="running", owner="").exists()


@pytest.mark.parametrize("outage", ["stopped", "frozen"])
def test_requests_stay_fast_and_no_work_is_lost_during_a_broker_outage(
    outage, project, make_generation, django_user_model, own_redis, fault_env, web_server, fault_worker
):
    researcher = _make_user(django_user_model, "outage-res", "researcher")
    research_token = Token.objects.create(user=researcher).key
    drafts = _drafts(project, make_generation, django_user_model, SUBMITS)
    fault_worker("outage", queues="interactive")

    if outage == "stopped":
        own_redis.stop()
    else:
        own_redis.freeze()
    timings, export_ids = [], []
    try:
        for annotation, token in drafts:
            response, took = timed(
                lambda a=annotation, t=token: requests.post(
                    f"{web_server.url}/api/v1/annotations/{a.pk}/submit/",
                    json={"overall_critique": "Fine, but the second sentence is wrong.", "rating": 3},
                    headers={"Authorization": f"Token {t}"},
                    timeout=30,
                )
            )
            assert response.status_code == 200, response.text
            timings.append(took)
        for _ in range(EXPORTS):
            response, took = timed(
                lambda: requests.post(
                    f"{web_server.url}/api/v1/exports/",
                    json={"kind": "spans", "format": "jsonl", "query": {"project": project.pk}},
                    headers={"Authorization": f"Token {research_token}"},
                    timeout=30,
                )
            )
            assert response.status_code == 202, response.text
            export_ids.append(response.json()["id"])
            timings.append(took)
        health, took = timed(lambda: requests.get(f"{web_server.url}/healthz", timeout=30))
        timings.append(took)
        assert health.status_code == 200 and health.json()["broker"] == "down"
        assert health.json()["status"] == "degraded"
        # The work is recorded, waiting for the broker.
        assert Outbox.objects.filter(sent_at__isnull=True).count() >= 1
    finally:
        if outage == "stopped":
            own_redis.start()
        else:
            own_redis.thaw()
    assert max(timings) < SLOW_S, f"requests took {[round(t, 2) for t in timings]} s during the outage"
    assert Annotation.objects.filter(pk__in=[a.pk for a, _ in drafts], status="submitted").count() == SUBMITS
    _assert_recovered(Path(fault_env["T2G_VAR_DIR"]), [a.pk for a, _ in drafts], export_ids)
    wait_for(
        lambda: not Outbox.objects.filter(sent_at__isnull=True).exists(), timeout=30, message="outbox empty"
    )
