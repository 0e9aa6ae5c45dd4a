"""REST API for model versions, training rounds, critic versions and critic jobs: researchers read, admins
promote a version, activate or roll back a critic, launch and cancel critic jobs."""

from __future__ import annotations

from django_filters import rest_framework as filters
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response

from annotations.api import (
    ID_REGEX,
    DateTimeFilter,
    IdFilter,
    NewestFirstPagination,
    ResearcherReadAdminWrite,
)
from evaluation import selectors as evaluation_selectors

from .. import selectors, serializers, services
from ..models import CriticTrainingJob, CriticVersion, ModelVersion, TrainingRound


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
        request=serializers.ActivateSerializer,
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
        incoming = serializers.ActivateSerializer(data=request.data or {})
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


# --- the learned span critic -----------------------------------------------------------------------------
class CriticVersionFilter(filters.FilterSet):
    project = IdFilter(field_name="project_id")
    is_active = filters.BooleanFilter()
    parent = IdFilter(field_name="parent_id")

    class Meta:
        model = CriticVersion
        fields = ["project", "is_active", "parent"]


class CriticJobFilter(filters.FilterSet):
    project = IdFilter(field_name="project_id")
    status = filters.ChoiceFilter(choices=CriticTrainingJob.Status.choices)

    class Meta:
        model = CriticTrainingJob
        fields = ["project", "status"]


class CriticVersionViewSet(viewsets.ReadOnlyModelViewSet):
    """A project's span critics with metrics and lineage; admins activate one (or roll back to an older one)."""

    permission_classes = [ResearcherReadAdminWrite]
    pagination_class = NewestFirstPagination
    filterset_class = CriticVersionFilter
    lookup_value_regex = ID_REGEX
    queryset = CriticVersion.objects.all()

    def get_serializer_class(self):
        if self.action == "snapshot":
            return serializers.CriticSnapshotSerializer
        if self.action in ("retrieve", "activate"):
            return serializers.CriticVersionDetailSerializer
        return serializers.CriticVersionSerializer

    @extend_schema(request=None, responses={200: serializers.CriticVersionDetailSerializer})
    @action(detail=True, methods=["post"])
    def activate(self, request, pk=None):
        """Make this version its project's active critic (promote, or roll back to an older one): a pointer
        move that queues its predictions for the project's outputs nobody has submitted (admins only)."""
        version = services.critic_version_activate(version=self.get_object())
        return Response(self.get_serializer(version).data)

    @extend_schema(
        request=None,
        responses={
            200: serializers.CriticVersionSerializer,
            409: OpenApiResponse(description="This version is not its project's active critic"),
        },
    )
    @action(detail=True, methods=["post"])
    def deactivate(self, request, pk=None):
        """Leave the project without an active critic (no pre-annotation, no on-policy rounds) when this
        version is the active one (admins only)."""
        version = self.get_object()
        if not version.is_active:
            return Response(
                {"detail": "This version is not its project's active critic."},
                status=status.HTTP_409_CONFLICT,
            )
        services.critic_version_deactivate(project=version.project)
        version.refresh_from_db()
        return Response(serializers.CriticVersionSerializer(version).data)

    @extend_schema(responses={200: serializers.CriticSnapshotSerializer}, filters=False)
    @action(detail=True, methods=["get"])
    def snapshot(self, request, pk=None):
        """The ids of the annotations the version learned from (or was tested on), and their hash."""
        return Response(serializers.CriticSnapshotSerializer(self.get_object()).data)


class CriticJobViewSet(mixins.CreateModelMixin, viewsets.ReadOnlyModelViewSet):
    """Critic training jobs (the training lane): researchers read, admins launch and cancel."""

    permission_classes = [ResearcherReadAdminWrite]
    pagination_class = NewestFirstPagination
    filterset_class = CriticJobFilter
    lookup_value_regex = ID_REGEX
    queryset = CriticTrainingJob.objects.all()

    def get_serializer_class(self):
        if self.action == "create":
            return serializers.CriticJobCreateSerializer
        return serializers.CriticTrainingJobSerializer

    @extend_schema(
        request=serializers.CriticJobCreateSerializer,
        responses={201: serializers.CriticTrainingJobSerializer},
    )
    def create(self, request, *args, **kwargs):
        """Freeze the project's submitted annotations and queue a critic job on them (admins only)."""
        incoming = serializers.CriticJobCreateSerializer(data=request.data)
        incoming.is_valid(raise_exception=True)
        data = incoming.validated_data
        project = data["project"]
        parent = data.get("parent")
        if data["continue_from_active"]:
            parent = services.critic_active(project_id=project.pk)
            if parent is None:
                raise ValidationError({"continue_from_active": ["This project has no active critic."]})
        try:
            job = services.critic_job_create(
                project=project,
                config=data["config"],
                parent=parent,
                auto_activate=data["auto_activate"],
                created_by=request.user,
                selection=data["selection"],
            )
        except ValueError as exc:
            raise ValidationError({"detail": [str(exc)]}) from exc
        return Response(serializers.CriticTrainingJobSerializer(job).data, status=status.HTTP_201_CREATED)

    @extend_schema(
        request=None,
        responses={
            200: serializers.CriticTrainingJobSerializer,
            409: OpenApiResponse(description="The job had already finished"),
        },
    )
    @action(detail=True, methods=["post"])
    def cancel(self, request, pk=None):
        """Cancel the job: a queued one stops at once, a running one before its next training step; no
        version is created (admins only)."""
        job = self.get_object()
        if not services.critic_job_cancel(job=job):
            job.refresh_from_db()
            return Response(
                {"detail": f"The job had already finished ({job.status})."}, status=status.HTTP_409_CONFLICT
            )
        job.refresh_from_db()
        return Response(serializers.CriticTrainingJobSerializer(job).data)
