"""Sampling outputs from the policy, recording what PPO needs later: token ids and behaviour logprobs.

Every caller (generation jobs, the on-policy sample stage, evaluation campaigns) comes through
:func:`sample`, which runs on the generation engine of :mod:`text2grad.inference` (continuous batching
with a KV cache on CPU; vLLM when ``T2G_GENERATION_ENGINE=vllm``). :func:`sample_padded` is the former
implementation, kept for the benchmark.

The behaviour logprobs are log-softmax of the model's raw (untempered) logits at each sampled token, the
same quantity the trainer computes, so a truncated importance ratio between them is meaningful even when
sampling used a temperature.

>>> outs = sample(model, tok, [[{"role": "user", "content": "Hi"}]], n_per_prompt=2)  # doctest: +SKIP
>>> len(outs[0]), len(outs[0][0].response_ids) == len(outs[0][0].logprobs)  # doctest: +SKIP
(2, True)
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from transformers import StoppingCriteria, StoppingCriteriaList

from text2grad import inference
from text2grad.inference import GenerationStopped

__all__ = ["GenerationStopped", "SampledOutput", "encode_prompt", "sample", "sample_padded"]

STOP_CHECK_EVERY_S = 1.0  # how often sampling asks ``should_stop`` (one database read in the worker)
# transformers' ``generate`` applies top-k 50 unless a model's generation config says otherwise (SmolLM2's
# does not): the engine keeps that filter so outputs follow the same distribution as before.
DEFAULT_TOP_K = 50


class _StopWhen(StoppingCriteria):
    """Asks ``should_stop`` between decoding steps, at most once per ``every_s`` seconds, so a cancel is
    honoured within a second or two of a token instead of after the whole batch."""

    def __init__(self, should_stop: Callable[[], bool], every_s: float | None = None) -> None:
        self.should_stop = should_stop
        self.every_s = STOP_CHECK_EVERY_S if every_s is None else every_s
        self.last = time.monotonic()
        self.stopped = False

    def __call__(self, input_ids, scores, **kwargs):
        return torch.full((input_ids.shape[0],), self.due(), dtype=torch.bool, device=input_ids.device)

    def due(self) -> bool:
        """Ask ``should_stop`` if ``every_s`` has passed since the last question; the latest answer."""
        now = time.monotonic()
        if not self.stopped and now - self.last >= self.every_s:
            self.last = now
            self.stopped = bool(self.should_stop())
        return self.stopped


@dataclass
class SampledOutput:
    prompt_ids: list[int]
    response_ids: list[int]
    logprobs: list[float]
    text: str
    finish_reason: str  # "stop" (end-of-sequence token) or "length"
    params: dict = field(default_factory=dict)


def encode_prompt(tokenizer, messages: list[dict]) -> list[int]:
    """Token ids of a chat prompt, ending where the assistant's answer begins."""
    if getattr(tokenizer, "chat_template", None):
        ids = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True)
        if isinstance(ids, dict) or hasattr(ids, "input_ids"):
            ids = ids["input_ids"]
        return list(ids)
    text = "\n".join(m["content"] for m in messages) + "\n"
    return tokenizer(text, add_special_tokens=True)["input_ids"]


def sample(
    model,
    tokenizer,
    prompts: list[list[dict]],
    *,
    n_per_prompt: int = 1,
    max_new_tokens: int = 160,
    temperature: float = 0.6,
    top_p: float = 0.95,
    seed: int | None = None,
    batch_size: int = 8,
    should_stop: Callable[[], bool] | None = None,
) -> list[list[SampledOutput]]:
    """Sample ``n_per_prompt`` outputs for every chat prompt; returns one list per prompt.

    Runs on the generation engine (:mod:`text2grad.inference`): continuous batching with up to
    ``batch_size`` requests decoding at once. Each output has its own seed, derived from ``seed`` and its
    place in the call (or drawn from torch's global generator when ``seed`` is None), so the same call
    gives the same outputs whatever the batch size. ``should_stop`` (asked about once a second between
    decoding steps) ends sampling early by raising :class:`GenerationStopped`: a cancelled job stops
    within seconds, not after its batch."""
    if temperature <= 0:
        raise ValueError("temperature must be > 0 (sampling); use a small value for near-greedy output")
    params = {"temperature": temperature, "top_p": top_p, "max_new_tokens": max_new_tokens, "seed": seed}
    jobs = [
        (p, encode_prompt(tokenizer, messages))
        for p, messages in enumerate(prompts)
        for _ in range(n_per_prompt)
    ]
    if seed is not None:
        torch.manual_seed(seed)  # as before: code after sampling sees the global generator where it was
    requests = [
        inference.Request(
            prompt_ids=list(ids),
            max_new_tokens=max_new_tokens,
            temperature=temperature,
            top_p=top_p,
            top_k=DEFAULT_TOP_K,
            seed=inference.request_seed(seed, index) if seed is not None else None,
            tag=prompt_index,
        )
        for index, (prompt_index, ids) in enumerate(jobs)
    ]
    engine = inference.engine_for(model, tokenizer, max_batch=batch_size)
    stop = _stopper(should_stop)
    completions = engine.run(requests, should_stop=stop.due if stop is not None else None)
    results: list[list[SampledOutput]] = [[] for _ in prompts]
    for completion in completions:
        results[completion.request.tag].append(
            SampledOutput(
                prompt_ids=list(completion.request.prompt_ids),
                response_ids=list(completion.response_ids),
                logprobs=[round(x, 6) for x in completion.logprobs],
                text=completion.text,
                finish_reason=completion.finish_reason,
                params=params,
            )
        )
    return results


@torch.no_grad()
def sample_padded(
    model,
    tokenizer,
    prompts: list[list[dict]],
    *,
    n_per_prompt: int = 1,
    max_new_tokens: int = 160,
    temperature: float = 0.6,
    top_p: float = 0.95,
    seed: int | None = None,
    batch_size: int = 8,
    should_stop: Callable[[], bool] | None = None,
) -> list[list[SampledOutput]]:
    """The studio's sampler before the engine, kept for comparison (benchmarks/bench_generation.py):
    transformers' ``generate`` over left-padded batches of ``batch_size``; a finished row keeps stepping
    and the next batch waits for the slowest row. Same signature and outputs as :func:`sample`."""
    if temperature <= 0:
        raise ValueError("temperature must be > 0 (sampling); use a small value for near-greedy output")
    if seed is not None:
        torch.manual_seed(seed)
    eos_ids = _eos_ids(tokenizer, model)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos_ids[0]
    params = {"temperature": temperature, "top_p": top_p, "max_new_tokens": max_new_tokens, "seed": seed}

    jobs = [
        (p, encode_prompt(tokenizer, messages))
        for p, messages in enumerate(prompts)
        for _ in range(n_per_prompt)
    ]
    results: list[list[SampledOutput]] = [[] for _ in prompts]
    for start in range(0, len(jobs), batch_size):
        chunk = jobs[start : start + batch_size]
        width = max(len(ids) for _, ids in chunk)
        # Left padding keeps every prompt's last token at the same position, where generation starts.
        input_ids = torch.full((len(chunk), width), pad_id, dtype=torch.long)
        attention = torch.zeros((len(chunk), width), dtype=torch.long)
        for row, (_, ids) in enumerate(chunk):
            input_ids[row, width - len(ids) :] = torch.tensor(ids)
            attention[row, width - len(ids) :] = 1
        out = model.generate(
            input_ids=input_ids,
            attention_mask=attention,
            do_sample=True,
            temperature=temperature,
            top_p=top_p,
            max_new_tokens=max_new_tokens,
            pad_token_id=pad_id,
            eos_token_id=eos_ids,
            return_dict_in_generate=True,
            output_logits=True,
            **(
                {"stopping_criteria": StoppingCriteriaList([stop])} if (stop := _stopper(should_stop)) else {}
            ),
        )
        if stop is not None and stop.stopped:
            raise GenerationStopped
        new_tokens = out.sequences[:, width:]
        raw_logprobs = torch.stack(out.logits, dim=1).float().log_softmax(-1)
        chosen = raw_logprobs.gather(-1, new_tokens.unsqueeze(-1)).squeeze(-1)
        for row, (prompt_index, prompt_ids) in enumerate(chunk):
            ids = new_tokens[row].tolist()
            finish = "length"
            cut = len(ids)
            for pos, token in enumerate(ids):
                if token in eos_ids:
                    cut, finish = pos, "stop"
                    break
            response_ids = ids[:cut]
            results[prompt_index].append(
                SampledOutput(
                    prompt_ids=list(prompt_ids),
                    response_ids=response_ids,
                    logprobs=[round(float(x), 6) for x in chosen[row, :cut].tolist()],
                    text=tokenizer.decode(response_ids, skip_special_tokens=True),
                    finish_reason=finish,
                    params=params,
                )
            )
    return results


def _stopper(should_stop: Callable[[], bool] | None) -> _StopWhen | None:
    return _StopWhen(should_stop) if should_stop is not None else None


def _eos_ids(tokenizer, model) -> list[int]:
    return inference.eos_token_ids(tokenizer, model)
