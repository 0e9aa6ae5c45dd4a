"""Query-string filters of the list endpoints."""

from __future__ import annotations

from datetime import UTC

from django import forms
from django_filters import rest_framework as filters
from django_filters.fields import IsoDateTimeField

from .. import exports
from ..models import Annotation, DatasetExport, Generation, Project, Prompt
from .permissions import MAX_ID


class UTCDateTimeField(IsoDateTimeField):
    """An ISO 8601 date-time, moved to UTC: PostgreSQL refuses UTC offsets beyond ±15:59, Python does not."""

    def to_python(self, value):
        moment = super().to_python(value)
        if moment is None:
            return None
        try:
            return moment.astimezone(UTC)
        except (OverflowError, ValueError) as exc:
            raise forms.ValidationError("The date-time is out of range.", code="overflow") from exc


class DateTimeFilter(filters.IsoDateTimeFilter):
    field_class = UTCDateTimeField


class IdFilter(filters.NumberFilter):
    field_class = forms.IntegerField

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("min_value", 1)
        kwargs.setdefault("max_value", MAX_ID)
        super().__init__(*args, **kwargs)


class ProjectFilter(filters.FilterSet):
    kind = filters.ChoiceFilter(choices=Project.Kind.choices)
    is_archived = filters.BooleanFilter()

    class Meta:
        model = Project
        fields = ["kind", "is_archived"]


class PromptFilter(filters.FilterSet):
    project = IdFilter(field_name="project_id")
    external_id = filters.CharFilter(max_length=200)
    created_after = DateTimeFilter(field_name="created_at", lookup_expr="gte")
    created_before = DateTimeFilter(field_name="created_at", lookup_expr="lt")

    class Meta:
        model = Prompt
        fields = ["project", "external_id"]


class GenerationFilter(filters.FilterSet):
    project = IdFilter(field_name="prompt__project_id")
    prompt = IdFilter(field_name="prompt_id")
    model_version = IdFilter(field_name="model_version_id")
    source_model = filters.CharFilter(max_length=300)
    created_after = DateTimeFilter(field_name="created_at", lookup_expr="gte")
    created_before = DateTimeFilter(field_name="created_at", lookup_expr="lt")

    class Meta:
        model = Generation
        fields = ["project", "prompt", "model_version", "source_model"]


class AnnotationFilter(filters.FilterSet):
    project = IdFilter(field_name="generation__prompt__project_id")
    generation = IdFilter(field_name="generation_id")
    model_version = IdFilter(field_name="generation__model_version_id")
    annotator = IdFilter(field_name="annotator_id")
    status = filters.ChoiceFilter(choices=Annotation.Status.choices)
    submitted_after = DateTimeFilter(field_name="submitted_at", lookup_expr="gte")
    submitted_before = DateTimeFilter(field_name="submitted_at", lookup_expr="lt")
    created_after = DateTimeFilter(field_name="created_at", lookup_expr="gte")
    created_before = DateTimeFilter(field_name="created_at", lookup_expr="lt")

    class Meta:
        model = Annotation
        fields = ["project", "generation", "model_version", "annotator", "status"]


class ExportFilter(filters.FilterSet):
    kind = filters.ChoiceFilter(choices=[(k, k) for k in exports.KINDS])
    format = filters.ChoiceFilter(choices=[(f, f) for f in exports.FORMATS])
    status = filters.ChoiceFilter(choices=DatasetExport.Status.choices)
    created_after = DateTimeFilter(field_name="created_at", lookup_expr="gte")
    created_before = DateTimeFilter(field_name="created_at", lookup_expr="lt")

    class Meta:
        model = DatasetExport
        fields = ["kind", "format", "status"]
