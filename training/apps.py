from django.apps import AppConfig


class TrainingConfig(AppConfig):
    name = "training"
    verbose_name = "Training"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from . import checks, receivers  # noqa: F401  (checks registers the system checks)

        receivers.connect()
        _register_jobs()
        _register_evaluation_jobs()
        _register_sections()


def _register_sections() -> None:
    """Training's parts of annotations' pages (annotations imports no training: it calls these by registry)."""
    from annotations.panels import register_project_section, register_queue_note

    from .panels import project_generation_note, project_generation_section

    register_project_section(project_generation_section)
    register_queue_note(project_generation_note)


def _round_reaped(pk: int) -> None:
    from . import services
    from .models import TrainingRound

    training_round = TrainingRound.objects.filter(pk=pk, status=TrainingRound.Status.FAILED).first()
    if training_round is not None:
        services.round_failed_emit(training_round=training_round)


def _register_jobs() -> None:
    """The kinds of job this app runs, for the one reaper, the lanes and the health page."""
    from jobs.registry import JobKind, register, register_sweep

    from . import selectors, services
    from .models import (
        AlignmentRequest,
        CriticPredictionJob,
        CriticTrainingJob,
        GenerationJob,
        ModelDownload,
        TrainingRound,
    )

    register(
        JobKind(
            GenerationJob,
            "generation job",
            "training.generate",
            on_lost="resume",
            resume_note="it resumes after the outputs it had written.",
            measured_s=selectors.generation_seconds_per_output,  # recent jobs' tokens/s and tokens an output
            typical_s=6.0,  # per output, on a loaded CPU: the first guess
        )
    )
    register(
        JobKind(
            TrainingRound,
            "training round",
            "training.train_round",
            on_lost="fail",
            lost_message="The active model version is unchanged. Resume the round on the Training page: "
            "it continues from its last checkpoint.",
            measured_s=selectors.round_seconds_per_update,  # finished rounds' wall time per update
            typical_s=20.0,  # per PPO update: the first guess
            cleanup=_round_reaped,  # the webhooks hear of a round its dead worker left failed
        )
    )
    register(
        JobKind(
            AlignmentRequest,
            "suggestion",
            "training.align_critique",
            on_lost="fail",
            lost_message="Press Suggest spans again.",
            typical_s=2.0,
        )
    )
    register(
        JobKind(
            CriticTrainingJob,
            "critic training",
            "training.train_critic",
            on_lost="fail",
            lost_message="The active critic is unchanged. Train the critic again from the project's critic page.",
            typical_s=10.0,  # per training step
        )
    )
    register(
        JobKind(
            CriticPredictionJob,
            "critic prediction",
            "training.critic_predict",
            on_lost="resume",
            resume_note="it skips the outputs the critic already predicted.",
            typical_s=0.5,  # per output
        )
    )
    register(
        JobKind(
            ModelDownload,
            "download build",
            "training.build_download",
            on_lost="resume",  # a build starts over; its half-written folder is never published
            resume_note="it is built again from the start.",
            typical_s=30.0,
        )
    )
    register_sweep("rewards", services.rewards_sweep_missing)


def _register_evaluation_jobs() -> None:
    """The round page's critic score (a job kind of its own, beside the ones above)."""
    from jobs.registry import JobKind, register

    from .models import RoundCriticScore

    register(
        JobKind(
            RoundCriticScore,
            "critic score of a round",
            "training.round_critic_score",
            on_lost="resume",  # it starts over: nothing is written before the end
            resume_note="it scores both versions again from the start.",
            given_up_note="Nothing of it was kept; score the round again.",
            typical_s=6.0,  # per answer, sampled and scored
        )
    )
