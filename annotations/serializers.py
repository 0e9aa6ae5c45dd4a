"""REST representations of projects, prompts, outputs, annotations and exports (token rewards are
training's: ``training.serializers``)."""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import IntegrityError, transaction
from django.urls import reverse
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from jobs.standing import standing

from . import exports, privacy, roles, safejson
from .models import (
    Annotation,
    DatasetExport,
    Generation,
    Project,
    Prompt,
    PromptImport,
    Span,
)
from .services import project_create

MAX_JSON_DEPTH = 8
MAX_JSON_BYTES = 64 * 1024


def validate_json_value(value, *, depth: int = 0):
    """JSON that PostgreSQL's jsonb accepts: no NUL characters, bounded depth and size."""
    if depth > MAX_JSON_DEPTH:
        raise serializers.ValidationError(f"nested deeper than {MAX_JSON_DEPTH} levels")
    if isinstance(value, str):
        problem = safejson.text_problem(value)
        if problem:
            raise serializers.ValidationError(problem)
    elif isinstance(value, dict):
        for key, item in value.items():
            validate_json_value(key, depth=depth + 1)
            validate_json_value(item, depth=depth + 1)
    elif isinstance(value, list):
        for item in value:
            validate_json_value(item, depth=depth + 1)
    return value


class SafeJSONField(serializers.JSONField):
    def to_internal_value(self, data):
        value = super().to_internal_value(data)
        validate_json_value(value)
        if len(repr(value)) > MAX_JSON_BYTES:
            raise serializers.ValidationError(f"larger than {MAX_JSON_BYTES // 1024} KiB")
        return value


class SafeJSONObjectField(SafeJSONField):
    def to_internal_value(self, data):
        value = super().to_internal_value(data)
        if not isinstance(value, dict):
            raise serializers.ValidationError("must be a JSON object")
        return value


def _text_field(**kwargs) -> serializers.CharField:
    return serializers.CharField(max_length=settings.T2G_MAX_TEXT_CHARS, **kwargs)


# --- projects and prompts -------------------------------------------------------------------------
class LabelSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=64)
    polarity = serializers.ChoiceField(choices=[-1, 0, 1])
    color = serializers.RegexField(r"^#[0-9a-fA-F]{6}$", required=False)


class ProjectSerializer(serializers.ModelSerializer):
    label_set = LabelSerializer(many=True, required=False)
    reward_scheme = SafeJSONObjectField(required=False)
    description = _text_field(required=False, allow_blank=True)
    instructions = _text_field(required=False, allow_blank=True)
    system_prompt = _text_field(required=False, allow_blank=True)
    annotations_per_output = serializers.IntegerField(min_value=1, max_value=20, required=False)

    class Meta:
        model = Project
        fields = [
            "id",
            "name",
            "kind",
            "description",
            "instructions",
            "system_prompt",
            "label_set",
            "annotations_per_output",
            "reward_scheme",
            "llm_aligner_url",
            "llm_aligner_model",
            "llm_aligner_key_env",
            "is_archived",
            "created_at",
        ]
        read_only_fields = ["id", "created_at"]

    # Where the project's LLM aligner runs (an internal address, the name of the worker's key variable) is
    # the admins' business: other roles get the project without it.
    ADMIN_ONLY = ("llm_aligner_url", "llm_aligner_model", "llm_aligner_key_env")

    def to_representation(self, instance):
        data = super().to_representation(instance)
        request = self.context.get("request")
        if request is None or not roles.is_admin(request.user):
            for name in self.ADMIN_ONLY:
                data.pop(name, None)
        return data

    def create(self, validated_data):
        try:
            with transaction.atomic():
                return project_create(created_by=self.context["request"].user, **validated_data)
        except DjangoValidationError as exc:
            raise serializers.ValidationError(exc.message_dict) from exc

    def update(self, instance, validated_data):
        for key, value in validated_data.items():
            setattr(instance, key, value)
        try:
            instance.full_clean()
        except DjangoValidationError as exc:
            raise serializers.ValidationError(exc.message_dict) from exc
        instance.save()
        return instance


class PromptSerializer(serializers.ModelSerializer):
    text = _text_field()
    reference = _text_field(required=False, allow_blank=True)
    metadata = SafeJSONObjectField(required=False)
    project = serializers.PrimaryKeyRelatedField(queryset=Project.objects.filter(is_archived=False))

    class Meta:
        model = Prompt
        fields = [
            "id",
            "project",
            "text",
            "external_id",
            "reference",
            "metadata",
            "content_hash",
            "created_at",
        ]
        read_only_fields = ["id", "content_hash", "created_at"]

    def validate_text(self, value: str) -> str:
        if not value.strip():
            raise serializers.ValidationError("must not be blank")
        return value

    def create(self, validated_data):
        try:
            with transaction.atomic():
                prompt = Prompt(**validated_data)
                prompt.save()
        except IntegrityError as exc:
            raise serializers.ValidationError({"text": "this project already has this prompt"}) from exc
        return prompt


class PromptImportSerializer(serializers.Serializer):
    file = serializers.FileField(help_text="A .jsonl or .csv file (see docs/api.md for the columns).")
    format = serializers.ChoiceField(
        choices=["jsonl", "csv"], required=False, help_text="Default: by file name."
    )
    allow_partial = serializers.BooleanField(
        default=False, help_text="Import the good lines even if some are bad (default: all or nothing)."
    )
    background = serializers.BooleanField(
        default=False,
        help_text="Run it as a background job (202) even if the file is small; files over "
        "T2G_IMPORT_SYNC_MAX_BYTES always are.",
    )


class ImportErrorSerializer(serializers.Serializer):
    line = serializers.IntegerField()
    message = serializers.CharField()


class ImportReportSerializer(serializers.Serializer):
    created_prompts = serializers.IntegerField()
    created_outputs = serializers.IntegerField()
    duplicate_lines = serializers.ListField(child=serializers.IntegerField())
    errors = ImportErrorSerializer(many=True)
    committed = serializers.BooleanField()


class PromptImportJobSerializer(serializers.ModelSerializer):
    """A background import: where it stands, its progress and, once finished, its report."""

    created_by = serializers.CharField(source="created_by.username", read_only=True, allow_null=True)
    percent = serializers.IntegerField(read_only=True)
    standing = serializers.SerializerMethodField()
    report = serializers.DictField(read_only=True)

    class Meta:
        model = PromptImport
        fields = [
            "id",
            "project",
            "status",
            "format",
            "allow_partial",
            "file_name",
            "size_bytes",
            "progress_step",
            "progress_total",
            "percent",
            "standing",
            "report",
            "error",
            "created_by",
            "created_at",
            "started_at",
            "finished_at",
        ]
        read_only_fields = fields

    @extend_schema_field(serializers.CharField())
    def get_standing(self, obj: PromptImport) -> str:
        return standing(obj).text


# --- outputs and feedback -------------------------------------------------------------------------
class GenerationSerializer(serializers.ModelSerializer):
    project = serializers.IntegerField(source="prompt.project_id", read_only=True)
    model_version_name = serializers.CharField(source="model_version.name", read_only=True, allow_null=True)
    prompt_token_ids = serializers.ListField(child=serializers.IntegerField(), read_only=True)
    response_token_ids = serializers.ListField(child=serializers.IntegerField(), read_only=True)
    behaviour_logprobs = serializers.ListField(child=serializers.FloatField(), read_only=True)
    sampling_params = serializers.DictField(read_only=True)

    class Meta:
        model = Generation
        fields = [
            "id",
            "prompt",
            "project",
            "text",
            "model_version",
            "model_version_name",
            "source_model",
            "prompt_token_ids",
            "response_token_ids",
            "behaviour_logprobs",
            "tokenizer_fingerprint",
            "sampling_params",
            "finish_reason",
            "annotation_count",
            "content_hash",
            "created_at",
        ]
        read_only_fields = fields


class SpanSerializer(serializers.ModelSerializer):
    class Meta:
        model = Span
        fields = ["id", "start", "end", "text", "label", "polarity", "weight", "critique", "origin", "score"]
        read_only_fields = fields


class ReviewVerdictSerializer(serializers.Serializer):
    """The reviewer's verdict on an annotation, as its annotator sees it (not who gave it)."""

    verdict = serializers.CharField(read_only=True)
    comment = serializers.CharField(read_only=True)
    updated_at = serializers.DateTimeField(read_only=True)


class AnnotationSerializer(serializers.ModelSerializer):
    review = ReviewVerdictSerializer(read_only=True, allow_null=True, help_text="Null until reviewed.")
    gold_origin = serializers.CharField(
        read_only=True, help_text="For a gold annotation: adjudicated or honeypot; empty otherwise."
    )
    prompt = serializers.IntegerField(source="generation.prompt_id", read_only=True)
    project = serializers.IntegerField(source="generation.prompt.project_id", read_only=True)
    annotator = serializers.SerializerMethodField(
        help_text="The annotator's user id, for admins and for the annotator themself; null for anyone else "
        "(researchers see only the pseudonym)."
    )
    annotator_username = serializers.SerializerMethodField(
        help_text="The username for admins and for the annotator themself; for anyone else the annotator's "
        "stable pseudonym (the one exports write)."
    )
    spans = SpanSerializer(many=True, read_only=True)
    critic = serializers.JSONField(
        read_only=True,
        help_text="For a machine critic's draft (origin machine): the critic's name, version and settings, "
        "the run, the result's status, evidence and problems; {} for people's annotations.",
    )

    class Meta:
        model = Annotation
        fields = [
            "id",
            "generation",
            "prompt",
            "project",
            "annotator",
            "annotator_username",
            "status",
            "overall_critique",
            "rating",
            "time_spent_seconds",
            "spans",
            "created_at",
            "updated_at",
            "submitted_at",
            "is_gold",
            "gold_origin",
            "origin",
            "critic",
            "review",
        ]
        read_only_fields = fields

    @extend_schema_field(serializers.IntegerField(allow_null=True))
    def get_annotator(self, obj: Annotation) -> int | None:
        request = self.context.get("request")
        return (
            obj.annotator_id
            if privacy.may_identify(getattr(request, "user", None), obj.annotator_id)
            else None
        )

    @extend_schema_field(serializers.CharField())
    def get_annotator_username(self, obj: Annotation) -> str:
        request = self.context.get("request")
        viewer = getattr(request, "user", None)
        return privacy.annotator_name(viewer, obj.annotator_id, obj.annotator.username)


# --- exports --------------------------------------------------------------------------------------
class ExportQuerySerializer(serializers.Serializer):
    """The documented shape of an export query; ``exports.ExportQuery.from_dict`` does the validating."""

    project = serializers.IntegerField(required=False, allow_null=True, help_text="Project id.")
    model_version = serializers.IntegerField(
        required=False, allow_null=True, help_text="Model version id that generated the outputs."
    )
    annotator = serializers.IntegerField(required=False, allow_null=True, help_text="Annotator's user id.")
    status = serializers.ChoiceField(choices=list(exports.STATUSES), required=False, default="submitted")
    submitted_after = serializers.DateTimeField(required=False, allow_null=True, help_text="Inclusive.")
    submitted_before = serializers.DateTimeField(required=False, allow_null=True, help_text="Exclusive.")
    tokenizer_fingerprint = serializers.CharField(
        required=False, allow_blank=True, help_text="token-rewards: empty means the most recently computed."
    )
    identify_annotators = serializers.BooleanField(
        required=False, default=False, help_text="Usernames instead of pseudonyms (admins only)."
    )
    review = serializers.ChoiceField(
        choices=list(exports.REVIEWS), required=False, default="any", help_text="By the reviewer's verdict."
    )
    gold_only = serializers.BooleanField(
        required=False,
        default=False,
        help_text="Only the outputs' gold annotations (adjudicated or honeypot).",
    )
    kto_desirable_min = serializers.FloatField(required=False, default=4.0)
    kto_undesirable_max = serializers.FloatField(required=False, default=2.0)
    dpo_min_margin = serializers.FloatField(required=False, default=1.0)


class ExportCreateSerializer(serializers.Serializer):
    kind = serializers.ChoiceField(choices=list(exports.KINDS))
    format = serializers.ChoiceField(choices=list(exports.FORMATS))
    query = ExportQuerySerializer(required=False)

    def to_internal_value(self, data):
        # Keep the raw query: ExportQuery.from_dict is the one validator the UI and the command share too.
        validated = super().to_internal_value(data)
        raw_query = data.get("query") if hasattr(data, "get") else None
        validated["query"] = raw_query if isinstance(raw_query, dict) else {}
        return validated


class DatasetExportSerializer(serializers.ModelSerializer):
    created_by = serializers.CharField(source="created_by.username", read_only=True, allow_null=True)
    percent = serializers.SerializerMethodField()
    download_url = serializers.SerializerMethodField()
    query = serializers.DictField(read_only=True)

    class Meta:
        model = DatasetExport
        fields = [
            "id",
            "kind",
            "format",
            "query",
            "status",
            "row_count",
            "total_rows",
            "percent",
            "content_hash",
            "error",
            "created_by",
            "created_at",
            "finished_at",
            "download_url",
        ]
        read_only_fields = fields

    @extend_schema_field(serializers.IntegerField(allow_null=True))
    def get_percent(self, obj: DatasetExport) -> int | None:
        if obj.status == DatasetExport.Status.SUCCEEDED:
            return 100
        if not obj.total_rows:
            return None
        return min(99, round(100 * obj.row_count / obj.total_rows))

    @extend_schema_field(serializers.CharField(allow_null=True))
    def get_download_url(self, obj: DatasetExport) -> str | None:
        if obj.status != DatasetExport.Status.SUCCEEDED or not obj.file_path:
            return None
        url = reverse("api-export-download", kwargs={"pk": obj.pk})
        request = self.context.get("request")
        return request.build_absolute_uri(url) if request else url


class MeSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    username = serializers.CharField()
    roles = serializers.ListField(
        child=serializers.ChoiceField(choices=["admin", "researcher", "reviewer", "annotator"])
    )


# --- annotator writes (shapes only: annotations.services does the checking) ---------------------------
class SpanInputSerializer(serializers.Serializer):
    """A span in Python code points (not the browser's UTF-16 units); ``text`` guards against drift."""

    start = serializers.IntegerField(min_value=0, max_value=10_000_000)
    end = serializers.IntegerField(min_value=1, max_value=10_000_000)
    label = serializers.CharField(max_length=64)
    text = serializers.CharField(
        required=False, trim_whitespace=False, max_length=settings.T2G_MAX_TEXT_CHARS
    )
    weight = serializers.FloatField(required=False, allow_null=True)
    critique = serializers.CharField(
        required=False, allow_blank=True, trim_whitespace=False, max_length=10_000
    )
    origin = serializers.ChoiceField(choices=Span.Origin.choices, required=False)
    score = serializers.FloatField(required=False, allow_null=True)


class AnnotationOverallSerializer(serializers.Serializer):
    overall_critique = serializers.CharField(
        required=False, allow_blank=True, trim_whitespace=False, max_length=20_000
    )
    rating = serializers.IntegerField(required=False, allow_null=True, min_value=1, max_value=5)
    time_spent_seconds = serializers.IntegerField(required=False, min_value=0, max_value=7 * 24 * 3600)


class AnnotationDraftSerializer(AnnotationOverallSerializer):
    spans = SpanInputSerializer(
        many=True, required=False, max_length=200, help_text="The complete list; it replaces the stored one."
    )


class AnnotationNextSerializer(serializers.Serializer):
    annotation = AnnotationSerializer()
    expires_at = serializers.DateTimeField()
