"""vLLM behind the engine interface, for machines with a GPU (``T2G_GENERATION_ENGINE=vllm``).

vLLM is an optional extra, never a dependency: it is imported only here, only when selected. It serves
weights from a folder, so a model is handed over as one: a plain model by the folder it was loaded from,
a peft (LoRA) policy by its adapters merged into a copy saved under a temporary folder, once per distinct
adapter state (the on-policy loop changes the adapters between sample stages).

What carries over unchanged: per-request temperature, top-p, top-k, stop strings, token budget and seed;
the behaviour log-probability of each sampled token is vLLM's ``raw_logprobs`` (log-softmax of the raw
logits, the definition :mod:`.engine` uses); the end-of-sequence token is left out of the response, as
there; cancel is asked between engine steps and aborts every request.
"""

from __future__ import annotations

import copy
import hashlib
import os
import tempfile
import time
from collections.abc import Callable, Iterable
from pathlib import Path

from text2grad.inference.engine import Completion, GenerationStopped, Request, eos_token_ids

GPU_MEMORY_ENV = "T2G_VLLM_GPU_MEMORY"  # the share of GPU memory vLLM may take (the trainer needs the rest)


class VllmUnavailable(RuntimeError):
    pass


def _import_vllm():
    try:
        import vllm
    except ImportError as error:  # the extra is not installed
        raise VllmUnavailable(
            "T2G_GENERATION_ENGINE=vllm but vllm is not installed (pip install vllm on a GPU machine), "
            "or unset it to use the built-in engine"
        ) from error
    return vllm


class VllmEngine:
    _loaded: tuple[str, object] | None = None  # (weights folder, vllm.LLM): one model on the GPU at a time
    _exports: dict[str, Path] = {}

    def __init__(self, llm, tokenizer, eos_ids: list[int], max_batch: int) -> None:
        self.llm, self.tokenizer, self.eos_ids, self.max_batch = llm, tokenizer, eos_ids, max_batch

    @classmethod
    def for_model(cls, model, tokenizer, *, max_batch: int = 8) -> VllmEngine:
        vllm = _import_vllm()
        folder = str(_weights_folder(model, tokenizer, cls._exports))
        if cls._loaded is None or cls._loaded[0] != folder:
            cls._loaded = None  # let the previous engine go before the next one takes the GPU
            llm = vllm.LLM(
                model=folder,
                tokenizer=folder,
                dtype="auto",
                max_num_seqs=max(max_batch, 1),
                gpu_memory_utilization=float(os.environ.get(GPU_MEMORY_ENV, "0.5")),
                enable_prefix_caching=True,
                seed=0,
            )
            cls._loaded = (folder, llm)
        return cls(cls._loaded[1], tokenizer, eos_token_ids(tokenizer, model), max_batch)

    def run(
        self,
        requests: Iterable[Request],
        *,
        should_stop: Callable[[], bool] | None = None,
        progress: Callable[[int, int], None] | None = None,
    ) -> list[Completion]:
        vllm = _import_vllm()
        engine = self.llm.llm_engine
        completions = [Completion(request=r, submitted_at=time.perf_counter()) for r in requests]
        ids = {}
        for index, completion in enumerate(completions):
            request = completion.request
            params = vllm.SamplingParams(
                n=1,
                temperature=request.temperature,
                top_p=request.top_p,
                top_k=request.top_k if request.top_k and request.top_k > 0 else -1,
                max_tokens=request.max_new_tokens,
                seed=request.seed,
                stop=list(request.stop) or None,
                logprobs=0,  # the sampled token's own log-probability only
            )
            request_id = f"t2g-{id(self)}-{index}"
            ids[request_id] = completion
            engine.add_request(request_id, {"prompt_token_ids": list(request.prompt_ids)}, params)
        done = 0
        while engine.has_unfinished_requests():
            if should_stop is not None and should_stop():
                engine.abort_request(list(ids))
                raise GenerationStopped
            for output in engine.step():
                completion = ids[output.request_id]
                if not completion.first_token_at and output.outputs and output.outputs[0].token_ids:
                    completion.first_token_at = time.perf_counter()
                if output.finished:
                    self._fill(completion, output.outputs[0])
                    done += 1
                    if progress is not None:
                        progress(done, len(completions))
        return completions

    def _fill(self, completion: Completion, sequence) -> None:
        tokens = list(sequence.token_ids)
        logprobs = [
            entry[token].logprob for token, entry in zip(tokens, sequence.logprobs or [], strict=False)
        ]
        if tokens and tokens[-1] in self.eos_ids:  # the studio's responses never hold the end token
            tokens, logprobs = tokens[:-1], logprobs[: len(tokens) - 1]
        completion.response_ids, completion.logprobs = tokens, [float(x) for x in logprobs]
        completion.text = sequence.text
        completion.finish_reason = "length" if sequence.finish_reason == "length" else "stop"
        completion.finished_at = time.perf_counter()


def _weights_folder(model, tokenizer, exports: dict[str, Path]) -> Path:
    """A folder vLLM can load that holds exactly ``model``'s current weights."""
    if not hasattr(model, "peft_config"):
        source = Path(getattr(model.config, "_name_or_path", "") or "")
        if (source / "config.json").is_file():
            return source
        key = "plain-" + str(id(model))
    else:
        digest = hashlib.sha256()
        for name, tensor in sorted(model.state_dict().items()):
            if "lora_" in name:
                digest.update(name.encode())
                digest.update(tensor.detach().float().cpu().numpy().tobytes())
        key = digest.hexdigest()
    if key not in exports:
        target = Path(tempfile.mkdtemp(prefix="t2g-vllm-"))
        merged = copy.deepcopy(model).merge_and_unload() if hasattr(model, "peft_config") else model
        merged.save_pretrained(target)
        tokenizer.save_pretrained(target)
        exports.clear()  # keep one export on disk
        exports[key] = target
    return exports[key]
