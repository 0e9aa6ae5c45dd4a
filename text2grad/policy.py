"""The trainable policy: one causal LM trunk with a LoRA adapter and a linear value head.

Memory is the constraint on a CPU worker, so there is exactly one copy of the model: the policy is the
base model with the adapter enabled, the KL reference is the same model with the adapter disabled
(``peft``'s ``disable_adapter()``), and the critic is a linear head on the trunk's last hidden state. No
separate value model, no reward model (rewards come from people).

Batches are laid out ``[left-padded prompt | right-padded response]`` so every response starts at the same
column: the logits and values of the response are one contiguous slice, and positions are taken from the
attention mask so a padded row scores exactly as it would alone.

>>> import torch
>>> batch = pad_batch([[5, 6], [7]], [[8], [9, 10]], pad_token_id=0)
>>> batch.input_ids.tolist()
[[5, 6, 8, 0], [0, 7, 9, 10]]
>>> batch.position_ids.tolist(), batch.response_mask.tolist()
([[0, 1, 2, 2], [0, 0, 1, 2]], [[True, False], [True, True]])
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from peft import LoraConfig, PeftModel, get_peft_model
from peft.utils import load_peft_weights, set_peft_model_state_dict
from safetensors.torch import load_file, save_file
from torch import Tensor, nn
from transformers import PreTrainedModel

from text2grad.config import TrainingConfig

logger = logging.getLogger(__name__)

VALUE_HEAD_FILE = "value_head.safetensors"

__all__ = [
    "VALUE_HEAD_FILE",
    "PaddedBatch",
    "PolicyWithValueHead",
    "ResponseScores",
    "build_policy",
    "load_policy_weights",
    "load_value_head",
    "lora_config",
    "pad_batch",
    "pad_token_id",
    "reference_logprobs",
    "response_logprobs",
    "save_policy",
    "save_policy_atomic",
    "seeded_rng",
]


@dataclass
class PaddedBatch:
    """Model inputs for prompt+response pairs, laid out ``[left-padded prompt | right-padded response]``."""

    input_ids: Tensor  # [B, P + R]
    attention_mask: Tensor  # [B, P + R], 1 on real tokens
    position_ids: Tensor  # [B, P + R], counted from each row's first real token
    response_mask: Tensor  # [B, R] bool, True on real response tokens
    prompt_width: int  # P: the column where every response starts

    @property
    def response_ids(self) -> Tensor:
        """``[B, R]`` response token ids (padding included)."""
        return self.input_ids[:, self.prompt_width :]

    @property
    def response_width(self) -> int:
        return self.input_ids.shape[1] - self.prompt_width

    def to(self, device: torch.device | str) -> PaddedBatch:
        return PaddedBatch(
            self.input_ids.to(device),
            self.attention_mask.to(device),
            self.position_ids.to(device),
            self.response_mask.to(device),
            self.prompt_width,
        )


def pad_batch(
    prompts: Sequence[Sequence[int]],
    responses: Sequence[Sequence[int]],
    pad_token_id: int,
    device: torch.device | str | None = None,
    response_width: int | None = None,
) -> PaddedBatch:
    """Lay out prompt/response token ids for one forward pass (see the module docstring).

    ``response_width`` pads responses to at least that many columns, so per-token tensors of several
    batches line up. Every prompt needs at least one token: it is what predicts the first response token.
    """
    if len(prompts) != len(responses) or not prompts:
        raise ValueError(f"need as many prompts as responses (>0), got {len(prompts)} and {len(responses)}")
    if any(len(p) == 0 for p in prompts):
        raise ValueError("every prompt needs at least one token to predict the first response token from")
    prompt_width = max(len(p) for p in prompts)
    width = max([len(r) for r in responses] + [response_width or 0])
    rows, masks = [], []
    for prompt, response in zip(prompts, responses, strict=True):
        left, right = prompt_width - len(prompt), width - len(response)
        rows.append([pad_token_id] * left + list(prompt) + list(response) + [pad_token_id] * right)
        masks.append([0] * left + [1] * (len(prompt) + len(response)) + [0] * right)
    input_ids = torch.tensor(rows, dtype=torch.long, device=device)
    attention_mask = torch.tensor(masks, dtype=torch.long, device=device)
    # Left padding must not shift positions: RoPE sees the same positions as for the row alone.
    position_ids = (attention_mask.cumsum(-1) - 1).clamp(min=0)
    response_mask = attention_mask[:, prompt_width:].bool()
    return PaddedBatch(input_ids, attention_mask, position_ids, response_mask, prompt_width)


@dataclass
class ResponseScores:
    """What the model says about each response token ``a_t`` (all ``[B, R]`` except ``logits``)."""

    logprobs: Tensor  # log π(a_t | prefix), at the requested temperature
    values: Tensor | None  # V(prefix before a_t)
    logits: Tensor | None  # [B, R, V] tempered logits that produced ``logprobs``


class PolicyWithValueHead(nn.Module):
    """A peft LoRA causal LM plus a linear value head on the same trunk's last hidden state.

    The value head is created zero-initialised: a fresh critic predicts 0, the neutral point of token
    rewards (unmarked tokens are 0), instead of random values that GAE would first have to unlearn.
    It is kept in float32 whatever the trunk's dtype, since value targets are small differences.
    """

    def __init__(self, model: PeftModel, value_head: nn.Linear | None = None, pad_token_id: int = 0) -> None:
        super().__init__()
        self.model = model
        hidden_size = model.get_base_model().config.get_text_config().hidden_size
        if value_head is None:
            value_head = nn.Linear(hidden_size, 1)
            nn.init.zeros_(value_head.weight)
            nn.init.zeros_(value_head.bias)
        if value_head.in_features != hidden_size or value_head.out_features != 1:
            raise ValueError(f"value head must map {hidden_size} → 1, got {value_head}")
        self.value_head = value_head.to(device=self._trunk_device(), dtype=torch.float32)
        self.pad_token_id = pad_token_id

    def _trunk_device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def device(self) -> torch.device:
        return self.value_head.weight.device

    def trainable_parameters(self) -> list[nn.Parameter]:
        """LoRA factors and the value head: all that the optimiser and gradient sync touch."""
        return [p for p in self.parameters() if p.requires_grad]

    @contextlib.contextmanager
    def reference(self) -> Iterator[None]:
        """The KL reference: the same weights with the adapter switched off (no second model in memory)."""
        with self.model.disable_adapter():
            yield

    def _values(self, hidden: Tensor) -> Tensor:
        return self.value_head(hidden.to(self.value_head.weight.dtype)).squeeze(-1)

    def forward(
        self, input_ids: Tensor, attention_mask: Tensor, position_ids: Tensor | None = None
    ) -> tuple[Tensor, Tensor]:
        """Logits ``[B, L, V]`` and values ``[B, L]`` at every position.

        ``values[:, i]`` estimates the return of the tokens after position ``i``, like ``logits[:, i]``
        predicts token ``i + 1``.
        """
        if position_ids is None:
            position_ids = (attention_mask.long().cumsum(-1) - 1).clamp(min=0)
        out = self.model(
            input_ids=input_ids,
            attention_mask=attention_mask,
            position_ids=position_ids,
            output_hidden_states=True,
            use_cache=False,
        )
        return out.logits, self._values(out.hidden_states[-1])

    def score_responses(
        self,
        batch: PaddedBatch,
        *,
        temperature: float = 1.0,
        with_values: bool = True,
        return_logits: bool = False,
    ) -> ResponseScores:
        """Log-probabilities (and values, logits) of the response tokens only.

        The LM head runs only on the ``R`` positions that predict response tokens (``logits_to_keep``),
        which on a 49k vocabulary is most of the memory of a forward pass.
        """
        width = batch.response_width
        out = self.model(
            input_ids=batch.input_ids,
            attention_mask=batch.attention_mask,
            position_ids=batch.position_ids,
            output_hidden_states=with_values,
            use_cache=False,
            # The last R + 1 positions minus the final one are those predicting the R response tokens.
            logits_to_keep=width + 1,
        )
        logits = out.logits[:, :-1].float()
        if temperature != 1.0:
            logits = logits / temperature
        targets = batch.response_ids.unsqueeze(-1)
        # gather − logsumexp avoids materialising a full [B, R, V] log-softmax.
        logprobs = logits.gather(-1, targets).squeeze(-1) - torch.logsumexp(logits, dim=-1)
        values = None
        if with_values:
            start = batch.prompt_width - 1
            values = self._values(out.hidden_states[-1][:, start : start + width])
        return ResponseScores(logprobs=logprobs, values=values, logits=logits if return_logits else None)


def response_logprobs(policy: PolicyWithValueHead, batch: PaddedBatch, temperature: float = 1.0) -> Tensor:
    """``[B, R]`` log π(a_t) of the response tokens under the policy (adapter on); keeps the graph.

    Padding positions hold finite garbage: mask them with ``batch.response_mask``.
    """
    return policy.score_responses(batch, temperature=temperature, with_values=False).logprobs


@torch.no_grad()
def reference_logprobs(policy: PolicyWithValueHead, batch: PaddedBatch, temperature: float = 1.0) -> Tensor:
    """``[B, R]`` log π_ref(a_t): the same model with the adapter disabled, i.e. the base model."""
    with policy.reference():
        return policy.score_responses(batch, temperature=temperature, with_values=False).logprobs


def pad_token_id(model: PreTrainedModel) -> int:
    """The id that pads batches for ``model``: its pad token, else its (first) end-of-sequence token."""
    config = model.config.get_text_config()
    for candidate in (config.pad_token_id, config.eos_token_id):
        if isinstance(candidate, list):
            candidate = candidate[0] if candidate else None
        if candidate is not None:
            return int(candidate)
    return 0  # Any id works: padded positions are masked out of attention and of every loss.


def lora_config(config) -> LoraConfig:
    """A fresh causal-LM LoRA from any config with ``lora_r``, ``lora_alpha``, ``lora_dropout`` and
    ``lora_target_modules`` (the policy's :class:`TrainingConfig`, the critic's ``CriticConfig``)."""
    return LoraConfig(
        task_type="CAUSAL_LM",
        r=config.lora_r,
        lora_alpha=config.lora_alpha,
        lora_dropout=config.lora_dropout,
        target_modules=list(config.lora_target_modules),
        bias="none",
    )


@contextlib.contextmanager
def seeded_rng(seed: int) -> Iterator[None]:
    """Seed torch's generators for the block (a new LoRA's initialisation), restoring them afterwards."""
    devices = [torch.cuda.current_device()] if torch.cuda.is_available() else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield


def load_value_head(path: str | os.PathLike[str], hidden_size: int) -> nn.Linear:
    """Load a value head written by :func:`save_policy`."""
    tensors = load_file(str(path))
    head = nn.Linear(hidden_size, 1)
    if tuple(tensors["weight"].shape) != (1, hidden_size):
        raise ValueError(
            f"value head at {path} is {tuple(tensors['weight'].shape)}, model needs (1, {hidden_size})"
        )
    head.load_state_dict({"weight": tensors["weight"].float(), "bias": tensors["bias"].float()})
    return head


def build_policy(
    base_model: PreTrainedModel,
    config: TrainingConfig,
    adapter_dir: str | os.PathLike[str] | None = None,
    value_head_path: str | os.PathLike[str] | None = None,
) -> PolicyWithValueHead:
    """Wrap ``base_model`` (modified in place: peft injects the LoRA layers) into a trainable policy.

    Without ``adapter_dir`` a new LoRA is created from ``config`` (initialisation seeded by
    ``config.seed``, so a round replays exactly). With it, the saved adapter is loaded *trainable* to
    continue from that model version; its saved LoRA shape wins over ``config``'s. The value head comes
    from ``value_head_path``, else ``adapter_dir/value_head.safetensors`` if present, else starts at zero.
    The policy is returned in eval mode (no dropout).
    """
    hidden_size = base_model.config.get_text_config().hidden_size
    if adapter_dir is not None:
        model = PeftModel.from_pretrained(base_model, str(adapter_dir), is_trainable=True)
        saved = model.peft_config["default"]
        if (saved.r, saved.lora_alpha) != (config.lora_r, config.lora_alpha):
            logger.info(
                "continuing adapter %s with its saved r=%s alpha=%s (config asks r=%s alpha=%s)",
                adapter_dir,
                saved.r,
                saved.lora_alpha,
                config.lora_r,
                config.lora_alpha,
            )
        if value_head_path is None and (Path(adapter_dir) / VALUE_HEAD_FILE).exists():
            value_head_path = Path(adapter_dir) / VALUE_HEAD_FILE
    else:
        with seeded_rng(config.seed):
            model = get_peft_model(base_model, lora_config(config))
    value_head = load_value_head(value_head_path, hidden_size) if value_head_path is not None else None
    policy = PolicyWithValueHead(model, value_head, pad_token_id=pad_token_id(base_model))
    # peft creates its LoRA dropout modules in training mode; scoring and sampling must be deterministic.
    # ppo_update switches to train() for its gradient steps only and restores the mode afterwards.
    return policy.eval()


def save_policy(policy: PolicyWithValueHead, directory: str | os.PathLike[str]) -> None:
    """Write the adapter (peft ``save_pretrained``) and the value head (safetensors) into ``directory``."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    policy.model.save_pretrained(str(directory))
    head = policy.value_head
    save_file(
        {"weight": head.weight.detach().cpu().contiguous(), "bias": head.bias.detach().cpu().contiguous()},
        str(directory / VALUE_HEAD_FILE),
    )


def load_policy_weights(policy: PolicyWithValueHead, directory: str | os.PathLike[str]) -> None:
    """Overwrite the adapter and value head of ``policy`` with those :func:`save_policy` wrote into
    ``directory`` (the LoRA shapes must match: a checkpoint of this very policy)."""
    directory = Path(directory)
    result = set_peft_model_state_dict(policy.model, load_peft_weights(str(directory), device="cpu"))
    missing = [key for key in result.missing_keys if "lora_" in key]
    if missing or result.unexpected_keys:
        raise ValueError(
            f"{directory} does not fit this policy's adapter: {missing or result.unexpected_keys}"
        )
    head = load_value_head(directory / VALUE_HEAD_FILE, policy.value_head.in_features)
    with torch.no_grad():
        policy.value_head.weight.copy_(head.weight)
        policy.value_head.bias.copy_(head.bias)


def _fsync_tree(directory: Path) -> None:
    for path in sorted(directory.rglob("*")):
        if path.is_file():
            with open(path, "rb") as handle:
                os.fsync(handle.fileno())


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def save_policy_atomic(policy: PolicyWithValueHead, final_dir: str | os.PathLike[str]) -> Path:
    """Save into a sibling temporary folder, then rename it to ``final_dir`` in one step.

    A crash leaves either no ``final_dir`` or a complete one (plus, at worst, a ``.tmp-`` folder to clean).
    Model versions are immutable, so an existing ``final_dir`` is an error rather than overwritten.
    """
    final_dir = Path(final_dir)
    if final_dir.exists():
        raise FileExistsError(f"model version folder already exists: {final_dir}")
    final_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp_dir = final_dir.parent / f".{final_dir.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    try:
        save_policy(policy, tmp_dir)
        _fsync_tree(tmp_dir)
        os.replace(tmp_dir, final_dir)
        _fsync_dir(final_dir.parent)
    except BaseException:
        shutil.rmtree(tmp_dir, ignore_errors=True)
        raise
    return final_dir
