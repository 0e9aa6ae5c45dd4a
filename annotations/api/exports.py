"""Dataset exports: create, follow, download."""

from __future__ import annotations

from django.db.models import QuerySet
from django.http import FileResponse, HttpResponseRedirect
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import exceptions, mixins, renderers, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from .. import exports, serializers
from ..exports import jobs as export_jobs
from ..models import DatasetExport
from .filters import ExportFilter
from .permissions import ID_REGEX, ResearcherOnly
from .plumbing import ExportRateThrottle, NewestFirstPagination, PassthroughRenderer


@extend_schema_view(
    create=extend_schema(
        request=serializers.ExportCreateSerializer,
        responses={
            202: serializers.DatasetExportSerializer,
            429: OpenApiResponse(description="Past your concurrent or hourly export limit."),
            507: OpenApiResponse(description="The exports disk is nearly full."),
        },
    )
)
class ExportViewSet(mixins.CreateModelMixin, viewsets.ReadOnlyModelViewSet):
    """Dataset exports (researchers and admins). Creating one queues a background job; poll it, then download.

    Each finished export records its resolved query, row count and the sha256 of its file: cite those.
    """

    serializer_class = serializers.DatasetExportSerializer
    permission_classes = [ResearcherOnly]
    pagination_class = NewestFirstPagination
    filterset_class = ExportFilter
    lookup_value_regex = ID_REGEX
    queryset = DatasetExport.objects.none()  # for the schema; requests use get_queryset

    def get_queryset(self) -> QuerySet[DatasetExport]:
        # Another user's export is a 404: its query may name annotators, its file may identify them.
        return export_jobs.exports_visible_to(self.request.user).select_related("created_by")

    def get_throttles(self):
        if self.action == "create":
            return [*super().get_throttles(), ExportRateThrottle()]
        return super().get_throttles()

    def create(self, request, *args, **kwargs):
        form = serializers.ExportCreateSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        try:
            export = export_jobs.export_create(
                kind=form.validated_data["kind"],
                fmt=form.validated_data["format"],
                query=form.validated_data["query"],
                created_by=request.user,
            )
        except exports.ExportQueryError as exc:
            raise exceptions.ValidationError({"query": exc.errors}) from exc
        except export_jobs.ExportRefused as exc:
            return Response({"detail": str(exc)}, status=exc.status)
        data = self.get_serializer(export).data
        return Response(data, status=status.HTTP_202_ACCEPTED, headers={"Location": f"{export.pk}/"})

    @extend_schema(
        responses={
            (200, "application/x-ndjson"): OpenApiTypes.BINARY,
            (200, "text/csv"): OpenApiTypes.BINARY,
            (200, "application/vnd.apache.parquet"): OpenApiTypes.BINARY,
            409: OpenApiResponse(description="The export has not finished (or failed, or its file is gone)."),
        }
    )
    @action(
        detail=True,
        methods=["get"],
        url_path="download",
        url_name="download",
        renderer_classes=[renderers.JSONRenderer, PassthroughRenderer],
    )
    def download(self, request, pk=None):
        """The export's file; its sha256 is in the ``X-Content-SHA256`` header and in ``content_hash``."""
        export = self.get_object()
        signed_url = export_jobs.export_signed_url(export)
        if signed_url:
            return HttpResponseRedirect(signed_url)
        stream = export_jobs.export_open(export)
        if stream is None:
            return Response(
                {"detail": f"Export {export.pk} has no file to download (status: {export.status})."},
                status=status.HTTP_409_CONFLICT,
            )
        response = FileResponse(
            stream,  # streamed from the artifact store in blocks; FileResponse closes it
            as_attachment=True,
            filename=export_jobs.export_download_name(export),
            content_type=exports.CONTENT_TYPES[export.format],
        )
        response["X-Content-SHA256"] = export.content_hash
        response["ETag"] = f'"{export.content_hash}"'
        export_jobs.export_downloaded(export=export, user=request.user)
        return response
