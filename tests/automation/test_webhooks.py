"""Webhooks: registered by admins on a page, emitted by the real code paths (promotion, rollback, a
campaign's close, an export, a failed round), HMAC-signed, delivered through the outbox with logged
attempts, retried with backoff, redeliverable, guarded against SSRF; a broker outage loses nothing."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from annotations import webhooks
from annotations.models import Webhook, WebhookAttempt, WebhookDelivery
from jobs.models import Outbox

from .receiver import Receiver

pytestmark = pytest.mark.django_db

ALL_EVENTS = list(webhooks.WEBHOOK_EVENTS)


@pytest.fixture
def versions(db):
    from training.models import ModelVersion

    v0 = ModelVersion.objects.create(name="v0-base", base_model="tiny", is_active=True)
    v1 = ModelVersion.objects.create(name="v1", base_model="tiny", parent=v0)
    return v0, v1


def _hook(receiver: Receiver, events=None) -> Webhook:
    webhook = webhooks.webhook_create(url=receiver.url, events=events or ALL_EVENTS)
    receiver.secret = webhook.secret
    return webhook


def test_a_promotion_is_delivered_signed_and_logged(versions):
    from training import services

    v0, v1 = versions
    with Receiver() as receiver:
        webhook = _hook(receiver, ["version.promoted"])
        other = webhooks.webhook_create(url=receiver.url, events=["export.ready"])  # not subscribed
        services.model_version_activate(version=v1)
        delivery = WebhookDelivery.objects.get()
        assert (delivery.webhook_id, delivery.event, delivery.status) == (
            webhook.pk,
            "version.promoted",
            "pending",
        )
        assert not other.deliveries.exists()
        row = Outbox.objects.get(task_name="annotations.webhook_deliver")
        assert row.args == [delivery.pk] and row.sent_at is None  # in the outbox with the change

        assert webhooks.webhook_deliver(delivery_id=delivery.pk) == "delivered"
        [request] = receiver.requests
    assert request["signature_ok"] is True
    assert request["headers"]["X-T2G-Event"] == "version.promoted"
    assert request["headers"]["X-T2G-Delivery"] == f"whd_{delivery.pk}"
    body = request["json"]
    assert body["event"] == "version.promoted" and body["id"] == f"whd_{delivery.pk}"
    assert body["data"]["version"]["name"] == "v1" and body["data"]["previous"]["name"] == "v0-base"
    delivery.refresh_from_db()
    assert delivery.status == "succeeded" and delivery.delivered_at is not None
    [attempt] = delivery.attempts.all()
    assert (attempt.number, attempt.status_code, attempt.error) == (1, 200, "")
    assert attempt.response_ms is not None and attempt.response_ms < 5000
    # A copy of the message (the relay and the publisher both sent it) does not POST again.
    assert webhooks.webhook_deliver(delivery_id=delivery.pk) == "nothing to do"


def test_a_tampered_body_or_a_wrong_secret_fails_the_receivers_check(versions):
    from training import services

    with Receiver() as receiver:
        _hook(receiver, ["version.promoted"])
        services.model_version_activate(version=versions[1])
        webhooks.webhook_deliver(delivery_id=WebhookDelivery.objects.get().pk)
        request = receiver.requests[0]
        header = request["headers"]["X-T2G-Signature"]
        assert receiver.verify(header, request["body"])
        assert not receiver.verify(header, request["body"].replace(b"v1", b"v2"))
        receiver.secret = "whsec_someone-else"
        assert not receiver.verify(header, request["body"])


def test_a_rollback_is_its_own_event(versions):
    from training import services

    v0, v1 = versions
    services.model_version_activate(version=v1)
    with Receiver() as receiver:
        _hook(receiver, ["version.rolled_back", "version.promoted"])
        services.model_version_activate(version=v0)  # back to the parent
        delivery = WebhookDelivery.objects.get()
        assert delivery.event == "version.rolled_back"
        assert delivery.payload["data"]["version"]["name"] == "v0-base"
        services.model_version_activate(version=v0)  # already active: nothing happened, nothing sent
        assert WebhookDelivery.objects.count() == 1


def test_a_failing_receiver_is_retried_with_backoff_then_given_up_and_redelivered(versions, settings):
    from training import services

    settings.T2G_WEBHOOK_BACKOFF_S = 10
    settings.T2G_WEBHOOK_MAX_ATTEMPTS = 3
    with Receiver(statuses=[500, 503, 502]) as receiver:
        _hook(receiver, ["version.promoted"])
        services.model_version_activate(version=versions[1])
        delivery = WebhookDelivery.objects.get()
        assert webhooks.webhook_deliver(delivery_id=delivery.pk) == "retry in 10 s"
        delivery.refresh_from_db()
        assert delivery.status == "pending" and delivery.attempt_count == 1
        assert 8 < (delivery.next_attempt_at - timezone.now()).total_seconds() <= 10
        retry = Outbox.objects.filter(task_name="annotations.webhook_deliver").order_by("-id").first()
        assert retry.args == [delivery.pk] and retry.available_at > timezone.now() + timedelta(seconds=8)
        assert webhooks.webhook_deliver(delivery_id=delivery.pk) == "not yet"  # an early copy waits

        WebhookDelivery.objects.filter(pk=delivery.pk).update(next_attempt_at=timezone.now())
        assert webhooks.webhook_deliver(delivery_id=delivery.pk) == "retry in 20 s"  # doubled
        WebhookDelivery.objects.filter(pk=delivery.pk).update(next_attempt_at=timezone.now())
        assert webhooks.webhook_deliver(delivery_id=delivery.pk) == "failed"
        delivery.refresh_from_db()
        assert delivery.status == "failed" and delivery.next_attempt_at is None
        codes = list(delivery.attempts.values_list("number", "status_code", "error"))
        assert codes == [
            (1, 500, "HTTP 500 Internal Server Error"),
            (2, 503, "HTTP 503 Service Unavailable"),
            (3, 502, "HTTP 502 Bad Gateway"),
        ]
        assert len(receiver.requests) == 3
        assert len({r["headers"]["X-T2G-Delivery"] for r in receiver.requests}) == 1  # one id, same body
        assert len({r["body"] for r in receiver.requests}) == 1

        webhooks.webhook_redeliver(delivery=delivery)
        delivery.refresh_from_db()
        assert delivery.status == "pending"
        assert webhooks.webhook_deliver(delivery_id=delivery.pk) == "delivered"
        assert delivery.attempts.count() == 4 and delivery.attempts.last().status_code == 200


def test_an_unreachable_receiver_logs_the_error(versions):
    from training import services

    with Receiver() as receiver:
        webhook = _hook(receiver, ["version.promoted"])
    # The receiver is gone: nothing listens on its port any more.
    services.model_version_activate(version=versions[1])
    delivery = WebhookDelivery.objects.get(webhook=webhook)
    assert webhooks.webhook_deliver(delivery_id=delivery.pk).startswith("retry in")
    attempt = WebhookAttempt.objects.get()
    assert attempt.status_code is None and "ConnectionRefusedError" in attempt.error


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://127.0.0.1:8000/hook", "not a public address"),
        ("http://localhost/hook", "not a public address"),
        ("http://169.254.169.254/latest/meta-data/", "not a public address"),
        ("http://10.1.2.3/hook", "not a public address"),
        ("http://192.168.0.10/hook", "not a public address"),
        ("http://[::1]/hook", "not a public address"),
        ("http://[::ffff:127.0.0.1]/hook", "not a public address"),
        ("http://0.0.0.0/hook", "not a public address"),
        ("ftp://example.com/hook", "http:// or https://"),
        ("http://user:secret@example.com/hook", "user name or password"),
        ("http:///nohost", "no host"),
        ("http://example.com:99999/", "port"),
        ("http://[::1/hook", "cannot be parsed"),
    ],
)
def test_the_ssrf_guard_refuses_internal_addresses(settings, url, reason):
    settings.T2G_WEBHOOK_ALLOW_PRIVATE = False
    with pytest.raises(webhooks.WebhookRefused, match=reason):
        webhooks.webhook_create(url=url, events=["export.ready"])
    assert not Webhook.objects.exists()


def test_the_guard_is_checked_again_at_delivery(versions, settings):
    from training import services

    with Receiver() as receiver:
        _hook(receiver, ["version.promoted"])
        settings.T2G_WEBHOOK_ALLOW_PRIVATE = False  # e.g. the name now resolves to an internal address
        services.model_version_activate(version=versions[1])
        delivery = WebhookDelivery.objects.get()
        assert webhooks.webhook_deliver(delivery_id=delivery.pk) == "failed"  # never retried
    assert receiver.requests == []
    assert "not a public address" in WebhookAttempt.objects.get().error


def test_events_must_be_known_and_chosen():
    with pytest.raises(webhooks.WebhookRefused, match="Unknown events"):
        webhooks.webhook_create(url="http://127.0.0.1:9/", events=["round.exploded"])
    with pytest.raises(webhooks.WebhookRefused, match="at least one"):
        webhooks.webhook_create(url="http://127.0.0.1:9/", events=[])


def test_a_campaign_closed_through_the_api_is_delivered(api, project, admin_user, versions):
    from evaluation.models import EvaluationCampaign

    campaign = EvaluationCampaign.objects.create(name="c", project=project, status="judging")
    campaign.versions.set(versions)
    with Receiver() as receiver:
        _hook(receiver, ["campaign.finished"])
        assert api(admin_user).post(f"/api/v1/evaluation-campaigns/{campaign.pk}/cancel/").status_code == 200
        delivery = WebhookDelivery.objects.get()
        webhooks.webhook_deliver(delivery_id=delivery.pk)
    data = receiver.requests[0]["json"]["data"]["campaign"]
    assert (data["id"], data["versions"], data["judgements"]) == (
        campaign.pk,
        sorted(v.pk for v in versions),
        0,
    )


def test_an_export_that_finishes_is_delivered(
    project, researcher, make_generation, annotator, settings, tmp_path
):
    from annotations.exports import jobs as export_jobs
    from annotations.models import DatasetExport

    settings.T2G_EXPORT_MIN_FREE_BYTES = 0
    generation = make_generation(project, "An output.")
    from annotations.models import Annotation

    Annotation.objects.create(generation=generation, annotator=annotator, status="submitted", rating=4,
                              submitted_at=timezone.now())  # fmt: skip
    export = DatasetExport.objects.create(kind="spans", format="jsonl", query={}, created_by=researcher)
    with Receiver() as receiver:
        _hook(receiver, ["export.ready"])
        export_jobs.export_run(export_id=export.pk)
        export.refresh_from_db()
        assert export.status == "succeeded"
        delivery = WebhookDelivery.objects.get()
        webhooks.webhook_deliver(delivery_id=delivery.pk)
    data = receiver.requests[0]["json"]["data"]["export"]
    assert (data["id"], data["row_count"], data["content_hash"]) == (export.pk, 1, export.content_hash)


def test_admins_manage_webhooks_and_redeliver_on_the_pages(client, admin_user, researcher, versions):
    from training import services

    client.force_login(researcher)
    assert client.get("/webhooks/").status_code == 403
    client.force_login(admin_user)
    with Receiver(statuses=[500]) as receiver:
        created = client.post("/webhooks/", {"url": receiver.url, "events": ["version.promoted"]})
        assert created.status_code == 302
        webhook = Webhook.objects.get()
        receiver.secret = webhook.secret
        assert webhook.secret in client.get(f"/webhooks/{webhook.pk}/").content.decode()
        services.model_version_activate(version=versions[1])
        delivery = WebhookDelivery.objects.get()
        webhooks.webhook_deliver(delivery_id=delivery.pk)  # 500: logged, to be retried
        page = client.get(f"/webhooks/{webhook.pk}/").content.decode()
        assert "HTTP 500 Internal Server Error" in page and f"delivery-{delivery.pk}" in page
        assert client.post(f"/webhook-deliveries/{delivery.pk}/redeliver/").status_code == 302
        delivery.refresh_from_db()
        assert delivery.status == "pending" and delivery.attempt_count == 0
        assert webhooks.webhook_deliver(delivery_id=delivery.pk) == "delivered"
    assert "200" in client.get(f"/webhooks/{webhook.pk}/").content.decode()

    client.post(f"/webhooks/{webhook.pk}/pause/")
    webhook.refresh_from_db()
    assert webhook.is_active is False
    services.model_version_activate(version=versions[0])
    assert WebhookDelivery.objects.count() == 1  # a paused webhook hears nothing

    bad = client.post("/webhooks/", {"url": "gopher://x", "events": ["version.promoted"]})
    assert bad.status_code == 400 and "http:// or https://" in bad.content.decode()
    client.post(f"/webhooks/{webhook.pk}/delete/")
    assert not Webhook.objects.exists()


def test_admins_manage_webhooks_by_api(api, admin_user, researcher, versions, settings):
    from training import services

    client = api(admin_user)
    body = {"url": "http://127.0.0.1:9/hook", "events": ["version.promoted"], "description": "CI"}
    assert api(researcher).post("/api/v1/webhooks/", body, format="json").status_code == 403
    created = client.post("/api/v1/webhooks/", body, format="json")
    assert created.status_code == 201, created.content
    hook = created.json()
    assert hook["secret"].startswith("whsec_") and hook["events"] == ["version.promoted"]
    assert client.post("/api/v1/webhooks/", {**body, "events": ["nope"]}, format="json").status_code == 400
    settings.T2G_WEBHOOK_ALLOW_PRIVATE = False
    refused = client.post("/api/v1/webhooks/", body, format="json")
    assert refused.status_code == 400 and "not a public address" in refused.json()["url"][0]
    settings.T2G_WEBHOOK_ALLOW_PRIVATE = True

    services.model_version_activate(version=versions[1])
    delivery = WebhookDelivery.objects.get()
    webhooks.webhook_deliver(delivery_id=delivery.pk)  # nothing listens on port 9: an error logged
    listed = client.get(f"/api/v1/webhooks/{hook['id']}/deliveries/").json()["results"]
    assert [row["id"] for row in listed] == [delivery.pk]
    assert listed[0]["attempts"][0]["status_code"] is None and listed[0]["attempts"][0]["error"]
    redelivered = client.post(f"/api/v1/webhook-deliveries/{delivery.pk}/redeliver/")
    assert redelivered.status_code == 202 and redelivered.json()["status"] == "pending"

    paused = client.patch(f"/api/v1/webhooks/{hook['id']}/", {"is_active": False}, format="json")
    assert paused.status_code == 200 and paused.json()["is_active"] is False
    assert client.patch(f"/api/v1/webhooks/{hook['id']}/", {"events": []}, format="json").status_code == 400
    assert client.delete(f"/api/v1/webhooks/{hook['id']}/").status_code == 204
    assert not Webhook.objects.exists()


def test_a_ping_tries_one_receiver_from_the_page_and_the_api(client, api, admin_user, researcher):
    with Receiver(statuses=[503]) as receiver:
        webhook = _hook(receiver, ["export.ready"])
        other = webhooks.webhook_create(url=receiver.url, events=["export.ready"])
        webhooks.webhook_update(webhook=webhook, is_active=False)  # a paused webhook can still be tried
        client.force_login(researcher)
        assert client.post(f"/webhooks/{webhook.pk}/ping/").status_code == 403
        assert api(researcher).post(f"/api/v1/webhooks/{webhook.pk}/ping/").status_code == 403
        assert not WebhookDelivery.objects.exists()
        client.force_login(admin_user)
        assert client.post(f"/webhooks/{webhook.pk}/ping/").status_code == 302
        [delivery] = WebhookDelivery.objects.all()
        assert (delivery.webhook_id, delivery.event) == (webhook.pk, "ping") and not other.deliveries.exists()
        assert Outbox.objects.filter(task_name="annotations.webhook_deliver", args=[delivery.pk]).exists()
        assert webhooks.webhook_deliver(delivery_id=delivery.pk).startswith("retry")  # the receiver's 503
        page = client.get(f"/webhooks/{webhook.pk}/").content.decode()
        assert "Send a test ping" in page and "HTTP 503" in page and f"delivery-{delivery.pk}" in page

        pinged = api(admin_user).post(f"/api/v1/webhooks/{webhook.pk}/ping/")
        assert pinged.status_code == 202 and pinged.json()["event"] == "ping"
        assert webhooks.webhook_deliver(delivery_id=pinged.json()["id"]) == "delivered"
        assert api(admin_user).post("/api/v1/webhooks/999999/ping/").status_code == 404
    first, second = receiver.requests
    assert first["signature_ok"] and second["signature_ok"]
    assert second["headers"]["X-T2G-Event"] == "ping"
    assert second["json"]["data"]["webhook"] == {
        "id": webhook.pk,
        "url": receiver.url,
        "events": ["export.ready"],
    }
    from audit.models import AuditEvent

    assert AuditEvent.objects.filter(action="webhook.ping", object_id=str(webhook.pk)).count() == 2


def test_a_round_cancelled_through_the_api_is_delivered(api, feedback, admin_user):
    body = {"mode": "token", "selection": {"project_id": feedback.project.pk}, "config": {"steps": 2}}
    client = api(admin_user)
    with Receiver() as receiver:
        _hook(receiver, ["round.cancelled"])
        round_id = client.post("/api/v1/training-rounds/", body, format="json").json()["id"]
        assert not WebhookDelivery.objects.exists()
        assert client.post(f"/api/v1/training-rounds/{round_id}/cancel/").status_code == 200
        delivery = WebhookDelivery.objects.get()
        assert webhooks.webhook_deliver(delivery_id=delivery.pk) == "delivered"
    [request] = receiver.requests
    assert request["signature_ok"] and request["headers"]["X-T2G-Event"] == "round.cancelled"
    assert request["json"]["data"]["round"]["id"] == round_id
    assert request["json"]["data"]["round"]["status"] == "cancelled"
