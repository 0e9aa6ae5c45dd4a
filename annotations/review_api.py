"""REST API for agreement, reviews and gold annotations (/api/v1/).

Permissions follow the existing rules: researchers and admins read all feedback (agreement included);
reviewers (and admins) read it too and write verdicts and gold; annotators read only the verdicts on their
own annotations (another's is a 404) and never see agreement or gold. Annotators appear as pseudonyms.
"""

from __future__ import annotations

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db.models import F, QuerySet
from django.shortcuts import get_object_or_404
from django_filters import rest_framework as filters
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import exceptions, mixins, permissions, status, viewsets
from rest_framework.pagination import CursorPagination
from rest_framework.response import Response
from rest_framework.views import APIView

from . import review_selectors, review_serializers, roles, services
from .api import ID_REGEX, HasRole, IdCursorPagination, IdFilter
from .models import Annotation, Generation, OutputAgreement, Project, Review


class QualityReader(permissions.BasePermission):
    message = "Only researchers, reviewers and admins read agreement and gold annotations."

    def has_permission(self, request, view) -> bool:
        if request.method in permissions.SAFE_METHODS:
            return roles.reads_quality(request.user)
        return roles.is_reviewer(request.user)


class ReviewerWrites(HasRole):
    message = "Only reviewers and admins write verdicts."

    def has_permission(self, request, view) -> bool:
        if request.method in permissions.SAFE_METHODS:
            return super().has_permission(request, view)
        return roles.is_reviewer(request.user)


def _service(function, **kwargs):
    try:
        return function(**kwargs)
    except DjangoValidationError as exc:
        raise exceptions.ValidationError({"detail": exc.messages}) from exc
    except DjangoPermissionDenied as exc:
        raise exceptions.PermissionDenied(str(exc)) from exc


class ReviewFilter(filters.FilterSet):
    project = IdFilter(field_name="annotation__generation__prompt__project_id")
    generation = IdFilter(field_name="annotation__generation_id")
    verdict = filters.ChoiceFilter(choices=Review.Verdict.choices)

    class Meta:
        model = Review
        fields = ["project", "generation", "verdict"]


class ReviewViewSet(mixins.CreateModelMixin, viewsets.ReadOnlyModelViewSet):
    """Verdicts on submitted annotations. Reviewers and admins post them (a second post replaces the verdict);
    researchers read them all; annotators read the verdicts on their own work."""

    serializer_class = review_serializers.ReviewSerializer
    permission_classes = [ReviewerWrites]
    pagination_class = IdCursorPagination
    filterset_class = ReviewFilter
    lookup_value_regex = ID_REGEX
    queryset = Review.objects.none()  # for the schema; requests use get_queryset

    def get_queryset(self) -> QuerySet[Review]:
        queryset = Review.objects.select_related("annotation")
        if not roles.reads_quality(self.request.user):
            queryset = queryset.filter(annotation__annotator=self.request.user)
        return queryset

    @extend_schema(
        request=review_serializers.ReviewWriteSerializer, responses={201: review_serializers.ReviewSerializer}
    )
    def create(self, request, *args, **kwargs):
        form = review_serializers.ReviewWriteSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        annotation = get_object_or_404(
            Annotation, pk=form.validated_data["annotation"], status=Annotation.Status.SUBMITTED
        )
        review = _service(
            services.review_set,
            annotation=annotation,
            reviewer=request.user,
            verdict=form.validated_data["verdict"],
            comment=form.validated_data.get("comment", ""),
        )
        return Response(self.get_serializer(review).data, status=status.HTTP_201_CREATED)


class AgreementFilter(filters.FilterSet):
    project = IdFilter(field_name="generation__prompt__project_id")
    max_score = filters.NumberFilter(field_name="score", lookup_expr="lte")
    has_gold = filters.BooleanFilter()

    class Meta:
        model = OutputAgreement
        fields = ["project", "max_score", "has_gold"]


class LowestFirstPagination(CursorPagination):
    ordering = ("score", "generation_id")
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 500


class AgreementViewSet(viewsets.ReadOnlyModelViewSet):
    """Per-output agreement, lowest first (outputs measured on two or more annotations): alpha over
    characters and tokens, mean pairwise span F1, each pair and each annotator against gold, and the
    coincidence matrices (which add up across outputs). The id is the output's (generation's) id."""

    serializer_class = review_serializers.OutputAgreementSerializer
    permission_classes = [QualityReader]
    pagination_class = LowestFirstPagination
    filterset_class = AgreementFilter
    lookup_value_regex = ID_REGEX
    queryset = OutputAgreement.objects.filter(score__isnull=False).order_by(F("score").asc(), "generation_id")


class ProjectAgreementView(APIView):
    """A project's agreement: pooled alpha, per label, per week, per annotator (with the others and with
    gold) and per pair."""

    permission_classes = [QualityReader]

    @extend_schema(responses={200: review_serializers.ProjectAgreementSerializer})
    def get(self, request, pk: int):
        project = get_object_or_404(Project, pk=pk)
        report = review_selectors.project_agreement(project)
        return Response(review_serializers.ProjectAgreementSerializer(report).data)


class GoldView(APIView):
    """An output's gold annotation: researchers and reviewers read it; reviewers replace it whole (PUT);
    admins may set it before anyone annotated (a honeypot) and delete it."""

    permission_classes = [QualityReader]

    def _gold(self, pk: int) -> Annotation:
        return get_object_or_404(Annotation.objects.prefetch_related("spans"), generation_id=pk, is_gold=True)

    @extend_schema(
        responses={200: review_serializers.GoldSerializer, 404: OpenApiResponse(description="No gold.")}
    )
    def get(self, request, pk: int):
        return Response(review_serializers.GoldSerializer(self._gold(pk)).data)

    @extend_schema(
        request=review_serializers.GoldWriteSerializer, responses={200: review_serializers.GoldSerializer}
    )
    def put(self, request, pk: int):
        generation = get_object_or_404(Generation, pk=pk)
        form = review_serializers.GoldWriteSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        fields = {
            key: form.validated_data[key]
            for key in ("overall_critique", "rating")
            if key in form.validated_data
        }
        _service(
            services.gold_save,
            generation=generation,
            reviewer=request.user,
            spans=[dict(span) for span in form.validated_data["spans"]],
            **fields,
        )
        return Response(review_serializers.GoldSerializer(self._gold(pk)).data)

    @extend_schema(responses={204: None})
    def delete(self, request, pk: int):
        generation = get_object_or_404(Generation, pk=pk)
        if not _service(services.gold_delete, generation=generation, reviewer=request.user):
            raise exceptions.NotFound("This output has no gold annotation.")
        return Response(status=status.HTTP_204_NO_CONTENT)
