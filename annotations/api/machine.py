"""Machine critics by API (admins only, as on the project's Machine critics page): the projects' critic
configurations, and runs of a critic over a project's outputs: launch, follow, cancel. The same services
as the page (``annotations.services.machine``); the rounds' shape (launch is a POST to the collection
answered 201, cancel answers the job, or 409 once it has finished)."""

from __future__ import annotations

from django.core.exceptions import ValidationError as DjangoValidationError
from django_filters import rest_framework as filters
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response

from ..models import MachineCriticConfig, MachineCriticJob
from ..services import machine as machine_services
from .filters import IdFilter
from .permissions import ID_REGEX, AdminOnly
from .plumbing import NewestFirstPagination


class MachineCriticConfigSerializer(serializers.ModelSerializer):
    class Meta:
        model = MachineCriticConfig
        fields = ["id", "project", "name", "critic_settings", "enabled", "updated_at"]


class MachineCriticJobSerializer(serializers.ModelSerializer):
    """A run: where it stands, its progress, and once finished its report (written, skipped, failed)."""

    critic = serializers.DictField(read_only=True)
    report = serializers.DictField(read_only=True)
    percent = serializers.IntegerField(read_only=True)
    outputs = serializers.SerializerMethodField()
    created_by = serializers.CharField(source="created_by.username", read_only=True, allow_null=True)

    class Meta:
        model = MachineCriticJob
        fields = ["id", "project", "config", "critic", "status", "cancel_requested", "outputs",
                  "progress_step", "progress_total", "percent", "report", "error", "created_by",
                  "created_at", "started_at", "finished_at"]  # fmt: skip

    def get_outputs(self, job: MachineCriticJob) -> int:
        return len(job.generation_ids or [])


class MachineCriticRunSerializer(serializers.Serializer):
    config = serializers.PrimaryKeyRelatedField(
        queryset=MachineCriticConfig.objects.select_related("project"),
        help_text="The project's critic configuration to run (GET /machine-critics/).",
    )
    generation_ids = serializers.ListField(
        child=serializers.IntegerField(min_value=1, max_value=2**31 - 1),
        required=False,
        min_length=1,
        max_length=10_000,
        help_text="Only these outputs of the project (default: all of them, less evaluation outputs).",
    )


class MachineCriticConfigFilter(filters.FilterSet):
    project = IdFilter(field_name="project_id")
    enabled = filters.BooleanFilter()

    class Meta:
        model = MachineCriticConfig
        fields = ["project", "enabled"]


class MachineCriticJobFilter(filters.FilterSet):
    project = IdFilter(field_name="project_id")
    config = IdFilter(field_name="config_id")
    status = filters.ChoiceFilter(choices=MachineCriticJob.Status.choices)

    class Meta:
        model = MachineCriticJob
        fields = ["project", "config", "status"]


class MachineCriticConfigViewSet(viewsets.ReadOnlyModelViewSet):
    """The machine critics each project uses, with their settings (configured on the project's page)."""

    serializer_class = MachineCriticConfigSerializer
    permission_classes = [AdminOnly]
    pagination_class = NewestFirstPagination
    filterset_class = MachineCriticConfigFilter
    lookup_value_regex = ID_REGEX
    queryset = MachineCriticConfig.objects.all()


class MachineCriticJobViewSet(mixins.CreateModelMixin, viewsets.ReadOnlyModelViewSet):
    """Runs of a machine critic: launch one (201), poll it until ``status`` is ``succeeded``, ``failed`` or
    ``cancelled``, cancel it."""

    serializer_class = MachineCriticJobSerializer
    permission_classes = [AdminOnly]
    pagination_class = NewestFirstPagination
    filterset_class = MachineCriticJobFilter
    lookup_value_regex = ID_REGEX
    queryset = MachineCriticJob.objects.select_related("created_by")

    @extend_schema(request=MachineCriticRunSerializer, responses={201: MachineCriticJobSerializer})
    def create(self, request, *args, **kwargs):
        """Queue a run of a project's critic over its outputs on the critics lane; outputs the critic
        already annotated are skipped by the run. 400 for a disabled critic, an archived project, outputs
        that are not the project's, or a project with none."""
        incoming = MachineCriticRunSerializer(data=request.data)
        incoming.is_valid(raise_exception=True)
        data = incoming.validated_data
        try:
            job = machine_services.machine_critic_run_start(
                config=data["config"], user=request.user, generation_ids=data.get("generation_ids")
            )
        except DjangoValidationError as exc:
            raise ValidationError({"detail": exc.messages}) from exc
        return Response(MachineCriticJobSerializer(job).data, status=status.HTTP_201_CREATED)

    @extend_schema(
        request=None,
        responses={200: MachineCriticJobSerializer, 409: OpenApiResponse(description="Already finished")},
    )
    @action(detail=True, methods=["post"])
    def cancel(self, request, pk=None):
        """A queued run ends at once; a running one stops before its next output (the drafts it wrote
        stay for review)."""
        job = self.get_object()
        if not machine_services.machine_critic_run_cancel(job=job, user=request.user):
            return Response(
                {"detail": f"The run had already finished ({job.status})."}, status=status.HTTP_409_CONFLICT
            )
        job.refresh_from_db()
        return Response(MachineCriticJobSerializer(job).data)
