"""Webhooks through the real machinery: the outbox, the Redis broker and a Celery worker process. A
promotion through the API reaches a receiver that fails first (the worker retries after the backoff);
an event recorded while the broker is unreachable stays in the outbox and is delivered once it is back."""

from __future__ import annotations

import time

import pytest
from django.utils import timezone

from annotations.models import WebhookDelivery
from jobs import dispatch
from jobs.models import Outbox
from tests.conftest import wait_for

from .receiver import Receiver

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def versions(db):
    from training.models import ModelVersion

    v0 = ModelVersion.objects.create(name="v0-base", base_model="tiny", is_active=True)
    v1 = ModelVersion.objects.create(name="v1", base_model="tiny", parent=v0)
    return v0, v1


def test_a_failing_receiver_is_retried_by_the_worker(celery_worker_process, api, admin_user, versions):
    from annotations import webhooks

    with Receiver(statuses=[500]) as receiver:
        webhook = webhooks.webhook_create(url=receiver.url, events=["version.promoted"])
        receiver.secret = webhook.secret
        response = api(admin_user).post(f"/api/v1/model-versions/{versions[1].pk}/activate/", {"confirm": True},
                                        format="json")  # fmt: skip
        assert response.status_code == 200, response.content
        delivery = WebhookDelivery.objects.get()
        wait_for(
            lambda: WebhookDelivery.objects.filter(pk=delivery.pk, status="succeeded").exists(),
            timeout=60,
            message=f"the delivery to succeed (worker log: {celery_worker_process.log_path})",
        )
        assert [r["status"] for r in receiver.requests] == [500, 200]
        assert all(r["signature_ok"] for r in receiver.requests)
        gap = receiver.requests[1]["at"] - receiver.requests[0]["at"]
        assert gap >= 0.9  # T2G_WEBHOOK_BACKOFF_S (1 s in the tests) before the second attempt
    attempts = list(delivery.attempts.values_list("number", "status_code"))
    assert attempts == [(1, 500), (2, 200)]


def test_a_broker_outage_loses_no_delivery(celery_worker_process, versions):
    from celery import current_app

    from annotations import webhooks
    from training import services

    with Receiver() as receiver:
        webhook = webhooks.webhook_create(url=receiver.url, events=["version.promoted"])
        receiver.secret = webhook.secret
        previous = current_app.conf.get("broker_write_url")
        current_app.conf.broker_write_url = "redis://127.0.0.1:1/0"  # the broker is away: nothing listens
        try:
            services.model_version_activate(version=versions[1])  # commits; the publish after it fails
            delivery = WebhookDelivery.objects.get()
            row = Outbox.objects.get(task_name="annotations.webhook_deliver", args=[delivery.pk])
            wait_for(lambda: Outbox.objects.get(pk=row.pk).attempts >= 1, timeout=30,
                     message="the publisher to try the dead broker")  # fmt: skip
            assert dispatch.relay(grace_s=0) == 0  # the relay cannot publish either
            time.sleep(1)
            row.refresh_from_db()
            assert row.sent_at is None and row.last_error  # kept, with why
            assert receiver.requests == [] and delivery.attempts.count() == 0
        finally:
            current_app.conf.broker_write_url = previous
        Outbox.objects.filter(pk=row.pk).update(available_at=timezone.now())
        assert dispatch.relay(grace_s=0) == 1  # the broker is back: the relay publishes the row
        wait_for(
            lambda: WebhookDelivery.objects.filter(pk=delivery.pk, status="succeeded").exists(),
            timeout=60,
            message="the delivery after the outage",
        )
        assert len(receiver.requests) == 1 and receiver.requests[0]["signature_ok"]
        assert receiver.requests[0]["json"]["id"] == f"whd_{delivery.pk}"
