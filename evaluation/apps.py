from django.apps import AppConfig


class EvaluationConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "evaluation"
    verbose_name = "Evaluation campaigns"

    def ready(self) -> None:
        _register_jobs()


def _register_jobs() -> None:
    """Campaign generation is a job of the one framework: the one reaper, the lanes, "queued behind"."""
    from jobs.registry import JobKind, register

    from .models import CampaignGeneration
    from .services import GENERATE_TASK, campaign_generation_ended

    register(
        JobKind(
            CampaignGeneration,
            "campaign generation",
            GENERATE_TASK,  # sampled by the generation worker (training's worker code, by task name)
            on_lost="resume",
            resume_note="it resumes after the outputs it had written.",
            # After a reap: a job given up on (requeued too often) ends its campaign failed (Retry resumes).
            cleanup=campaign_generation_ended,
            typical_s=6.0,  # per output, on a loaded CPU
        )
    )
