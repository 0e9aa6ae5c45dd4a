"""Generation engines: one interface (``Request`` in, ``Completion`` out, cancel and progress between
steps) over the studio's CPU engine (:mod:`.engine`) or, where a GPU and vLLM are present, vLLM
(:mod:`.vllm_backend`), picked by ``T2G_GENERATION_ENGINE`` (``torch``, the default, or ``vllm``)."""

from __future__ import annotations

import os

from text2grad.inference.engine import (
    Completion,
    Engine,
    GenerationStopped,
    Request,
    eos_token_ids,
    request_seed,
)

__all__ = [
    "ENGINE_ENV",
    "Completion",
    "Engine",
    "GenerationStopped",
    "Request",
    "engine_for",
    "eos_token_ids",
    "request_seed",
]

ENGINE_ENV = "T2G_GENERATION_ENGINE"
ENGINES = ("torch", "vllm")


def engine_name() -> str:
    name = os.environ.get(ENGINE_ENV, "torch").strip().lower() or "torch"
    if name not in ENGINES:
        raise ValueError(f"{ENGINE_ENV}={name!r}: expected one of {', '.join(ENGINES)}")
    return name


def engine_for(model, tokenizer, *, max_batch: int = 8):
    """The engine the setting selects, for this model: anything with ``run(requests, should_stop=,
    progress=)`` returning one :class:`Completion` per request, in order."""
    if engine_name() == "vllm":
        from text2grad.inference.vllm_backend import VllmEngine

        return VllmEngine.for_model(model, tokenizer, max_batch=max_batch)
    return Engine(model, tokenizer, max_batch=max_batch)
