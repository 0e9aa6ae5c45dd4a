"""Tensor math of TEXT2GRAD's policy optimisation: KL, reward shaping, GAE, clipped PPO losses.

Pure functions over ``torch`` tensors, no model and no Django. Every per-token tensor is ``[B, T]`` over
the *response* tokens of a batch, right-padded, with ``mask`` 1 on real tokens and 0 on padding. Padding
is excluded by selection (``torch.where``), never by multiplying, so a NaN or inf in a padded slot cannot
leak into a result or a gradient.

>>> import torch
>>> rewards = torch.tensor([[0.0, -1.0, 0.0]])
>>> values = torch.zeros(1, 3)
>>> mask = torch.tensor([[1, 1, 0]])
>>> advantages, returns = gae(rewards, values, mask, gamma=1.0, lam=1.0)
>>> advantages.tolist()
[[-1.0, -1.0, 0.0]]
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

__all__ = [
    "AdaptiveKLController",
    "FixedKLController",
    "full_kl",
    "gae",
    "masked_mean",
    "masked_sum",
    "masked_var",
    "masked_whiten",
    "per_token_kl",
    "policy_loss",
    "shape_rewards",
    "truncated_importance_weights",
    "value_loss",
]


def _bool(mask: Tensor) -> Tensor:
    return mask if mask.dtype == torch.bool else mask != 0


def masked_sum(values: Tensor, mask: Tensor, dim: int | None = None) -> Tensor:
    """Sum of ``values`` where ``mask`` is set.

    >>> masked_sum(torch.tensor([1.0, 2.0, float("nan")]), torch.tensor([1, 1, 0]))
    tensor(3.)
    """
    selected = torch.where(_bool(mask), values, torch.zeros((), dtype=values.dtype, device=values.device))
    return selected.sum() if dim is None else selected.sum(dim)


def masked_mean(values: Tensor, mask: Tensor, dim: int | None = None) -> Tensor:
    """Mean of ``values`` over the positions where ``mask`` is set (0 where nothing is set).

    >>> masked_mean(torch.tensor([[1.0, 3.0, 100.0]]), torch.tensor([[1, 1, 0]]))
    tensor(2.)
    """
    count = _bool(mask).sum() if dim is None else _bool(mask).sum(dim)
    return masked_sum(values, mask, dim) / count.clamp(min=1).to(values.dtype)


def masked_var(values: Tensor, mask: Tensor, unbiased: bool = True) -> Tensor:
    """Variance over the masked positions, Bessel-corrected by default (as TRL).

    >>> masked_var(torch.tensor([1.0, 3.0, 100.0]), torch.tensor([1, 1, 0]))
    tensor(2.)
    """
    mean = masked_mean(values, mask)
    count = _bool(mask).sum().to(values.dtype)
    sum_sq = masked_sum((values - mean) ** 2, mask)
    if unbiased:
        # One token has no spread: report 0 rather than 0/0.
        return sum_sq / (count - 1) if count > 1 else torch.zeros_like(sum_sq)
    return sum_sq / count.clamp(min=1)


def masked_whiten(values: Tensor, mask: Tensor, shift_mean: bool = True, eps: float = 1e-8) -> Tensor:
    """Normalise the masked entries to mean 0 and variance 1; padded entries become 0.

    ``shift_mean=False`` only rescales (keeps the mean), as TRL offers for rewards.

    >>> masked_whiten(torch.tensor([[1.0, 3.0, 7.0]]), torch.tensor([[1, 1, 0]]))
    tensor([[-0.7071,  0.7071,  0.0000]])
    """
    mean = masked_mean(values, mask)
    var = masked_var(values, mask)
    whitened = (values - mean) * torch.rsqrt(var + eps)
    if not shift_mean:
        whitened = whitened + mean
    return torch.where(_bool(mask), whitened, torch.zeros_like(whitened))


def per_token_kl(logprobs: Tensor, ref_logprobs: Tensor, estimator: str = "k1") -> Tensor:
    """Per-token estimate of KL(π ‖ π_ref) from the sampled token's log-probabilities.

    With ``log r = log π_ref(a) − log π(a)`` for the sampled ``a ~ π`` (Schulman, "Approximating KL"):
    ``"k1"`` = −log r (unbiased, can be negative; TRL's default and the paper's per-token penalty),
    ``"k2"`` = ½ (log r)² (biased, low variance), ``"k3"`` = (r − 1) − log r (unbiased, always ≥ 0).

    >>> per_token_kl(torch.tensor([-1.0]), torch.tensor([-2.0]), "k1")
    tensor([1.])
    >>> per_token_kl(torch.tensor([-1.0]), torch.tensor([-2.0]), "k2")
    tensor([0.5000])
    """
    log_ratio = ref_logprobs - logprobs
    if estimator == "k1":
        return -log_ratio
    if estimator == "k2":
        return 0.5 * log_ratio**2
    if estimator == "k3":
        return torch.expm1(log_ratio) - log_ratio
    raise ValueError(
        f"unknown KL estimator {estimator!r}; expected 'k1', 'k2' or 'k3' (use full_kl for 'full')"
    )


def full_kl(logits: Tensor, ref_logits: Tensor, mask: Tensor | None = None) -> Tensor:
    """Exact KL(softmax(logits) ‖ softmax(ref_logits)) at each position, summed over the vocabulary.

    ``logits`` and ``ref_logits`` are ``[B, T, V]``; the result is ``[B, T]``, 0 where ``mask`` is unset.
    Computed in float32 whatever the input dtype, since bf16 log-softmax differences are mostly rounding.

    >>> logits = torch.tensor([[[0.0, 0.0]]])
    >>> round(full_kl(logits, torch.tensor([[[0.0, math.log(3.0)]]])).item(), 4)  # KL([.5,.5] ‖ [.25,.75])
    0.1438
    """
    logp = torch.log_softmax(logits.float(), dim=-1)
    ref_logp = torch.log_softmax(ref_logits.float(), dim=-1)
    kl = (logp.exp() * (logp - ref_logp)).sum(-1)
    if mask is None:
        return kl
    return torch.where(_bool(mask), kl, torch.zeros_like(kl))


def _last_valid_index(mask: Tensor) -> Tensor:
    """Index of the last set position per row (0 for an all-padding row)."""
    positions = torch.arange(mask.shape[-1], device=mask.device).expand_as(mask)
    return torch.where(_bool(mask), positions, torch.zeros_like(positions)).amax(-1)


def shape_rewards(
    human_rewards: Tensor,
    kl: Tensor,
    mask: Tensor,
    kl_coef: float,
    mode: str = "token",
    terminal_rewards: Tensor | None = None,
) -> Tensor:
    """Per-token PPO rewards from human token rewards δ and the per-token KL.

    ``"token"`` (TEXT2GRAD): ``r_t = δ_t − β·KL_t``. ``"scalar"`` (the classic PPO baseline): the whole
    response's ``Σ_t δ_t`` sits on the last valid token, and ``−β·KL_t`` stays on every token, so the two
    modes differ only in *where* the human signal is. ``terminal_rewards`` ``[B]`` (e.g. a weighted
    overall rating) is added on the last valid token in both modes. Padding gets 0.

    >>> delta = torch.tensor([[1.0, -2.0, 0.0]])
    >>> mask = torch.tensor([[1, 1, 0]])
    >>> shape_rewards(delta, torch.zeros(1, 3), mask, 0.1, "token").tolist()
    [[1.0, -2.0, 0.0]]
    >>> shape_rewards(delta, torch.zeros(1, 3), mask, 0.1, "scalar").tolist()
    [[0.0, -1.0, 0.0]]
    """
    valid = _bool(mask)
    zeros = torch.zeros_like(human_rewards)
    delta = torch.where(valid, human_rewards, zeros)
    if mode == "token":
        rewards = delta.clone()
    elif mode == "scalar":
        rewards = zeros.clone()
        rewards.scatter_(-1, _last_valid_index(valid).unsqueeze(-1), delta.sum(-1, keepdim=True))
    else:
        raise ValueError(f"unknown reward mode {mode!r}; expected 'token' or 'scalar'")
    if terminal_rewards is not None:
        terminal = terminal_rewards.to(rewards.dtype).unsqueeze(-1)
        rewards.scatter_add_(-1, _last_valid_index(valid).unsqueeze(-1), terminal)
    rewards = rewards - kl_coef * torch.where(valid, kl, zeros)
    # An all-padding row would have received its terminal reward at index 0: drop it.
    return torch.where(valid, rewards, zeros)


def gae(rewards: Tensor, values: Tensor, mask: Tensor, gamma: float, lam: float) -> tuple[Tensor, Tensor]:
    """Generalised advantage estimation over right-padded responses → ``(advantages, returns)``.

    The episode ends after the last valid token (no bootstrap). A masked position is *skipped*: the
    recursion carries over it unchanged, linking the valid tokens on either side as consecutive steps.
    (The paper's TRL code instead zeroed the running advantage at masked tokens, cutting credit flow at
    every punctuation token it had masked; that is deliberately not reproduced.) Returns are
    ``advantages + values``; both are 0 on padding. Inputs are treated as constants (no gradient).

    >>> r = torch.tensor([[1.0, 0.0, 2.0, 0.0]])
    >>> m = torch.tensor([[1, 0, 1, 0]])
    >>> gae(r, torch.zeros(1, 4), m, gamma=0.5, lam=1.0)[0].tolist()  # 1 + 0.5·2: the hole is not a step
    [[2.0, 0.0, 2.0, 0.0]]
    """
    rewards, values = rewards.detach(), values.detach()
    valid = _bool(mask)
    advantages = torch.zeros_like(rewards)
    running = torch.zeros_like(rewards[..., 0])
    next_value = torch.zeros_like(rewards[..., 0])
    for t in reversed(range(rewards.shape[-1])):
        here = valid[..., t]
        delta = rewards[..., t] + gamma * next_value - values[..., t]
        candidate = delta + gamma * lam * running
        running = torch.where(here, candidate, running)
        next_value = torch.where(here, values[..., t], next_value)
        advantages[..., t] = torch.where(here, candidate, torch.zeros_like(candidate))
    returns = torch.where(valid, advantages + values, torch.zeros_like(values))
    return advantages, returns


def policy_loss(
    logprobs: Tensor,
    old_logprobs: Tensor,
    advantages: Tensor,
    mask: Tensor,
    clip_eps: float,
    weights: Tensor | None = None,
    *,
    num_tokens: float | Tensor | None = None,
) -> tuple[Tensor, dict[str, float]]:
    """PPO's clipped surrogate, averaged over valid tokens → ``(loss, stats)``.

    ``loss_t = max(−A_t·ρ_t, −A_t·clip(ρ_t, 1−ε, 1+ε))`` with ``ρ_t = π(a_t)/π_old(a_t)``, times the
    optional per-token ``weights`` (truncated importance weights for stale samples, no gradient).
    ``num_tokens`` replaces the local token count as denominator: sharded minibatches pass the global
    count so the summed gradients across ranks equal the single-process mean. Stats: ``clipfrac`` (share
    of tokens where the clipped branch is active), ``approx_kl`` (½·mean (log ρ)², as TRL), ``ratio``.

    >>> lp = torch.log(torch.tensor([[1.5, 1.0]]))
    >>> loss, stats = policy_loss(lp, torch.zeros(1, 2), torch.ones(1, 2), torch.ones(1, 2), 0.2)
    >>> round(loss.item(), 4), stats["clipfrac"]  # token 0 is clipped at 1.2: (−1.2 − 1.0) / 2
    (-1.1, 0.5)
    """
    log_ratio = logprobs - old_logprobs.detach()
    ratio = torch.exp(log_ratio)
    advantages = advantages.detach()
    unclipped = -advantages * ratio
    clipped = -advantages * torch.clamp(ratio, 1.0 - clip_eps, 1.0 + clip_eps)
    per_token = torch.maximum(unclipped, clipped)
    if weights is not None:
        per_token = per_token * weights.detach()
    valid = _bool(mask)
    denominator = valid.sum().clamp(min=1) if num_tokens is None else num_tokens
    loss = masked_sum(per_token, valid) / denominator
    with torch.no_grad():
        stats = {
            "clipfrac": masked_mean((clipped > unclipped).to(ratio.dtype), valid).item(),
            "approx_kl": masked_mean(0.5 * log_ratio**2, valid).item(),
            "ratio": masked_mean(ratio, valid).item(),
        }
    return loss, stats


def value_loss(
    values: Tensor,
    old_values: Tensor,
    returns: Tensor,
    mask: Tensor,
    clip: float,
    *,
    num_tokens: float | Tensor | None = None,
) -> tuple[Tensor, dict[str, float]]:
    """Clipped value loss ``½·mean max((V − R)², (clip(V, V_old ± c) − R)²)`` → ``(loss, stats)``.

    ``num_tokens`` as in :func:`policy_loss`. Stats: ``vf_clipfrac`` (share where the clipped branch is
    the larger one), ``value_mean``.

    >>> v = torch.tensor([[1.0]])
    >>> loss, _ = value_loss(v, torch.zeros(1, 1), torch.zeros(1, 1), torch.ones(1, 1), clip=0.2)
    >>> loss.item()  # unclipped error 1.0² beats clipped 0.2²
    0.5
    """
    old_values, returns = old_values.detach(), returns.detach()
    clipped_values = old_values + torch.clamp(values - old_values, -clip, clip)
    unclipped_error = (values - returns) ** 2
    clipped_error = (clipped_values - returns) ** 2
    per_token = 0.5 * torch.maximum(unclipped_error, clipped_error)
    valid = _bool(mask)
    denominator = valid.sum().clamp(min=1) if num_tokens is None else num_tokens
    loss = masked_sum(per_token, valid) / denominator
    with torch.no_grad():
        stats = {
            "vf_clipfrac": masked_mean((clipped_error > unclipped_error).to(values.dtype), valid).item(),
            "value_mean": masked_mean(values, valid).item(),
        }
    return loss, stats


def truncated_importance_weights(
    old_logprobs: Tensor, behaviour_logprobs: Tensor, mask: Tensor, cap: float
) -> Tensor:
    """Per-token ``min(π_old(a_t) / μ(a_t), cap)`` for tokens sampled by an older model version μ.

    Per token rather than a product over the sequence (whose variance explodes with length), truncated
    above as in V-trace/IMPALA: a token the current policy finds unlikely is down-weighted, one it finds
    much likelier is capped. Padding gets 0.

    >>> old = torch.log(torch.tensor([[0.2, 0.9]]))
    >>> behaviour = torch.log(torch.tensor([[0.4, 0.3]]))
    >>> truncated_importance_weights(old, behaviour, torch.ones(1, 2), cap=2.0)
    tensor([[0.5000, 2.0000]])
    """
    # Clamp the log-ratio before exp so an extreme stale token cannot overflow to inf.
    log_ratio = (old_logprobs - behaviour_logprobs).clamp(max=math.log(cap))
    weights = torch.exp(log_ratio)
    return torch.where(_bool(mask), weights, torch.zeros_like(weights)).detach()


class FixedKLController:
    """A constant KL coefficient β.

    >>> ctl = FixedKLController(0.1)
    >>> ctl.update(50.0, 16)
    >>> ctl.value
    0.1
    """

    def __init__(self, kl_coef: float) -> None:
        self.value = float(kl_coef)

    def update(self, current_kl: float, n_steps: int) -> None:
        """Nothing to adapt."""


class AdaptiveKLController:
    """Ziegler et al. (2019) proportional controller: β moves so the per-sequence KL tracks ``target``.

    ``β ← β · (1 + clip(KL/target − 1, −0.2, 0.2) · n_steps / horizon)``, where ``n_steps`` is the number
    of samples seen since the last update (TRL passes the batch size).

    >>> ctl = AdaptiveKLController(0.1, target=6.0, horizon=10000)
    >>> ctl.update(current_kl=12.0, n_steps=1000)  # error +1 is clipped to +0.2
    >>> round(ctl.value, 6)
    0.102
    """

    def __init__(self, init_kl_coef: float, target: float, horizon: int) -> None:
        self.value = float(init_kl_coef)
        self.target = float(target)
        self.horizon = int(horizon)

    def update(self, current_kl: float, n_steps: int) -> None:
        proportional_error = min(max(current_kl / self.target - 1.0, -0.2), 0.2)
        self.value *= 1.0 + proportional_error * n_steps / self.horizon
