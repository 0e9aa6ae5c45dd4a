"""The policy's training loop: ``config.steps`` PPO updates over batches of critiqued samples (no Django).

The counterpart of :func:`text2grad.critic.train_critic` for the policy. :func:`train` owns the round's
optimizer, KL controller and minibatch generator, resumes from a checkpoint, and runs one
:func:`text2grad.engine.ppo_update` per update; where the samples come from and where progress, checkpoints
and the result go is the caller's business, through two arguments:

* ``batches``: the samples of each update, ``batches(update) -> Sequence[Sample]``. A fixed list of samples
  is cycled through in a seeded shuffled order (:func:`fixed_batches`, an offline round); a callable can
  sample the policy and score the outputs afresh for every update (an on-policy round).
* ``hooks``: a :class:`Hooks` (every method optional) that resumes, reports progress, decides to stop,
  stores checkpoints and publishes the result.

A notebook user trains a LoRA from a list of (prompt, response, spans) with the core alone (``MODEL`` is a
folder or hub name of a causal LM with a chat template; the learning rate suits a tiny demo model)::

>>> from transformers import AutoModelForCausalLM, AutoTokenizer
>>> from text2grad.config import TrainingConfig
>>> from text2grad.engine import Sample
>>> from text2grad.policy import build_policy, save_policy
>>> from text2grad.rewards import SpanReward, token_rewards
>>> from text2grad.trainer import train
>>> data = [
...     ("What is 2 + 2?", "2 + 2 = 5, of course.", [SpanReward(8, 9, polarity=-1)]),
...     ("Name a primary colour.", "Red is a primary colour.", [SpanReward(0, 3, polarity=+1)]),
... ]
>>> tokenizer = AutoTokenizer.from_pretrained(MODEL)
>>> samples = []
>>> for prompt, response, spans in data:
...     scored = token_rewards(tokenizer, response, spans, prompt_messages=[{"role": "user", "content": prompt}])
...     samples.append(Sample(scored.prompt_ids, scored.response_ids, scored.rewards))
>>> config = TrainingConfig(steps=6, batch_size=2, minibatch_size=2, ppo_epochs=2, learning_rate=5e-3)
>>> policy = build_policy(AutoModelForCausalLM.from_pretrained(MODEL), config)
>>> result = train(config, policy, samples)
>>> result.updates
6
>>> save_policy(policy, OUT)  # the adapter and value head; load it again with build_policy(..., adapter_dir=OUT)

Several processes (``torchrun``) train together when every rank calls :func:`train` with the same batches
and a ``collective`` (see :mod:`text2grad.distributed`): the ranks start from rank 0's weights, and only
rank 0 calls the hooks that report, checkpoint and publish.
"""

from __future__ import annotations

import logging
import random
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from text2grad.config import TrainingConfig
from text2grad.engine import Collective, KLController, Sample, make_kl_controller, make_optimizer, ppo_update
from text2grad.policy import PolicyWithValueHead, load_policy_weights, save_policy

logger = logging.getLogger(__name__)

__all__ = [
    "CHECKPOINT_STATE",
    "Checkpoint",
    "Hooks",
    "Stopped",
    "TrainResult",
    "UpdateReport",
    "fixed_batches",
    "load_checkpoint",
    "train",
]

# Inside a checkpoint folder, next to the adapter and value head: optimizer, KL coefficient and step.
CHECKPOINT_STATE = "trainer_state.pt"

Batches = Callable[[int], Sequence[Sample]]


class Stopped(Exception):
    """``hooks.should_stop()`` said so: the loop stopped between updates or between optimiser steps."""


@dataclass
class UpdateReport:
    """What :meth:`Hooks.progress` hears after each update."""

    update: int  # index of the update just done, from 0
    total: int  # config.steps
    first: int  # the first update of this run (> 0 after a resume)
    metrics: dict  # the update's summary (see ppo_update)
    steps: list[dict]  # each optimiser step's metrics
    samples: Sequence[Sample]
    elapsed_s: float  # since this run's first update started
    timings: dict[str, float]  # seconds so far in getting batches, updating and the hooks' recording

    @property
    def done(self) -> int:
        return self.update + 1

    @property
    def eta_s(self) -> float:
        return self.elapsed_s / (self.done - self.first) * (self.total - self.done)


@dataclass
class TrainResult:
    updates: int  # updates done in all, resumed ones included (= config.steps)
    first: int  # the update this run started at
    metrics: dict  # the last update's summary ({} when there was nothing left to do)
    timings: dict[str, float] = field(default_factory=dict)  # "batches", "update", "record" (hooks)
    published: Any = None  # what Hooks.publish returned


@dataclass
class Checkpoint:
    """Everything needed to resume exactly: policy weights, optimizer, KL coefficient and the next update."""

    policy: PolicyWithValueHead
    optimizer: torch.optim.Optimizer
    kl_ctl: KLController
    step: int

    def save(self, directory: str | Path) -> Path:
        """Write into ``directory``, replacing what was there only once the new one is whole."""
        directory = Path(directory)
        directory.parent.mkdir(parents=True, exist_ok=True)
        tmp = directory.parent / f".{directory.name}.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        save_policy(self.policy, tmp)
        state = {"optimizer": self.optimizer.state_dict(), "kl_coef": self.kl_ctl.value, "step": self.step}
        torch.save(state, tmp / CHECKPOINT_STATE)
        old = directory.parent / f".{directory.name}.old"
        shutil.rmtree(old, ignore_errors=True)
        if directory.exists():
            directory.rename(old)
        tmp.rename(directory)
        shutil.rmtree(old, ignore_errors=True)
        return directory


def load_checkpoint(directory: str | Path, policy: PolicyWithValueHead, optimizer, kl_ctl) -> int:
    """Restore a :meth:`Checkpoint.save` folder into ``policy``, ``optimizer`` and ``kl_ctl``; returns the
    update to continue from."""
    directory = Path(directory)
    load_policy_weights(policy, directory)
    state = torch.load(directory / CHECKPOINT_STATE, weights_only=False)
    optimizer.load_state_dict(state["optimizer"])
    kl_ctl.value = state["kl_coef"]
    return int(state["step"])


class Hooks:
    """How :func:`train` talks to its caller. Every method is optional: this base class resumes nothing,
    never stops, keeps no checkpoint and publishes nothing. Subclass and override what you need."""

    def resume(self) -> Path | None:
        """A folder written by :meth:`Checkpoint.save` to continue from, or None to start afresh."""
        return None

    def started(self, first: int, total: int) -> None:
        """The loop is about to run updates ``first .. total - 1``."""

    def should_stop(self) -> bool:
        """Polled before each update and each optimiser step; True ends the loop with :class:`Stopped`."""
        return False

    def checkpoint(self, checkpoint: Checkpoint) -> None:
        """After each update, before :meth:`progress`: call ``checkpoint.save(folder)`` to keep one."""

    def progress(self, report: UpdateReport) -> None:
        """After each update (and its checkpoint)."""

    def publish(self, policy: PolicyWithValueHead, result: TrainResult) -> Any:
        """After the last update; what it returns becomes ``result.published``."""
        return None


def fixed_batches(samples: Sequence[Sample], config: TrainingConfig) -> Batches:
    """An offline round's batches: ``config.batch_size`` samples per update, taken in turn from one order
    shuffled by ``config.seed`` and wrapping around (so update ``k`` always gets the same samples).

    >>> picks = fixed_batches(["a", "b", "c"], TrainingConfig(batch_size=2, seed=1))
    >>> picks(0), picks(1)
    (['b', 'a'], ['c', 'b'])
    """
    if not samples:
        raise ValueError("no samples to train on")
    order = list(range(len(samples)))
    random.Random(config.seed).shuffle(order)
    size = min(config.batch_size, len(samples))

    def batch(update: int) -> list[Sample]:
        return [samples[order[(update * config.batch_size + i) % len(samples)]] for i in range(size)]

    return batch


def train(
    config: TrainingConfig,
    policy: PolicyWithValueHead,
    batches: Batches | Sequence[Sample],
    hooks: Hooks | None = None,
    *,
    collective: Collective | None = None,
) -> TrainResult:
    """Run updates ``first .. config.steps - 1`` of a round on ``policy`` (trained in place).

    ``first`` is 0, or the step of the checkpoint ``hooks.resume()`` names. Raises :class:`Stopped` when
    ``hooks.should_stop()`` says so; whatever a hook raises ends the loop too.
    """
    hooks = hooks or Hooks()
    if not callable(batches):
        batches = fixed_batches(batches, config)
    main = collective is None or collective.rank == 0
    optimizer = make_optimizer(policy, config)
    kl_ctl = make_kl_controller(config)
    first = _resume(hooks, policy, optimizer, kl_ctl)
    if collective is not None:
        from text2grad.distributed import sync_trainable_parameters

        sync_trainable_parameters(policy, collective)
    generator = torch.Generator().manual_seed(config.seed + first)
    if main:
        hooks.started(first, config.steps)
    timings = {"batches": 0.0, "update": 0.0, "record": 0.0}
    metrics: dict = {}
    run_started = time.perf_counter()
    for update in range(first, config.steps):
        # Several ranks must agree on stopping; ppo_update polls should_stop collectively for them.
        if collective is None and hooks.should_stop():
            raise Stopped
        started = time.perf_counter()
        samples = list(batches(update))
        if not samples:
            raise ValueError(f"update {update}: no samples to train on")
        timings["batches"] += time.perf_counter() - started
        started = time.perf_counter()
        steps: list[dict] = []
        metrics = ppo_update(policy, samples, config, kl_ctl, optimizer=optimizer, on_step=steps.append,
                             should_stop=hooks.should_stop, generator=generator, collective=collective)  # fmt: skip
        if metrics.get("stopped"):
            raise Stopped
        timings["update"] += time.perf_counter() - started
        if not main:
            continue
        started = time.perf_counter()
        hooks.checkpoint(Checkpoint(policy, optimizer, kl_ctl, update + 1))
        elapsed = time.perf_counter() - run_started
        hooks.progress(
            UpdateReport(update, config.steps, first, metrics, steps, samples, elapsed, dict(timings))
        )
        timings["record"] += time.perf_counter() - started
    result = TrainResult(updates=config.steps, first=first, metrics=metrics, timings=timings)
    if main:
        result.published = hooks.publish(policy, result)
    return result


def _resume(hooks: Hooks, policy: PolicyWithValueHead, optimizer, kl_ctl) -> int:
    folder = hooks.resume()
    if folder is None or not (Path(folder) / CHECKPOINT_STATE).is_file():
        return 0
    first = load_checkpoint(folder, policy, optimizer, kl_ctl)
    logger.info("resuming at update %d from %s", first, folder)
    return first
