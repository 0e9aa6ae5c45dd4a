"""Background prompt imports: follow one, cancel one (admins only, as importing is)."""

from __future__ import annotations

from django.db.models import QuerySet
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from .. import serializers
from ..imports import jobs as import_jobs
from ..models import PromptImport
from .permissions import ID_REGEX, AdminOnly
from .plumbing import NewestFirstPagination


class ImportViewSet(viewsets.ReadOnlyModelViewSet):
    """Prompt imports run as background jobs (``POST /projects/{id}/import/`` answered 202). Poll one until
    ``status`` is ``succeeded`` (its ``report`` counts what was written), ``failed`` (``error`` says why;
    ``report.errors`` lists bad lines) or ``cancelled``. Admins only."""

    serializer_class = serializers.PromptImportJobSerializer
    permission_classes = [AdminOnly]
    pagination_class = NewestFirstPagination
    lookup_value_regex = ID_REGEX
    queryset = PromptImport.objects.none()  # for the schema; requests use get_queryset

    def get_queryset(self) -> QuerySet[PromptImport]:
        return import_jobs.imports_visible_to(self.request.user).select_related("created_by")

    @extend_schema(
        request=None,
        responses={
            202: serializers.PromptImportJobSerializer,
            409: OpenApiResponse(description="The import has already finished."),
        },
    )
    @action(detail=True, methods=["post"])
    def cancel(self, request, pk=None):
        """Cancel a queued import (nothing is written) or a running one (it stops before its next chunk;
        the rows it wrote stay, and importing the file again skips them as duplicates)."""
        job = self.get_object()
        if not import_jobs.prompt_import_cancel(job=job, user=request.user):
            return Response(
                {"detail": f"Import {job.pk} has already finished ({job.status})."},
                status=status.HTTP_409_CONFLICT,
            )
        job.refresh_from_db()
        return Response(self.get_serializer(job).data, status=status.HTTP_202_ACCEPTED)
