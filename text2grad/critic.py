"""The span critic: the paper's reward model in a form a CPU can train (no Django).

TEXT2GRAD trains a reward model on span-annotated critiques and lets it score every fresh sample of the
policy. Here it is the shared base model with its own LoRA adapter and a token-classification head: for
each response token, P(neutral), P(poor), P(good). Training labels come from people's spans through the
same offset mapping as the rewards (:func:`token_labels`), so "this token lies in a poor span" means
exactly what it means for a human reward. Predictions become spans again (consecutive tokens of one label
merged, :func:`spans_from_probs`) for pre-annotation, and token rewards (:func:`token_rewards_from_probs`)
for on-policy PPO.

A critic needs its *own* base model instance: peft injects LoRA layers into the model it wraps, so the
policy and the critic must not share one (loading the cached base again takes well under a second).

>>> token_labels([(0, 3), (3, 9), (9, 9)], [SpanReward(4, 9, polarity=-1)])
[0, 1, 0]
>>> [s.to_dict()["text"] for s in spans_from_probs("It was 1999.", [(0, 2), (2, 6), (6, 11), (11, 12)],
...     np.array([[.9, .05, .05], [.8, .1, .1], [.1, .8, .1], [.9, .05, .05]]))]
['1999']
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import uuid
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch
from peft import PeftModel, get_peft_model
from safetensors.torch import load_file, save_file
from torch import Tensor, nn

from text2grad.critic_metrics import GOOD, LABELS, NEUTRAL, POOR
from text2grad.policy import PaddedBatch, lora_config, pad_batch, pad_token_id, seeded_rng
from text2grad.rewards import RewardScheme, SpanReward, token_rewards_from_offsets

logger = logging.getLogger(__name__)

HEAD_FILE = "critic_head.safetensors"
META_FILE = "critic.json"
POLARITY_OF_LABEL = {NEUTRAL: 0, POOR: -1, GOOD: 1}

__all__ = [
    "CriticConfig",
    "CriticExample",
    "CriticInput",
    "CriticOutput",
    "HEAD_FILE",
    "PredictedSpan",
    "SpanCritic",
    "TokenCritic",
    "build_critic",
    "load_critic",
    "predict_token_probs",
    "response_uncertainty",
    "save_critic_atomic",
    "set_prior_bias",
    "spans_from_probs",
    "token_labels",
    "token_rewards_from_probs",
    "train_critic",
]


@dataclass
class CriticConfig:
    """How a critic version is trained; stored as JSON on the version."""

    lora_r: int = 8  # a labelling task needs less capacity than the policy's r=16
    lora_alpha: int = 16
    lora_dropout: float = 0.05
    lora_target_modules: list[str] = field(default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj"])
    learning_rate: float = 1e-3  # LoRA + a fresh head on a 135M model; 1e-4 barely moves in 3 epochs
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    epochs: int = 3
    batch_size: int = 8
    # Poor tokens are a few percent of all tokens; up-weighting them trades precision for recall.
    class_weights: list[float] = field(default_factory=lambda: [1.0, 2.0, 1.0])
    # The head also reads the next ``lookahead`` tokens' hidden states: the whole response is known when it
    # is scored, and whether " 9" is an invented number depends on the digits after it (SmolLM2 writes
    # numbers one digit per token; a causal trunk alone cannot see them at the first digit).
    lookahead: int = 3
    max_prompt_tokens: int = 384  # keep the *last* prompt tokens: the chat template's end is what matters
    max_response_tokens: int = 256
    held_out_fraction: float = 0.2  # share of outputs kept out of training, for the version's metrics
    seed: int = 0

    def __post_init__(self) -> None:
        checks = [
            (self.lora_r >= 1, "lora_r must be >= 1"),
            (self.learning_rate > 0 and math.isfinite(self.learning_rate), "learning_rate must be > 0"),
            (1 <= self.epochs <= 100, "epochs must be between 1 and 100"),
            (0 <= self.lookahead <= 16, "lookahead must be between 0 and 16"),
            (1 <= self.batch_size <= 512, "batch_size must be between 1 and 512"),
            (len(self.class_weights) == len(LABELS), f"class_weights needs {len(LABELS)} numbers"),
            (all(w > 0 for w in self.class_weights), "class_weights must be > 0"),
            (0.0 <= self.held_out_fraction < 1.0, "held_out_fraction must be in [0, 1)"),
            (self.max_prompt_tokens >= 1 and self.max_response_tokens >= 1, "token limits must be >= 1"),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(message)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CriticConfig:
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown critic config keys: {sorted(unknown)}")
        return cls(**data)


@dataclass
class CriticExample:
    """One labelled response: token ids and one label (0 neutral, 1 poor, 2 good) per response token."""

    prompt_ids: list[int]
    response_ids: list[int]
    labels: list[int]

    def __post_init__(self) -> None:
        if not self.prompt_ids or not self.response_ids:
            raise ValueError("a critic example needs at least one prompt and one response token")
        if len(self.labels) != len(self.response_ids):
            raise ValueError(f"{len(self.labels)} labels for {len(self.response_ids)} response tokens")


@dataclass
class CriticInput:
    """What any critic is asked about: the prompt, the response text and its tokenization."""

    prompt_ids: list[int]
    response_ids: list[int]
    text: str
    offsets: list[tuple[int, int]]


@dataclass
class PredictedSpan:
    start: int
    end: int
    polarity: int  # -1 poor, +1 good
    score: float  # mean probability of the span's label over its tokens
    text: str = ""

    def to_dict(self) -> dict:
        return {"start": self.start, "end": self.end, "polarity": self.polarity,
                "score": round(self.score, 4), "text": self.text}  # fmt: skip


@dataclass
class CriticOutput:
    """A critic's answer for one response. ``critique`` stays None for a token classifier; a generative
    critic (the paper's: it writes the critique and marks its spans) fills it."""

    token_probs: np.ndarray  # [R, 3]: P(neutral), P(poor), P(good)
    spans: list[PredictedSpan]
    uncertainty: float
    critique: str | None = None


@runtime_checkable
class SpanCritic(Protocol):
    """Anything that scores responses span by span. :class:`TokenCritic` is one; a generative critic
    that writes critiques and aligns them (``text2grad.alignment``) would be another."""

    def critique(self, items: Sequence[CriticInput]) -> list[CriticOutput]: ...


# -- labels from spans, spans from probabilities -------------------------------------------------------------
_LABEL_SCHEME = RewardScheme(good=1.0, poor=-1.0, outside=0.0, conflict="negative")


def token_labels(offsets: Sequence[tuple[int, int]], spans: Sequence[SpanReward]) -> list[int]:
    """One label per token from spans, by the reward mapping: a token touching a poor span is poor
    (conflicts resolve negative, as for rewards), else good if it touches a good span, else neutral."""
    marks = [SpanReward(s.start, s.end, s.polarity, 1.0) for s in spans]
    values = token_rewards_from_offsets(offsets, marks, _LABEL_SCHEME)
    return [POOR if v < 0 else GOOD if v > 0 else NEUTRAL for v in values]


def spans_from_probs(
    text: str, offsets: Sequence[tuple[int, int]], probs: np.ndarray, *, min_score: float = 0.0
) -> list[PredictedSpan]:
    """Merge runs of consecutive tokens whose most probable label is poor (or good) into spans, trimmed
    of surrounding whitespace (byte-level BPE tokens carry their leading space). Zero-width tokens end a
    run. Spans scoring below ``min_score`` are dropped."""
    labels = probs.argmax(axis=1) if len(probs) else np.zeros(0, dtype=int)
    spans: list[PredictedSpan] = []
    run: list[int] = []

    def close() -> None:
        if not run:
            return
        label = int(labels[run[0]])
        start, end = offsets[run[0]][0], offsets[run[-1]][1]
        while start < end and text[start].isspace():
            start += 1
        while end > start and text[end - 1].isspace():
            end -= 1
        score = float(np.mean(probs[run, label]))
        if start < end and score >= min_score:
            spans.append(PredictedSpan(start, end, POLARITY_OF_LABEL[label], score, text[start:end]))
        run.clear()

    for index, (a, b) in enumerate(offsets):
        label = int(labels[index])
        if a == b or label == NEUTRAL or (run and int(labels[run[0]]) != label):
            close()
        if a != b and label != NEUTRAL:
            run.append(index)
    close()
    return spans


def token_rewards_from_probs(
    probs: np.ndarray, scheme: RewardScheme | None = None, *, how: str = "expected"
) -> list[float]:
    """Token rewards from a critic: ``expected`` = P(good)·good + P(poor)·poor (a confident critic gives
    the human values, an unsure one less), ``hard`` = the value of the most probable label.

    >>> token_rewards_from_probs(np.array([[0.2, 0.8, 0.0], [1.0, 0.0, 0.0]]))
    [-0.8, 0.0]
    """
    scheme = scheme or RewardScheme()
    values = np.array([scheme.outside, scheme.poor, scheme.good])
    if how == "expected":
        out = probs @ np.array([0.0, scheme.poor, scheme.good]) + probs[:, NEUTRAL] * scheme.outside
    elif how == "hard":
        out = values[probs.argmax(axis=1)]
    else:
        raise ValueError(f"how must be 'expected' or 'hard', got {how!r}")
    return [round(float(x), 6) for x in out]


def response_uncertainty(probs: np.ndarray, top_k: int = 5) -> float:
    """Mean normalised entropy of the response's ``top_k`` most uncertain tokens (0 sure, 1 uniform).

    The mean over *all* tokens would drown the few doubtful ones in confidently neutral filler.

    >>> response_uncertainty(np.array([[1.0, 0.0, 0.0], [1/3, 1/3, 1/3]]), top_k=1)
    1.0
    """
    if len(probs) == 0:
        return 0.0
    clipped = np.clip(probs, 1e-12, 1.0)
    entropy = -(clipped * np.log(clipped)).sum(axis=1) / math.log(len(LABELS))
    top = np.sort(entropy)[-top_k:]
    return round(float(np.clip(top.mean(), 0.0, 1.0)), 6)


# -- the model -----------------------------------------------------------------------------------------------
class TokenCritic(nn.Module):
    """A peft LoRA trunk plus a linear head giving 3 logits per token. The head reads the last hidden state
    at the token's own position (which has seen the prompt and the response up to that token) and at the
    next ``lookahead`` positions (zeros past the end of the response)."""

    def __init__(
        self, model: PeftModel, head: nn.Linear | None = None, pad_token_id: int = 0, lookahead: int = 0
    ) -> None:
        super().__init__()
        self.model = model
        self.lookahead = lookahead
        hidden_size = model.get_base_model().config.get_text_config().hidden_size
        width = hidden_size * (1 + lookahead)
        # A fresh head's bias is set to the log label frequencies of its first training data (``train_critic``).
        self.fresh = head is None
        if head is None:
            head = nn.Linear(width, len(LABELS))
            nn.init.normal_(head.weight, std=0.02)
            nn.init.zeros_(head.bias)
        if head.in_features != width or head.out_features != len(LABELS):
            raise ValueError(f"critic head must map {width} → {len(LABELS)}, got {head}")
        device = next(model.parameters()).device
        self.head = head.to(device=device, dtype=torch.float32)
        self.pad_token_id = pad_token_id

    @property
    def device(self) -> torch.device:
        return self.head.weight.device

    def trainable_parameters(self) -> list[nn.Parameter]:
        return [p for p in self.parameters() if p.requires_grad]

    def token_logits(self, batch: PaddedBatch) -> Tensor:
        """``[B, R, 3]`` logits of the response tokens (padding positions hold garbage: mask them)."""
        out = self.model(
            input_ids=batch.input_ids,
            attention_mask=batch.attention_mask,
            position_ids=batch.position_ids,
            output_hidden_states=True,
            use_cache=False,
            logits_to_keep=1,  # the LM head is not needed; skip the [B, L, vocab] projection
        )
        hidden = out.hidden_states[-1][:, batch.prompt_width :].to(self.head.weight.dtype)
        hidden = hidden * batch.response_mask.unsqueeze(-1).to(hidden.dtype)  # right padding reads as zeros
        windows = [hidden] + [
            nn.functional.pad(hidden[:, k:], (0, 0, 0, k)) for k in range(1, self.lookahead + 1)
        ]
        return self.head(torch.cat(windows, dim=-1))

    def critique(self, items: Sequence[CriticInput]) -> list[CriticOutput]:
        probs = predict_token_probs(self, [i.prompt_ids for i in items], [i.response_ids for i in items])
        return [
            CriticOutput(p, spans_from_probs(i.text, i.offsets, p), response_uncertainty(p))
            for i, p in zip(items, probs, strict=True)
        ]


def build_critic(
    base_model, config: CriticConfig, init_dir: str | os.PathLike[str] | None = None
) -> TokenCritic:
    """Wrap ``base_model`` (modified in place by peft) into a trainable critic: a fresh LoRA and head
    (seeded by ``config.seed``), or those of the critic saved in ``init_dir`` to continue training it."""
    if init_dir is not None:
        return load_critic(base_model, init_dir, trainable=True)
    with seeded_rng(config.seed):  # the head is initialised under the seed too
        model = get_peft_model(base_model, lora_config(config))
        critic = TokenCritic(model, pad_token_id=pad_token_id(base_model), lookahead=config.lookahead)
    return critic.eval()


def load_critic(base_model, directory: str | os.PathLike[str], *, trainable: bool = False) -> TokenCritic:
    """A critic saved by :func:`save_critic_atomic`, on ``base_model`` (modified in place by peft)."""
    directory = Path(directory)
    if not (directory / HEAD_FILE).is_file():
        raise FileNotFoundError(f"{directory} holds no critic ({HEAD_FILE} missing)")
    model = PeftModel.from_pretrained(base_model, str(directory), is_trainable=trainable)
    tensors = load_file(str(directory / HEAD_FILE))
    hidden_size = base_model.config.get_text_config().hidden_size
    rows, width = tuple(tensors["weight"].shape)
    if rows != len(LABELS) or width % hidden_size:
        raise ValueError(f"critic head in {directory} is {(rows, width)}, need (3, k × {hidden_size})")
    head = nn.Linear(width, len(LABELS))
    head.load_state_dict({"weight": tensors["weight"].float(), "bias": tensors["bias"].float()})
    lookahead = width // hidden_size - 1
    return TokenCritic(model, head, pad_token_id=pad_token_id(base_model), lookahead=lookahead).eval()


def save_critic_atomic(
    critic: TokenCritic, final_dir: str | os.PathLike[str], metadata: dict | None = None
) -> Path:
    """Adapter + head + ``critic.json`` into a temporary sibling folder, fsynced, then renamed into place:
    a crash leaves no folder or a complete one. Versions are immutable: an existing folder is an error."""
    final_dir = Path(final_dir)
    if final_dir.exists():
        raise FileExistsError(f"critic version folder already exists: {final_dir}")
    final_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = final_dir.parent / f".{final_dir.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    try:
        tmp.mkdir()
        critic.model.save_pretrained(str(tmp))
        head = critic.head
        save_file({"weight": head.weight.detach().cpu().contiguous(), "bias": head.bias.detach().cpu().contiguous()},
                  str(tmp / HEAD_FILE))  # fmt: skip
        (tmp / META_FILE).write_text(json.dumps({"labels": list(LABELS), **(metadata or {})}, indent=1))
        for path in sorted(tmp.rglob("*")):
            if path.is_file():
                with open(path, "rb") as handle:
                    os.fsync(handle.fileno())
        os.replace(tmp, final_dir)
        fd = os.open(final_dir.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final_dir


# -- training and prediction ---------------------------------------------------------------------------------
def _clip(prompt_ids: Sequence[int], response_ids: Sequence[int], config: CriticConfig):
    return list(prompt_ids)[-config.max_prompt_tokens :], list(response_ids)[: config.max_response_tokens]


def set_prior_bias(critic: TokenCritic, examples: Sequence[CriticExample]) -> list[float]:
    """Start a fresh head at the label frequencies of ``examples`` (add-one smoothed), not at 1/3 each.

    A head at 1/3 each gives every token an expected reward of (good + poor) / 3 (-1/6 with the default
    scheme): a critic trained on a few outputs would then reward short answers, whatever they say. From
    the frequencies, an undertrained critic says what the data says of an average token. Returns them.
    """
    counts = np.ones(len(LABELS))
    for example in examples:
        counts += np.bincount(np.asarray(example.labels, dtype=int), minlength=len(LABELS))[: len(LABELS)]
    freq = counts / counts.sum()
    with torch.no_grad():
        critic.head.bias.copy_(torch.tensor(np.log(freq), dtype=critic.head.bias.dtype))
    critic.fresh = False
    return [round(float(f), 6) for f in freq]


def train_critic(
    critic: TokenCritic,
    examples: Sequence[CriticExample],
    config: CriticConfig,
    *,
    on_step: Callable[[dict], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> dict:
    """``config.epochs`` passes of class-weighted token cross-entropy over shuffled minibatches (a fresh
    head first starts at the examples' label frequencies: ``set_prior_bias``).

    Returns ``{"losses": [...], "steps": n, "stopped": bool}``; ``on_step`` gets each step's
    ``{"step", "epoch", "loss", "total"}``; ``should_stop`` is polled before every step.
    """
    if not examples:
        raise ValueError("train_critic needs at least one example")
    if critic.fresh:
        set_prior_bias(critic, examples)
    params = critic.trainable_parameters()
    optimizer = torch.optim.AdamW(params, lr=config.learning_rate, weight_decay=config.weight_decay)
    weights = torch.tensor(config.class_weights, dtype=torch.float32, device=critic.device)
    generator = torch.Generator().manual_seed(config.seed)
    per_epoch = math.ceil(len(examples) / config.batch_size)
    total = per_epoch * config.epochs
    losses: list[float] = []
    stopped = False
    critic.train()
    try:
        for epoch in range(config.epochs):
            order = torch.randperm(len(examples), generator=generator).tolist()
            for start in range(0, len(examples), config.batch_size):
                if should_stop is not None and should_stop():
                    stopped = True
                    break
                rows = [examples[i] for i in order[start : start + config.batch_size]]
                clipped = [_clip(r.prompt_ids, r.response_ids, config) for r in rows]
                batch = pad_batch([p for p, _ in clipped], [r for _, r in clipped], critic.pad_token_id,
                                  device=critic.device)  # fmt: skip
                labels = torch.full(batch.response_mask.shape, -100, dtype=torch.long, device=critic.device)
                for i, row in enumerate(rows):
                    n = len(clipped[i][1])
                    labels[i, :n] = torch.tensor(row.labels[:n], dtype=torch.long)
                logits = critic.token_logits(batch)
                loss = nn.functional.cross_entropy(
                    logits.reshape(-1, len(LABELS)), labels.reshape(-1), weight=weights, ignore_index=-100
                )
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(params, config.max_grad_norm)
                optimizer.step()
                losses.append(float(loss.item()))
                if on_step is not None:
                    on_step({"step": len(losses), "epoch": epoch, "loss": losses[-1], "total": total})
            if stopped:
                break
    finally:
        critic.eval()
    return {"losses": losses, "steps": len(losses), "stopped": stopped}


@torch.no_grad()
def predict_token_probs(
    critic: TokenCritic,
    prompts: Sequence[Sequence[int]],
    responses: Sequence[Sequence[int]],
    *,
    batch_size: int = 8,
    config: CriticConfig | None = None,
) -> list[np.ndarray]:
    """``[R, 3]`` probabilities per response (tokens past ``max_response_tokens`` are neutral, 1.0).

    Rows are batched by length so padding stays small. An empty response gives a ``[0, 3]`` array.
    """
    config = config or CriticConfig()
    was_training = critic.training
    critic.eval()
    out: list[np.ndarray | None] = [None] * len(responses)
    order = sorted((i for i in range(len(responses)) if responses[i]), key=lambda i: len(responses[i]))
    for i in range(len(responses)):
        if not responses[i]:
            out[i] = np.zeros((0, len(LABELS)))
    for start in range(0, len(order), batch_size):
        chunk = order[start : start + batch_size]
        clipped = [_clip(prompts[i], responses[i], config) for i in chunk]
        batch = pad_batch([p for p, _ in clipped], [r for _, r in clipped], critic.pad_token_id,
                          device=critic.device)  # fmt: skip
        probs = torch.softmax(critic.token_logits(batch).float(), dim=-1).cpu().numpy().astype(np.float64)
        for row, i in enumerate(chunk):
            n = len(clipped[row][1])
            full = np.tile(np.array([1.0, 0.0, 0.0]), (len(responses[i]), 1))
            full[:n] = probs[row, :n]
            out[i] = full
    critic.train(was_training)
    return out  # type: ignore[return-value]
