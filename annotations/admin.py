from django.contrib import admin

from .models import (
    Annotation,
    Assignment,
    DatasetExport,
    Generation,
    MachineCriticConfig,
    MachineCriticJob,
    OutputAgreement,
    Project,
    Prompt,
    Review,
    Span,
)


class SpanInline(admin.TabularInline):
    model = Span
    extra = 0
    fields = ("start", "end", "text", "label", "polarity", "weight", "critique", "origin", "score")


@admin.register(Project)
class ProjectAdmin(admin.ModelAdmin):
    list_display = (
        "name", "kind", "annotations_per_output", "review_scope", "held_out_fraction", "is_archived", "created_at",
    )  # fmt: skip
    list_filter = ("kind", "is_archived")
    search_fields = ("name", "description")


@admin.register(Prompt)
class PromptAdmin(admin.ModelAdmin):
    list_display = ("id", "project", "external_id", "short_text", "held_out", "created_at")
    list_filter = ("project", "held_out")
    search_fields = ("text", "external_id")
    readonly_fields = ("content_hash",)
    actions = ["mark_held_out", "unmark_held_out"]

    @admin.action(description="Hold the selected prompts out of training (evaluate on them)")
    def mark_held_out(self, request, queryset):
        queryset.update(held_out=True)

    @admin.action(description="Unmark the selected prompts (the project's held-out fraction still applies)")
    def unmark_held_out(self, request, queryset):
        queryset.update(held_out=False)

    @admin.display(description="text")
    def short_text(self, obj: Prompt) -> str:
        return obj.text[:80]


@admin.register(Generation)
class GenerationAdmin(admin.ModelAdmin):
    list_display = ("id", "prompt", "model_version", "finish_reason", "annotation_count", "created_at")
    list_filter = ("model_version", "finish_reason", "prompt__project")
    search_fields = ("text",)
    raw_id_fields = ("prompt",)
    readonly_fields = ("content_hash",)


@admin.register(Assignment)
class AssignmentAdmin(admin.ModelAdmin):
    list_display = ("id", "generation", "annotator", "status", "leased_at", "expires_at")
    list_filter = ("status",)
    raw_id_fields = ("generation",)


@admin.register(Annotation)
class AnnotationAdmin(admin.ModelAdmin):
    list_display = (
        "id",
        "generation",
        "annotator",
        "origin",
        "status",
        "rating",
        "time_spent_seconds",
        "submitted_at",
    )
    list_filter = ("status", "origin", "annotator", "generation__prompt__project")
    search_fields = ("overall_critique",)
    raw_id_fields = ("generation",)
    inlines = [SpanInline]


@admin.register(DatasetExport)
class DatasetExportAdmin(admin.ModelAdmin):
    list_display = ("id", "kind", "format", "status", "row_count", "content_hash", "created_by", "created_at")
    list_filter = ("kind", "format", "status")


@admin.register(Review)
class ReviewAdmin(admin.ModelAdmin):
    list_display = ("id", "annotation", "verdict", "updated_at")
    list_filter = ("verdict",)
    raw_id_fields = ("annotation", "reviewer")


@admin.register(OutputAgreement)
class OutputAgreementAdmin(admin.ModelAdmin):
    list_display = ("generation", "annotators", "alpha", "span_f1", "score", "has_gold", "computed_at")
    list_filter = ("has_gold",)
    raw_id_fields = ("generation",)


@admin.register(MachineCriticConfig)
class MachineCriticConfigAdmin(admin.ModelAdmin):
    # Saved through the admin the name is not checked against T2G_MACHINE_CRITICS; the project's machine
    # critics page (annotations.services.machine) checks it. A bad name or setting fails the run, saying why.
    list_display = ("id", "project", "name", "enabled", "updated_at")
    list_filter = ("project", "enabled")


@admin.register(MachineCriticJob)
class MachineCriticJobAdmin(admin.ModelAdmin):
    list_display = ("id", "project", "status", "progress_step", "progress_total", "created_at")
    list_filter = ("status", "project")
    readonly_fields = ("generation_ids", "report", "critic")
