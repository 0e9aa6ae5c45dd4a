"""REST representations of model versions and training rounds (read by researchers, promoted by admins)."""

from __future__ import annotations

from rest_framework import serializers

from .models import ModelVersion, RoundMetric, TrainingRound


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


class RoundSnapshotSerializer(serializers.ModelSerializer):
    """A round's dataset snapshot: the sorted ids of the annotations it trained on, and their hash."""

    snapshot = serializers.ListField(child=serializers.IntegerField(), read_only=True)

    class Meta:
        model = TrainingRound
        fields = ["id", "snapshot_hash", "snapshot"]
        read_only_fields = fields


class RoundMetricSerializer(serializers.ModelSerializer):
    data = serializers.DictField(read_only=True)

    class Meta:
        model = RoundMetric
        fields = ["step", "data", "created_at"]
        read_only_fields = fields
