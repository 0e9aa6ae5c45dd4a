"""Worker-side critic work: train a critic version from a job's annotation snapshot, measure it on held-out
outputs next to baselines, and predict spans on new outputs (pre-annotation, queue uncertainty).

Stages of a job (timed into ``job.summary["timings"]``): data (spans to token labels by the reward offset
mapping), load (a base model of its own + LoRA + head), train, evaluate (critic and baselines on the
held-out outputs), save (written to a scratch folder, published to the artifact store under ``models/critics/<name>`` with a
sha256 manifest, the same atomic publish as model versions) and record. Any host predicts with a critic by
fetching it once per content hash into ``T2G_MODEL_CACHE_DIR`` (``critic_dir``).
"""

from __future__ import annotations

import logging
import math
import random
import tempfile
import threading
import time
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from annotations.models import Annotation, Generation
from jobs import lifecycle
from text2grad import critic as critic_core
from text2grad import critic_metrics as cm
from text2grad import model_store
from text2grad.generation import encode_prompt
from text2grad.rewards import SpanReward, tokenize_response
from training import services
from training.models import CriticPrediction, CriticPredictionJob, CriticTrainingJob, CriticVersion

from .runtime import base_dir, configure_threads
from .versions import critic_fetch, critic_publish

logger = logging.getLogger(__name__)


class JobCancelled(lifecycle.Stopped):
    """Cancel requested between training steps: the job ends cancelled and no critic is recorded."""


class JobLost(lifecycle.Lost):
    """The job is no longer this run's (the reaper gave up on it, or another attempt claimed it)."""


# -- data ----------------------------------------------------------------------------------------------------
def labelled_outputs(annotation_ids: list[int], tokenizer) -> list[dict]:
    """One row per output: token ids, offsets and labels combined over its annotators (the sign of the
    mean of their token values, poor −1 / good +1, so one annotator's poor mark against one's silence
    stays poor); an output's gold annotation, where the ids include it, replaces its annotators'."""
    annotations = (
        Annotation.objects.filter(pk__in=annotation_ids, status=Annotation.Status.SUBMITTED)
        .select_related("generation__prompt__project")
        .prefetch_related("spans")
        .order_by("id")
    )
    by_generation: dict[int, list[Annotation]] = defaultdict(list)
    for annotation in annotations:
        by_generation[annotation.generation_id].append(annotation)
    rows = []
    for generation_id, group in sorted(by_generation.items()):
        group = [a for a in group if a.is_gold] or group  # gold is the output's label, not one more vote
        generation = group[0].generation
        tokenized = tokenize_response(tokenizer, generation.text)
        if not tokenized.response_ids:
            continue
        values = np.zeros(len(tokenized.response_ids))
        for annotation in group:
            spans = [SpanReward(s.start, s.end, s.polarity) for s in annotation.spans.all()
                     if s.end <= len(generation.text)]  # fmt: skip
            labels = critic_core.token_labels(tokenized.response_offsets, spans)
            values += np.array([{cm.POOR: -1.0, cm.GOOD: 1.0}.get(label, 0.0) for label in labels])
        mean = values / len(group)
        rows.append(
            {
                "generation_id": generation_id,
                "prompt_id": generation.prompt_id,
                "annotation_ids": [a.pk for a in group],
                "prompt_ids": encode_prompt(tokenizer, generation.prompt.chat_messages()),
                "response_ids": tokenized.response_ids,
                "offsets": tokenized.response_offsets,
                "labels": [cm.POOR if v < 0 else cm.GOOD if v > 0 else cm.NEUTRAL for v in mean],
                "text": generation.text,
                "source": generation.prompt.text,
            }
        )
    return rows


def split_held_out(
    rows: list[dict], fraction: float, seed: int, *, keep_held=(), keep_trained=()
) -> tuple[list[dict], list[dict]]:
    """A seeded split by prompt: all outputs of a prompt fall on one side, about ``fraction`` of the
    outputs held out. Along a lineage (a critic continued from its parent), the prompts held out before
    (``keep_held``) stay held out and those trained on before (``keep_trained``) are never drawn into the
    held-out set, so a version is never measured on what it or an ancestor learned from. Fewer than 5
    outputs: no new prompts are held out (metrics are then in-sample unless inherited ones are there)."""
    keep_held, keep_trained = set(keep_held), set(keep_trained)
    held = {r["prompt_id"] for r in rows if r["prompt_id"] in keep_held}
    if len(rows) >= 5 and fraction > 0:
        per_prompt = Counter(r["prompt_id"] for r in rows)
        target = max(1, math.floor(len(rows) * fraction))
        count = sum(per_prompt[p] for p in held)
        candidates = sorted(p for p in per_prompt if p not in held and p not in keep_trained)
        random.Random(seed).shuffle(candidates)
        for prompt_id in candidates:
            if count >= target:
                break
            held.add(prompt_id)
            count += per_prompt[prompt_id]
    return [r for r in rows if r["prompt_id"] not in held], [r for r in rows if r["prompt_id"] in held]


def lineage_prompts(parent: CriticVersion | None) -> tuple[set[int], set[int]]:
    """The prompt ids ``parent``'s lineage held out and trained on (what a child must keep apart). A
    version recorded before prompts were tracked: from its held-out outputs and its snapshot."""
    if parent is None:
        return set(), set()
    metrics = parent.metrics or {}
    if "lineage_held_out_prompt_ids" in metrics:
        return set(metrics["lineage_held_out_prompt_ids"]), set(metrics["lineage_trained_prompt_ids"])
    held_outputs = set(metrics.get("held_out_generation_ids", []))
    held = set(Generation.objects.filter(pk__in=held_outputs).values_list("prompt_id", flat=True))
    trained = set(
        Annotation.objects.filter(pk__in=parent.snapshot)
        .exclude(generation_id__in=held_outputs)
        .values_list("generation__prompt_id", flat=True)
    )
    return held, trained - held


def evaluate_with_baselines(critic, train_rows: list[dict], test_rows: list[dict], config) -> dict:
    """Held-out reports of the critic, every-token-neutral, P(label | token id) and MiniLM similarity."""
    truth = [np.array(r["labels"]) for r in test_rows]
    probs = critic_core.predict_token_probs(
        critic, [r["prompt_ids"] for r in test_rows], [r["response_ids"] for r in test_rows], config=config
    )
    reports = {"critic": cm.evaluate(truth, probs)}
    reports["all_neutral"] = cm.evaluate(truth, cm.all_neutral_probs([len(t) for t in truth]))
    prior = cm.token_prior_fit(
        [r["response_ids"] for r in train_rows], [np.array(r["labels"]) for r in train_rows]
    )
    reports["token_prior"] = cm.evaluate(
        truth, cm.token_prior_probs(prior, [r["response_ids"] for r in test_rows])
    )
    try:
        from text2grad.alignment import default_embedder

        encode = default_embedder().encode

        def scores(rows):
            return cm.similarity_poor_scores([r["text"] for r in rows], [r["source"] for r in rows],
                                             [r["offsets"] for r in rows], encode)  # fmt: skip

        fit = scores(train_rows)
        threshold, _ = cm.f1_threshold(
            np.concatenate([np.array(r["labels"]) == cm.POOR for r in train_rows]), np.concatenate(fit)
        )
        if math.isfinite(threshold):
            reports["minilm_similarity"] = cm.evaluate(
                truth, cm.threshold_probs(scores(test_rows), threshold)
            )
    except Exception as exc:  # the baseline is optional: a missing MiniLM wheel must not fail the job
        logger.warning("MiniLM baseline skipped: %s", exc)
    return reports


# -- the job -------------------------------------------------------------------------------------------------
def critic_job_run(*, job_id: int) -> str:
    """Claim and run a critic training job in the framework's ``running`` (heartbeat, cancel, fenced
    record). Returns the status it ended with, "lost" when the job stopped being this run's. A failure is
    the job's end, recorded on its row and logged, not an error of the task: it is not raised."""
    job = CriticTrainingJob.objects.select_related("project", "parent").get(pk=job_id)
    if not job.claim():
        return f"not claimed ({job.status})"
    try:
        with lifecycle.running(job, f"Critic job {job_id}") as run:
            _run(job)
    except Exception:
        return CriticTrainingJob.Status.FAILED
    if run.lost:
        logger.warning("Critic job %s is no longer this run's; its critic was not recorded", job_id)
        return "lost"
    return CriticTrainingJob.Status.CANCELLED if run.cancelled else CriticTrainingJob.Status.SUCCEEDED


def _run(job: CriticTrainingJob) -> None:
    configure_threads()
    timings: dict[str, float] = {}
    config = critic_core.CriticConfig.from_dict(job.config)

    started = time.perf_counter()
    base = base_dir()
    tokenizer = model_store.load_tokenizer(base)
    rows = labelled_outputs(job.snapshot, tokenizer)
    if not rows:
        raise ValueError("The snapshot has no submitted annotation on a non-empty output")
    keep_held, keep_trained = lineage_prompts(job.parent)
    train_rows, test_rows = split_held_out(
        rows, config.held_out_fraction, config.seed, keep_held=keep_held, keep_trained=keep_trained
    )
    if not train_rows:
        raise ValueError("Every output's prompt is held out (by this critic's lineage): nothing to train on")
    timings["data"] = time.perf_counter() - started

    started = time.perf_counter()
    base_model, _ = model_store.load(base, None, trainable=True)
    parent_dir = critic_dir(job.parent) if job.parent else None
    critic = critic_core.build_critic(base_model, config, init_dir=parent_dir)
    timings["load"] = time.perf_counter() - started

    started = time.perf_counter()
    total_steps = math.ceil(len(train_rows) / config.batch_size) * config.epochs
    job.report_progress(0, total_steps + 1)  # the last step is the evaluation

    def on_step(step: dict) -> None:
        job.report_progress(step["step"])

    def should_stop() -> bool:
        return bool(CriticTrainingJob.objects.filter(pk=job.pk, cancel_requested=True).exists())

    examples = [
        critic_core.CriticExample(r["prompt_ids"], r["response_ids"], r["labels"]) for r in train_rows
    ]
    result = critic_core.train_critic(critic, examples, config, on_step=on_step, should_stop=should_stop)
    if result["stopped"]:
        raise JobCancelled
    timings["train"] = time.perf_counter() - started

    started = time.perf_counter()
    in_sample = not test_rows
    reports = evaluate_with_baselines(critic, train_rows, test_rows or train_rows, config)
    timings["evaluate"] = time.perf_counter() - started
    job.report_progress(total_steps + 1)

    started = time.perf_counter()
    name = f"critic-p{job.project_id}-j{job.pk}-{timezone.now():%Y%m%d-%H%M%S}"
    settings.T2G_MODELS_DIR.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".critic-", dir=settings.T2G_MODELS_DIR) as scratch:
        folder = critic_core.save_critic_atomic(
            critic, Path(scratch) / name, {"name": name, "job": job.pk, "config": config.to_dict()}
        )
        # Uploaded and verified before any row names it; any host fetches it by its content hash.
        storage_key, digest = critic_publish(source_dir=folder, name=name)
    timings["save"] = time.perf_counter() - started

    metrics = {
        "reports": reports,
        "in_sample": in_sample,
        "train_outputs": len(train_rows),
        "held_out_outputs": len(test_rows),
        "held_out_generation_ids": [r["generation_id"] for r in test_rows],
        "held_out_prompt_ids": sorted({r["prompt_id"] for r in test_rows}),
        # What every descendant keeps apart: held out (never trained on) and trained on (never held out).
        "lineage_held_out_prompt_ids": sorted(keep_held | {r["prompt_id"] for r in test_rows}),
        "lineage_trained_prompt_ids": sorted(keep_trained | {r["prompt_id"] for r in train_rows}),
        "selection": job.selection,
        "train_losses": [round(x, 5) for x in result["losses"]],
        "timings": {k: round(v, 3) for k, v in timings.items()},
    }
    _record_version(
        job, config, name=name, storage_key=storage_key, content_hash=digest, metrics=metrics, result=result
    )


# -- loading and predicting ----------------------------------------------------------------------------------
def critic_dir(version: CriticVersion) -> Path:
    """A local folder with the critic: from the artifact store, fetched once per host and content hash."""
    return critic_fetch(
        storage_key=version.storage_key, content_hash=version.content_hash, adapter_path=version.adapter_path
    )


class _CriticCache:
    """The last loaded critic of this process (a base model of its own: peft changes the one it wraps)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._key: str | None = None
        self._value = None

    def get(self, version: CriticVersion):
        key = version.content_hash or version.adapter_path
        with self._lock:
            if self._key != key:
                self._value = None
                base = base_dir()
                base_model, tokenizer = model_store.load(base, None)
                config = critic_core.CriticConfig.from_dict(version.config) if version.config else None
                self._value = (critic_core.load_critic(base_model, critic_dir(version)), tokenizer, config)
                self._key = key
            return self._value

    def clear(self) -> None:
        with self._lock:
            self._key, self._value = None, None


critic_cache = _CriticCache()


def _record_version(
    job: CriticTrainingJob,
    config,
    *,
    name: str,
    storage_key: str,
    content_hash: str,
    metrics: dict,
    result: dict,
) -> None:
    """The saved critic's row, its activation when asked, and the job's success, in one transaction."""
    with transaction.atomic():
        version = CriticVersion.objects.create(
            project=job.project,
            name=name,
            base_model=services.base_model_reference(),
            storage_key=storage_key,
            content_hash=content_hash,
            parent=job.parent,
            created_by_job=job,
            config=config.to_dict(),
            snapshot=job.snapshot,
            snapshot_hash=job.snapshot_hash,
            metrics=metrics,
        )
        if job.auto_activate:
            services.critic_version_activate(version=version)
        # Fenced like every job's finish: a run the reaper gave up on records no critic (the version row
        # and its activation roll back; the published folder is left to the orphan collector).
        won = lifecycle.finish(
            job, CriticTrainingJob.Status.SUCCEEDED, output_version=version,
            summary={"timings": metrics["timings"], "steps": result["steps"],
                     "final_loss": result["losses"][-1] if result["losses"] else None},
        )  # fmt: skip
        if not won:
            raise JobLost
        version.refresh_from_db()
        services.critic_version_ready_emit(version=version)


def critique_texts(version: CriticVersion, prompts: list[list[dict]], texts: list[str]) -> list:
    """The critic's :class:`~text2grad.critic.CriticOutput` for each (chat prompt, response text)."""
    critic, tokenizer, config = critic_cache.get(version)
    items = []
    for messages, text in zip(prompts, texts, strict=True):
        tokenized = tokenize_response(tokenizer, text)
        items.append(critic_core.CriticInput(encode_prompt(tokenizer, messages), tokenized.response_ids, text,
                                             tokenized.response_offsets))  # fmt: skip
    probs = critic_core.predict_token_probs(
        critic, [i.prompt_ids for i in items], [i.response_ids for i in items], config=config
    )
    return [
        (
            item,
            critic_core.CriticOutput(
                p,
                critic_core.spans_from_probs(item.text, item.offsets, p),
                critic_core.response_uncertainty(p),
            ),
        )  # fmt: skip
        for item, p in zip(items, probs, strict=True)
    ]


SCORE_BATCH = 16  # outputs scored per forward batch; cancel and the fence are checked between them


def critic_prediction_job_run(*, job_id: int) -> int:
    """Claim a prediction job (the framework's fenced claim) and run it in the framework's ``running``;
    returns how many predictions it wrote. A requeued job skips the outputs already predicted."""
    job = lifecycle.claim(CriticPredictionJob, job_id)
    if job is None:
        logger.info("Critic prediction job %s is not queued any more; nothing to do", job_id)
        return 0
    with lifecycle.running(job, f"Critic prediction job {job_id}"):
        written, finished = _predict(job)
        if not finished:
            raise lifecycle.Stopped("Cancelled; the predictions written before are kept.")
        lifecycle.finish(job, CriticPredictionJob.Status.SUCCEEDED)
    return written


def _predict(job: CriticPredictionJob) -> tuple[int, bool]:
    """(predictions written, True when every output is done; False when cancelled or lost)."""
    version = job.critic_version
    configure_threads()
    done = set(
        CriticPrediction.objects.filter(
            critic_version=version, generation_id__in=job.generation_ids
        ).values_list("generation_id", flat=True)
    )
    generations = list(
        Generation.objects.filter(
            pk__in=[g for g in job.generation_ids if g not in done], prompt__project_id=version.project_id
        )
        .select_related("prompt__project")
        .order_by("id")
    )
    lifecycle.progress(job, len(done), len(job.generation_ids))
    written = 0
    for start in range(0, len(generations), SCORE_BATCH):
        if lifecycle.cancel_requested(job):  # cancelled, or requeued while this run looked lost
            return written, False
        chunk = generations[start : start + SCORE_BATCH]
        scored = critique_texts(version, [g.prompt.chat_messages() for g in chunk], [g.text for g in chunk])
        with transaction.atomic():
            if not lifecycle.owned(job).select_for_update().exists():
                return written, False  # the fence: a run that lost the job writes nothing more
            CriticPrediction.objects.bulk_create(
                [
                    CriticPrediction(
                        generation=g,
                        critic_version=version,
                        spans=[s.to_dict() for s in out.spans],
                        uncertainty=out.uncertainty,
                    )  # fmt: skip
                    for g, (_, out) in zip(chunk, scored, strict=True)
                ],
                ignore_conflicts=True,
            )
            written += len(chunk)
            lifecycle.progress(job, len(done) + written)
    return written, True


def critic_predict_run(*, critic_version_id: int, generation_ids: list[int]) -> int:
    """Predict in this process, outside a job (benchmarks, tests): a job row run at once. Returns how many
    predictions it wrote (outputs the critic already predicted are skipped)."""
    version = CriticVersion.objects.filter(pk=critic_version_id).first()
    if version is None:
        return 0
    with transaction.atomic():
        job = CriticPredictionJob.objects.create(
            critic_version=version, generation_ids=sorted(generation_ids), progress_total=len(generation_ids)
        )
    return critic_prediction_job_run(job_id=job.pk)
