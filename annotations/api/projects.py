"""Projects (with prompt imports), prompts and outputs."""

from __future__ import annotations

from django.conf import settings
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import exceptions, mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.response import Response

from .. import roles, serializers, services
from ..imports import jobs as import_jobs
from ..imports.parsing import ImportFileError, detect_format
from ..models import Generation, Project, Prompt
from .feedback import annotations_visible_to
from .filters import GenerationFilter, ProjectFilter, PromptFilter
from .permissions import ID_REGEX, HasRole, ReadAnyRoleWriteAdmin
from .plumbing import IdCursorPagination, ImportRateThrottle


class ProjectViewSet(mixins.CreateModelMixin, mixins.UpdateModelMixin, viewsets.ReadOnlyModelViewSet):
    """Projects. Every role reads them; admins create and change them (archive with ``is_archived``)."""

    serializer_class = serializers.ProjectSerializer
    permission_classes = [ReadAnyRoleWriteAdmin]
    pagination_class = IdCursorPagination
    filterset_class = ProjectFilter
    lookup_value_regex = ID_REGEX
    queryset = Project.objects.all()

    @extend_schema(
        request={"multipart/form-data": serializers.PromptImportSerializer},
        responses={
            201: serializers.ImportReportSerializer,
            202: serializers.PromptImportJobSerializer,
            400: serializers.ImportReportSerializer,
            413: OpenApiResponse(description="The file is larger than T2G_IMPORT_MAX_BYTES."),
        },
    )
    @action(
        detail=True,
        methods=["post"],
        url_path="import",
        parser_classes=[MultiPartParser, FormParser],
        throttle_classes=[ImportRateThrottle],
    )
    def import_prompts(self, request, pk=None):
        """Import prompts (and optionally existing outputs with their source model) from JSONL or CSV.

        All or nothing unless ``allow_partial``: a file with bad lines answers 400 with every bad line's
        number and message, and imports nothing. Prompts already in the project (same text) are skipped.
        A file over T2G_IMPORT_SYNC_MAX_BYTES (or any with ``background``) is stored and imported by a
        background job on the interactive lane: 202 with the job; follow it at ``/api/v1/imports/{id}/``.
        """
        project = self.get_object()
        limit = settings.T2G_IMPORT_MAX_BYTES
        try:
            declared = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            declared = 0
        if declared > limit + 64 * 1024:
            raise PayloadTooLarge(f"The upload is {declared:,} bytes; the limit is {limit:,} bytes.")
        form = serializers.PromptImportSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        upload = form.validated_data["file"]
        if upload.size > limit:
            raise PayloadTooLarge(f"The file is {upload.size:,} bytes; the limit is {limit:,} bytes.")
        try:
            fmt = form.validated_data.get("format") or detect_format(upload.name or "")
            if import_jobs.import_runs_in_background(upload.size, asked=form.validated_data["background"]):
                job = import_jobs.prompt_import_create(
                    project=project,
                    upload=upload,
                    size=upload.size,
                    fmt=fmt,
                    file_name=upload.name or "",
                    allow_partial=form.validated_data["allow_partial"],
                    user=request.user,
                )
                data = serializers.PromptImportJobSerializer(job).data
                return Response(
                    data, status=status.HTTP_202_ACCEPTED, headers={"Location": f"/api/v1/imports/{job.pk}/"}
                )
            report = import_jobs.prompts_upload(
                project=project,
                data=upload.read(limit + 1),
                fmt=fmt,
                allow_partial=form.validated_data["allow_partial"],
                user=request.user,
            )
        except ImportFileError as exc:
            raise exceptions.ValidationError({"file": [str(exc)]}) from exc
        code = status.HTTP_201_CREATED if report.committed else status.HTTP_400_BAD_REQUEST
        return Response(report.as_dict(), status=code)

    @extend_schema(
        request=None,
        responses={
            200: serializers.AnnotationNextSerializer,
            204: OpenApiResponse(description="Nothing in this project needs your annotation now."),
        },
    )
    @action(detail=True, methods=["post"], permission_classes=[HasRole])
    def next(self, request, pk=None):
        """Lease the next output of this project that needs an annotation; its draft comes back to edit."""
        if not roles.is_annotator(request.user):
            raise exceptions.PermissionDenied("Only annotators take outputs from the queue.")
        project = self.get_object()
        assignment = services.assignment_next(project=project, annotator=request.user)
        if assignment is None:
            return Response(status=status.HTTP_204_NO_CONTENT)
        annotation = annotations_visible_to(request.user).get(
            generation_id=assignment.generation_id, annotator=request.user
        )
        data = {"annotation": annotation, "expires_at": assignment.expires_at}
        return Response(serializers.AnnotationNextSerializer(data, context={"request": request}).data)


class PayloadTooLarge(exceptions.APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_detail = "The request is too large."
    default_code = "too_large"


class PromptViewSet(mixins.CreateModelMixin, viewsets.ReadOnlyModelViewSet):
    """Prompts. Every role reads them; admins add them one by one here or in bulk with projects/{id}/import/."""

    serializer_class = serializers.PromptSerializer
    permission_classes = [ReadAnyRoleWriteAdmin]
    pagination_class = IdCursorPagination
    filterset_class = PromptFilter
    lookup_value_regex = ID_REGEX
    queryset = Prompt.objects.all()


class GenerationViewSet(viewsets.ReadOnlyModelViewSet):
    """Model outputs with the token ids and behaviour log-probabilities recorded when they were sampled."""

    serializer_class = serializers.GenerationSerializer
    permission_classes = [HasRole]
    pagination_class = IdCursorPagination
    filterset_class = GenerationFilter
    lookup_value_regex = ID_REGEX
    queryset = Generation.objects.select_related("prompt", "model_version")
