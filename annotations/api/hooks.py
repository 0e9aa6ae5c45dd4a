"""Webhooks by API (admins only), for teams that keep their integrations in code: register, change,
pause or delete a webhook, read its deliveries with their attempts, redeliver one. The Webhooks page
does the same (``annotations/webhooks.py`` has the events, the signature and the SSRF rule)."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response

from .. import webhooks
from ..models import Webhook, WebhookAttempt, WebhookDelivery
from .permissions import ID_REGEX, AdminOnly
from .plumbing import NewestFirstPagination


class WebhookSerializer(serializers.ModelSerializer):
    events = serializers.ListField(
        child=serializers.ChoiceField(choices=sorted(webhooks.WEBHOOK_EVENTS)), min_length=1, max_length=20
    )

    class Meta:
        model = Webhook
        fields = ["id", "url", "events", "description", "is_active", "secret", "created_at"]
        read_only_fields = ["id", "secret", "created_at"]


class WebhookChangeSerializer(serializers.Serializer):
    events = serializers.ListField(
        child=serializers.ChoiceField(choices=sorted(webhooks.WEBHOOK_EVENTS)),
        min_length=1,
        max_length=20,
        required=False,
    )
    is_active = serializers.BooleanField(required=False)


class WebhookAttemptSerializer(serializers.ModelSerializer):
    class Meta:
        model = WebhookAttempt
        fields = ["number", "status_code", "response_ms", "error", "created_at"]
        read_only_fields = fields


class WebhookDeliverySerializer(serializers.ModelSerializer):
    attempts = WebhookAttemptSerializer(many=True, read_only=True)
    payload = serializers.DictField(read_only=True)

    class Meta:
        model = WebhookDelivery
        fields = ["id", "webhook", "event", "status", "attempt_count", "next_attempt_at", "created_at",
                  "delivered_at", "payload", "attempts"]  # fmt: skip
        read_only_fields = fields


class WebhookViewSet(
    mixins.CreateModelMixin, mixins.DestroyModelMixin, mixins.UpdateModelMixin, viewsets.ReadOnlyModelViewSet
):
    """Webhooks (admins only). ``secret`` signs every delivery (``X-T2G-Signature``)."""

    serializer_class = WebhookSerializer
    permission_classes = [AdminOnly]
    pagination_class = NewestFirstPagination
    lookup_value_regex = ID_REGEX
    queryset = Webhook.objects.all()
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]

    def perform_create(self, serializer):
        data = serializer.validated_data
        try:
            webhook = webhooks.webhook_create(
                url=data["url"], events=data["events"], description=data.get("description", ""),
                created_by=self.request.user,
            )  # fmt: skip
        except webhooks.WebhookRefused as exc:
            raise ValidationError({"url": [str(exc)]}) from exc
        if data.get("is_active") is False:
            webhook = webhooks.webhook_update(webhook=webhook, is_active=False, actor=self.request.user)
        serializer.instance = webhook

    @extend_schema(request=WebhookChangeSerializer, responses={200: WebhookSerializer})
    def partial_update(self, request, *args, **kwargs):
        """Change the events, or pause (``is_active: false``) and resume."""
        incoming = WebhookChangeSerializer(data=request.data)
        incoming.is_valid(raise_exception=True)
        webhook = webhooks.webhook_update(
            webhook=self.get_object(), actor=request.user, **incoming.validated_data
        )
        return Response(WebhookSerializer(webhook).data)

    def perform_destroy(self, instance):
        webhooks.webhook_delete(webhook=instance, actor=self.request.user)

    @extend_schema(request=None, responses={202: WebhookDeliverySerializer})
    @action(detail=True, methods=["post"])
    def ping(self, request, pk=None):
        """Send this webhook a signed ``ping`` event now (paused or not, whatever its events)."""
        delivery = webhooks.webhook_ping(webhook=self.get_object(), actor=request.user)
        return Response(WebhookDeliverySerializer(delivery).data, status=status.HTTP_202_ACCEPTED)

    @extend_schema(responses={200: WebhookDeliverySerializer(many=True)}, filters=False)
    @action(detail=True, methods=["get"])
    def deliveries(self, request, pk=None):
        """The webhook's deliveries, newest first, each with its attempts (status code, time, error)."""
        rows = self.get_object().deliveries.prefetch_related("attempts").order_by("-id")
        page = self.paginate_queryset(rows)
        return self.get_paginated_response(WebhookDeliverySerializer(page, many=True).data)


class WebhookDeliveryViewSet(viewsets.GenericViewSet):
    permission_classes = [AdminOnly]
    lookup_value_regex = ID_REGEX
    queryset = WebhookDelivery.objects.all()
    serializer_class = WebhookDeliverySerializer

    @extend_schema(request=None, responses={202: WebhookDeliverySerializer})
    @action(detail=True, methods=["post"])
    def redeliver(self, request, pk=None):
        """Send the delivery again (the same id and body), with a fresh round of attempts."""
        delivery = webhooks.webhook_redeliver(delivery=self.get_object(), actor=request.user)
        return Response(WebhookDeliverySerializer(delivery).data, status=status.HTTP_202_ACCEPTED)
