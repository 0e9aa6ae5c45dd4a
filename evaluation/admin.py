from django.contrib import admin

from .models import CampaignGeneration, EvaluationCampaign, EvaluationOutput, PairwiseJudgement


@admin.register(EvaluationCampaign)
class EvaluationCampaignAdmin(admin.ModelAdmin):
    list_display = ("id", "name", "project", "status", "worker_status", "judgements_per_pair", "created_at")
    list_filter = ("status",)


@admin.register(EvaluationOutput)
class EvaluationOutputAdmin(admin.ModelAdmin):
    list_display = ("id", "campaign", "prompt", "model_version", "tests_passed")
    raw_id_fields = ("campaign", "prompt", "model_version")


@admin.register(PairwiseJudgement)
class PairwiseJudgementAdmin(admin.ModelAdmin):
    list_display = ("id", "task", "judge", "status", "verdict", "submitted_at")
    raw_id_fields = ("task", "judge")


@admin.register(CampaignGeneration)
class CampaignGenerationAdmin(admin.ModelAdmin):
    """Read-only: the job framework (claim, fencing, the reaper) owns these rows; cancel from the campaign."""

    list_display = (
        "id",
        "campaign",
        "status",
        "progress_step",
        "progress_total",
        "attempts",
        "requeues",
        "created_at",
    )
    list_filter = ("status",)
    raw_id_fields = ("campaign",)

    def has_change_permission(self, request, obj=None) -> bool:
        return False
