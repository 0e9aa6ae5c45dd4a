"""REST API for downloads of model versions and their model cards (researchers and admins).

``POST /api/v1/model-versions/<id>/downloads/`` with ``{"kind": "adapter" | "merged"}`` answers 200 with a
build that is ready (its ``file`` link streams a ``.tar``) or 202 with one a worker is building (poll
``/api/v1/model-downloads/<id>/``); asking again for the same version and card never builds twice.
``GET /api/v1/model-versions/<id>/card/`` is the version's model card as Markdown.
"""

from __future__ import annotations

from django.http import HttpResponse, JsonResponse, StreamingHttpResponse
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import renderers, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response
from rest_framework.reverse import reverse
from rest_framework.views import APIView

from annotations.api import ID_REGEX, NewestFirstPagination, ResearcherOnly
from annotations.api.plumbing import PassthroughRenderer

from ..models import ModelDownload, ModelVersion
from ..services import downloads


class ModelDownloadSerializer(serializers.ModelSerializer):
    version_name = serializers.CharField(source="version.name", read_only=True)
    file = serializers.SerializerMethodField(
        help_text="Streams the folder as a .tar once the build succeeded."
    )

    class Meta:
        model = ModelDownload
        fields = [
            "id",
            "version",
            "version_name",
            "kind",
            "status",
            "percent",
            "card_hash",
            "content_hash",
            "size_bytes",
            "error",
            "created_at",
            "finished_at",
            "file",
        ]
        read_only_fields = fields

    def get_file(self, download: ModelDownload) -> str | None:
        if download.status != ModelDownload.Status.SUCCEEDED:
            return None
        return reverse("api-model-download-file", args=[download.pk], request=self.context.get("request"))


class DownloadRequestSerializer(serializers.Serializer):
    kind = serializers.ChoiceField(choices=ModelDownload.Kind.choices)


def _tar_response(download: ModelDownload, user) -> StreamingHttpResponse:
    try:
        chunks, length, filename = downloads.download_stream(download=download, user=user)
    except downloads.DownloadUnavailable as exc:
        return JsonResponse({"detail": str(exc)}, status=409)
    response = StreamingHttpResponse(chunks, content_type="application/x-tar")
    response["Content-Length"] = str(length)
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    response["X-Content-SHA256"] = download.content_hash  # of the folder's manifest, as stored
    response["Cache-Control"] = "private, no-store"
    return response


class VersionDownloadsView(APIView):
    """Ask for a version's download: 200 when it is ready, 202 while a worker builds it."""

    permission_classes = [ResearcherOnly]

    @extend_schema(
        request=DownloadRequestSerializer,
        responses={
            200: ModelDownloadSerializer,
            202: ModelDownloadSerializer,
            409: OpenApiResponse(description="The bare base model has no adapter"),
        },
    )
    def post(self, request, pk: int):
        version = get_object_or_404(ModelVersion, pk=pk)
        incoming = DownloadRequestSerializer(data=request.data)
        incoming.is_valid(raise_exception=True)
        try:
            download = downloads.download_request(
                version=version, kind=incoming.validated_data["kind"], user=request.user
            )
        except downloads.DownloadUnavailable as exc:
            return Response({"detail": str(exc)}, status=status.HTTP_409_CONFLICT)
        ready = download.status == ModelDownload.Status.SUCCEEDED
        data = ModelDownloadSerializer(download, context={"request": request}).data
        response = Response(data, status=status.HTTP_200_OK if ready else status.HTTP_202_ACCEPTED)
        if not ready:
            response["Retry-After"] = "5"
        return response


class VersionCardView(APIView):
    """The version's model card (Hugging Face format: YAML front matter, then Markdown)."""

    permission_classes = [ResearcherOnly]
    renderer_classes = [renderers.JSONRenderer, PassthroughRenderer]  # errors are JSON

    @extend_schema(responses={(200, "text/markdown"): OpenApiResponse(description="README.md")})
    def get(self, request, pk: int):
        version = get_object_or_404(ModelVersion, pk=pk)
        return HttpResponse(downloads.version_card_text(version), content_type="text/markdown; charset=utf-8")


class ModelDownloadViewSet(viewsets.ReadOnlyModelViewSet):
    """Download builds, newest first; ``file`` streams a finished one."""

    serializer_class = ModelDownloadSerializer
    permission_classes = [ResearcherOnly]
    pagination_class = NewestFirstPagination
    lookup_value_regex = ID_REGEX

    def get_queryset(self):
        return downloads.downloads_visible_to(self.request.user)

    @extend_schema(
        responses={
            (200, "application/x-tar"): OpenApiResponse(description="The folder as a .tar"),
            409: OpenApiResponse(description="Not built yet"),
        }
    )
    @action(
        detail=True,
        methods=["get"],
        url_path="file",
        url_name="file",
        renderer_classes=[renderers.JSONRenderer, PassthroughRenderer],
    )
    def file(self, request, pk=None):
        """The download's folder as one ``.tar``, streamed from the artifact store."""
        return _tar_response(self.get_object(), request.user)
