"""Outputs from production: ``POST /api/v1/projects/{id}/outputs/`` with a project ingest key.

The key is the whole authentication (no user, no session, no CSRF): ``Authorization: Bearer t2gi_…`` or
``X-Ingest-Key``. A missing, unknown or revoked key, or one of another project, answers 401 alike (so a
key tells nothing about other projects). Limits: ``T2G_INGEST_MAX_BYTES`` per body (413),
``T2G_INGEST_MAX_RECORDS`` records (400), the text and metadata limits per record (400, by record index),
a rate per key (429).
"""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth.models import AnonymousUser
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiResponse, extend_schema
from rest_framework import authentication, exceptions, permissions, status
from rest_framework.parsers import JSONParser
from rest_framework.response import Response
from rest_framework.views import APIView

from ..models import IngestKey
from ..services import ingest
from .plumbing import _SettingsRateThrottle


def _raw_key(request) -> str:
    header = request.META.get("HTTP_AUTHORIZATION", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return request.META.get("HTTP_X_INGEST_KEY", "").strip()


class IngestKeyAuthentication(authentication.BaseAuthentication):
    """``request.auth`` is the project ingest key the request carries; there is no user."""

    def authenticate(self, request):
        raw = _raw_key(request)
        if not raw:
            return None
        key = ingest.ingest_key_find(raw)
        if key is None:
            raise exceptions.AuthenticationFailed("Invalid or revoked ingest key.")
        return AnonymousUser(), key

    def authenticate_header(self, request) -> str:
        return 'Bearer realm="ingest"'


class IngestKeyForProject(permissions.BasePermission):
    message = "Invalid or revoked ingest key."

    def has_permission(self, request, view) -> bool:
        key = request.auth
        if not isinstance(key, IngestKey):
            raise exceptions.NotAuthenticated("Send the project's ingest key: Authorization: Bearer t2gi_…")
        if str(key.project_id) != str(view.kwargs.get("pk")) or key.project.is_archived:
            raise exceptions.AuthenticationFailed(self.message)
        return True


class IngestRateThrottle(_SettingsRateThrottle):
    """Per ingest key (a team's application behind one address is still one client per key)."""

    scope = "ingest"
    default_rate = "600/min"

    def get_cache_key(self, request, view):
        key = request.auth
        ident = f"key-{key.pk}" if isinstance(key, IngestKey) else self.get_ident(request)
        return self.cache_format % {"scope": self.scope, "ident": ident}


EXAMPLE = {
    "records": [
        {
            "prompt": "Summarize: the cat sat on the mat.",
            "output": "A cat sat.",
            "source_model": "gpt-4o-mini",
            "metadata": {"request_id": "chatcmpl-123", "user_tier": "free"},
            "idempotency_key": "chatcmpl-123",
        }
    ]
}


class OutputIngestView(APIView):
    authentication_classes = [IngestKeyAuthentication]
    permission_classes = [IngestKeyForProject]
    throttle_classes = [IngestRateThrottle]
    parser_classes = [JSONParser]

    @extend_schema(
        operation_id="project_outputs_ingest",
        request=OpenApiTypes.OBJECT,
        responses={
            201: OpenApiResponse(description="At least one record became a new output"),
            200: OpenApiResponse(description="Every record had been sent before (same idempotency keys)"),
            400: OpenApiResponse(description="Bad records, by index; nothing was written"),
            401: OpenApiResponse(description="Missing, unknown or revoked key, or another project's"),
            409: OpenApiResponse(description="An idempotency key was used for a different record"),
            413: OpenApiResponse(description="Body larger than T2G_INGEST_MAX_BYTES"),
        },
        examples=[OpenApiExample("Two records", value=EXAMPLE, request_only=True)],
        auth=[],
    )
    def post(self, request, pk: str):
        """Send one record, or many as ``{"records": [...]}`` (or a JSON list): ``prompt``, ``output``,
        optional ``source_model``, ``metadata`` (an object) and ``idempotency_key`` (or the
        ``Idempotency-Key`` header, for one record). Every record becomes an output annotators get in
        the project's queue; all are written or none."""
        length = request.META.get("CONTENT_LENGTH") or "0"
        if not length.isdigit() or int(length) > settings.T2G_INGEST_MAX_BYTES:
            return Response(
                {"detail": f"The body must be at most {settings.T2G_INGEST_MAX_BYTES} bytes."},
                status=status.HTTP_413_REQUEST_ENTITY_TOO_LARGE,
            )
        body = request.data
        single = isinstance(body, dict) and "records" not in body
        raw_records = [body] if single else body.get("records") if isinstance(body, dict) else body
        if not isinstance(raw_records, list) or not raw_records:
            raise exceptions.ValidationError({"records": ["Send a record, or a non-empty list of records."]})
        limit = settings.T2G_INGEST_MAX_RECORDS
        if len(raw_records) > limit:
            raise exceptions.ValidationError({"records": [f"At most {limit} records per request."]})
        header_key = request.META.get("HTTP_IDEMPOTENCY_KEY", "").strip()
        if header_key and single and isinstance(body, dict) and not body.get("idempotency_key"):
            raw_records = [{**body, "idempotency_key": header_key}]
        records, problems = [], {}
        for index, raw in enumerate(raw_records):
            record, errors = ingest.ingest_record_clean(raw)
            if errors:
                problems[str(index)] = errors
            records.append(record)
        if problems:
            raise exceptions.ValidationError({"records": problems})
        key: IngestKey = request.auth
        try:
            results = ingest.outputs_ingest(project=key.project, records=records, ingest_key=key)
        except ingest.IngestError as exc:
            problems = {str(index): errors for index, errors in exc.problems.items()}
            return Response(
                {"detail": "Idempotency key reused.", "records": problems}, status=status.HTTP_409_CONFLICT
            )
        created = sum(1 for row in results if row["created"])
        answer = {"created": created, "duplicates": len(results) - created, "results": results}
        return Response(answer, status=status.HTTP_201_CREATED if created else status.HTTP_200_OK)
