"""Generation jobs: sample outputs for a project's prompts with a model version, batch by batch.

Fair turns. The generation lane has one slot (one worker process, the model loaded once), and a project's
job can be long (164 HumanEval prompts take hours on a laptop). A bulk job therefore takes turns: once it
has written a chunk and run ``T2G_GENERATION_TURN_S`` seconds, and other work waits in the lane (another
project's job, an evaluation campaign, the outputs of a version comparison), it goes back to the queue
behind that work (``jobs.reaper.requeue``) and later resumes after the outputs it committed. So every
project gets a first small batch soon, and evaluations never wait for a bulk job to finish. Outputs for
evaluation (``purpose: evaluation``, the compare page) are short and never give their turn away.
"""

from __future__ import annotations

import logging
import time
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from annotations.models import EVALUATION_PURPOSE, Generation, Prompt
from evaluation.models import CampaignGeneration
from jobs import lifecycle, reaper
from jobs.models import Outbox
from text2grad import generation, model_store
from training import services
from training.models import CriticPredictionJob, GenerationJob, RoundCriticScore
from training.selectors import active_version

from .runtime import LoadAbandoned, load_version, load_version_unless

logger = logging.getLogger(__name__)


def _purpose(job) -> dict:
    return {"purpose": job.sampling_params["purpose"]} if "purpose" in job.sampling_params else {}


def generation_job_run(*, job_id: int) -> None:
    """Sample outputs for the job's prompts, writing Generation rows batch by batch as they finish."""
    job = GenerationJob.objects.select_related("project", "model_version").get(pk=job_id)
    if not job.claim():
        logger.info("Generation job %s is %s; nothing to do", job_id, job.status)
        return
    with lifecycle.running(job, f"Generation job {job_id}"):
        outcome = _run_generation(job)
        if outcome is YIELDED:
            if reaper.requeue(job):
                logger.info("Generation job %s gave its turn to waiting work after %s outputs", job_id,
                            GenerationJob.objects.get(pk=job_id).progress_step)  # fmt: skip
        elif outcome:
            lifecycle.finish(job, GenerationJob.Status.SUCCEEDED)
        else:  # stopped on a cancel request between chunks, or no longer this run's
            raise lifecycle.Stopped("Cancelled by a user; the outputs written before are kept.")


class _Yielded:
    """``_run_generation``'s answer when the job stopped to let waiting work run (it is not finished)."""

    def __bool__(self) -> bool:
        return False

    def __repr__(self) -> str:
        return "YIELDED"


YIELDED = _Yielded()


def takes_turns(job: GenerationJob) -> bool:
    """Bulk jobs take turns; outputs for evaluation (a few prompts, someone waiting on them) do not."""
    return job.sampling_params.get("purpose") != EVALUATION_PURPOSE


def _turn_over(job: GenerationJob, *, turn_started: float, chunks_written: int) -> bool:
    """Time to give the lane to waiting work: at least one chunk written in this turn (every turn makes
    progress), the turn's seconds spent, and something waiting."""
    return (
        chunks_written > 0
        and takes_turns(job)
        and time.monotonic() - turn_started >= settings.T2G_GENERATION_TURN_S
        and lane_work_waiting(job)
    )


# The work that shares the generation lane, with the task that runs it (a turn is given only to work that
# can start now).
_LANE_WORK = (
    (GenerationJob, "training.generate"),
    (CampaignGeneration, "training.evaluation_generate"),
    (CriticPredictionJob, "training.critic_predict"),
    (RoundCriticScore, "training.round_critic_score"),
)


def lane_work_waiting(job: GenerationJob) -> bool:
    """Other work is waiting for the generation lane now: a queued generation job, campaign generation,
    critic prediction or a round's critic score (not one held back by a retry countdown)."""
    held_back = {
        (task, tuple(args))
        for task, args in Outbox.objects.filter(
            task_name__in=[task for _, task in _LANE_WORK],
            available_at__gt=timezone.now() + timedelta(seconds=1),
        ).values_list("task_name", "args")
    }
    for model, task in _LANE_WORK:
        queued = model.objects.filter(status=model.Status.QUEUED)
        if model is GenerationJob:
            queued = queued.exclude(pk=job.pk)
        if any((task, (pk,)) not in held_back for pk in queued.values_list("pk", flat=True)[:50]):
            return True
    return False


def generation_warm_up() -> float:
    """Load the active version (base + adapter) into this process's model cache. Returns seconds."""
    started = time.perf_counter()
    load_version(active_version())
    return time.perf_counter() - started


def _ours(job: GenerationJob):
    """The job's row while this run still owns it (the framework's fence: RUNNING with its attempt)."""
    return lifecycle.owned(job)


def _run_generation(job: GenerationJob) -> bool | _Yielded:
    """True when every prompt is done; False when it stopped early (cancelled or lost); ``YIELDED`` when
    it stopped between chunks to give waiting work its turn (the caller queues it again)."""
    prompts = Prompt.objects.filter(project=job.project).select_related("project").order_by("id")
    if job.prompt_ids:
        prompts = prompts.filter(id__in=job.prompt_ids)
    prompts = list(prompts)
    version = job.model_version
    try:
        # A cold load can take ~40 s on a busy machine: cancel is honoured while waiting for it (the load
        # itself finishes in the background, into the cache the next job uses).
        model, tokenizer = load_version_unless(version, should_stop=lambda: lifecycle.cancel_requested(job))
    except LoadAbandoned:
        return False
    fingerprint = model_store.tokenizer_fingerprint(tokenizer)
    params = {
        "temperature": settings.T2G_TEMPERATURE,
        "top_p": settings.T2G_TOP_P,
        "max_new_tokens": settings.T2G_MAX_NEW_TOKENS,
        **job.sampling_params,
    }
    # Small chunks: each commits its outputs, and cancel is checked between them (seconds apart).
    batch = max(1, settings.T2G_GENERATION_CHUNK // job.per_prompt)
    # A requeued job resumes after the prompts whose outputs it committed: ``progress_step`` counts
    # exactly those, because it is written in the same transaction as their rows.
    done = min(job.progress_step, len(prompts) * job.per_prompt)
    job.report_progress(done, len(prompts) * job.per_prompt)
    turn_started = time.monotonic()
    first = done // job.per_prompt
    for start in range(first, len(prompts), batch):
        if lifecycle.cancel_requested(job):  # cancelled, or requeued while this run looked lost
            return False
        if _turn_over(job, turn_started=turn_started, chunks_written=start - first):
            return YIELDED
        chunk = prompts[start : start + batch]
        seed = params.get("seed")
        sampling_started = time.monotonic()
        try:
            outputs = generation.sample(
                model,
                tokenizer,
                [p.chat_messages() for p in chunk],
                n_per_prompt=job.per_prompt,
                max_new_tokens=int(params["max_new_tokens"]),
                temperature=float(params["temperature"]),
                top_p=float(params["top_p"]),
                seed=None if seed is None else int(seed) + start,
                batch_size=settings.T2G_GENERATION_BATCH,
                # Cancel is honoured within about a second of decoding, not after the chunk.
                should_stop=lambda: lifecycle.cancel_requested(job),
            )
        except generation.GenerationStopped:
            return False
        done += len(chunk) * job.per_prompt
        if not _write_chunk(job, chunk, outputs, fingerprint, time.monotonic() - sampling_started, done):
            return False  # lost the job while sampling: its rows would duplicate the next run's
    return True


def _write_chunk(
    job: GenerationJob, chunk: list[Prompt], outputs, fingerprint: str, sampling_s: float, done: int
) -> bool:
    """Commit a chunk's outputs with the job's progress (``done`` outputs now) and its measured speed
    (tokens and seconds spent sampling, which the empty queue's "when the first outputs come" reads);
    False when the job is no longer this run's."""
    version = job.model_version
    with transaction.atomic():
        if not list(_ours(job).select_for_update().values_list("pk", flat=True)):
            return False
        written = []
        tokens = 0
        for prompt, samples in zip(chunk, outputs, strict=True):
            for sample in samples:
                generation_row = Generation(
                    prompt=prompt,
                    model_version=version,
                    source_model=version.name if version else "",
                    text=sample.text,
                    prompt_token_ids=sample.prompt_ids,
                    response_token_ids=sample.response_ids,
                    behaviour_logprobs=sample.logprobs,
                    tokenizer_fingerprint=fingerprint,
                    # The job's purpose travels with each output (evaluation outputs stay out of queues).
                    sampling_params=sample.params | _purpose(job),
                    finish_reason=sample.finish_reason,
                )
                generation_row.save()
                written.append(generation_row.pk)
                tokens += len(sample.response_ids)
        # Pre-annotation: the project's active critic predicts spans on the new outputs (after commit).
        services.critic_predictions_request(project_id=job.project_id, generation_ids=written)
        lifecycle.progress(
            job,
            done,
            tokens_generated=F("tokens_generated") + tokens,
            outputs_timed=F("outputs_timed") + len(written),
            sampling_s=F("sampling_s") + sampling_s,
        )
    return True
