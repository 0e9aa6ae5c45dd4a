"""Admins' integration pages: a project's ingest keys (outputs sent by a team's own application) and the
webhooks (URLs told about rounds, versions, exports, campaigns and critics), with every delivery's
attempts and a button to send one again."""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from .. import webhooks
from ..forms import IngestKeyForm, WebhookForm
from ..models import IngestKey, Project, Webhook, WebhookDelivery
from ..services import ingest
from .access import admin_page

DELIVERIES_SHOWN = 50


admins_only = admin_page("Only admins manage integrations.")


@admins_only
def project_integrations(request: HttpRequest, pk: int) -> HttpResponse:
    project = get_object_or_404(Project, pk=pk, is_archived=False)
    form = IngestKeyForm(request.POST or None)
    new_key, status = None, 200
    if request.method == "POST":
        if form.is_valid():
            try:
                _, new_key = ingest.ingest_key_create(
                    project=project, name=form.cleaned_data["name"], created_by=request.user
                )
            except ValueError as exc:
                form.add_error("name", str(exc))
        if form.errors:
            status = 400
        else:
            form = IngestKeyForm()
    context = {"project": project, "form": form, "new_key": new_key, "keys": project.ingest_keys.all()}
    return render(request, "annotations/integrations.html", context, status=status)


@require_POST
@admins_only
def ingest_key_revoke(request: HttpRequest, pk: int) -> HttpResponse:
    key = get_object_or_404(IngestKey, pk=pk)
    if ingest.ingest_key_revoke(key=key, revoked_by=request.user):
        messages.success(request, f"Key {key.prefix}… revoked: requests with it are refused from now on.")
    return redirect("project_integrations", pk=key.project_id)


@admins_only
def webhook_list(request: HttpRequest) -> HttpResponse:
    form = WebhookForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            webhook = webhooks.webhook_create(
                url=form.cleaned_data["url"],
                events=form.cleaned_data["events"],
                description=form.cleaned_data["description"],
                created_by=request.user,
            )
        except webhooks.WebhookRefused as exc:
            form.add_error("url", str(exc))
        else:
            messages.success(request, "Webhook added. Its signing secret is on its page.")
            return redirect("webhook_detail", pk=webhook.pk)
    context = {"form": form, "webhooks": Webhook.objects.all(), "events": webhooks.WEBHOOK_EVENTS}
    return render(request, "annotations/webhooks.html", context, status=400 if form.errors else 200)


@admins_only
def webhook_detail(request: HttpRequest, pk: int) -> HttpResponse:
    webhook = get_object_or_404(Webhook, pk=pk)
    deliveries = webhook.deliveries.prefetch_related("attempts")[:DELIVERIES_SHOWN]
    context = {"webhook": webhook, "deliveries": deliveries, "events": webhooks.WEBHOOK_EVENTS}
    return render(request, "annotations/webhook_detail.html", context)


@require_POST
@admins_only
def webhook_action(request: HttpRequest, pk: int, action: str) -> HttpResponse:
    webhook = get_object_or_404(Webhook, pk=pk)
    if action == "delete":
        webhooks.webhook_delete(webhook=webhook, actor=request.user)
        messages.success(request, "Webhook deleted.")
        return redirect("webhook_list")
    if action == "ping":
        delivery = webhooks.webhook_ping(webhook=webhook, actor=request.user)
        messages.success(request, f"Ping queued as delivery {delivery.pk}; its attempts show below.")
        return redirect("webhook_detail", pk=webhook.pk)
    if action not in ("pause", "resume"):
        raise PermissionDenied("Unknown action")
    webhooks.webhook_update(webhook=webhook, is_active=action == "resume", actor=request.user)
    return redirect("webhook_detail", pk=webhook.pk)


@require_POST
@admins_only
def webhook_redeliver(request: HttpRequest, pk: int) -> HttpResponse:
    delivery = get_object_or_404(WebhookDelivery, pk=pk)
    webhooks.webhook_redeliver(delivery=delivery, actor=request.user)
    messages.success(request, f"Delivery {delivery.pk} queued again.")
    return redirect("webhook_detail", pk=delivery.webhook_id)
