"""One TEXT2GRAD PPO update over a batch of critiqued samples (no Django; tensors and the policy only).

>>> import torch
>>> from text2grad.config import TrainingConfig
>>> cfg = TrainingConfig(ppo_epochs=1, minibatch_size=2)
>>> sample = Sample(prompt_ids=[1, 2], response_ids=[3, 4], token_rewards=[0.0, -1.0])
>>> # metrics = ppo_update(policy, [sample], cfg, make_kl_controller(cfg), optimizer=make_optimizer(policy, cfg))

The update follows the paper's recipe with these fixes: rollout statistics without
gradients (old and reference log-probabilities, values, KL), per-token shaped rewards, GAE that carries
over masked positions, whitened advantages, then ``ppo_epochs`` epochs of clipped policy and value losses
over shuffled minibatches with gradient clipping. Samples sampled from an older model version carry their
behaviour log-probabilities and are down-weighted by a truncated importance ratio.

Several processes (``torchrun``) run the same function with a :class:`Collective`: each rank scores a
strided shard of the rollout, the per-token statistics are gathered so every rank holds all of them,
minibatches are drawn from one shared permutation and split across ranks, losses are divided by the
*global* token count and gradients summed. The arithmetic is then the single-process arithmetic.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

import torch
from torch import Tensor

from text2grad.config import TrainingConfig
from text2grad.policy import PaddedBatch, PolicyWithValueHead, pad_batch
from text2grad.ppo import (
    AdaptiveKLController,
    FixedKLController,
    full_kl,
    gae,
    masked_mean,
    masked_sum,
    masked_whiten,
    per_token_kl,
    policy_loss,
    shape_rewards,
    truncated_importance_weights,
    value_loss,
)

logger = logging.getLogger(__name__)

__all__ = [
    "Collective",
    "LocalCollective",
    "Sample",
    "collate",
    "make_kl_controller",
    "make_optimizer",
    "ppo_update",
    "shard_indices",
]

KLController = AdaptiveKLController | FixedKLController

# Per-step metrics that the update's summary reports as their mean over optimiser steps.
_AVERAGED_METRICS = (
    "policy_loss",
    "value_loss",
    "clipfrac",
    "approx_kl",
    "ratio",
    "vf_clipfrac",
    "entropy",
    "grad_norm",
)


@dataclass
class Sample:
    """One critiqued generation, as token ids and per-token human rewards δ_t.

    ``behaviour_logprobs`` are log μ(a_t) recorded when the response was sampled (None: treat as
    on-policy). ``rating`` is the annotation's overall rating in [-1, 1], used only when the config mixes
    it in (``mix_rating_weight``).

    >>> Sample([1], [2, 3], [0.0]).response_ids
    Traceback (most recent call last):
    ...
    ValueError: token_rewards has 1 entries for 2 response tokens
    """

    prompt_ids: list[int]
    response_ids: list[int]
    token_rewards: list[float]
    behaviour_logprobs: list[float] | None = None
    rating: float | None = None

    def __post_init__(self) -> None:
        if not self.prompt_ids or not self.response_ids:
            raise ValueError("a sample needs at least one prompt token and one response token")
        n = len(self.response_ids)
        if len(self.token_rewards) != n:
            raise ValueError(f"token_rewards has {len(self.token_rewards)} entries for {n} response tokens")
        if self.behaviour_logprobs is not None and len(self.behaviour_logprobs) != n:
            raise ValueError(
                f"behaviour_logprobs has {len(self.behaviour_logprobs)} entries for {n} response tokens"
            )


class Collective(Protocol):
    """The few collective operations the update needs; single-process is :class:`LocalCollective`."""

    rank: int
    world_size: int

    def all_reduce_sum(self, tensor: Tensor) -> Tensor:
        """Sum ``tensor`` over ranks, in place, and return it."""
        ...

    def all_gather(self, tensor: Tensor) -> list[Tensor]:
        """Every rank's ``tensor`` (same shape everywhere), in rank order."""
        ...


class LocalCollective:
    """One process: every collective is the identity.

    >>> LocalCollective().all_gather(torch.ones(1))
    [tensor([1.])]
    """

    rank = 0
    world_size = 1

    def all_reduce_sum(self, tensor: Tensor) -> Tensor:
        return tensor

    def all_gather(self, tensor: Tensor) -> list[Tensor]:
        return [tensor]


def shard_indices(n: int, rank: int, world_size: int) -> list[int]:
    """The strided, deterministic share of ``range(n)`` that ``rank`` works on.

    >>> shard_indices(5, 0, 2), shard_indices(5, 1, 2)
    ([0, 2, 4], [1, 3])
    """
    return list(range(rank, n, world_size))


def make_optimizer(policy: PolicyWithValueHead, config: TrainingConfig) -> torch.optim.AdamW:
    """AdamW over the trainable parameters only (LoRA factors and value head).

    Create it once per round and pass it to every :func:`ppo_update`, so Adam's moments carry over and
    its ``state_dict()`` can go into the round's checkpoint.
    """
    return torch.optim.AdamW(
        policy.trainable_parameters(),
        lr=config.learning_rate,
        weight_decay=config.weight_decay,
        eps=config.adam_eps,
    )


def make_kl_controller(config: TrainingConfig) -> KLController:
    """The round's KL coefficient controller: adaptive (Ziegler et al.) or fixed.

    >>> make_kl_controller(TrainingConfig(adaptive_kl=False, kl_coef=0.2)).value
    0.2
    """
    if config.adaptive_kl:
        return AdaptiveKLController(config.kl_coef, config.kl_target, config.kl_horizon)
    return FixedKLController(config.kl_coef)


def collate(
    samples: Sequence[Sample],
    pad_token_id: int,
    device: torch.device | str | None = None,
    response_width: int | None = None,
) -> PaddedBatch:
    """Model inputs for ``samples`` (left-padded prompts, right-padded responses)."""
    return pad_batch(
        [s.prompt_ids for s in samples],
        [s.response_ids for s in samples],
        pad_token_id=pad_token_id,
        device=device,
        response_width=response_width,
    )


def _pad_rows(rows: Sequence[Sequence[float]], width: int, device: torch.device) -> Tensor:
    out = torch.zeros(len(rows), width, dtype=torch.float32, device=device)
    for i, row in enumerate(rows):
        out[i, : len(row)] = torch.tensor(row, dtype=torch.float32)
    return out


@torch.no_grad()
def _rollout_statistics(
    policy: PolicyWithValueHead,
    samples: Sequence[Sample],
    config: TrainingConfig,
    collective: Collective,
    width: int,
) -> tuple[Tensor, Tensor, Tensor]:
    """Old log-probs, values and per-token KL ``[N, width]`` of all samples, every rank scoring a shard."""
    n, world = len(samples), collective.world_size
    shard = shard_indices(n, collective.rank, world)
    rows_per_rank = math.ceil(n / world)
    # One buffer, one gather: [rows, (old logprob, value, kl), width].
    local = torch.zeros(rows_per_rank, 3, width, dtype=torch.float32, device=policy.device)
    full = config.kl_estimator == "full"
    for start in range(0, len(shard), config.minibatch_size):
        chunk = shard[start : start + config.minibatch_size]
        batch = collate([samples[i] for i in chunk], policy.pad_token_id, policy.device, response_width=width)
        scores = policy.score_responses(batch, temperature=config.temperature, return_logits=full)
        with policy.reference():
            ref = policy.score_responses(
                batch, temperature=config.temperature, with_values=False, return_logits=full
            )
        if full:
            kl = full_kl(scores.logits, ref.logits, batch.response_mask)
        else:
            kl = per_token_kl(scores.logprobs, ref.logprobs, config.kl_estimator)
        local[start : start + len(chunk)] = torch.stack([scores.logprobs, scores.values, kl], dim=1)
    if world == 1:
        stacked = local
    else:
        gathered = torch.stack(collective.all_gather(local))  # [world, rows_per_rank, 3, width]
        index = torch.arange(n, device=local.device)
        # Sample i was scored by rank i % world as its (i // world)-th row.
        stacked = gathered[index % world, index // world]
    old_logprobs, values, kl = stacked.unbind(1)
    return old_logprobs, values, kl


def _sync_gradients(params: Sequence[torch.nn.Parameter], collective: Collective) -> None:
    """Sum gradients over ranks in one flat buffer (LoRA + value head are small)."""
    if collective.world_size == 1:
        return
    for p in params:
        if p.grad is None:  # a rank with no rows in this minibatch still has to contribute zeros
            p.grad = torch.zeros_like(p)
    flat = torch.cat([p.grad.reshape(-1) for p in params])
    collective.all_reduce_sum(flat)
    offset = 0
    for p in params:
        count = p.numel()
        p.grad.copy_(flat[offset : offset + count].view_as(p))
        offset += count


def _agreed_stop(
    should_stop: Callable[[], bool] | None, collective: Collective, device: torch.device
) -> bool:
    if should_stop is None:
        return False
    flag = torch.tensor([1.0 if should_stop() else 0.0], device=device)
    # Every rank must leave the loop together, or the next collective would hang.
    return collective.all_reduce_sum(flag).item() > 0


def _entropy_sum(logits: Tensor, mask: Tensor) -> Tensor:
    logp = torch.log_softmax(logits, dim=-1)
    entropy = -(logp.exp() * logp).sum(-1)
    return masked_sum(entropy, mask)


def ppo_update(
    policy: PolicyWithValueHead,
    samples: Sequence[Sample],
    config: TrainingConfig,
    kl_ctl: KLController,
    *,
    optimizer: torch.optim.Optimizer | None = None,
    on_step: Callable[[dict], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    generator: torch.Generator | None = None,
    collective: Collective | None = None,
) -> dict:
    """Run ONE PPO update on ``samples`` and return its metrics (floats).

    ``optimizer``: pass the round's :func:`make_optimizer` result (a fresh one is made if omitted, which
    forgets Adam's moments between updates). ``on_step`` receives each optimiser step's metrics;
    ``should_stop`` is polled before each step (a cancelled round stops between steps; the returned
    metrics then have ``stopped=True``). ``generator`` shuffles minibatches; pass one per round so updates
    see different orders, and the same seed on every rank when distributed. ``collective`` makes the
    update one of several processes (see :mod:`text2grad.distributed`); every rank must pass the same
    ``samples`` in the same order.

    ``kl_ctl`` is updated at the end with the rollout's mean per-sequence KL. The returned summary holds
    the per-step metrics averaged over steps (``policy_loss``, ``value_loss``, ``clipfrac``, ``approx_kl``,
    ``ratio``, ``vf_clipfrac``, ``entropy``, ``grad_norm``; None if no step ran) and the rollout's
    ``kl`` (per sequence), ``kl_per_token``, ``kl_coef`` (β used), ``kl_coef_next``,
    ``mean_token_reward`` (human δ), ``mean_shaped_reward``, ``mean_advantage`` (before whitening),
    ``mean_return``, ``importance_weight``, ``grad_norm_max``, ``num_samples``, ``num_tokens``,
    ``optimizer_steps`` and ``stopped``.
    """
    if not samples:
        raise ValueError("ppo_update needs at least one sample")
    if optimizer is None:
        optimizer = make_optimizer(policy, config)
    if generator is None:
        generator = torch.Generator().manual_seed(config.seed)
    was_training = policy.training
    try:
        return _update(
            policy,
            samples,
            config,
            kl_ctl,
            optimizer,
            on_step,
            should_stop,
            generator,
            collective or LocalCollective(),
        )
    finally:
        # Also after an exception (e.g. a cancelled or failed round): the caller's mode is left as found.
        policy.train(was_training)


@dataclass(frozen=True)
class _Rollout:
    """Per-token tensors of one update's samples, fixed before its gradient steps ([samples, width])."""

    old_logprobs: Tensor
    old_values: Tensor
    advantages: Tensor
    returns: Tensor
    mask: Tensor
    weights: Tensor  # truncated importance weights; the mask where the sample is on-policy


def _micro_step(
    policy: PolicyWithValueHead,
    rows: Sequence[Sample],
    index: list[int],
    config: TrainingConfig,
    num_tokens: Tensor,
    rollout: _Rollout,
) -> Tensor:
    """Forward and backward of one micro-batch (gradients accumulate in ``.grad``); returns its metric sums:
    [tokens, clipfrac, approx_kl, ratio, vf_clipfrac, value, entropy, policy loss, value loss]."""
    device = policy.device
    batch = collate(rows, policy.pad_token_id, device)
    cols = slice(0, batch.response_width)
    rows_mask = rollout.mask[index, cols]
    scores = policy.score_responses(batch, temperature=config.temperature, return_logits=True)
    p_loss, p_stats = policy_loss(
        scores.logprobs,
        rollout.old_logprobs[index, cols],
        rollout.advantages[index, cols],
        rows_mask,
        config.clip_eps,
        rollout.weights[index, cols],
        num_tokens=num_tokens,
    )
    v_loss, v_stats = value_loss(
        scores.values,
        rollout.old_values[index, cols],
        rollout.returns[index, cols],
        rows_mask,
        config.value_clip,
        num_tokens=num_tokens,
    )
    (p_loss + config.vf_coef * v_loss).backward()
    local_tokens = float(rows_mask.sum())
    with torch.no_grad():
        entropy = _entropy_sum(scores.logits, rows_mask).item()
    per_token = [p_stats["clipfrac"], p_stats["approx_kl"], p_stats["ratio"], v_stats["vf_clipfrac"]]
    per_token.append(v_stats["value_mean"])
    values = [
        local_tokens,
        *(stat * local_tokens for stat in per_token),
        entropy,
        p_loss.item(),
        v_loss.item(),
    ]
    return torch.tensor(values, dtype=torch.float32, device=device)


def _update(
    policy: PolicyWithValueHead,
    samples: Sequence[Sample],
    config: TrainingConfig,
    kl_ctl: KLController,
    optimizer: torch.optim.Optimizer,
    on_step: Callable[[dict], None] | None,
    should_stop: Callable[[], bool] | None,
    generator: torch.Generator,
    collective: Collective,
) -> dict:
    device = policy.device
    params = policy.trainable_parameters()
    n = len(samples)
    width = max(len(s.response_ids) for s in samples)

    # -- rollout statistics: the policy as it is now, the reference, the critic ----------------------------
    # eval(): dropout off, so π_old is the deterministic policy that generated the ratio's denominator.
    policy.eval()
    old_logprobs, old_values, kl = _rollout_statistics(policy, samples, config, collective, width)
    lengths = torch.tensor([len(s.response_ids) for s in samples], device=device)
    mask = torch.arange(width, device=device).unsqueeze(0) < lengths.unsqueeze(1)
    human_rewards = _pad_rows([s.token_rewards for s in samples], width, device)
    terminal = None
    if config.mix_rating_weight > 0:
        ratings = [s.rating if s.rating is not None else 0.0 for s in samples]
        terminal = config.mix_rating_weight * torch.tensor(ratings, dtype=torch.float32, device=device)
    kl_coef = kl_ctl.value
    rewards = shape_rewards(human_rewards, kl, mask, kl_coef, config.mode, terminal)
    advantages, returns = gae(rewards, old_values, mask, config.gamma, config.lam)
    raw_advantage_mean = masked_mean(advantages, mask).item()
    if config.whiten_advantages:
        advantages = masked_whiten(advantages, mask)
    weights = mask.float()
    stale = [i for i, s in enumerate(samples) if s.behaviour_logprobs is not None]
    if stale:
        behaviour = _pad_rows([samples[i].behaviour_logprobs for i in stale], width, device)
        weights[stale] = truncated_importance_weights(
            old_logprobs[stale], behaviour, mask[stale], config.importance_cap
        )

    rollout = _Rollout(old_logprobs, old_values, advantages, returns, mask, weights)

    # -- optimisation: ppo_epochs passes over shuffled minibatches ------------------------------------------
    policy.train()  # LoRA dropout (config.lora_dropout) applies to the gradient steps only
    step_metrics: list[dict] = []
    stopped = False
    step = 0
    for epoch in range(config.ppo_epochs):
        order = torch.randperm(n, generator=generator).tolist()
        for start in range(0, n, config.minibatch_size):
            if _agreed_stop(should_stop, collective, device):
                stopped = True
                break
            minibatch = order[start : start + config.minibatch_size]
            # Normalise by the whole minibatch's tokens, so summed rank gradients equal the global mean.
            num_tokens = mask[minibatch].sum().clamp(min=1)
            mine = minibatch[collective.rank :: collective.world_size]
            optimizer.zero_grad(set_to_none=True)
            # [local tokens, clipfrac, approx_kl, ratio, vf_clipfrac, value, entropy, policy loss, value loss]
            sums = torch.zeros(9, dtype=torch.float32, device=device)
            # Micro-batches: each backward frees its activations before the next forward; the losses are
            # normalised by the whole minibatch's tokens, so the accumulated gradient is the minibatch's.
            for micro_start in range(0, len(mine), config.micro_batch_size):
                micro = mine[micro_start : micro_start + config.micro_batch_size]
                sums += _micro_step(policy, [samples[i] for i in micro], micro, config, num_tokens, rollout)
            _sync_gradients(params, collective)
            grad_norm = torch.nn.utils.clip_grad_norm_(params, config.max_grad_norm).item()
            optimizer.step()
            sums = collective.all_reduce_sum(sums)
            tokens = max(sums[0].item(), 1.0)
            metrics = {
                "step": step,
                "epoch": epoch,
                "policy_loss": sums[7].item(),
                "value_loss": sums[8].item(),
                "clipfrac": sums[1].item() / tokens,
                "approx_kl": sums[2].item() / tokens,
                "ratio": sums[3].item() / tokens,
                "vf_clipfrac": sums[4].item() / tokens,
                "value_mean": sums[5].item() / tokens,
                "entropy": sums[6].item() / tokens,
                "grad_norm": grad_norm,
            }
            step_metrics.append(metrics)
            step += 1
            if on_step is not None:
                on_step(metrics)
        if stopped:
            break

    # -- the KL controller sees the rollout's KL (policy at the start of this update vs the base model) -----
    kl_per_sequence = masked_sum(kl, mask, dim=-1).mean().item()
    kl_ctl.update(kl_per_sequence, n)
    # Means over the optimiser steps; None when the round was stopped before the first step.
    summary: dict = {
        key: sum(m[key] for m in step_metrics) / len(step_metrics) if step_metrics else None
        for key in _AVERAGED_METRICS
    }
    summary.update(
        grad_norm_max=max((m["grad_norm"] for m in step_metrics), default=0.0),
        kl=kl_per_sequence,
        kl_per_token=masked_mean(kl, mask).item(),
        kl_coef=kl_coef,
        kl_coef_next=kl_ctl.value,
        mean_token_reward=masked_mean(human_rewards, mask).item(),
        mean_shaped_reward=masked_mean(rewards, mask).item(),
        mean_advantage=raw_advantage_mean,
        mean_return=masked_mean(returns, mask).item(),
        importance_weight=masked_mean(weights, mask).item(),
        num_samples=n,
        num_tokens=int(mask.sum().item()),
        optimizer_steps=len(step_metrics),
        stopped=stopped,
    )
    logger.debug("ppo update: %s", summary)
    return summary
