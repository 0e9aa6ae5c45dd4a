"""REST API for projects, prompts, outputs, annotations, token rewards, exports and imports (/api/v1/).

Roles: every role reads projects, prompts and outputs; annotators read only their own annotations (another's
id is a 404, not a 403, so ids leak nothing); researchers read all feedback and run exports but write nothing
else; admins write. Lists use cursor pagination; every endpoint is throttled.
"""

from __future__ import annotations

import json
from datetime import UTC

from axes.handlers.proxy import AxesProxyHandler
from django import forms
from django.conf import settings
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db.models import QuerySet
from django.http import FileResponse, HttpResponseRedirect
from django_filters import rest_framework as filters
from django_filters.fields import IsoDateTimeField
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import exceptions, mixins, permissions, renderers, status, viewsets
from rest_framework.authtoken.models import Token
from rest_framework.authtoken.views import ObtainAuthToken
from rest_framework.decorators import action
from rest_framework.pagination import CursorPagination
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.response import Response
from rest_framework.throttling import AnonRateThrottle, UserRateThrottle
from rest_framework.views import APIView

from audit.services import audit_record

from . import datasets, exports, roles, serializers, services
from .importers import ImportFileError, detect_format
from .models import Annotation, DatasetExport, Generation, Project, Prompt, TokenReward

ID_REGEX = r"[0-9]{1,18}"  # ids beyond bigint are a 404 from the router, never a database error
MAX_ID = 2**63 - 1


# --- permissions ----------------------------------------------------------------------------------
class HasRole(permissions.BasePermission):
    """Any of the three roles; an account with no role sees nothing."""

    message = roles.NO_ROLE_MESSAGE

    def has_permission(self, request, view) -> bool:
        return bool(roles.role_names(request.user))


class ReadAnyRoleWriteAdmin(HasRole):
    message = "Only admins can change this."

    def has_permission(self, request, view) -> bool:
        if request.method in permissions.SAFE_METHODS:
            return super().has_permission(request, view)
        return roles.is_admin(request.user)


class ResearcherReadAdminWrite(permissions.BasePermission):
    message = "Researchers and admins can read this; only admins can change it."

    def has_permission(self, request, view) -> bool:
        if request.method in permissions.SAFE_METHODS:
            return roles.can_read_all_feedback(request.user)
        return roles.is_admin(request.user)


class ResearcherOnly(permissions.BasePermission):
    message = "Only researchers and admins can do this."

    def has_permission(self, request, view) -> bool:
        return roles.can_read_all_feedback(request.user)


# --- throttles, pagination, renderers -------------------------------------------------------------
class _SettingsRateThrottle(UserRateThrottle):
    """A scoped throttle whose rate comes from REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"][scope] if set."""

    default_rate = "60/hour"

    def get_rate(self) -> str:
        rates = getattr(settings, "REST_FRAMEWORK", {}).get("DEFAULT_THROTTLE_RATES", {})
        return rates.get(self.scope) or self.default_rate


class ExportRateThrottle(_SettingsRateThrottle):
    scope = "exports"
    default_rate = "120/hour"


class ImportRateThrottle(_SettingsRateThrottle):
    scope = "imports"
    default_rate = "60/hour"


class LoginRateThrottle(AnonRateThrottle):
    scope = "login"

    def get_rate(self) -> str:
        rates = getattr(settings, "REST_FRAMEWORK", {}).get("DEFAULT_THROTTLE_RATES", {})
        return rates.get(self.scope) or "20/min"


class IdCursorPagination(CursorPagination):
    ordering = "id"
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 500


class NewestFirstPagination(IdCursorPagination):
    ordering = "-id"


class PassthroughRenderer(renderers.BaseRenderer):
    """Lets a file download answer any Accept header; errors are still JSON."""

    media_type = "*/*"
    format = "file"

    def render(self, data, accepted_media_type=None, renderer_context=None) -> bytes:
        return json.dumps(data).encode() if isinstance(data, dict | list) else (data or b"")


class LockedOut(exceptions.Throttled):
    default_detail = "Too many failed logins for this account: it is locked for a while. Try again later."
    default_code = "locked_out"


class TokenObtainView(ObtainAuthToken):
    """Trade a username and password for an API token (send it as ``Authorization: Token <key>``).

    Failures count towards the same lockout as the login page (django-axes, in the database): past the
    limit the answer is 429 for the cool-off period, even with the right password.
    """

    throttle_classes = [LoginRateThrottle]

    def post(self, request, *args, **kwargs):
        username = request.data.get("username") if hasattr(request.data, "get") else None
        credentials = {"username": username if isinstance(username, str) else ""}
        # The HttpRequest: axes keeps its per-request attributes there, and DRF's wrapper does not.
        wait = int(settings.AXES_COOLOFF_TIME.total_seconds())
        if not AxesProxyHandler.is_allowed(request._request, credentials):
            raise LockedOut(wait=wait)
        try:
            response = super().post(request, *args, **kwargs)
        except exceptions.ValidationError:
            if getattr(request, "axes_locked_out", False):  # this failure reached the limit
                raise LockedOut(wait=wait) from None
            raise
        user = Token.objects.select_related("user").get(key=response.data["token"]).user
        audit_record(action="login.token", actor=user, obj=user)
        return response


class MeView(APIView):
    @extend_schema(responses={200: serializers.MeSerializer})
    def get(self, request):
        """Who the token or session belongs to, and their roles."""
        user = request.user
        return Response({"id": user.pk, "username": user.get_username(), "roles": roles.role_names(user)})


# --- filters --------------------------------------------------------------------------------------
class UTCDateTimeField(IsoDateTimeField):
    """An ISO 8601 date-time, moved to UTC: PostgreSQL refuses UTC offsets beyond ±15:59, Python does not."""

    def to_python(self, value):
        moment = super().to_python(value)
        if moment is None:
            return None
        try:
            return moment.astimezone(UTC)
        except (OverflowError, ValueError) as exc:
            raise forms.ValidationError("The date-time is out of range.", code="overflow") from exc


class DateTimeFilter(filters.IsoDateTimeFilter):
    field_class = UTCDateTimeField


class IdFilter(filters.NumberFilter):
    field_class = forms.IntegerField

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("min_value", 1)
        kwargs.setdefault("max_value", MAX_ID)
        super().__init__(*args, **kwargs)


class ProjectFilter(filters.FilterSet):
    kind = filters.ChoiceFilter(choices=Project.Kind.choices)
    is_archived = filters.BooleanFilter()

    class Meta:
        model = Project
        fields = ["kind", "is_archived"]


class PromptFilter(filters.FilterSet):
    project = IdFilter(field_name="project_id")
    external_id = filters.CharFilter(max_length=200)
    created_after = DateTimeFilter(field_name="created_at", lookup_expr="gte")
    created_before = DateTimeFilter(field_name="created_at", lookup_expr="lt")

    class Meta:
        model = Prompt
        fields = ["project", "external_id"]


class GenerationFilter(filters.FilterSet):
    project = IdFilter(field_name="prompt__project_id")
    prompt = IdFilter(field_name="prompt_id")
    model_version = IdFilter(field_name="model_version_id")
    source_model = filters.CharFilter(max_length=300)
    created_after = DateTimeFilter(field_name="created_at", lookup_expr="gte")
    created_before = DateTimeFilter(field_name="created_at", lookup_expr="lt")

    class Meta:
        model = Generation
        fields = ["project", "prompt", "model_version", "source_model"]


class AnnotationFilter(filters.FilterSet):
    project = IdFilter(field_name="generation__prompt__project_id")
    generation = IdFilter(field_name="generation_id")
    model_version = IdFilter(field_name="generation__model_version_id")
    annotator = IdFilter(field_name="annotator_id")
    status = filters.ChoiceFilter(choices=Annotation.Status.choices)
    submitted_after = DateTimeFilter(field_name="submitted_at", lookup_expr="gte")
    submitted_before = DateTimeFilter(field_name="submitted_at", lookup_expr="lt")
    created_after = DateTimeFilter(field_name="created_at", lookup_expr="gte")
    created_before = DateTimeFilter(field_name="created_at", lookup_expr="lt")

    class Meta:
        model = Annotation
        fields = ["project", "generation", "model_version", "annotator", "status"]


class TokenRewardFilter(filters.FilterSet):
    project = IdFilter(field_name="annotation__generation__prompt__project_id")
    annotation = IdFilter(field_name="annotation_id")
    generation = IdFilter(field_name="annotation__generation_id")
    model_version = IdFilter(field_name="annotation__generation__model_version_id")
    annotator = IdFilter(field_name="annotation__annotator_id")
    status = filters.ChoiceFilter(field_name="annotation__status", choices=Annotation.Status.choices)
    tokenizer_fingerprint = filters.CharFilter(max_length=64)
    computed_after = DateTimeFilter(field_name="computed_at", lookup_expr="gte")
    computed_before = DateTimeFilter(field_name="computed_at", lookup_expr="lt")

    class Meta:
        model = TokenReward
        fields = ["project", "annotation", "model_version", "annotator", "tokenizer_fingerprint"]


class ExportFilter(filters.FilterSet):
    kind = filters.ChoiceFilter(choices=[(k, k) for k in exports.KINDS])
    format = filters.ChoiceFilter(choices=[(f, f) for f in exports.FORMATS])
    status = filters.ChoiceFilter(choices=DatasetExport.Status.choices)
    created_after = DateTimeFilter(field_name="created_at", lookup_expr="gte")
    created_before = DateTimeFilter(field_name="created_at", lookup_expr="lt")

    class Meta:
        model = DatasetExport
        fields = ["kind", "format", "status"]


# --- viewsets -------------------------------------------------------------------------------------
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
            report = datasets.prompts_upload(
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


def annotations_visible_to(user) -> QuerySet[Annotation]:
    """Everything for researchers and admins; annotators only their own."""
    queryset = Annotation.objects.all()
    if not roles.can_read_all_feedback(user):
        queryset = queryset.filter(annotator=user)
    return queryset


class AnnotatorWritesOwn(HasRole):
    """Reads for every role (the queryset narrows annotators to their own); writes for annotators, on their
    own drafts only (the services check ownership and status under a row lock)."""

    message = "Only annotators can write annotations, and only their own drafts."

    def has_permission(self, request, view) -> bool:
        if request.method in permissions.SAFE_METHODS:
            return super().has_permission(request, view)
        return roles.is_annotator(request.user)


def _service_call(function, **kwargs):
    """Run an annotation service, turning its Django validation errors into a 400."""
    try:
        return function(**kwargs)
    except DjangoValidationError as exc:
        raise exceptions.ValidationError({"detail": exc.messages}) from exc


def _overall(data: dict) -> dict:
    fields = {key: data[key] for key in ("overall_critique", "rating") if key in data}
    if "time_spent_seconds" in data:
        fields["time_spent"] = data["time_spent_seconds"]
    return fields


@extend_schema_view(
    partial_update=extend_schema(
        request=serializers.AnnotationDraftSerializer, responses={200: serializers.AnnotationSerializer}
    )
)
class AnnotationViewSet(mixins.UpdateModelMixin, viewsets.ReadOnlyModelViewSet):
    """Annotations with their spans and critiques. Annotators see only their own (another's id is a 404)
    and edit their own drafts; researchers and admins read everything."""

    serializer_class = serializers.AnnotationSerializer
    permission_classes = [AnnotatorWritesOwn]
    pagination_class = IdCursorPagination
    filterset_class = AnnotationFilter
    lookup_value_regex = ID_REGEX
    http_method_names = ["get", "patch", "post", "head", "options"]
    queryset = Annotation.objects.none()  # for the schema; requests use get_queryset

    def get_queryset(self) -> QuerySet[Annotation]:
        return (
            annotations_visible_to(self.request.user)
            .select_related("annotator", "generation__prompt", "review")
            .prefetch_related("spans")
        )

    def partial_update(self, request, *args, **kwargs):
        """Save a draft: overall critique, rating, time spent and (optionally) the complete list of spans."""
        annotation = self.get_object()
        form = serializers.AnnotationDraftSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        fields = _overall(form.validated_data)
        if "spans" in form.validated_data:
            fields["spans"] = [dict(span) for span in form.validated_data["spans"]]
        _service_call(services.annotation_save_draft, annotation=annotation, user=request.user, **fields)
        return Response(self.get_serializer(self.get_queryset().get(pk=annotation.pk)).data)

    @extend_schema(
        request=serializers.AnnotationOverallSerializer, responses={200: serializers.AnnotationSerializer}
    )
    @action(detail=True, methods=["post"])
    def submit(self, request, pk=None):
        """Submit a draft (saving the given overall fields first). It needs a span or an overall critique."""
        annotation = self.get_object()
        form = serializers.AnnotationOverallSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        fields = _overall(form.validated_data)
        _service_call(services.annotation_submit, annotation=annotation, user=request.user, **fields)
        return Response(self.get_serializer(self.get_queryset().get(pk=annotation.pk)).data)


class TokenRewardViewSet(viewsets.ReadOnlyModelViewSet):
    """Per-token rewards of each annotation under a tokenizer (researchers and admins)."""

    serializer_class = serializers.TokenRewardSerializer
    permission_classes = [ResearcherOnly]
    pagination_class = IdCursorPagination
    filterset_class = TokenRewardFilter
    lookup_value_regex = ID_REGEX
    queryset = TokenReward.objects.select_related("annotation__generation")


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
        return datasets.exports_visible_to(self.request.user).select_related("created_by")

    def get_throttles(self):
        if self.action == "create":
            return [*super().get_throttles(), ExportRateThrottle()]
        return super().get_throttles()

    def create(self, request, *args, **kwargs):
        form = serializers.ExportCreateSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        try:
            export = datasets.export_create(
                kind=form.validated_data["kind"],
                fmt=form.validated_data["format"],
                query=form.validated_data["query"],
                created_by=request.user,
            )
        except exports.ExportQueryError as exc:
            raise exceptions.ValidationError({"query": exc.errors}) from exc
        except datasets.ExportRefused as exc:
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
        signed_url = datasets.export_signed_url(export)
        if signed_url:
            return HttpResponseRedirect(signed_url)
        stream = datasets.export_open(export)
        if stream is None:
            return Response(
                {"detail": f"Export {export.pk} has no file to download (status: {export.status})."},
                status=status.HTTP_409_CONFLICT,
            )
        response = FileResponse(
            stream,  # streamed from the artifact store in blocks; FileResponse closes it
            as_attachment=True,
            filename=datasets.export_download_name(export),
            content_type=exports.CONTENT_TYPES[export.format],
        )
        response["X-Content-SHA256"] = export.content_hash
        response["ETag"] = f'"{export.content_hash}"'
        datasets.export_downloaded(export=export, user=request.user)
        return response
