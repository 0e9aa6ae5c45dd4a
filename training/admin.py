from django.contrib import admin, messages

from . import services
from .models import (
    CriticTrainingJob,
    CriticVersion,
    GenerationJob,
    ModelVersion,
    RoundMetric,
    TokenReward,
    TrainingRound,
)


@admin.register(ModelVersion)
class ModelVersionAdmin(admin.ModelAdmin):
    list_display = ("name", "is_active", "parent", "created_by_round", "base_model", "created_at")
    list_filter = ("is_active",)
    readonly_fields = ("activated_at",)


@admin.register(TokenReward)
class TokenRewardAdmin(admin.ModelAdmin):
    list_display = ("id", "annotation", "tokenizer_fingerprint", "computed_at")
    raw_id_fields = ("annotation",)


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


# --- the learned span critic -----------------------------------------------------------------------------
@admin.register(CriticVersion)
class CriticVersionAdmin(admin.ModelAdmin):
    """Critic versions: read their lineage, data and metrics; activate (or roll back to) one per project
    through the same service as the critic page and the API (is_active is never edited by hand: the
    service keeps one active critic per project and queues its pre-annotation)."""

    list_display = ("name", "project", "is_active", "parent", "created_by_job", "poor_f1", "snapshot_size",
                    "created_at")  # fmt: skip
    list_filter = ("is_active", "project")
    search_fields = ("name",)
    readonly_fields = ("project", "name", "base_model", "storage_key", "content_hash", "adapter_path", "parent", "created_by_job", "config",
                       "snapshot", "snapshot_hash", "metrics", "is_active", "activated_at", "created_at")  # fmt: skip
    actions = ["activate_selected", "deactivate_selected"]

    def has_add_permission(self, request) -> bool:
        return False  # versions come from critic jobs

    @admin.display(description="poor F1 (held out)")
    def poor_f1(self, version: CriticVersion):
        value = version.label_metric("poor", "f1")
        return "–" if value is None else f"{value:.3f}"

    @admin.display(description="annotations")
    def snapshot_size(self, version: CriticVersion) -> int:
        return len(version.snapshot or [])

    @admin.action(description="Activate (promote, or roll back to) the selected critic of its project")
    def activate_selected(self, request, queryset):
        versions = list(queryset)
        if len({v.project_id for v in versions}) != len(versions):
            self.message_user(request, "Select at most one critic per project.", level=messages.ERROR)
            return
        for version in versions:
            services.critic_version_activate(version=version)
        self.message_user(request, f"{len(versions)} critic(s) activated.", level=messages.SUCCESS)

    @admin.action(description="Deactivate: leave the selected critics' projects without an active critic")
    def deactivate_selected(self, request, queryset):
        count = 0
        for version in queryset.filter(is_active=True).select_related("project"):
            count += services.critic_version_deactivate(project=version.project)
        self.message_user(request, f"{count} critic(s) deactivated.", level=messages.SUCCESS)


@admin.register(CriticTrainingJob)
class CriticTrainingJobAdmin(admin.ModelAdmin):
    """Critic training jobs: read them, cancel queued or running ones (launch from the critic page or the
    API, which freeze the data snapshot)."""

    list_display = ("id", "project", "status", "progress_step", "progress_total", "parent", "output_version",
                    "created_by", "created_at")  # fmt: skip
    list_filter = ("status", "project")
    readonly_fields = ("project", "parent", "config", "snapshot", "snapshot_hash", "output_version",
                       "auto_activate", "cancel_requested", "status", "progress_step", "progress_total", "summary",
                       "error", "attempts", "owner", "created_by", "created_at", "started_at", "finished_at")  # fmt: skip
    exclude = ("heartbeat_at", "requeues")
    actions = ["cancel_selected"]

    def has_add_permission(self, request) -> bool:
        return False

    @admin.action(description="Cancel the selected jobs (a running one stops before its next step)")
    def cancel_selected(self, request, queryset):
        count = sum(services.critic_job_cancel(job=job) for job in queryset)
        self.message_user(request, f"Cancellation requested for {count} job(s).", level=messages.SUCCESS)
