"""REST API for model versions and training rounds: researchers read, admins promote a version."""

from __future__ import annotations

from django_filters import rest_framework as filters
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers as drf_serializers
from rest_framework import status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from annotations.api import (
    ID_REGEX,
    DateTimeFilter,
    IdFilter,
    NewestFirstPagination,
    ResearcherReadAdminWrite,
)
from evaluation import selectors as evaluation_selectors

from . import selectors, serializers, services
from .models import ModelVersion, TrainingRound


class ActivateSerializer(drf_serializers.Serializer):
    confirm = drf_serializers.BooleanField(
        default=False, help_text="Activate even without evidence that it is significantly better."
    )


class ModelVersionFilter(filters.FilterSet):
    is_active = filters.BooleanFilter()
    parent = IdFilter(field_name="parent_id")

    class Meta:
        model = ModelVersion
        fields = ["is_active", "parent"]


class TrainingRoundFilter(filters.FilterSet):
    project = IdFilter(field_name="project_id")
    status = filters.ChoiceFilter(choices=TrainingRound.Status.choices)
    mode = filters.ChoiceFilter(choices=TrainingRound.Mode.choices)
    base_version = IdFilter(field_name="base_version_id")
    created_after = DateTimeFilter(field_name="created_at", lookup_expr="gte")
    created_before = DateTimeFilter(field_name="created_at", lookup_expr="lt")

    class Meta:
        model = TrainingRound
        fields = ["project", "status", "mode", "base_version"]


class ModelVersionViewSet(viewsets.ReadOnlyModelViewSet):
    """Versions of the shared model, newest first; the active one is what generation uses."""

    serializer_class = serializers.ModelVersionSerializer
    permission_classes = [ResearcherReadAdminWrite]
    pagination_class = NewestFirstPagination
    filterset_class = ModelVersionFilter
    lookup_value_regex = ID_REGEX
    queryset = ModelVersion.objects.all()

    @extend_schema(
        request=ActivateSerializer,
        responses={
            200: serializers.ModelVersionSerializer,
            409: OpenApiResponse(description="Not shown significantly better: send confirm=true"),
        },
    )
    @action(detail=True, methods=["post"])
    def activate(self, request, pk=None):
        """Make this version the active one (promote, or roll back): a pointer move (admins only).

        Unless an evaluation campaign shows it significantly better than the active version (Bradley–Terry
        interval above 0 and a sign test), this answers 409 with the evidence; ``confirm: true`` goes ahead.
        """
        version = self.get_object()
        incoming = ActivateSerializer(data=request.data or {})
        incoming.is_valid(raise_exception=True)
        if not incoming.validated_data["confirm"]:
            evidence = evaluation_selectors.promotion_evidence(version, selectors.active_version())
            if not evidence["significant"]:
                campaign = evidence["campaign"]
                return Response(
                    {"detail": evidence["reason"], "campaign": campaign.pk if campaign else None},
                    status=status.HTTP_409_CONFLICT,
                )
        version = services.model_version_activate(version=version)
        return Response(self.get_serializer(version).data)


class TrainingRoundViewSet(viewsets.ReadOnlyModelViewSet):
    """Training rounds with their config, dataset snapshot and outcome (researchers and admins)."""

    permission_classes = [ResearcherReadAdminWrite]
    pagination_class = NewestFirstPagination
    filterset_class = TrainingRoundFilter
    lookup_value_regex = ID_REGEX
    queryset = TrainingRound.objects.all()

    def get_serializer_class(self):
        if self.action == "metrics":
            return serializers.RoundMetricSerializer
        if self.action == "snapshot":
            return serializers.RoundSnapshotSerializer
        return serializers.TrainingRoundSerializer

    @extend_schema(responses={200: serializers.RoundMetricSerializer(many=True)}, filters=False)
    @action(detail=True, methods=["get"], pagination_class=None)
    def metrics(self, request, pk=None):
        """The round's per-step metrics (loss, KL, reward...), in step order."""
        training_round = self.get_object()
        metrics = training_round.metrics.order_by("step")
        return Response(serializers.RoundMetricSerializer(metrics, many=True).data)

    @extend_schema(responses={200: serializers.RoundSnapshotSerializer}, filters=False)
    @action(detail=True, methods=["get"])
    def snapshot(self, request, pk=None):
        """The ids of the annotations the round trained on (its citable dataset snapshot)."""
        return Response(serializers.RoundSnapshotSerializer(self.get_object()).data)
