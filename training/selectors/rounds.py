"""Reads for model versions, jobs and rounds."""

from __future__ import annotations

from dataclasses import dataclass

from django.db.models import F, Q, QuerySet

from annotations.models import EVALUATION_PURPOSE, Generation, Project, Prompt
from annotations.safejson import positive_id
from evaluation.models import EvaluationCampaign

from ..models import CriticVersion, GenerationJob, ModelVersion, RoundCriticScore, RoundMetric, TrainingRound


def active_version() -> ModelVersion | None:
    return ModelVersion.objects.filter(is_active=True).first()


def version_list() -> QuerySet[ModelVersion]:
    return ModelVersion.objects.select_related("parent", "created_by_round").order_by("-created_at", "-id")


def generation_jobs_for_project(project_id: int) -> QuerySet[GenerationJob]:
    return GenerationJob.objects.filter(project_id=project_id).select_related("model_version")


# A missing key is not "not equal" in SQL: say both (as the annotators' queue does).
_not_for_evaluation = Q(sampling_params__purpose__isnull=True) | ~Q(
    sampling_params__purpose=EVALUATION_PURPOSE
)


def generation_job_pending(project_id: int) -> GenerationJob | None:
    """The project's oldest queued or running job that writes outputs for annotators (not for evaluation)."""
    return (
        GenerationJob.objects.filter(
            project_id=project_id, status__in=[GenerationJob.Status.QUEUED, GenerationJob.Status.RUNNING]
        )
        .filter(_not_for_evaluation)
        .select_related("model_version")
        .order_by("created_at", "id")
        .first()
    )


def generation_job_size(job: GenerationJob) -> int:
    """How many outputs a job writes (before it has reported its total)."""
    prompts = len(job.prompt_ids) or Prompt.objects.filter(project_id=job.project_id).count()
    return prompts * job.per_prompt


def project_has_outputs(project_id: int) -> bool:
    outputs = Generation.objects.filter(prompt__project_id=project_id)
    return outputs.filter(_not_for_evaluation).exists()


def round_parent_campaign(version: ModelVersion) -> EvaluationCampaign | None:
    """The latest evaluation campaign (not failed) between ``version`` and its parent."""
    if version.parent_id is None:
        return None
    return (
        EvaluationCampaign.objects.filter(versions=version)
        .filter(versions=version.parent_id)
        .exclude(status=EvaluationCampaign.Status.FAILED)
        .order_by("-created_at", "-id")
        .first()
    )


def rounds_recent(limit: int = 30) -> QuerySet[TrainingRound]:
    return TrainingRound.objects.select_related("project", "output_version", "base_version")[:limit]


def round_for_page(pk: int) -> TrainingRound | None:
    return TrainingRound.objects.select_related("project", "output_version").filter(pk=pk).first()


def round_metrics(training_round: TrainingRound) -> list[dict]:
    """The round's per-update metrics, in order (the charts' data)."""
    return list(RoundMetric.objects.filter(training_round=training_round).values_list("data", flat=True))


def projects_open() -> QuerySet[Project]:
    return Project.objects.filter(is_archived=False).order_by("name")


def versions_by_ids(ids: list[str]) -> list[ModelVersion]:
    wanted = [value for value in map(positive_id, ids) if value is not None]
    return list(ModelVersion.objects.filter(pk__in=wanted).order_by("pk"))


def compare_rows(project: Project, a: ModelVersion, b: ModelVersion, limit: int) -> list[tuple]:
    """(prompt, outputs of ``a``, outputs of ``b``) for the project's first ``limit`` prompts."""
    prompts: list[Prompt] = list(project.prompts.order_by("id")[:limit])
    outputs = Generation.objects.filter(prompt__in=prompts, model_version__in=[a, b]).order_by("id")
    by_key: dict[tuple[int, int], list[Generation]] = {}
    for generation in outputs:
        by_key.setdefault((generation.prompt_id, generation.model_version_id), []).append(generation)
    return [(p, by_key.get((p.pk, a.pk), []), by_key.get((p.pk, b.pk), [])) for p in prompts]


def round_critic_score_latest(
    training_round: TrainingRound, critic: CriticVersion | None = None
) -> RoundCriticScore | None:
    """The round's latest critic score (by ``critic`` when given)."""
    scores = training_round.critic_scores.select_related("critic_version")
    if critic is not None:
        scores = scores.filter(critic_version=critic)
    return scores.order_by("-created_at", "-id").first()


def critic_active_for(project: Project | None) -> CriticVersion | None:
    """The project's active critic, if it has one."""
    if project is None:
        return None
    return CriticVersion.objects.filter(project=project, is_active=True).first()


SPEED_JOBS = 5  # the latest generation jobs whose measured speed the estimates use


@dataclass(frozen=True)
class GenerationSpeed:
    tokens_per_s: float
    tokens_per_output: float
    jobs: int

    @property
    def seconds_per_output(self) -> float:
        return self.tokens_per_output / self.tokens_per_s


def generation_speed(limit: int = SPEED_JOBS) -> GenerationSpeed | None:
    """Tokens per second and per output, as the latest ``limit`` generation jobs that sampled anything on
    this deployment measured them (summed over their chunks); None before any job has."""
    rows = list(
        GenerationJob.objects.filter(outputs_timed__gt=0, sampling_s__gt=0, tokens_generated__gt=0)
        .order_by(F("heartbeat_at").desc(nulls_last=True), "-id")
        .values_list("tokens_generated", "outputs_timed", "sampling_s")[:limit]
    )
    if not rows:
        return None
    tokens = sum(row[0] for row in rows)
    return GenerationSpeed(
        tokens_per_s=tokens / sum(row[2] for row in rows),
        tokens_per_output=tokens / sum(row[1] for row in rows),
        jobs=len(rows),
    )


def generation_seconds_per_output() -> float | None:
    """Seconds an output takes to sample, as recent generation jobs here measured (None: none has)."""
    speed = generation_speed()
    return speed.seconds_per_output if speed is not None else None


SPEED_ROUNDS = 5  # the latest finished rounds whose seconds per update the estimates use


def round_seconds_per_update(limit: int = SPEED_ROUNDS) -> float | None:
    """Wall seconds per PPO update (model load and save included, spread over the updates), as the latest
    ``limit`` rounds that succeeded on this deployment took them; None before any has."""
    rows = list(
        TrainingRound.objects.filter(
            status=TrainingRound.Status.SUCCEEDED,
            progress_step__gt=0,
            started_at__isnull=False,
            finished_at__isnull=False,
        )
        .order_by("-finished_at", "-id")
        .values_list("started_at", "finished_at", "progress_step")[:limit]
    )
    if not rows:
        return None
    seconds = sum((finished - started).total_seconds() for started, finished, _ in rows)
    return max(0.0, seconds) / sum(updates for _, _, updates in rows)
