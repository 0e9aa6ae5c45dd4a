"""Webhooks: admins subscribe URLs to events; each event becomes one delivery per subscribed webhook,
recorded in the transaction of the change that caused it, with its task in the outbox
(``jobs.dispatch.enqueue``), so a broker outage delays a delivery but never loses it.

Events (``WEBHOOK_EVENTS``) are emitted by the code paths that make them true: a round's publish (or its
failure, or its cancellation), a version's activation, an export's completion, a campaign's close, a
critic job's publish. A ``ping`` goes to one webhook when an admin asks for it (:func:`webhook_ping`).

**Delivery.** ``annotations.webhook_deliver`` (the interactive lane) makes one attempt: a POST of the
delivery's JSON body (the same bytes every time) with

* ``X-T2G-Event``: the event name; ``X-T2G-Delivery``: the delivery id (receivers deduplicate by it:
  a retry, a redelivery or a message the broker delivered twice carries the same id);
* ``X-T2G-Signature: t=<unix seconds>,v1=<hex>``, where ``<hex>`` is HMAC-SHA256 with the webhook's
  secret over ``f"{t}."`` followed by the raw body. Receivers recompute it, compare in constant time
  and refuse a ``t`` more than five minutes away from their clock (a replayed request).

A 2xx answer within ``T2G_WEBHOOK_TIMEOUT_S`` succeeds. Anything else (another status, a timeout, a
refused connection, a redirect: redirects are never followed) is logged as an attempt and tried again
after ``T2G_WEBHOOK_BACKOFF_S * 2**(n-1)`` seconds (capped at an hour), ``T2G_WEBHOOK_MAX_ATTEMPTS``
times in all; then the delivery is failed, and an admin can redeliver it from the Webhooks page.

**SSRF.** A webhook URL is http or https, without credentials, and its host must resolve only to public
addresses: loopback, private (10/8, 172.16/12, 192.168/16, fc00::/7), link-local (169.254/16, which holds
cloud metadata services), shared (100.64/10), reserved, unspecified and multicast addresses are refused,
at registration and again at every attempt, and the connection goes to the address that was checked
(a name that resolves differently a moment later cannot redirect it). ``T2G_WEBHOOK_ALLOW_PRIVATE``
lifts the address rule, for a receiver on the same machine (the tests turn it on).
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import ipaddress
import json
import logging
import secrets
import socket
import ssl
import time
from datetime import timedelta
from urllib.parse import urlsplit

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from audit.services import audit_record
from jobs import dispatch

from .models import Webhook, WebhookAttempt, WebhookDelivery

logger = logging.getLogger(__name__)

WEBHOOK_EVENTS = {
    "round.finished": "A training round finished and published a version",
    "round.failed": "A training round failed",
    "round.cancelled": "A training round was cancelled (at once if queued, else before its next step)",
    "version.promoted": "A model version became the active one (promotion)",
    "version.rolled_back": "An earlier model version became the active one again (rollback)",
    "export.ready": "A dataset export finished and can be downloaded",
    "campaign.finished": "An evaluation campaign closed; its results are final",
    "critic_version.ready": "A critic training job published a critic version",
}
# Sent to one webhook when an admin asks (the page's "Send a test ping", the API's ping action), whatever
# it is subscribed to: a receiver's URL, signature check and answer can be tried without waiting for an event.
PING_EVENT = "ping"
DELIVER_TASK = "annotations.webhook_deliver"
SIGNATURE_HEADER = "X-T2G-Signature"
MAX_BACKOFF_S = 3600
MAX_ERROR_CHARS = 500


class WebhookRefused(ValueError):
    """A URL or subscription the studio will not deliver to; the message says why."""


# --- signing ---------------------------------------------------------------------------------------
def webhook_signature(secret: str, timestamp: int, body: bytes) -> str:
    """The ``v1`` value: HMAC-SHA256 over ``"<timestamp>."`` and the body, as hex.

    >>> webhook_signature("s", 1, b"{}")[:16]
    'b253639bcd705ed1'
    """
    return hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()


def webhook_signature_verify(secret: str, header: str, body: bytes, *, tolerance_s: int = 300) -> bool:
    """What a receiver does with ``X-T2G-Signature`` (here for the docs' example and the tests)."""
    parts = dict(item.split("=", 1) for item in header.split(",") if "=" in item)
    try:
        timestamp = int(parts["t"])
    except (KeyError, ValueError):
        return False
    if abs(time.time() - timestamp) > tolerance_s:
        return False
    return hmac.compare_digest(webhook_signature(secret, timestamp, body), parts.get("v1", ""))


def delivery_body(delivery: WebhookDelivery) -> bytes:
    return json.dumps(delivery.payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


# --- the SSRF guard --------------------------------------------------------------------------------
def _address_refusal(address: str) -> str | None:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if ip.is_multicast or ip.is_unspecified or not ip.is_global:
        return f"{address} is not a public address"
    return None


def _resolve(url: str) -> tuple[str, str, int, list[str]]:
    """(scheme, host, port, checked addresses) of a URL the guard allows; raises WebhookRefused."""
    try:
        parts = urlsplit(url)
        parts.hostname  # noqa: B018 (parses the host: a malformed IPv6 literal raises here)
    except ValueError as exc:
        raise WebhookRefused(f"The URL cannot be parsed ({exc}).") from None
    if parts.scheme not in ("http", "https"):
        raise WebhookRefused("The URL must start with http:// or https://.")
    if parts.username or parts.password:
        raise WebhookRefused("The URL must not carry a user name or password.")
    host = parts.hostname
    if not host:
        raise WebhookRefused("The URL has no host.")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise WebhookRefused("The URL's port is not a number from 1 to 65535.") from None
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError, ValueError) as exc:
        raise WebhookRefused(f"{host} does not resolve ({exc}).") from None
    addresses = list(dict.fromkeys(info[4][0] for info in infos))
    if not settings.T2G_WEBHOOK_ALLOW_PRIVATE:
        refusals = [reason for reason in map(_address_refusal, addresses) if reason]
        if refusals:
            raise WebhookRefused(
                f"{host} resolves to {refusals[0]}: webhooks go to public addresses only "
                "(T2G_WEBHOOK_ALLOW_PRIVATE allows others)."
            )
    return parts.scheme, host, port, addresses


# --- subscriptions ---------------------------------------------------------------------------------
def _events_checked(events) -> list[str]:
    chosen = sorted(set(events or []))
    unknown = [name for name in chosen if name not in WEBHOOK_EVENTS]
    if unknown:
        raise WebhookRefused(f"Unknown events: {', '.join(unknown)}.")
    if not chosen:
        raise WebhookRefused("Choose at least one event.")
    return chosen


@transaction.atomic
def webhook_create(*, url: str, events, description: str = "", created_by=None) -> Webhook:
    url = url.strip()
    if len(url) > 500:
        raise WebhookRefused("The URL is longer than 500 characters.")
    _resolve(url)
    webhook = Webhook.objects.create(
        url=url,
        events=_events_checked(events),
        description=description.strip()[:200],
        secret="whsec_" + secrets.token_urlsafe(32),
        created_by=created_by,
    )
    audit_record(
        action="webhook.create", actor=created_by, obj=webhook, details={"url": url, "events": webhook.events}
    )
    return webhook


@transaction.atomic
def webhook_update(*, webhook: Webhook, is_active: bool | None = None, events=None, actor=None) -> Webhook:
    if events is not None:
        webhook.events = _events_checked(events)
    if is_active is not None:
        webhook.is_active = is_active
    webhook.save(update_fields=["events", "is_active"])
    audit_record(action="webhook.update", actor=actor, obj=webhook,
                 details={"events": webhook.events, "is_active": webhook.is_active})  # fmt: skip
    return webhook


@transaction.atomic
def webhook_delete(*, webhook: Webhook, actor=None) -> None:
    audit_record(action="webhook.delete", actor=actor, obj=webhook, details={"url": webhook.url})
    webhook.delete()


# --- events and deliveries -------------------------------------------------------------------------
def webhook_event_emit(*, event: str, data: dict) -> int:
    """Record ``event`` for every active webhook subscribed to it, in the caller's transaction, with each
    delivery's task in the outbox. Returns how many deliveries were recorded."""
    if event not in WEBHOOK_EVENTS:
        raise ValueError(f"Unknown webhook event {event!r}")
    created = 0
    with transaction.atomic():
        for webhook in Webhook.objects.filter(is_active=True):
            if event in webhook.events:
                _delivery_create(webhook=webhook, event=event, data=data)
                created += 1
    return created


def _delivery_create(*, webhook: Webhook, event: str, data: dict) -> WebhookDelivery:
    """One delivery with its body (which names the delivery's own id) and its task in the outbox."""
    delivery = WebhookDelivery.objects.create(webhook=webhook, event=event, payload={})
    delivery.payload = {
        "id": f"whd_{delivery.pk}",
        "event": event,
        "created_at": delivery.created_at.isoformat(),
        "data": data,
    }
    delivery.save(update_fields=["payload"])
    dispatch.enqueue(DELIVER_TASK, delivery.pk)
    return delivery


@transaction.atomic
def webhook_ping(*, webhook: Webhook, actor=None) -> WebhookDelivery:
    """A ``ping`` delivery to this webhook alone (paused or not, whatever its events), signed, logged and
    retried like any other: the way to try a receiver."""
    data = {"webhook": {"id": webhook.pk, "url": webhook.url, "events": webhook.events}}
    delivery = _delivery_create(webhook=webhook, event=PING_EVENT, data=data)
    audit_record(action="webhook.ping", actor=actor, obj=webhook, details={"delivery": delivery.pk})
    return delivery


@transaction.atomic
def webhook_redeliver(*, delivery: WebhookDelivery, actor=None) -> WebhookDelivery:
    """Send a delivery again (the same id and body), with a fresh round of attempts."""
    WebhookDelivery.objects.filter(pk=delivery.pk).update(
        status=WebhookDelivery.Status.PENDING, next_attempt_at=None, attempt_count=0
    )
    audit_record(action="webhook.redeliver", actor=actor, obj=delivery, details={"event": delivery.event})
    dispatch.enqueue(DELIVER_TASK, delivery.pk)
    delivery.refresh_from_db()
    return delivery


def backoff_s(attempt: int) -> int:
    """Seconds before attempt ``attempt + 1`` (attempt counts from 1).

    >>> [backoff_s(n) for n in (1, 2, 3)] == [settings.T2G_WEBHOOK_BACKOFF_S * k for k in (1, 2, 4)]
    True
    """
    return int(min(MAX_BACKOFF_S, settings.T2G_WEBHOOK_BACKOFF_S * 2 ** (attempt - 1)))


def webhook_deliver(*, delivery_id: int) -> str:
    """One attempt at a pending delivery whose time has come; logs it, then schedules the next attempt
    (through the outbox) or ends the delivery. Returns what happened."""
    delivery = WebhookDelivery.objects.select_related("webhook").filter(pk=delivery_id).first()
    if delivery is None or delivery.status != WebhookDelivery.Status.PENDING:
        return "nothing to do"
    now = timezone.now()
    if delivery.next_attempt_at and delivery.next_attempt_at > now + timedelta(seconds=2):
        return "not yet"  # an early copy of the message; the scheduled one follows
    number = delivery.attempt_count + 1
    # The claim: a message published twice (relay and publisher) makes one attempt, not two.
    if not WebhookDelivery.objects.filter(
        pk=delivery.pk, status=WebhookDelivery.Status.PENDING, attempt_count=delivery.attempt_count
    ).update(attempt_count=number):
        return "taken"
    status_code, elapsed_ms, error = _post(delivery)
    ok = status_code is not None and 200 <= status_code < 300
    with transaction.atomic():
        WebhookAttempt.objects.create(
            delivery=delivery, number=number, status_code=status_code, response_ms=elapsed_ms, error=error
        )
        if ok:
            WebhookDelivery.objects.filter(pk=delivery.pk).update(
                status=WebhookDelivery.Status.SUCCEEDED, delivered_at=timezone.now(), next_attempt_at=None
            )
            return "delivered"
        if number >= settings.T2G_WEBHOOK_MAX_ATTEMPTS or error.startswith("refused:"):
            WebhookDelivery.objects.filter(pk=delivery.pk).update(
                status=WebhookDelivery.Status.FAILED, next_attempt_at=None
            )
            logger.warning("Webhook delivery %s failed for good: %s", delivery.pk, error or status_code)
            return "failed"
        wait = backoff_s(number)
        WebhookDelivery.objects.filter(pk=delivery.pk).update(
            next_attempt_at=timezone.now() + timedelta(seconds=wait)
        )
        dispatch.enqueue(DELIVER_TASK, delivery.pk, countdown=wait)
    return f"retry in {wait} s"


class _PinnedHTTPConnection(http.client.HTTPConnection):
    """Connects to the address the guard checked, whatever the name resolves to now."""

    def __init__(self, host: str, port: int, address: str, timeout: float):
        super().__init__(host, port, timeout=timeout)
        self._address = address

    def connect(self) -> None:
        self.sock = socket.create_connection((self._address, self.port), self.timeout)


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    def __init__(self, host: str, port: int, address: str, timeout: float):
        super().__init__(host, port, timeout=timeout, context=ssl.create_default_context())
        self._address = address

    def connect(self) -> None:
        sock = socket.create_connection((self._address, self.port), self.timeout)
        self.sock = self._context.wrap_socket(sock, server_hostname=self.host)


def _post(delivery: WebhookDelivery) -> tuple[int | None, int | None, str]:
    """(status code, milliseconds, error) of one POST; never raises."""
    webhook = delivery.webhook
    started = time.perf_counter()
    try:
        scheme, host, port, addresses = _resolve(webhook.url)
    except WebhookRefused as exc:
        return None, None, f"refused: {exc}"[:MAX_ERROR_CHARS]
    body = delivery_body(delivery)
    timestamp = int(time.time())
    parts = urlsplit(webhook.url)
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    headers = {
        "Host": parts.netloc.rsplit("@", 1)[-1],
        "Content-Type": "application/json",
        "User-Agent": "Text2Grad-Studio-Webhooks/1",
        "X-T2G-Event": delivery.event,
        "X-T2G-Delivery": str(delivery.payload.get("id", delivery.pk)),
        SIGNATURE_HEADER: f"t={timestamp},v1={webhook_signature(webhook.secret, timestamp, body)}",
    }
    connection_class = _PinnedHTTPSConnection if scheme == "https" else _PinnedHTTPConnection
    connection = connection_class(host, port, addresses[0], settings.T2G_WEBHOOK_TIMEOUT_S)
    try:
        connection.request("POST", path, body=body, headers=headers)
        response = connection.getresponse()
        response.read(64 * 1024)  # drained, not kept: a receiver's answer is not stored
        elapsed = round((time.perf_counter() - started) * 1000)
        error = "" if 200 <= response.status < 300 else f"HTTP {response.status} {response.reason}"
        return response.status, elapsed, error[:MAX_ERROR_CHARS]
    except (OSError, http.client.HTTPException) as exc:
        elapsed = round((time.perf_counter() - started) * 1000)
        return None, elapsed, f"{type(exc).__name__}: {exc}"[:MAX_ERROR_CHARS]
    finally:
        connection.close()
