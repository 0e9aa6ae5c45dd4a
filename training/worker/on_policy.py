"""Worker-side: an on-policy round, the paper's loop. Each update samples fresh outputs of the policy being
trained on the project's prompts, scores every token with the project's active critic, and runs one
token-level PPO update on them (``text2grad.engine.ppo_update``, as offline rounds do). The samples and
their predicted spans are stored on the round; ``audit_share`` of them also become ordinary outputs in
the annotation queue, with the critic's spans as suggestions, so its mistakes come back as training data.

Stages, timed into ``round.summary["timings"]``: load (policy and critic), then per update sample /
score / update / record (summed), then save and promote (shared with offline rounds).
"""

from __future__ import annotations

import logging
import random
import time
from pathlib import Path

import torch
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from annotations.models import Generation, Prompt
from text2grad import generation, model_store
from text2grad.config import TrainingConfig
from text2grad.critic import token_rewards_from_probs
from text2grad.engine import Sample, make_kl_controller, make_optimizer, ppo_update
from text2grad.policy import build_policy
from training.models import CriticPrediction, OnPolicySample, RoundMetric, TrainingRound

from . import rounds
from .critic import critique_texts
from .rewards import scheme_for
from .rounds import (
    CHECKPOINT_STATE,
    ROLLOUT_KEYS,
    RoundCancelled,
    RoundLost,
    _floats,
    _owned,
    _save_checkpoint,
    save_round_version,
)
from .runtime import adapter_dir, base_dir, configure_threads

logger = logging.getLogger(__name__)


def round_run(*, round_id: int, on_update=None) -> str:
    """Claim and run a round of any mode (``rounds.round_run``, with this module's on-policy stages)."""
    return rounds.round_run(round_id=round_id, on_update=on_update, run_on_policy=run_on_policy)


def run_on_policy(training_round: TrainingRound, on_update=None) -> None:
    configure_threads()
    critic_version = training_round.critic_version
    if critic_version is None:
        raise ValueError("An on-policy round needs a critic version")
    project = training_round.project
    options = {"audit_share": 0.25, "max_new_tokens": 64, "temperature": 0.8, **training_round.on_policy}
    config = TrainingConfig.from_dict({**training_round.config, "mode": "token"})
    prompts = list(Prompt.objects.filter(project=project).select_related("project").order_by("id"))
    if not prompts:
        raise ValueError("The project has no prompts to sample from")
    scheme = scheme_for(project)
    timings = {"load": 0.0, "sample": 0.0, "score": 0.0, "update": 0.0, "record": 0.0}

    started = time.perf_counter()
    checkpoint = Path(
        training_round.checkpoint_path
        or settings.T2G_MODELS_DIR / "checkpoints" / f"round-{training_round.pk}"
    )
    resume = bool(training_round.checkpoint_path) and (checkpoint / CHECKPOINT_STATE).is_file()
    if not training_round.checkpoint_path:
        TrainingRound.objects.filter(pk=training_round.pk).update(checkpoint_path=str(checkpoint))
        training_round.checkpoint_path = str(checkpoint)
    base_model, tokenizer = model_store.load(base_dir(), None, trainable=True)
    fingerprint = model_store.tokenizer_fingerprint(tokenizer)
    policy = build_policy(
        base_model, config, adapter_dir=checkpoint if resume else adapter_dir(training_round.base_version)
    )
    optimizer = make_optimizer(policy, config)
    kl_ctl = make_kl_controller(config)
    first_step = 0
    if resume:
        state = torch.load(checkpoint / CHECKPOINT_STATE, weights_only=False)
        optimizer.load_state_dict(state["optimizer"])
        kl_ctl.value = state["kl_coef"]
        first_step = state["step"]
    critique_texts(critic_version, [prompts[0].chat_messages()], ["warm-up"])  # loads the critic once
    timings["load"] = time.perf_counter() - started

    generator = torch.Generator().manual_seed(config.seed + first_step)
    metric_step = RoundMetric.objects.filter(training_round=training_round).count()
    training_round.report_progress(first_step, config.steps)
    round_started = time.perf_counter()
    total_samples = OnPolicySample.objects.filter(training_round=training_round).count()

    def cancelled() -> bool:
        current = (
            TrainingRound.objects.filter(pk=training_round.pk)
            .values("cancel_requested", "status", "attempts")
            .first()
        )
        if (
            current["status"] != TrainingRound.Status.RUNNING
            or current["attempts"] != training_round.attempts
        ):
            raise RoundLost
        return current["cancel_requested"]

    for update in range(first_step, config.steps):
        if cancelled():
            raise RoundCancelled
        rng = random.Random(config.seed * 1_000_003 + update)
        chosen = [prompts[rng.randrange(len(prompts))] for _ in range(config.batch_size)]

        started = time.perf_counter()
        outputs = [
            out[0]
            for out in generation.sample(
                policy.model, tokenizer, [p.chat_messages() for p in chosen],
                max_new_tokens=int(options["max_new_tokens"]), temperature=float(options["temperature"]),
                top_p=1.0, seed=config.seed * 7919 + update, batch_size=len(chosen),
            )
        ]  # fmt: skip
        timings["sample"] += time.perf_counter() - started

        started = time.perf_counter()
        kept = [(p, o) for p, o in zip(chosen, outputs, strict=True) if o.text.strip()]
        scored = critique_texts(
            critic_version, [p.chat_messages() for p, _ in kept], [o.text for _, o in kept]
        )
        samples, rows = [], []
        for (prompt, out), (item, critique) in zip(kept, scored, strict=True):
            if not item.response_ids:
                continue
            rewards = token_rewards_from_probs(critique.token_probs, scheme)
            # The behaviour logprobs belong to the sampled ids; they pair with the critic's tokens only when
            # the text retokenizes to the same ids (nearly always).
            behaviour = out.logprobs if item.response_ids == out.response_ids else None
            samples.append(Sample(out.prompt_ids, item.response_ids, rewards, behaviour_logprobs=behaviour))
            rows.append((prompt, out, item, critique, rewards))
        timings["score"] += time.perf_counter() - started
        if not samples:
            raise ValueError(f"update {update}: every sampled output was empty")

        started = time.perf_counter()
        records: list[dict] = []
        metrics = ppo_update(policy, samples, config, kl_ctl, optimizer=optimizer, on_step=records.append,
                             should_stop=cancelled, generator=generator)  # fmt: skip
        if metrics.get("stopped"):
            raise RoundCancelled
        timings["update"] += time.perf_counter() - started

        started = time.perf_counter()
        poor_share = sum(any(s.polarity < 0 for s in c.spans) for *_, c, _ in rows) / len(rows)
        with transaction.atomic():
            if not _owned(training_round).exists():
                raise RoundLost
            _record_samples(training_round, update, rows, float(options["audit_share"]), rng, critic_version,
                            fingerprint)  # fmt: skip
            RoundMetric.objects.bulk_create(
                [
                    RoundMetric(
                        training_round=training_round,
                        step=metric_step + i,
                        data={
                            **_floats(r),
                            **{k: float(metrics[k]) for k in ROLLOUT_KEYS},
                            "update": update,
                            "critic_poor_share": poor_share,
                        },
                    )  # fmt: skip
                    for i, r in enumerate(records)
                ]
            )
        metric_step += len(records)
        total_samples += len(rows)
        _save_checkpoint(checkpoint, policy, optimizer, kl_ctl, update + 1)
        elapsed = time.perf_counter() - round_started
        done = update + 1
        eta = elapsed / (done - first_step) * (config.steps - done)
        _owned(training_round).update(
            progress_step=done, progress_total=config.steps, heartbeat_at=timezone.now(),
            summary={"elapsed_s": round(elapsed, 2), "eta_s": round(eta, 2), "last_update": _floats(metrics),
                     "timings": {k: round(v, 3) for k, v in timings.items()}},
        )  # fmt: skip
        timings["record"] += time.perf_counter() - started
        if on_update is not None:
            on_update(done, config.steps, metrics)

    training_round.summary = {}
    save_round_version(
        training_round, config, policy, timings, total_samples,
        notes=f"on-policy round: {total_samples} fresh samples scored by {critic_version.name}",
    )  # fmt: skip


def _record_samples(training_round, update: int, rows, audit_share: float, rng, critic_version,
                    fingerprint: str) -> None:  # fmt: skip
    """Store the update's samples; the audited share also become queue outputs with the critic's spans."""
    for prompt, out, item, critique, rewards in rows:
        audit = None
        spans = [s.to_dict() for s in critique.spans]
        if rng.random() < audit_share:
            audit = Generation(
                prompt=prompt,
                # Sampled by the policy mid-round (no version holds that state); the behaviour logprobs
                # are its own, so a later offline round weighs them correctly.
                model_version=None,
                source_model=f"on-policy round {training_round.pk}, update {update}",
                text=out.text,
                prompt_token_ids=out.prompt_ids,
                response_token_ids=out.response_ids,
                behaviour_logprobs=out.logprobs,
                tokenizer_fingerprint=fingerprint,
                sampling_params={**out.params, "purpose": "on_policy_audit", "round": training_round.pk},
                finish_reason=out.finish_reason,
            )
            audit.save()
            CriticPrediction.objects.create(
                generation=audit, critic_version=critic_version, spans=spans, uncertainty=critique.uncertainty
            )
        OnPolicySample.objects.create(
            training_round=training_round,
            update=update,
            prompt=prompt,
            text=out.text,
            response_token_ids=item.response_ids,
            token_rewards=rewards,
            spans=spans,
            uncertainty=critique.uncertainty,
            audit_generation=audit,
        )
