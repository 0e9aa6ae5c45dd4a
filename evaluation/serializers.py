"""REST shapes of campaigns and their results."""

from __future__ import annotations

from rest_framework import serializers

from annotations.models import Project
from jobs.standing import standing

from .models import EvaluationCampaign
from .services import MAX_PER_PAIR, MAX_PROMPTS, MAX_VERSIONS, PROMPT_SOURCES


def _version_model():
    return EvaluationCampaign._meta.get_field("versions").related_model


class CampaignSerializer(serializers.ModelSerializer):
    versions = serializers.PrimaryKeyRelatedField(many=True, read_only=True)
    prompts = serializers.PrimaryKeyRelatedField(many=True, read_only=True)
    judges = serializers.PrimaryKeyRelatedField(many=True, read_only=True)
    # The campaign's latest generation job (the job framework's row), as before the job existed.
    worker_status = serializers.CharField(read_only=True, help_text="Its generation job's status.")
    progress_step = serializers.IntegerField(read_only=True)
    progress_total = serializers.IntegerField(read_only=True)
    error = serializers.CharField(read_only=True)
    standing = serializers.SerializerMethodField(help_text='Where its generation stands ("queued behind …").')

    class Meta:
        model = EvaluationCampaign
        fields = [
            "id", "name", "project", "versions", "prompts", "judgements_per_pair", "sampling_params",
            "judges", "seed", "status", "worker_status", "progress_step", "progress_total", "error",
            "standing", "created_at", "closed_at",
        ]  # fmt: skip
        read_only_fields = fields

    def get_standing(self, campaign: EvaluationCampaign) -> str:
        job = campaign.generation
        return standing(job).text if job is not None and not job.is_finished else ""


class CampaignCreateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=200)
    project = serializers.PrimaryKeyRelatedField(queryset=Project.objects.filter(is_archived=False))
    versions = serializers.PrimaryKeyRelatedField(
        many=True, queryset=_version_model().objects.all(), help_text=f"2 to {MAX_VERSIONS} version ids."
    )
    prompt_count = serializers.IntegerField(min_value=1, max_value=MAX_PROMPTS)
    prompt_source = serializers.ChoiceField(choices=PROMPT_SOURCES, default="held_out")
    prompt_ids = serializers.ListField(
        child=serializers.IntegerField(min_value=1), required=False, help_text="Explicit prompts instead."
    )
    judgements_per_pair = serializers.IntegerField(min_value=1, max_value=MAX_PER_PAIR, default=1)
    judges = serializers.ListField(child=serializers.IntegerField(min_value=1), required=False)
    sampling_params = serializers.DictField(required=False, help_text="temperature, top_p, max_new_tokens")
    seed = serializers.IntegerField(min_value=0, max_value=2**31 - 1, default=0)


class StandingSerializer(serializers.Serializer):
    version = serializers.IntegerField(source="version.pk")
    version_name = serializers.CharField(source="version.name")
    rank = serializers.IntegerField()
    score = serializers.FloatField(source="theta", help_text="Bradley–Terry log-strength, mean 0.")
    lower = serializers.FloatField(help_text="95% bootstrap interval, lower end.")
    upper = serializers.FloatField()
    judgements = serializers.IntegerField()


class PairSerializer(serializers.Serializer):
    first = serializers.IntegerField(source="first.pk")
    second = serializers.IntegerField(source="second.pk")
    first_wins = serializers.IntegerField()
    second_wins = serializers.IntegerField()
    ties = serializers.IntegerField()
    both_bad = serializers.IntegerField()
    first_win_rate = serializers.FloatField(allow_null=True)


class MetricSerializer(serializers.Serializer):
    version = serializers.IntegerField(source="version.pk")
    outputs = serializers.IntegerField()
    mean_chars = serializers.FloatField(allow_null=True)
    mean_tokens = serializers.FloatField(allow_null=True)
    truncated = serializers.FloatField(allow_null=True)
    tested = serializers.IntegerField()
    pass_rate = serializers.FloatField(allow_null=True)
    annotated = serializers.IntegerField()
    flagged_share = serializers.FloatField(allow_null=True)


class ResultsSerializer(serializers.Serializer):
    campaign = serializers.IntegerField()
    judgements = serializers.IntegerField()
    standings = StandingSerializer(many=True)
    pairs = PairSerializer(many=True)
    win_rate_matrix = serializers.ListField(
        child=serializers.ListField(child=serializers.FloatField(allow_null=True)),
        help_text="Row version beats column version (versions in id order).",
    )
    versions = serializers.ListField(child=serializers.IntegerField())
    metrics = MetricSerializer(many=True)
