"""Token rewards over REST (/api/v1/token-rewards/): each annotation's per-token rewards under a tokenizer,
read by researchers and admins. The worker writes them (``training.worker.rewards``)."""

from __future__ import annotations

from django_filters import rest_framework as filters
from rest_framework import viewsets

from annotations.api import ID_REGEX, DateTimeFilter, IdCursorPagination, IdFilter, ResearcherOnly
from annotations.models import Annotation

from .. import serializers
from ..models import TokenReward


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


class TokenRewardViewSet(viewsets.ReadOnlyModelViewSet):
    """Per-token rewards of each annotation under a tokenizer (researchers and admins)."""

    serializer_class = serializers.TokenRewardSerializer
    permission_classes = [ResearcherOnly]
    pagination_class = IdCursorPagination
    filterset_class = TokenRewardFilter
    lookup_value_regex = ID_REGEX
    queryset = TokenReward.objects.select_related("annotation__generation")
