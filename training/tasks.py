"""Celery tasks: thin wrappers that take ids and call one worker-side service.

Nothing here imports torch at module level: the web process imports this module to enqueue.
"""

from __future__ import annotations

from celery import shared_task


@shared_task(name="training.generate", acks_late=True, soft_time_limit=6 * 3600, time_limit=6 * 3600 + 120)
def generate(job_id: int) -> None:
    from .worker import generation

    generation.generation_job_run(job_id=job_id)


@shared_task(
    name="training.evaluation_generate", acks_late=True, soft_time_limit=6 * 3600, time_limit=6 * 3600 + 120
)
def evaluation_generate(job_id: int) -> None:
    """One ``evaluation.CampaignGeneration`` job (a campaign's outputs), by its id."""
    from .worker import campaigns

    campaigns.campaign_generate_run(job_id=job_id)


@shared_task(name="training.compute_rewards", acks_late=True, soft_time_limit=300, time_limit=330)
def compute_rewards(annotation_id: int) -> None:
    from .worker import rewards

    rewards.annotation_rewards_compute(annotation_id=annotation_id)


@shared_task(
    name="training.recompute_all_rewards", acks_late=True, soft_time_limit=3 * 3600, time_limit=3 * 3600 + 60
)
def recompute_all_rewards(project_id: int | None = None) -> int:
    from .worker import rewards

    return rewards.rewards_recompute_all(project_id=project_id)


@shared_task(
    bind=True,
    name="training.train_round",
    acks_late=True,
    soft_time_limit=12 * 3600,
    time_limit=12 * 3600 + 300,
    max_retries=None,
)
def train_round(self, round_id: int) -> str:
    from .worker import rounds

    status = rounds.round_run(round_id=round_id)  # every mode
    if status == "busy":
        # Another round holds the shared model: wait for it rather than fail.
        raise self.retry(countdown=30)
    return status


@shared_task(name="training.align_critique", acks_late=True, soft_time_limit=120, time_limit=150)
def align_critique(request_id: int) -> None:
    from .worker import alignment

    alignment.alignment_request_run(request_id=request_id)


@shared_task(name="training.collect_orphan_versions", ignore_result=True)
def collect_orphan_versions() -> list[str]:
    """Periodic: delete version folders in the artifact store that no ModelVersion names (a day old)."""
    from .worker import versions

    return versions.versions_collect_orphans()


@shared_task(name="training.warm_alignment", ignore_result=True, soft_time_limit=300, time_limit=330)
def warm_alignment() -> float:
    """Sent by an interactive worker when it starts: Suggest spans answers at once from then on."""
    from .worker import alignment

    return alignment.alignment_warm_up()


@shared_task(name="training.warm_generation", ignore_result=True, soft_time_limit=600, time_limit=630)
def warm_generation() -> float:
    """Sent by a generation-lane worker when it starts: it loads the active version into its model cache,
    so the first generation job does not pay the cold load (and a cancel rarely meets one)."""
    from .worker import generation

    return generation.generation_warm_up()


@shared_task(
    name="training.train_critic", acks_late=True, soft_time_limit=6 * 3600, time_limit=6 * 3600 + 120
)
def train_critic(job_id: int) -> str:
    from .worker import critic

    return critic.critic_job_run(job_id=job_id)


@shared_task(name="training.critic_predict", acks_late=True, soft_time_limit=3600, time_limit=3600 + 60)
def critic_predict(job_id: int, generation_ids: list[int] | None = None) -> int:
    """One ``CriticPredictionJob``, by its id. A message from before prediction jobs (a critic version's
    id and the outputs) still queued at the upgrade is run as a new job."""
    from .worker import critic

    if generation_ids is not None:
        return critic.critic_predict_run(critic_version_id=job_id, generation_ids=generation_ids)
    return critic.critic_prediction_job_run(job_id=job_id)


@shared_task(name="training.round_critic_score", acks_late=True, soft_time_limit=3600, time_limit=3600 + 60)
def round_critic_score(job_id: int) -> str | None:
    """One ``RoundCriticScore`` job (the critic's score of a round's version against its parent), by id."""
    from .worker import round_scores

    return round_scores.round_critic_score_run(job_id=job_id)


@shared_task(name="training.build_download", acks_late=True, soft_time_limit=3600, time_limit=3600 + 60)
def build_download(download_id: int) -> None:
    from .worker import merge

    merge.download_build_run(download_id=download_id)
