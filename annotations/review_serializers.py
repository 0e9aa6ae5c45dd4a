"""Serializers of the review API: verdicts, per-output agreement, project agreement and gold annotations.
Annotators appear as pseudonyms; user ids and usernames are never shown here."""

from __future__ import annotations

import numpy as np
from rest_framework import serializers

from text2grad.agreement import alpha_from_coincidence

from .exports import pseudonym
from .models import OutputAgreement, Review
from .serializers import SpanSerializer


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

    class Meta:
        model = OutputAgreement
        fields = [
            "generation",
            "annotators",
            "alpha",
            "token_alpha",
            "span_f1",
            "score",
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


class ProjectAgreementSerializer(serializers.Serializer):
    outputs = serializers.IntegerField()
    measured = serializers.IntegerField(help_text="Outputs with two or more annotations.")
    alpha = serializers.FloatField(allow_null=True, help_text="Nominal alpha over characters, pooled.")
    token_alpha_mean = serializers.FloatField(allow_null=True)
    span_f1_mean = serializers.FloatField(allow_null=True)
    rating_alpha = serializers.FloatField(allow_null=True, help_text="Ordinal alpha of the 1-5 ratings.")
    per_label = LabelAgreementSerializer(many=True)
    over_time = WeekAgreementSerializer(many=True)
    per_annotator = AnnotatorAgreementSerializer(many=True)
    pairs = ProjectPairSerializer(many=True)


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
