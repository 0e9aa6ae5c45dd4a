"""The round page's critic score, worker side: the round's new version and its parent answer the same
held-out prompts with the same seeds, and the project's active critic scores every answer (its mean
token reward under the project's reward scheme). Cheap beside blind pairs, and only a proxy: the critic
learned from this project's annotations and may share their blind spots."""

from __future__ import annotations

import logging

from django.conf import settings

from annotations.models import Prompt
from jobs import lifecycle
from text2grad import generation, pairwise
from text2grad.critic import token_rewards_from_probs

from ..models import RoundCriticScore
from .critic import critique_texts
from .rewards import scheme_for
from .runtime import load_version

logger = logging.getLogger(__name__)
SEED = 1234  # the same for both versions, so their answers differ only by the model
TEMPERATURE = 0.6


class _Stopped(lifecycle.Stopped):
    """Cancel requested, or the job is no longer this run's (the reaper requeued it)."""

    reason = "Cancelled; the answers scored before the cancel are not kept."


def round_critic_score_run(*, job_id: int) -> str | None:
    """Claim the job (the framework's fenced claim), sample both versions and score them with a
    heartbeat, then record the per-prompt scores and their summary, all at the end: a cancelled or lost
    run records no result. Returns the status it ended with, None where the job was not queued or was
    taken over meanwhile."""
    job = lifecycle.claim(RoundCriticScore, job_id)
    if job is None:
        logger.info("Round critic score %s is not queued any more; nothing to do", job_id)
        return None
    with lifecycle.running(job, f"Round critic score {job_id}") as run:
        result = _score(job)
        if not lifecycle.finish(job, RoundCriticScore.Status.SUCCEEDED, result=result):
            raise lifecycle.Lost
    if run.lost:
        return None
    return RoundCriticScore.Status.CANCELLED if run.cancelled else RoundCriticScore.Status.SUCCEEDED


def _score(job: RoundCriticScore) -> dict:
    version = job.training_round.output_version
    parent = version.parent
    by_id = Prompt.objects.select_related("project").in_bulk(job.prompt_ids)
    prompts = [by_id[pk] for pk in job.prompt_ids if pk in by_id]
    if not prompts:
        raise ValueError("The prompts to evaluate on were deleted.")
    scheme = scheme_for(prompts[0].project)
    scores: dict[int, list[float]] = {}
    for index, model_version in enumerate((parent, version)):
        texts = _answers(job, model_version, prompts)
        critiques = critique_texts(job.critic_version, [p.chat_messages() for p in prompts], texts)
        scores[model_version.pk] = [
            _mean(token_rewards_from_probs(critique.token_probs, scheme)) for _, critique in critiques
        ]
        lifecycle.progress(job, (index + 1) * len(prompts))
    summary = pairwise.paired_scores(scores[parent.pk], scores[version.pk])
    return {
        **summary,
        "critic": job.critic_version.name,
        "version": version.name,
        "parent": parent.name,
        "prompts": [
            {"id": p.pk, "parent": round(a, 6), "version": round(b, 6)}
            for p, a, b in zip(prompts, scores[parent.pk], scores[version.pk], strict=True)
        ],
    }


def _answers(job: RoundCriticScore, model_version, prompts: list[Prompt]) -> list[str]:
    if lifecycle.cancel_requested(job):
        raise _Stopped
    model, tokenizer = load_version(model_version)
    try:
        outputs = generation.sample(
            model,
            tokenizer,
            [p.chat_messages() for p in prompts],
            max_new_tokens=settings.T2G_MAX_NEW_TOKENS,
            temperature=TEMPERATURE,
            seed=SEED,
            batch_size=max(1, settings.T2G_GENERATION_BATCH),
            should_stop=lambda: lifecycle.cancel_requested(job),
        )
    except generation.GenerationStopped as exc:
        raise _Stopped from exc
    return [sample.text for (sample,) in outputs]


def _mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else 0.0
