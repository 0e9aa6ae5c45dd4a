"""Worker-side: the batch source of an on-policy round, the paper's loop. Each update samples fresh outputs
of the policy being trained on the project's prompts and scores every token with the project's active
critic; the core's trainer (``text2grad.trainer.train``, driven by ``training.worker.rounds`` as for
offline rounds) runs one token-level PPO update on them. The samples and their predicted spans are stored
on the round; ``audit_share`` of them also become ordinary outputs in the annotation queue, with the
critic's spans as suggestions, so its mistakes come back as training data.

Stages, timed into ``round.summary["timings"]``: per update sample and score (here), update and record
(the trainer), summed over updates.
"""

from __future__ import annotations

import random
import time

from annotations.models import Generation, Prompt, held_out_q
from text2grad import generation, model_store
from text2grad.config import TrainingConfig
from text2grad.critic import token_rewards_from_probs
from text2grad.engine import Sample
from text2grad.policy import PolicyWithValueHead
from training.models import CriticPrediction, OnPolicySample, TrainingRound

from .critic import critique_texts
from .rewards import scheme_for

DEFAULT_OPTIONS = {"audit_share": 0.25, "max_new_tokens": 64, "temperature": 0.8}


class OnPolicyBatches:
    """``batches(update)`` for :func:`text2grad.trainer.train`: sample ``batch_size`` prompts (seeded by the
    update), generate with ``policy`` as it is now, score with the round's critic. :meth:`record` stores
    the update's samples (inside the adapter's progress transaction)."""

    def __init__(
        self, training_round: TrainingRound, config: TrainingConfig, policy: PolicyWithValueHead, tokenizer
    ) -> None:
        self.critic_version = training_round.critic_version
        if self.critic_version is None:
            raise ValueError("An on-policy round needs a critic version")
        # Never the project's held-out prompts: evaluation campaigns judge versions on them.
        self.prompts = list(
            Prompt.objects.filter(project=training_round.project)
            .exclude(held_out_q())
            .select_related("project")
            .order_by("id")
        )
        if not self.prompts:
            raise ValueError("The project has no prompts to sample from (outside its held-out set)")
        self.config, self.policy, self.tokenizer = config, policy, tokenizer
        self.fingerprint = model_store.tokenizer_fingerprint(tokenizer)
        self.options = {**DEFAULT_OPTIONS, **training_round.on_policy}
        self.scheme = scheme_for(training_round.project)
        self.timings = {"sample": 0.0, "score": 0.0}
        self.n_samples = OnPolicySample.objects.filter(training_round=training_round).count()
        self.digest = ""
        self.rows: list[tuple] = []
        self.rng = random.Random()
        critique_texts(self.critic_version, [self.prompts[0].chat_messages()], ["warm-up"])  # loads it once

    @property
    def notes(self) -> str:
        return f"on-policy round: {self.n_samples} fresh samples scored by {self.critic_version.name}"

    def __call__(self, update: int) -> list[Sample]:
        self.rng = random.Random(self.config.seed * 1_000_003 + update)
        chosen = [self.prompts[self.rng.randrange(len(self.prompts))] for _ in range(self.config.batch_size)]
        started = time.perf_counter()
        outputs = [
            out[0]
            for out in generation.sample(
                self.policy.model, self.tokenizer, [p.chat_messages() for p in chosen],
                max_new_tokens=int(self.options["max_new_tokens"]), temperature=float(self.options["temperature"]),
                top_p=1.0, seed=self.config.seed * 7919 + update, batch_size=len(chosen),
            )
        ]  # fmt: skip
        self.timings["sample"] += time.perf_counter() - started

        started = time.perf_counter()
        kept = [(p, o) for p, o in zip(chosen, outputs, strict=True) if o.text.strip()]
        scored = critique_texts(
            self.critic_version, [p.chat_messages() for p, _ in kept], [o.text for _, o in kept]
        )
        samples, self.rows = [], []
        for (prompt, out), (item, critique) in zip(kept, scored, strict=True):
            if not item.response_ids:
                continue
            rewards = token_rewards_from_probs(critique.token_probs, self.scheme)
            # The behaviour logprobs belong to the sampled ids; they pair with the critic's tokens only when
            # the text retokenizes to the same ids (nearly always).
            behaviour = out.logprobs if item.response_ids == out.response_ids else None
            samples.append(Sample(out.prompt_ids, item.response_ids, rewards, behaviour_logprobs=behaviour))
            self.rows.append((prompt, out, item, critique, rewards))
        self.timings["score"] += time.perf_counter() - started
        if not samples:
            raise ValueError(f"update {update}: every sampled output was empty")
        return samples

    def record(self, training_round: TrainingRound, update: int) -> dict:
        """Store the update's samples; returns the metric added to its RoundMetric rows."""
        _record_samples(training_round, update, self.rows, float(self.options["audit_share"]), self.rng,
                        self.critic_version, self.fingerprint)  # fmt: skip
        self.n_samples += len(self.rows)
        flagged = sum(any(span.polarity < 0 for span in critique.spans) for *_, critique, _ in self.rows)
        return {"critic_poor_share": flagged / len(self.rows)}

    def stage_timings(self, timings: dict[str, float]) -> dict[str, float]:
        """The trainer's ``timings`` ("batches", "update", "record"), with "batches" split in two."""
        return {**self.timings, "update": timings["update"], "record": timings["record"]}


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
