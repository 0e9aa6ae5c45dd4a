"""REST representations of model versions, training rounds, critic versions, critic jobs (read by
researchers, changed by admins) and token rewards (read by researchers)."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from annotations.models import Project

from .models import CriticTrainingJob, CriticVersion, ModelVersion, RoundMetric, TokenReward, TrainingRound


class ActivateSerializer(serializers.Serializer):
    # no docstring: drf-spectacular would publish it as the schema's description
    confirm = serializers.BooleanField(
        default=False, help_text="Activate even without evidence that it is significantly better."
    )


class ModelVersionSerializer(serializers.ModelSerializer):
    class Meta:
        model = ModelVersion
        fields = [
            "id",
            "name",
            "base_model",
            "adapter_path",
            "storage_key",
            "content_hash",
            "parent",
            "created_by_round",
            "is_active",
            "activated_at",
            "notes",
            "created_at",
        ]
        read_only_fields = fields


class TrainingRoundSerializer(serializers.ModelSerializer):
    percent = serializers.IntegerField(read_only=True)
    snapshot_size = serializers.IntegerField(read_only=True)
    config = serializers.DictField(read_only=True)
    selection = serializers.DictField(read_only=True)
    summary = serializers.DictField(read_only=True)

    class Meta:
        model = TrainingRound
        fields = [
            "id",
            "project",
            "mode",
            "status",
            "progress_step",
            "progress_total",
            "percent",
            "config",
            "selection",
            "snapshot_size",
            "snapshot_hash",
            "base_version",
            "output_version",
            "auto_promote",
            "attempts",
            "summary",
            "error",
            "created_at",
            "started_at",
            "finished_at",
        ]
        read_only_fields = fields


class _SnapshotSerializer(serializers.ModelSerializer):
    """The one shape of a frozen snapshot (rounds and critic versions): sorted annotation ids and their hash."""

    snapshot = serializers.ListField(child=serializers.IntegerField(), read_only=True)

    class Meta:
        fields = ["id", "snapshot_hash", "snapshot"]
        read_only_fields = fields


class RoundSnapshotSerializer(_SnapshotSerializer):
    """A round's dataset snapshot: the sorted ids of the annotations it trained on, and their hash."""

    class Meta(_SnapshotSerializer.Meta):
        model = TrainingRound


class RoundMetricSerializer(serializers.ModelSerializer):
    data = serializers.DictField(read_only=True)

    class Meta:
        model = RoundMetric
        fields = ["step", "data", "created_at"]
        read_only_fields = fields


# --- the learned span critic -----------------------------------------------------------------------------
class CriticVersionSerializer(serializers.ModelSerializer):
    """A critic version with its lineage (parent, the job that trained it), data snapshot hash and size,
    config and metrics (held-out reports of the critic and the baselines, timings)."""

    snapshot_size = serializers.SerializerMethodField()
    config = serializers.DictField(read_only=True)
    metrics = serializers.DictField(read_only=True)

    class Meta:
        model = CriticVersion
        fields = [
            "id",
            "project",
            "name",
            "base_model",
            "adapter_path",
            "storage_key",
            "content_hash",
            "parent",
            "created_by_job",
            "config",
            "snapshot_size",
            "snapshot_hash",
            "metrics",
            "is_active",
            "activated_at",
            "created_at",
        ]
        read_only_fields = fields

    def get_snapshot_size(self, version: CriticVersion) -> int:
        return len(version.snapshot or [])


class CriticSuggestionStatsSerializer(serializers.Serializer):
    proposals = serializers.IntegerField()
    accepted = serializers.IntegerField()
    rejected = serializers.IntegerField()
    open = serializers.IntegerField()
    acceptance_rate = serializers.FloatField(allow_null=True)
    submitted = serializers.IntegerField()
    edit_rate = serializers.FloatField(allow_null=True)
    char_f1 = serializers.FloatField(allow_null=True)
    kept_rate = serializers.FloatField(allow_null=True)
    adjusted = serializers.IntegerField()
    added = serializers.IntegerField()


class CriticVersionDetailSerializer(CriticVersionSerializer):
    """The detail adds how annotators treated this version's suggestions (acceptance, edit and kept rates)."""

    suggestions = serializers.SerializerMethodField()

    class Meta(CriticVersionSerializer.Meta):
        fields = [*CriticVersionSerializer.Meta.fields, "suggestions"]
        read_only_fields = fields

    @extend_schema_field(CriticSuggestionStatsSerializer)
    def get_suggestions(self, version: CriticVersion) -> dict:
        from .selectors import review_stats

        return review_stats(version)


class CriticSnapshotSerializer(_SnapshotSerializer):
    """The sorted ids of the annotations a critic version learned from (or was tested on), and their hash."""

    class Meta(_SnapshotSerializer.Meta):
        model = CriticVersion


class CriticTrainingJobSerializer(serializers.ModelSerializer):
    percent = serializers.IntegerField(read_only=True)
    snapshot_size = serializers.SerializerMethodField()
    config = serializers.DictField(read_only=True)
    selection = serializers.DictField(read_only=True, help_text="The filters that chose the snapshot.")
    summary = serializers.DictField(read_only=True)

    class Meta:
        model = CriticTrainingJob
        fields = [
            "id",
            "project",
            "parent",
            "status",
            "progress_step",
            "progress_total",
            "percent",
            "config",
            "selection",
            "snapshot_size",
            "snapshot_hash",
            "auto_activate",
            "cancel_requested",
            "output_version",
            "attempts",
            "summary",
            "error",
            "created_by",
            "created_at",
            "started_at",
            "finished_at",
        ]
        read_only_fields = fields

    def get_snapshot_size(self, job: CriticTrainingJob) -> int:
        return len(job.snapshot or [])


class CriticJobCreateSerializer(serializers.Serializer):
    project = serializers.PrimaryKeyRelatedField(queryset=Project.objects.filter(is_archived=False))
    config = serializers.DictField(
        required=False,
        default=dict,
        help_text="epochs, learning_rate, batch_size, lora_r, held_out_fraction, seed, class_weights, lookahead",
    )
    parent = serializers.PrimaryKeyRelatedField(
        queryset=CriticVersion.objects.all(),
        required=False,
        allow_null=True,
        help_text="Continue from this critic of the same project (else a fresh adapter).",
    )
    continue_from_active = serializers.BooleanField(
        default=False, help_text="Continue from the project's active critic (instead of naming a parent)."
    )
    auto_activate = serializers.BooleanField(default=False, help_text="Activate the version when it is done.")
    selection = serializers.DictField(
        required=False,
        default=dict,
        help_text="The rounds' data filters: review (submitted, accepted, gold), min_agreement, "
        "undefined_agreement, exclude_annotators, since, until, model_version_id. Rejected annotations are "
        "never used; an output's gold replaces its annotators'.",
    )

    def validate(self, attrs):
        if attrs.get("parent") is not None and attrs.get("continue_from_active"):
            raise serializers.ValidationError("Name a parent or ask for the active critic, not both.")
        return attrs


class TokenRewardSerializer(serializers.ModelSerializer):
    generation = serializers.IntegerField(source="annotation.generation_id", read_only=True)
    prompt_token_ids = serializers.SerializerMethodField()
    token_ids = serializers.ListField(child=serializers.IntegerField(), read_only=True)
    offsets = serializers.ListField(
        child=serializers.ListField(child=serializers.IntegerField(), min_length=2, max_length=2),
        read_only=True,
    )
    rewards = serializers.ListField(child=serializers.FloatField(), read_only=True)
    scheme = serializers.DictField(read_only=True)

    class Meta:
        model = TokenReward
        fields = [
            "id",
            "annotation",
            "generation",
            "tokenizer_fingerprint",
            "prompt_token_ids",
            "token_ids",
            "offsets",
            "rewards",
            "scheme",
            "computed_at",
        ]
        read_only_fields = fields

    @extend_schema_field(serializers.ListField(child=serializers.IntegerField()))
    def get_prompt_token_ids(self, obj: TokenReward) -> list[int]:
        ids = getattr(obj, "prompt_token_ids", None)
        if ids is None and obj.annotation.generation.tokenizer_fingerprint == obj.tokenizer_fingerprint:
            ids = obj.annotation.generation.prompt_token_ids
        return list(ids or [])
