"""REST API for model versions, training rounds, generation jobs, critic versions and critic jobs:
researchers read; admins promote a version, activate or roll back a critic, and launch, cancel and resume
rounds, generation jobs and critic jobs (the pages' services, the pages' permissions)."""

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
from ..models import CriticTrainingJob, CriticVersion, GenerationJob, ModelVersion, TrainingRound


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


def _conflict(message: str) -> Response:
    return Response({"detail": message}, status=status.HTTP_409_CONFLICT)


CONFLICT = OpenApiResponse(description="Not in a state that allows this (already finished, still running)")


class TrainingRoundViewSet(mixins.CreateModelMixin, viewsets.ReadOnlyModelViewSet):
    """Training rounds with their config, dataset snapshot and outcome (researchers and admins read; admins
    launch, cancel and resume)."""

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
        if self.action == "create":
            return serializers.RoundLaunchSerializer
        return serializers.TrainingRoundSerializer

    @extend_schema(
        request=serializers.RoundLaunchSerializer, responses={201: serializers.TrainingRoundSerializer}
    )
    def create(self, request, *args, **kwargs):
        """Launch a round (admins): freeze the snapshot and config and queue it on the training worker, as
        the Training page does; an on-policy round samples the project's prompts and is scored by its
        active critic."""
        incoming = serializers.RoundLaunchSerializer(data=request.data)
        incoming.is_valid(raise_exception=True)
        data = incoming.validated_data
        try:
            if data["mode"] == TrainingRound.Mode.ON_POLICY:
                training_round = services.on_policy_round_launch(
                    project=data["project"],
                    config=data["config"],
                    audit_share=data["audit_share"],
                    max_new_tokens=data["max_new_tokens"],
                    temperature=data["temperature"],
                    auto_promote=data["auto_promote"],
                    created_by=request.user,
                )
            else:
                selection = dict(data["selection"])
                if data.get("project") is not None:
                    selection.setdefault("project_id", data["project"].pk)
                training_round = services.round_launch(
                    mode=data["mode"],
                    selection=selection,
                    config=data["config"],
                    auto_promote=data["auto_promote"],
                    created_by=request.user,
                )
        except ValueError as exc:
            raise ValidationError({"detail": [str(exc)]}) from exc
        body = serializers.TrainingRoundSerializer(training_round).data
        return Response(body, status=status.HTTP_201_CREATED)

    @extend_schema(request=None, responses={200: serializers.TrainingRoundSerializer, 409: CONFLICT})
    @action(detail=True, methods=["post"])
    def cancel(self, request, pk=None):
        """Cancel the round (admins): a queued one stops at once, a running one before its next step."""
        training_round = self.get_object()
        if training_round.is_finished:
            return _conflict(f"The round had already finished ({training_round.status}).")
        training_round = services.round_cancel(training_round=training_round)
        return Response(serializers.TrainingRoundSerializer(training_round).data)

    @extend_schema(request=None, responses={200: serializers.TrainingRoundSerializer, 409: CONFLICT})
    @action(detail=True, methods=["post"])
    def resume(self, request, pk=None):
        """Queue a failed or cancelled round again (admins); it continues from its last checkpoint."""
        try:
            training_round = services.round_resume(training_round=self.get_object())
        except ValueError as exc:
            return _conflict(str(exc))
        return Response(serializers.TrainingRoundSerializer(training_round).data)

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


class GenerationJobFilter(filters.FilterSet):
    project = IdFilter(field_name="project_id")
    status = filters.ChoiceFilter(choices=GenerationJob.Status.choices)

    class Meta:
        model = GenerationJob
        fields = ["project", "status"]


class GenerationJobViewSet(mixins.CreateModelMixin, viewsets.ReadOnlyModelViewSet):
    """Generation jobs (outputs sampled for a project's prompts): researchers read, admins launch, cancel
    and resume."""

    permission_classes = [ResearcherReadAdminWrite]
    pagination_class = NewestFirstPagination
    filterset_class = GenerationJobFilter
    lookup_value_regex = ID_REGEX
    queryset = GenerationJob.objects.all()

    def get_serializer_class(self):
        if self.action == "create":
            return serializers.GenerationJobCreateSerializer
        return serializers.GenerationJobSerializer

    @extend_schema(
        request=serializers.GenerationJobCreateSerializer,
        responses={201: serializers.GenerationJobSerializer},
    )
    def create(self, request, *args, **kwargs):
        """Queue a generation job (admins): ``per_prompt`` outputs for each prompt (all, or ``prompt_ids``)
        with the active version or ``model_version``; the outputs go to the annotation queue."""
        incoming = serializers.GenerationJobCreateSerializer(data=request.data)
        incoming.is_valid(raise_exception=True)
        data = incoming.validated_data
        try:
            job = services.generation_job_create(
                project=data["project"],
                per_prompt=data["per_prompt"],
                prompt_ids=data["prompt_ids"],
                model_version=data.get("model_version"),
                sampling_params=data["sampling_params"],
                created_by=request.user,
            )
        except ValueError as exc:
            raise ValidationError({"detail": [str(exc)]}) from exc
        return Response(serializers.GenerationJobSerializer(job).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=None, responses={200: serializers.GenerationJobSerializer, 409: CONFLICT})
    @action(detail=True, methods=["post"])
    def cancel(self, request, pk=None):
        """Cancel the job (admins); the outputs it wrote are kept."""
        job = self.get_object()
        if not services.generation_job_cancel(job=job):
            job.refresh_from_db()
            return _conflict(f"The job had already finished ({job.status}).")
        job.refresh_from_db()
        return Response(serializers.GenerationJobSerializer(job).data)

    @extend_schema(request=None, responses={200: serializers.GenerationJobSerializer, 409: CONFLICT})
    @action(detail=True, methods=["post"])
    def resume(self, request, pk=None):
        """Queue a failed or cancelled job again (admins); it continues after the outputs it wrote."""
        try:
            job = services.generation_job_resume(job=self.get_object())
        except ValueError as exc:
            return _conflict(str(exc))
        return Response(serializers.GenerationJobSerializer(job).data)


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

    @extend_schema(request=None, responses={200: serializers.CriticTrainingJobSerializer, 409: CONFLICT})
    @action(detail=True, methods=["post"])
    def resume(self, request, pk=None):
        """Queue a failed or cancelled job again on its frozen snapshot (admins)."""
        try:
            job = services.critic_job_resume(job=self.get_object())
        except ValueError as exc:
            return _conflict(str(exc))
        return Response(serializers.CriticTrainingJobSerializer(job).data)
