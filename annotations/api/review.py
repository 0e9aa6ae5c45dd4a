"""REST API for agreement, reviews and gold annotations (/api/v1/).

Permissions follow the existing rules: researchers and admins read all feedback (agreement included);
reviewers (and admins) read it too and write verdicts and gold; annotators read only the verdicts on their
own annotations (another's is a 404) and never see agreement or gold. Annotators appear as pseudonyms.

The serializers come first (verdicts, per-output agreement, project agreement, gold), then the views.
"""

from __future__ import annotations

import numpy as np
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db.models import F, QuerySet
from django.shortcuts import get_object_or_404
from django_filters import rest_framework as filters
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import exceptions, mixins, permissions, serializers, status, viewsets
from rest_framework.pagination import CursorPagination
from rest_framework.response import Response
from rest_framework.views import APIView

from text2grad.agreement import alpha_from_coincidence

from .. import roles, selectors, services
from ..exports import pseudonym
from ..models import Annotation, Generation, OutputAgreement, Project, Review
from ..serializers import SpanSerializer
from .filters import IdFilter
from .permissions import ID_REGEX, HasRole
from .plumbing import IdCursorPagination


def _alpha(matrix) -> float | None:
    value = alpha_from_coincidence(np.asarray(matrix, dtype=float)) if matrix else float("nan")
    return None if not np.isfinite(value) else round(float(value), 6)


class ReviewSerializer(serializers.ModelSerializer):
    generation = serializers.IntegerField(source="annotation.generation_id", read_only=True)

    class Meta:
        model = Review
        fields = ["id", "annotation", "generation", "verdict", "comment", "created_at", "updated_at"]
        read_only_fields = fields


class ReviewWriteSerializer(serializers.Serializer):
    annotation = serializers.IntegerField(min_value=1, max_value=2**63 - 1)
    verdict = serializers.ChoiceField(choices=Review.Verdict.choices)
    comment = serializers.CharField(required=False, allow_blank=True, max_length=5_000, trim_whitespace=False)


class PairSerializer(serializers.Serializer):
    a = serializers.CharField(help_text="An annotator's pseudonym.")
    b = serializers.CharField(help_text="The other annotator's pseudonym.")
    alpha = serializers.FloatField(allow_null=True)
    span_f1 = serializers.FloatField(allow_null=True)


class GoldAccuracySerializer(serializers.Serializer):
    annotator = serializers.CharField(help_text="Pseudonym.")
    alpha = serializers.FloatField(allow_null=True, help_text="Alpha of this annotator with the gold.")
    span_f1 = serializers.FloatField(allow_null=True, help_text="Span F1 against the gold.")


class OutputAgreementSerializer(serializers.ModelSerializer):
    pairs = serializers.SerializerMethodField()
    gold = serializers.SerializerMethodField()
    alpha_undefined = serializers.BooleanField(
        read_only=True,
        help_text="Two or more annotators but no variation to measure (say, nobody drew a span): alpha and "
        "score are null, neither perfect agreement nor none.",
    )

    class Meta:
        model = OutputAgreement
        fields = [
            "generation",
            "annotators",
            "alpha",
            "token_alpha",
            "span_f1",
            "score",
            "alpha_undefined",
            "has_gold",
            "coincidence",
            "rating_coincidence",
            "pairs",
            "gold",
            "completed_at",
            "computed_at",
        ]
        read_only_fields = fields

    def get_pairs(self, obj) -> list[dict]:
        data = [
            {"a": pseudonym(p["a"]), "b": pseudonym(p["b"]), "alpha": _alpha(p["o"]), "span_f1": p["f1"]}
            for p in obj.pairs
        ]
        return PairSerializer(data, many=True).data

    def get_gold(self, obj) -> list[dict]:
        data = [
            {"annotator": pseudonym(g["annotator"]), "alpha": _alpha(g["o"]), "span_f1": g["f1"]}
            for g in obj.gold
        ]
        return GoldAccuracySerializer(data, many=True).data


class AnnotatorAgreementSerializer(serializers.Serializer):
    annotator = serializers.CharField(help_text="Pseudonym.")
    pairs = serializers.IntegerField()
    alpha_with_others = serializers.FloatField(allow_null=True)
    f1_with_others = serializers.FloatField(allow_null=True)
    gold_outputs = serializers.IntegerField()
    alpha_with_gold = serializers.FloatField(allow_null=True)
    f1_with_gold = serializers.FloatField(allow_null=True)
    accepted = serializers.IntegerField()
    rejected = serializers.IntegerField()


class LabelAgreementSerializer(serializers.Serializer):
    label = serializers.CharField()
    alpha = serializers.FloatField(allow_null=True)
    share = serializers.FloatField(allow_null=True)


class WeekAgreementSerializer(serializers.Serializer):
    week = serializers.CharField(allow_null=True)
    outputs = serializers.IntegerField()
    alpha = serializers.FloatField(allow_null=True)
    span_f1 = serializers.FloatField(allow_null=True)


class ProjectPairSerializer(serializers.Serializer):
    a = serializers.CharField()
    b = serializers.CharField()
    n = serializers.IntegerField()
    alpha = serializers.FloatField(allow_null=True)
    span_f1 = serializers.FloatField(allow_null=True)


class MachineAgreementSerializer(serializers.Serializer):
    critic = serializers.CharField(help_text="The machine critic's registry name.")
    drafts = serializers.IntegerField(help_text="Its submitted drafts on the project.")
    outputs = serializers.IntegerField(
        help_text="Outputs with its draft and at least one person's annotation."
    )
    pairs = serializers.IntegerField(help_text="Critic-person pairs measured.")
    alpha = serializers.FloatField(allow_null=True, help_text="Nominal alpha over the pairs' characters.")
    span_f1 = serializers.FloatField(allow_null=True, help_text="Mean span F1 over the pairs.")
    accepted = serializers.IntegerField()
    rejected = serializers.IntegerField()
    waiting = serializers.IntegerField(help_text="Drafts not yet reviewed.")


class ProjectAgreementSerializer(serializers.Serializer):
    outputs = serializers.IntegerField()
    measured = serializers.IntegerField(help_text="Outputs with two or more annotations.")
    undefined = serializers.IntegerField(
        help_text="Of those, outputs whose alpha is undefined (no variation: every annotator gave every "
        "character the same label)."
    )
    alpha = serializers.FloatField(allow_null=True, help_text="Nominal alpha over characters, pooled.")
    token_alpha_mean = serializers.FloatField(allow_null=True)
    span_f1_mean = serializers.FloatField(allow_null=True)
    rating_alpha = serializers.FloatField(allow_null=True, help_text="Ordinal alpha of the 1-5 ratings.")
    per_label = LabelAgreementSerializer(many=True)
    over_time = WeekAgreementSerializer(many=True)
    per_annotator = AnnotatorAgreementSerializer(many=True)
    pairs = ProjectPairSerializer(many=True)
    machine = MachineAgreementSerializer(
        many=True, help_text="Each machine critic's drafts against people (left out of the figures above)."
    )


class GoldSerializer(serializers.Serializer):
    """An output's gold annotation (read), or the complete replacement (write)."""

    id = serializers.IntegerField(read_only=True)
    generation = serializers.IntegerField(source="generation_id", read_only=True)
    gold_origin = serializers.CharField(read_only=True)
    overall_critique = serializers.CharField(required=False, allow_blank=True, trim_whitespace=False)
    rating = serializers.IntegerField(required=False, allow_null=True)
    spans = SpanSerializer(many=True, read_only=True)
    submitted_at = serializers.DateTimeField(read_only=True)


class GoldWriteSerializer(serializers.Serializer):
    spans = serializers.ListField(child=serializers.DictField(), max_length=200)
    overall_critique = serializers.CharField(required=False, allow_blank=True, trim_whitespace=False)
    rating = serializers.IntegerField(required=False, allow_null=True)


# --- the views -------------------------------------------------------------------------------------


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

    serializer_class = ReviewSerializer
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

    @extend_schema(request=ReviewWriteSerializer, responses={201: ReviewSerializer})
    def create(self, request, *args, **kwargs):
        form = ReviewWriteSerializer(data=request.data)
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
    coincidence matrices (which add up across outputs). The id is the output's (generation's) id. The list
    holds outputs with a score; one whose alpha is undefined (``alpha_undefined``, score null) is read by
    its id."""

    serializer_class = OutputAgreementSerializer
    permission_classes = [QualityReader]
    pagination_class = LowestFirstPagination
    filterset_class = AgreementFilter
    lookup_value_regex = ID_REGEX
    queryset = OutputAgreement.objects.filter(score__isnull=False).order_by(F("score").asc(), "generation_id")

    def get_queryset(self):
        if self.action == "retrieve":  # any output measured on two or more annotations, undefined included
            return OutputAgreement.objects.filter(annotators__gte=2)
        return super().get_queryset()


class ProjectAgreementView(APIView):
    """A project's agreement: pooled alpha, per label, per week, per annotator (with the others and with
    gold) and per pair."""

    permission_classes = [QualityReader]

    @extend_schema(responses={200: ProjectAgreementSerializer})
    def get(self, request, pk: int):
        project = get_object_or_404(Project, pk=pk)
        report = selectors.project_agreement(project)
        return Response(ProjectAgreementSerializer(report).data)


class GoldView(APIView):
    """An output's gold annotation: researchers and reviewers read it; reviewers replace it whole (PUT);
    admins may set it before anyone annotated (a honeypot) and delete it."""

    permission_classes = [QualityReader]

    def _gold(self, pk: int) -> Annotation:
        return get_object_or_404(Annotation.objects.prefetch_related("spans"), generation_id=pk, is_gold=True)

    @extend_schema(responses={200: GoldSerializer, 404: OpenApiResponse(description="No gold.")})
    def get(self, request, pk: int):
        return Response(GoldSerializer(self._gold(pk)).data)

    @extend_schema(request=GoldWriteSerializer, responses={200: GoldSerializer})
    def put(self, request, pk: int):
        generation = get_object_or_404(Generation, pk=pk)
        form = GoldWriteSerializer(data=request.data)
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
        return Response(GoldSerializer(self._gold(pk)).data)

    @extend_schema(responses={204: None})
    def delete(self, request, pk: int):
        generation = get_object_or_404(Generation, pk=pk)
        if not _service(services.gold_delete, generation=generation, reviewer=request.user):
            raise exceptions.NotFound("This output has no gold annotation.")
        return Response(status=status.HTTP_204_NO_CONTENT)
