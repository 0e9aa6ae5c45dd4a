"""Annotations (annotators write their own drafts through the services)."""

from __future__ import annotations

from django.core.exceptions import ValidationError as DjangoValidationError
from django.db.models import QuerySet
from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import exceptions, mixins, permissions, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from .. import roles, serializers, services
from ..models import Annotation
from .filters import AnnotationFilter
from .permissions import ID_REGEX, HasRole
from .plumbing import IdCursorPagination


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
