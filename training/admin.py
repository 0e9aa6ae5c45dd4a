from django.contrib import admin

from .models import GenerationJob, ModelVersion, RoundMetric, TrainingRound


@admin.register(ModelVersion)
class ModelVersionAdmin(admin.ModelAdmin):
    list_display = ("name", "is_active", "parent", "created_by_round", "base_model", "created_at")
    list_filter = ("is_active",)
    readonly_fields = ("activated_at",)


@admin.register(GenerationJob)
class GenerationJobAdmin(admin.ModelAdmin):
    list_display = (
        "id",
        "project",
        "model_version",
        "per_prompt",
        "status",
        "progress_step",
        "progress_total",
    )
    list_filter = ("status", "project")


class RoundMetricInline(admin.TabularInline):
    model = RoundMetric
    extra = 0
    readonly_fields = ("step", "data", "created_at")
    can_delete = False


@admin.register(TrainingRound)
class TrainingRoundAdmin(admin.ModelAdmin):
    list_display = ("id", "project", "mode", "status", "progress_step", "progress_total", "output_version")
    list_filter = ("status", "mode")
    readonly_fields = ("snapshot", "snapshot_hash", "summary", "error")
    inlines = [RoundMetricInline]
