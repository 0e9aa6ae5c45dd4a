"""Hyper-parameters of one TEXT2GRAD training round, stored as JSON on the round.

The defaults follow the paper's scripts (microsoft/Text2Grad on TRL 0.11.3) where they transfer, and are
adapted where a 135M-parameter model trained with LoRA on a CPU behaves differently from the paper's
3-8B models trained in full on GPUs. Each field says why it has its value.

>>> cfg = TrainingConfig(mode="scalar", learning_rate=5e-5)
>>> TrainingConfig.from_dict(cfg.to_dict()) == cfg
True
>>> TrainingConfig.from_dict({"learning_rat": 1e-4})
Traceback (most recent call last):
...
ValueError: unknown training config key(s): learning_rat
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from dataclasses import dataclass, field
from typing import Any, Literal

Mode = Literal["token", "scalar"]
KLEstimator = Literal["k1", "k2", "k3", "full"]


@dataclass
class TrainingConfig:
    """Every knob of a round; construct directly or with :meth:`from_dict`, both validate.

    >>> TrainingConfig().mode
    'token'
    >>> TrainingConfig(lam=1.5)
    Traceback (most recent call last):
    ...
    ValueError: lam must be in [0, 1], got 1.5
    """

    # -- what the rewards look like --------------------------------------------------------------------
    # "token" is TEXT2GRAD (dense δ_t per token); "scalar" sums δ onto the last token: the paper's PPO baseline.
    mode: Mode = "token"
    # Terminal reward = weight × the annotation's overall rating (expected in [-1, 1]); 0 keeps the paper's
    # pure span signal, a small value lets a round mix in the overall judgement.
    mix_rating_weight: float = 0.0

    # -- optimiser ---------------------------------------------------------------------------------------
    # The paper's 1e-6..5e-7 is for full fine-tuning of 3-8B models, where every weight moves; here ~1.4% of
    # the weights (a LoRA delta that starts at zero) must carry the whole change, so the usual LoRA rate is
    # ~100x higher. PPO clipping, the KL penalty and grad clipping still bound each update.
    learning_rate: float = 1e-4
    # LoRA factors are few and already regularised by their rank; decay would pull the adapter to "no change".
    weight_decay: float = 0.0
    # Adam's default; listed so a resumed round provably uses the same optimiser.
    adam_eps: float = 1e-8
    # Paper/TRL default; the whole-update norm is clipped so one badly-critiqued sample cannot blow up LoRA.
    max_grad_norm: float = 1.0

    # -- LoRA adapter (the model version) ----------------------------------------------------------------
    # Paper: r=16, α=32 (scale α/r = 2); the same rank is cheap on 135M (≈1.8M params on q/k/v/o).
    lora_r: int = 16
    # Paper value; keeps α/r = 2 so the adapter's effective step matches the paper's setting.
    lora_alpha: int = 32
    # Paper value; active only in the gradient steps, rollout statistics are taken without dropout.
    lora_dropout: float = 0.05
    # All attention projections: twice the capacity of q/v alone (peft's llama default) and still only
    # ~1.4% of the 135M parameters.
    lora_target_modules: list[str] = field(default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj"])

    # -- advantage estimation ------------------------------------------------------------------------------
    # Paper/TRL: no discount inside one response; credit flows to every earlier token.
    gamma: float = 1.0
    # Paper/TRL: GAE λ; < 1 discounts credit from far-later tokens, keeping token rewards local.
    lam: float = 0.95
    # Paper/TRL: whiten advantages per batch so the step size does not depend on the reward scale.
    whiten_advantages: bool = True

    # -- PPO losses --------------------------------------------------------------------------------------
    # Paper/TRL: clipped policy ratio ε.
    clip_eps: float = 0.2
    # Paper/TRL: clip of the value prediction around its rollout value.
    value_clip: float = 0.2
    # Paper/TRL: value loss weight; the value head shares the trunk, so it must not dominate the LoRA update.
    vf_coef: float = 0.1
    # Paper/TRL: optimisation epochs over one batch of rollouts.
    ppo_epochs: int = 4
    # Sequences per optimiser step: 4×128 tokens take ~2.2 s forward+backward on the 2-core CPU.
    minibatch_size: int = 4
    # Rows per forward/backward inside a minibatch (gradients accumulate to the same optimiser step): only
    # one micro-batch's activations are alive at a time; 2 rows cut peak memory by a quarter at no cost in
    # time on the 2-core CPU (docs/bench-notes/ppo_vs_trl.md). Raise it on a GPU with memory to spare.
    micro_batch_size: int = 2
    # Samples per PPO update (one rollout); 16 gives 4 optimiser steps per epoch at minibatch 4.
    batch_size: int = 16
    # PPO updates per round; each takes the next batch_size samples of the round's shuffled snapshot.
    steps: int = 4
    # Temperature applied to logits when scoring tokens; set it to the sampling temperature when behaviour
    # logprobs were recorded at that temperature, so π_old/μ compares like with like (TRL does the same).
    temperature: float = 1.0
    # Cap of the per-token importance weight π_old/μ for samples generated by an older model version;
    # truncation (as in V-trace) bounds the variance while still down-weighting stale, unlikely tokens.
    importance_cap: float = 2.0

    # -- KL penalty against the base model (adapter disabled) ----------------------------------------------
    # Paper: initial β in 0.05-0.2; 0.1 is the middle of that range.
    kl_coef: float = 0.1
    # Paper/TRL: adapt β (Ziegler et al. 2019) so the per-sequence KL tracks kl_target.
    adaptive_kl: bool = True
    # Paper/TRL: target KL per sequence in nats.
    kl_target: float = 6.0
    # Paper/TRL: horizon (in samples) of the adaptive controller; large means β moves slowly.
    kl_horizon: int = 10000
    # "k1" = sampled log-ratio (cheap, TRL's default), "k2"/"k3" = Schulman's lower-variance estimators,
    # "full" = exact KL over the vocabulary (the paper's choice; holds two [B, T, 49k] logit tensors).
    kl_estimator: KLEstimator = "k1"

    # -- reproducibility -----------------------------------------------------------------------------------
    # Seeds LoRA initialisation and minibatch shuffling so a round can be replayed exactly.
    seed: int = 0

    def __post_init__(self) -> None:
        self._coerce_and_check_types()
        self._check_values()

    # -- JSON round trip -----------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-serialisable dict of every field.

        >>> TrainingConfig().to_dict()["lora_target_modules"]
        ['q_proj', 'k_proj', 'v_proj', 'o_proj']
        """
        return {f.name: _plain(getattr(self, f.name)) for f in dataclasses.fields(self)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainingConfig:
        """Build from stored JSON; missing keys take their default, unknown keys are an error.

        Missing keys defaulting lets rounds stored before a field existed still load; unknown keys are
        refused because a typo would otherwise silently train with the default.

        >>> TrainingConfig.from_dict({"ppo_epochs": 2}).ppo_epochs
        2
        >>> TrainingConfig.from_dict({"ppo_epochs": "2"})
        Traceback (most recent call last):
        ...
        ValueError: ppo_epochs must be int, got str ('2')
        """
        if not isinstance(data, dict):
            raise ValueError(f"training config must be a JSON object, got {type(data).__name__}")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown training config key(s): {', '.join(unknown)}")
        return cls(**data)

    # -- validation ----------------------------------------------------------------------------------------
    def _coerce_and_check_types(self) -> None:
        hints = typing.get_type_hints(type(self))
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            setattr(self, f.name, _check_type(f.name, value, hints[f.name]))

    def _check_values(self) -> None:
        positive = ["learning_rate", "lora_r", "lora_alpha", "clip_eps", "value_clip", "ppo_epochs"]
        positive += [
            "minibatch_size",
            "micro_batch_size",
            "batch_size",
            "steps",
            "temperature",
            "importance_cap",
            "kl_target",
        ]
        positive += ["kl_horizon", "max_grad_norm", "adam_eps"]
        for name in positive:
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)!r}")
        for name in ["weight_decay", "vf_coef", "kl_coef", "mix_rating_weight", "seed"]:
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)!r}")
        for name in ["gamma", "lam"]:
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {getattr(self, name)!r}")
        if not 0.0 <= self.lora_dropout < 1.0:
            raise ValueError(f"lora_dropout must be in [0, 1), got {self.lora_dropout!r}")
        if self.importance_cap < 1.0:
            # A cap below 1 would down-weight even perfectly on-policy samples.
            raise ValueError(f"importance_cap must be >= 1, got {self.importance_cap!r}")
        if not self.lora_target_modules:
            raise ValueError("lora_target_modules must name at least one module")


def _plain(value: Any) -> Any:
    return list(value) if isinstance(value, (list, tuple)) else value


def _check_type(name: str, value: Any, hint: Any) -> Any:
    """Return ``value`` (ints widened to float where a float is expected) or raise ValueError."""
    origin = typing.get_origin(hint)
    if origin is Literal:
        allowed = typing.get_args(hint)
        if value not in allowed:
            raise ValueError(f"{name} must be one of {', '.join(map(repr, allowed))}, got {value!r}")
        return value
    if origin in (list, tuple):
        (item_type,) = typing.get_args(hint)[:1]
        if not isinstance(value, (list, tuple)) or not all(isinstance(v, item_type) for v in value):
            raise ValueError(f"{name} must be a list of {item_type.__name__}, got {value!r}")
        return list(value)
    if origin in (typing.Union, types.UnionType):
        raise TypeError(f"unsupported annotation for {name}: {hint}")  # pragma: no cover - guards new fields
    # bool is a subclass of int: refuse True as a learning rate and 1 as a flag.
    if hint is bool:
        if not isinstance(value, bool):
            raise ValueError(f"{name} must be bool, got {type(value).__name__} ({value!r})")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"{name} must be float, got {type(value).__name__} ({value!r})")
        if not math.isfinite(value):
            raise ValueError(f"{name} must be finite, got {value!r}")
        return float(value)
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"{name} must be int, got {type(value).__name__} ({value!r})")
        return value
    if hint is str:
        if not isinstance(value, str):
            raise ValueError(f"{name} must be str, got {type(value).__name__} ({value!r})")
        return value
    raise TypeError(f"unsupported annotation for {name}: {hint}")  # pragma: no cover - guards new fields
