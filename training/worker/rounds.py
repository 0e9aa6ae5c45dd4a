"""Worker-side: run one training round, any mode, from its rows to a new ModelVersion.

This is the app's adapter around the core's loop (:func:`text2grad.trainer.train`): it claims the round,
loads what the round trains on into a batch source (an offline round: the snapshot's annotations as
samples, :class:`SnapshotBatches`; an on-policy round: fresh samples scored by the critic each update,
``training.worker.on_policy.OnPolicyBatches``), and gives the trainer :class:`RoundHooks`: resume from and
checkpoint to the artifact store (``training.worker.versions``), stop on cancel through the job
framework, progress into RoundMetric rows, publish the new version.

Stages (each timed into ``round.summary["timings"]``): rewards (offline: compute any missing token
rewards), load (base model and the starting version's adapter and value head), train (``steps`` PPO
updates with a checkpoint after each; on-policy rounds split it into sample / score / update / record),
save (the new adapter published to the store), promote (only when the round asks for it, and only past
the evaluation gate a manual promotion enforces; otherwise the summary says why not). Any failure
marks the round failed with its reason and leaves the active version as it was; a round that died can be
resumed from its last checkpoint.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Protocol

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from jobs import lifecycle
from jobs.dburl import current_database_url
from text2grad import model_store
from text2grad.config import TrainingConfig
from text2grad.engine import Sample
from text2grad.generation import encode_prompt
from text2grad.policy import build_policy, save_policy
from text2grad.rewards import combine_rewards
from text2grad.trainer import Checkpoint, Hooks, Stopped, TrainResult, UpdateReport, fixed_batches, train
from training import services
from training.models import ModelVersion, RoundMetric, TokenReward, TrainingRound

from . import on_policy
from .rewards import base_tokenizer, rewards_store_missing
from .runtime import adapter_dir, base_dir, configure_threads
from .versions import checkpoint_fetch, checkpoint_publish, checkpoints_delete, log_publish, version_publish

logger = logging.getLogger(__name__)

# Rollout-level numbers of each update, copied onto its optimizer steps so every chart reads one table.
ROLLOUT_KEYS = ("kl", "kl_coef", "mean_token_reward", "mean_shaped_reward", "importance_weight")


# Exit codes of a training.worker.ddp_round rank, so the launching task can tell cancel and loss from failure.
EXIT_CANCELLED = 3
EXIT_LOST = 4


class RoundLost(lifecycle.Lost):
    """This run no longer owns the round (it was reaped as stale and resumed elsewhere): stop quietly."""


def _owned(training_round: TrainingRound):
    return TrainingRound.objects.filter(
        pk=training_round.pk, status=TrainingRound.Status.RUNNING, attempts=training_round.attempts
    )


def round_run(*, round_id: int, on_update: Callable[[int, int, dict], None] | None = None) -> str:
    """Claim and run a round of any mode. Returns the final status (or why it did not run).

    ``on_update(done, total, metrics)`` is called after each PPO update (the CLI draws a progress bar).
    """
    training_round = TrainingRound.objects.select_related("base_version", "project").get(pk=round_id)
    try:
        claimed = training_round.claim()
    except IntegrityError:
        return "busy"  # another round holds the shared model; the task retries later
    if not claimed:
        return f"not claimed ({training_round.status})"
    # The claim bumped ``attempts``: this run's fencing token. The heartbeat thread keeps the round
    # alive through long stages (loading, rewards, one slow update); the reaper notices a dead worker.
    try:
        with lifecycle.running(training_round, f"Training round {round_id}", ended=_round_ended) as run:
            try:
                # On-policy rounds sample as they train: one process (the samples would differ per rank).
                if settings.T2G_TRAIN_PROCS > 1 and training_round.mode != TrainingRound.Mode.ON_POLICY:
                    _run_distributed(training_round, settings.T2G_TRAIN_PROCS)
                else:
                    _run(training_round, on_update)
            except Stopped:  # the trainer's stop (a cancel between updates); its checkpoint is kept
                raise lifecycle.Stopped from None
    except Exception:
        return TrainingRound.Status.FAILED  # recorded on the round and logged by ``running``
    if run.lost:
        logger.warning("Round %s attempt %s lost ownership; stopping", round_id, training_round.attempts)
        return "lost"
    return TrainingRound.Status.CANCELLED if run.cancelled else TrainingRound.Status.SUCCEEDED


def _round_ended(training_round: TrainingRound) -> None:
    """This run failed or cancelled the round: the webhooks hear it in the same commit."""
    training_round.refresh_from_db()
    if training_round.status == TrainingRound.Status.CANCELLED:
        services.round_cancelled_emit(training_round=training_round)
    else:
        services.round_failed_emit(training_round=training_round)


def _run_distributed(training_round: TrainingRound, procs: int) -> None:
    """Launch ``procs`` ranks of ``training.worker.ddp_round`` under torchrun and wait for them."""
    config = TrainingConfig.from_dict({**training_round.config, "mode": training_round.mode})
    tokenizer, fingerprint = base_tokenizer()
    build_samples(training_round, config, tokenizer, fingerprint)  # ranks must only read the rewards
    env = {
        **os.environ,
        "DATABASE_URL": current_database_url(),
        "T2G_BASE_MODEL": settings.T2G_BASE_MODEL,
        "T2G_MODELS_DIR": str(settings.T2G_MODELS_DIR),
        "T2G_VAR_DIR": str(settings.VAR_DIR),
        "T2G_TRAIN_PROCS": "1",
        "T2G_TORCH_THREADS": str(settings.T2G_TORCH_THREADS or 1),
        # The ranks read and write the same artifact store as this process.
        "T2G_STORAGE_URL": settings.T2G_STORAGE_URL,
        "T2G_MODEL_CACHE_DIR": str(settings.T2G_MODEL_CACHE_DIR),
        **{
            f"T2G_STORAGE_{name.upper()}": value
            for name, value in {
                "endpoint_url": settings.T2G_STORAGE_OPTIONS.get("endpoint_url", ""),
                "access_key_id": settings.T2G_STORAGE_OPTIONS.get("key", ""),
                "secret_access_key": settings.T2G_STORAGE_OPTIONS.get("secret", ""),
                "region": settings.T2G_STORAGE_OPTIONS.get("region", ""),
            }.items()
        },
    }
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={procs}",
               "-m", "training.worker.ddp_round", "--round-id", str(training_round.pk)]  # fmt: skip
    result = subprocess.run(command, env=env, cwd=Path(__file__).resolve().parents[2], capture_output=True,
                            text=True, check=False)  # fmt: skip
    codes = {int(code) for code in re.findall(r"exitcode\s*:\s*(\d+)", result.stderr)} | {result.returncode}
    if EXIT_CANCELLED in codes:
        raise Stopped
    if EXIT_LOST in codes:
        raise RoundLost
    log_path = log_publish(
        name=f"round-{training_round.pk}-ddp.log", text=result.stdout + "\n" + result.stderr
    )
    if result.returncode != 0:
        # The ranks' own tracebacks come before torchrun's summary; name the first exception line.
        lines = (result.stdout + "\n" + result.stderr).splitlines()
        errors = [line for line in lines if re.match(r"^\[rank\d+\]:\s*[A-Za-z_][\w.]*:\s", line)]
        first = errors[0].strip() if errors else "see the log"
        raise RuntimeError(
            f"{procs} training processes failed (exit {result.returncode}): {first} (log: {log_path})"
        )


def build_samples(
    training_round: TrainingRound, config: TrainingConfig, tokenizer, fingerprint: str
) -> list[Sample]:
    """One sample per generation: its annotators' reward vectors combined (mean by default)."""
    rewards_store_missing(training_round.snapshot, tokenizer=tokenizer, fingerprint=fingerprint)
    rows = TokenReward.objects.filter(
        annotation_id__in=training_round.snapshot, tokenizer_fingerprint=fingerprint
    ).select_related("annotation__generation__prompt__project")
    by_generation: dict[int, list[TokenReward]] = defaultdict(list)
    for row in rows:
        by_generation[row.annotation.generation_id].append(row)
    samples = []
    for _generation_id, group in sorted(by_generation.items()):
        generation = group[0].annotation.generation
        if not group[0].token_ids:
            continue  # an empty output has nothing to learn from
        how = (generation.prompt.project.reward_scheme or {}).get("combine", "mean")
        combined = combine_rewards([row.rewards for row in group], how=how)
        same_tokens = (
            generation.tokenizer_fingerprint == fingerprint
            and generation.response_token_ids == group[0].token_ids
            and len(generation.behaviour_logprobs) == len(group[0].token_ids)
        )
        ratings = [row.annotation.rating for row in group if row.annotation.rating]
        samples.append(
            Sample(
                prompt_ids=group[0].prompt_token_ids
                or encode_prompt(tokenizer, generation.prompt.chat_messages()),
                response_ids=list(group[0].token_ids),
                token_rewards=combined,
                behaviour_logprobs=list(generation.behaviour_logprobs) if same_tokens else None,
                rating=((sum(ratings) / len(ratings)) - 3) / 2 if ratings else None,
            )
        )
    return samples


def rewards_digest(samples: list[Sample]) -> str:
    """A sha256 of exactly what the round trained on: each sample's response tokens and token rewards, in
    order. Recorded in the round's summary, so anyone can check which rewards a round learnt from."""
    digest = hashlib.sha256()
    for sample in samples:
        digest.update(
            json.dumps([list(sample.response_ids), [float(r) for r in sample.token_rewards]]).encode()
        )
        digest.update(b"\n")
    return digest.hexdigest()


class BatchSource(Protocol):
    """What a round trains on, for :func:`text2grad.trainer.train` and :class:`RoundHooks`."""

    n_samples: int  # samples trained on so far (recorded in the round's summary)
    notes: str  # the new version's notes ("" for the default)
    digest: str  # of the token rewards trained on (``rewards_digest``), or ""

    def __call__(self, update: int) -> Sequence[Sample]:
        """The samples of update ``update``."""

    def record(self, training_round: TrainingRound, update: int) -> dict:
        """Store what the update drew, inside the progress transaction; returns extra metrics."""

    def stage_timings(self, timings: dict[str, float]) -> dict[str, float]:
        """The round's training stages from the trainer's ``timings``."""


class SnapshotBatches:
    """An offline round's batch source: the snapshot's samples, cycled in the config's seeded order."""

    def __init__(self, samples: list[Sample], config: TrainingConfig) -> None:
        self.batch = fixed_batches(samples, config)
        self.n_samples = len(samples)
        self.digest = rewards_digest(samples)
        self.notes = ""

    def __call__(self, update: int) -> list[Sample]:
        return self.batch(update)

    def record(self, training_round: TrainingRound, update: int) -> dict:
        """Nothing to store besides the metrics; no extra metric."""
        return {}

    def stage_timings(self, timings: dict[str, float]) -> dict[str, float]:
        return {"train": sum(timings.values())}


def _run(training_round: TrainingRound, on_update=None, collective=None) -> None:
    """The round's stages, any mode: load the rows, build the batch source and the hooks, and hand them to
    the core's :func:`text2grad.trainer.train`. With a ``collective`` this is one rank of several (see
    ``ddp_round``): every rank trains on the same samples, and only rank 0 writes checkpoints, metrics and
    the new version."""
    on_policy_mode = training_round.mode == TrainingRound.Mode.ON_POLICY
    config = TrainingConfig.from_dict(
        {**training_round.config, "mode": "token" if on_policy_mode else training_round.mode}
    )
    configure_threads()
    timings: dict[str, float] = {}
    started = time.perf_counter()
    if not on_policy_mode:
        samples = build_samples(training_round, config, *base_tokenizer())
        if not samples:
            raise ValueError("The snapshot has no submitted annotation with rewards to train on")
        timings["rewards"] = time.perf_counter() - started
        started = time.perf_counter()
    base_model, tokenizer = model_store.load(base_dir(), None, trainable=True)
    policy = build_policy(base_model, config, adapter_dir=adapter_dir(training_round.base_version))
    if on_policy_mode:
        source = on_policy.OnPolicyBatches(training_round, config, policy, tokenizer)
    else:
        source = SnapshotBatches(samples, config)
    timings["load"] = time.perf_counter() - started
    train(
        config,
        policy,
        source,
        RoundHooks(training_round, config, source, timings, on_update),
        collective=collective,
    )


class RoundHooks(Hooks):
    """The trainer's hooks for a round: resume from and checkpoint to the artifact store, stop on cancel
    (or when another attempt owns the round), progress into RoundMetric rows and the round's row, publish
    the new version (``save_round_version``)."""

    def __init__(self, training_round: TrainingRound, config: TrainingConfig, source: BatchSource,
                 timings: dict[str, float], on_update=None) -> None:  # fmt: skip
        self.round, self.config, self.source, self.on_update = training_round, config, source, on_update
        self.timings = timings  # the stages before training ("rewards", "load")
        self.checkpoint_key = ""
        self.metric_step = RoundMetric.objects.filter(training_round=training_round).count()

    def resume(self) -> Path | None:
        return checkpoint_fetch(self.round.checkpoint_path)  # from the store: any host can resume

    def started(self, first: int, total: int) -> None:
        if first:
            logger.info(
                "Round %s resumes at update %d from %s", self.round.pk, first, self.round.checkpoint_path
            )
        self.round.report_progress(first, total)

    def should_stop(self) -> bool:
        current = TrainingRound.objects.filter(pk=self.round.pk).values(
            "cancel_requested", "status", "attempts"
        )
        current = current.first()
        if current["status"] != TrainingRound.Status.RUNNING or current["attempts"] != self.round.attempts:
            raise RoundLost
        return current["cancel_requested"]

    def checkpoint(self, checkpoint: Checkpoint) -> None:
        folder = checkpoint.save(_local_checkpoint_dir(self.round))
        self.checkpoint_key = checkpoint_publish(
            source_dir=folder, round_id=self.round.pk, step=checkpoint.step
        )

    def progress(self, report: UpdateReport) -> None:
        """The update's metrics (and the source's records) and the move to its checkpoint, in one
        transaction; then the older checkpoints go."""
        rollout = {k: float(report.metrics[k]) for k in ROLLOUT_KEYS}
        summary = {"elapsed_s": round(report.elapsed_s, 2), "eta_s": round(report.eta_s, 2)}
        with transaction.atomic():
            if not _owned(self.round).exists():
                raise RoundLost
            extra = self.source.record(self.round, report.update)
            RoundMetric.objects.bulk_create(
                RoundMetric(training_round=self.round, step=self.metric_step + i,
                            data={**_floats(step), **rollout, "update": report.update, **extra})
                for i, step in enumerate(report.steps)
            )  # fmt: skip
            _owned(self.round).update(
                checkpoint_path=self.checkpoint_key, progress_step=report.done, progress_total=report.total,
                heartbeat_at=timezone.now(), summary={**summary, "last_update": _floats(report.metrics),
                "timings": {k: round(v, 3) for k, v in self.source.stage_timings(report.timings).items()}},
            )  # fmt: skip
        self.metric_step += len(report.steps)
        self.round.summary = summary
        self.round.checkpoint_path = self.checkpoint_key
        checkpoints_delete(round_id=self.round.pk, keep=self.checkpoint_key)
        if self.on_update is not None:
            self.on_update(report.done, report.total, report.metrics)

    def publish(self, policy, result: TrainResult) -> ModelVersion:
        timings = {**self.timings, **self.source.stage_timings(result.timings)}
        return save_round_version(self.round, self.config, policy, timings, self.source.n_samples,
                                  notes=self.source.notes, digest=self.source.digest)  # fmt: skip


def save_round_version(training_round: TrainingRound, config: TrainingConfig, policy, timings: dict,
                       n_samples: int, notes: str = "", digest: str = "") -> ModelVersion:  # fmt: skip
    """The last stages of any round: publish the new version (uploaded and verified before any row names
    it), record it (and promote it if the round asks and the evaluation gate of a manual promotion
    passes; ``summary["promotion"]`` says whether and why), mark the round succeeded; raises RoundLost
    when another attempt owns the round. ``digest``: of the token rewards it trained on."""
    started = time.perf_counter()
    name = f"r{training_round.pk}-{training_round.mode}-{timezone.now():%Y%m%d-%H%M%S}"
    settings.T2G_MODELS_DIR.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".publish-", dir=settings.T2G_MODELS_DIR) as scratch:
        folder = Path(scratch) / name
        save_policy(policy, folder)
        (folder / "round.json").write_text(
            json.dumps(
                {
                    "round": training_round.pk,
                    "config": config.to_dict(),
                    "snapshot_hash": training_round.snapshot_hash,
                }
            )
        )
        # Uploaded and verified before any row names it: a killed worker leaves no half-published version.
        storage_key, content_hash = version_publish(source_dir=folder, name=name)
    timings["save"] = time.perf_counter() - started

    started = time.perf_counter()
    with transaction.atomic():
        version = ModelVersion.objects.create(
            name=name,
            base_model=services.base_model_reference(),
            storage_key=storage_key,
            content_hash=content_hash,
            parent=training_round.base_version,
            created_by_round=training_round,
            notes=notes or f"{config.mode} round over {len(training_round.snapshot)} annotation(s)",
        )
        summary = {**training_round.summary, "timings": timings, "samples": n_samples}
        if training_round.auto_promote:
            # The same evidence gate as a manual promotion: without it the version is saved, not promoted.
            summary["promotion"] = services.model_version_auto_promote(version=version)
        if digest:
            summary["rewards_digest"] = digest
        summary["final"] = _last_metrics(training_round)
        won = _owned(training_round).update(
            status=TrainingRound.Status.SUCCEEDED,
            output_version=version,
            finished_at=timezone.now(),
            summary=summary,
        )
        if not won:
            raise RoundLost  # rolls back the version row: another attempt owns this round now
        services.round_finished_emit(training_round=training_round, version=version)
    timings["promote"] = time.perf_counter() - started
    TrainingRound.objects.filter(pk=training_round.pk).update(summary={**summary, "timings": timings})
    # The version holds the result now.
    checkpoints_delete(round_id=training_round.pk)
    shutil.rmtree(_local_checkpoint_dir(training_round), ignore_errors=True)
    return version


def _local_checkpoint_dir(training_round: TrainingRound) -> Path:
    """This host's scratch copy of the round's checkpoint; the store holds the one that counts."""
    return settings.T2G_MODELS_DIR / "checkpoints" / f"round-{training_round.pk}"


def _floats(metrics: dict) -> dict:
    return {k: float(v) for k, v in metrics.items() if isinstance(v, int | float)}


def _last_metrics(training_round: TrainingRound) -> dict:
    last = RoundMetric.objects.filter(training_round=training_round).order_by("-step").first()
    return last.data if last else {}
