"""The studio's CPU generation engine: continuous batching over the torch model, with a slot KV cache.

Every running request owns one *slot* of a preallocated key/value cache (``[slots, kv_heads, capacity,
head_dim]`` per layer). Between decoding steps requests join (the prompts admitted together are prefilled
in one forward, packed end to end, each written straight into a free slot) and leave (a finished row
frees its slot at once: the last running row moves into the hole, so the running rows are always slots
``0..n-1`` and a step reads views, never copies). Each step feeds every running row its last sampled
token at that row's own position, with a per-row attention mask over the cache, so rows of any length
share one forward pass and no key or value is ever recomputed.

Sampling is per request: temperature, top-k, top-p, stop strings, a token budget, and a private
``torch.Generator`` seeded from the request's seed, so a request draws the same tokens whether it runs
alone or beside 31 others. The behaviour log-probability of each sampled token (log-softmax of the raw,
untempered logits, the quantity the PPO trainer recomputes) comes from the very logits it was drawn from:
no extra pass.

>>> engine = Engine(model, tokenizer, max_batch=8)  # doctest: +SKIP
>>> [done] = engine.run([Request(prompt_ids=[1, 2, 3], max_new_tokens=16, seed=0)])  # doctest: +SKIP
>>> len(done.response_ids) == len(done.logprobs)  # doctest: +SKIP
True
"""

from __future__ import annotations

import hashlib
import time
from collections import deque
from collections.abc import Callable, Iterable
from contextlib import nullcontext
from dataclasses import dataclass, field

import torch

from text2grad.inference.llama_decode import LlamaDecoder
from text2grad.inference.packed import PackedLinears

# The engine's decode attention: grouped-query attention as two batched matmuls, reading the cache once
# instead of repeating the shared key/value heads as transformers' SDPA path does when a mask is given.
# Under heavy load it measured within noise of SDPA (docs/benchmarks.md, issue 25); ``attention="sdpa"``
# or ``"eager"`` selects transformers' own, and ``bench_generation.py --variants`` compares them.
GROUPED_ATTENTION = "t2g_grouped_decode"
# Prompts admitted together are prefilled in one forward, packed end to end, up to this many tokens (the
# attention scores of a pack are pack x pack per head).
PREFILL_PACK_TOKENS = 1024
# Without a top-k filter the top-p nucleus is looked for among this many most likely tokens first (a
# partial sort) instead of sorting the whole vocabulary for every row: 38 CPU ms a step at 8 rows of
# SmolLM2's 49,152 (under load), against 2 for top-k 50.
NUCLEUS_CANDIDATES = 256


class GenerationStopped(Exception):
    """``should_stop`` said so between decoding steps: the unfinished requests are thrown away."""


@dataclass
class Request:
    """One prompt to continue, with its own sampling parameters (vLLM's names and meanings)."""

    prompt_ids: list[int]
    max_new_tokens: int = 160
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int | None = None  # None or <= 0: no top-k filter
    stop: tuple[str, ...] = ()  # the text ends before the first of these; its tokens stay in the ids
    seed: int | None = None  # None: drawn from torch's global generator when the request is submitted
    top_logprobs: int = 0  # also keep this many most likely (token id, raw logprob) per position
    tag: object = None  # the caller's own handle, returned untouched


@dataclass
class Completion:
    request: Request
    response_ids: list[int] = field(default_factory=list)
    logprobs: list[float] = field(default_factory=list)  # raw (untempered) log pi of each response token
    # Per response token, when the request asked for them: its top_logprobs most likely alternatives
    # under the same raw distribution, [(token id, logprob)], most likely first.
    top_logprobs: list[list[tuple[int, float]]] = field(default_factory=list)
    text: str = ""
    # "stop" (end-of-sequence token or stop string), "length", or "cancelled" (dropped by Engine.drop)
    finish_reason: str = ""
    submitted_at: float = 0.0  # time.perf_counter() clock
    first_token_at: float = 0.0
    finished_at: float = 0.0


def request_seed(seed: int, index: int) -> int:
    """A well-mixed 63-bit seed for the ``index``-th request of a call seeded with ``seed`` (neighbouring
    call seeds, such as ``seed + start`` per chunk, must not hand two requests the same stream)."""
    digest = hashlib.blake2b(f"{seed}:{index}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") >> 1


class _Row:
    """A running request: its completion so far, its generator and where its next token goes."""

    __slots__ = ("completion", "generator", "position", "next_token", "stop_window")

    def __init__(self, completion: Completion, generator: torch.Generator, stop_window: int) -> None:
        self.completion = completion
        self.generator = generator
        self.position = 0  # cache position the next fed token will take
        self.next_token = 0
        self.stop_window = stop_window


class SlotCache:
    """Per-layer key/value tensors ``[slots, kv_heads, capacity, head_dim]``; transformers calls
    :meth:`update` from every attention layer (the ``cache=`` argument of a causal LM's forward).

    Before each forward the engine says what is being written: a prefill of one slot, or one decode
    token for each of the first ``n`` slots at that row's own position."""

    def __init__(self, layers: int, slots: int, kv_heads: int, head_dim: int, dtype, device) -> None:
        self.layers, self.slots, self.kv_heads, self.head_dim = layers, slots, kv_heads, head_dim
        self.dtype, self.device = dtype, device
        self.capacity = 0
        self.keys: list[torch.Tensor] = []
        self.values: list[torch.Tensor] = []
        self._prefill: list[tuple[int, int]] | None = None  # (slot, prompt length) per packed prompt
        self._rows = torch.zeros(0, dtype=torch.long)
        self._positions = torch.zeros(0, dtype=torch.long)
        self._kv_len = 0

    def reserve(self, length: int) -> None:
        """Make room for ``length`` positions per slot (doubling, keeping what is cached)."""
        if length <= self.capacity:
            return
        capacity = max(length, 2 * self.capacity)
        shape = (self.slots, self.kv_heads, capacity, self.head_dim)
        keys = [torch.zeros(shape, dtype=self.dtype, device=self.device) for _ in range(self.layers)]
        values = [torch.zeros(shape, dtype=self.dtype, device=self.device) for _ in range(self.layers)]
        for old, new in zip(self.keys + self.values, keys + values, strict=False):  # none on first use
            new[:, :, : self.capacity] = old
        self.keys, self.values, self.capacity = keys, values, capacity

    def for_prefill(self, slots: list[int], lengths: list[int]) -> None:
        self._prefill = list(zip(slots, lengths, strict=True))

    def for_decode(self, positions: torch.Tensor) -> None:
        self._prefill = None
        self._positions = positions
        self._rows = torch.arange(len(positions), device=positions.device)
        self._kv_len = int(positions.max()) + 1

    def move(self, source: int, target: int, length: int) -> None:
        for tensor in self.keys + self.values:
            tensor[target, :, :length] = tensor[source, :, :length]

    # -- what transformers' attention layers call -------------------------------------------------------
    def update(self, key_states, value_states, layer_idx: int, *args, **kwargs):
        keys, values = self.keys[layer_idx], self.values[layer_idx]
        if (
            self._prefill is not None
        ):  # prompts packed in one row: each to its slot, attention within the pack
            start = 0
            for slot, length in self._prefill:
                keys[slot, :, :length] = key_states[0, :, start : start + length]
                values[slot, :, :length] = value_states[0, :, start : start + length]
                start += length
            return key_states, value_states
        keys[self._rows, :, self._positions] = key_states[:, :, 0]
        values[self._rows, :, self._positions] = value_states[:, :, 0]
        n = len(self._positions)
        return keys[:n, :, : self._kv_len], values[:n, :, : self._kv_len]

    def get_seq_length(self, layer_idx: int = 0) -> int:
        return 0  # positions are always given explicitly

    def __len__(self) -> int:
        return self.layers


def grouped_decode_attention(module, query, key, value, attention_mask, scaling=None, dropout=0.0, **kwargs):
    """Attention for the engine's forwards, registered with transformers' AttentionInterface.

    One query token per row (decoding): the ``heads / kv_heads`` query heads that share a key/value head
    are batched against it directly (``[n, kv, group, d] @ [n, kv, d, L]``), so the cache is read once
    instead of being repeated per query head. Prefill (several query tokens) goes to PyTorch's SDPA."""
    n, heads, q_len, head_dim = query.shape
    kv_heads = key.shape[1]
    scale = scaling if scaling is not None else head_dim**-0.5
    if q_len == 1:
        grouped = query.view(n, kv_heads, heads // kv_heads, head_dim)
        scores = torch.matmul(grouped, key.transpose(-1, -2)) * scale  # [n, kv, group, L]
        if attention_mask is not None:  # [n, 1, 1, L] boolean, True = attend
            scores = scores.masked_fill(~attention_mask[:, :, 0:1, :], float("-inf"))
        out = torch.matmul(scores.softmax(-1), value)  # [n, kv, group, d]
        return out.reshape(n, 1, heads, head_dim), None
    key = key.repeat_interleave(heads // kv_heads, dim=1) if kv_heads != heads else key
    value = value.repeat_interleave(heads // kv_heads, dim=1) if kv_heads != heads else value
    out = torch.nn.functional.scaled_dot_product_attention(
        query, key, value, attn_mask=attention_mask, scale=scale
    )
    return out.transpose(1, 2).contiguous(), None


_registered = False


def _register_attention() -> None:
    """Make the engine's attention known to transformers (on first use: importing this module stays as
    cheap as before, which a worker claiming its first job notices)."""
    global _registered
    if _registered:
        return
    from transformers import AttentionInterface, AttentionMaskInterface
    from transformers.masking_utils import sdpa_mask

    AttentionInterface.register(GROUPED_ATTENTION, grouped_decode_attention)
    AttentionMaskInterface.register(GROUPED_ATTENTION, sdpa_mask)
    _registered = True


class Engine:
    """Continuous batching over a transformers causal LM (a peft-wrapped one included).

    ``submit`` queues requests at any time; each ``step`` admits waiting requests into free slots (one
    prefill each), decodes one token for every running request, and returns the requests that finished
    in it. ``run`` drives steps until everything submitted is done. ``attention``: ``"grouped"`` (the
    engine's own decode kernel, default), or a transformers implementation name such as ``"sdpa"`` or
    ``"eager"`` for comparison. ``decoder``: ``"lean"`` (default) decodes Llama models with
    :mod:`.llama_decode`'s step, a few tensor operations per layer (other architectures, and other
    ``attention`` choices, use the model's forward); ``"model"`` always uses the model's forward, the
    reference the lean step is tested against. ``packed``: the model's fp32 projections go through oneDNN
    with weights prepacked when the engine is built (:mod:`.packed`); False keeps PyTorch's ``F.linear``."""

    def __init__(
        self,
        model,
        tokenizer,
        *,
        max_batch: int = 8,
        eos_ids: Iterable[int] | None = None,
        attention: str = "grouped",
        decoder: str = "lean",
        packed: bool = True,
    ) -> None:
        if max_batch < 1:
            raise ValueError("max_batch must be >= 1")
        self.model, self.tokenizer, self.max_batch = model, tokenizer, max_batch
        self.eos_ids = list(eos_ids) if eos_ids is not None else eos_token_ids(tokenizer, model)
        self._eos = torch.tensor(self.eos_ids)
        self.attention = GROUPED_ATTENTION if attention == "grouped" else attention
        if self.attention == GROUPED_ATTENTION:
            _register_attention()
        if decoder not in ("lean", "model"):
            raise ValueError("decoder must be 'lean' or 'model'")
        # The lean step is the grouped kernel's arithmetic: other attention choices are comparisons of
        # transformers' own implementations, so they keep the model's forward.
        self.decoder = (
            LlamaDecoder.for_model(model)
            if decoder == "lean" and self.attention == GROUPED_ATTENTION
            else None
        )
        config = model.config
        param = next(model.parameters())
        head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
        self.cache = SlotCache(
            config.num_hidden_layers,
            max_batch,
            config.num_key_value_heads,
            head_dim,
            param.dtype,
            param.device,
        )
        self.device = param.device
        # The projections through oneDNN with prepacked weights (packed now, not in the first step).
        self.packed = PackedLinears(model).pack() if packed and param.device.type == "cpu" else nullcontext()
        self._waiting: deque[Completion] = deque()
        self._rows: list[_Row] = []
        self.steps = 0  # decoding steps run (prefills not counted)
        self.prefilled = 0  # prompts prefilled (a dropped request that was still waiting is never one)

    # -- queue ------------------------------------------------------------------------------------------
    def submit(self, request: Request) -> Completion:
        if request.temperature <= 0:
            raise ValueError("temperature must be > 0 (sampling); use a small value for near-greedy output")
        if not 0 < request.top_p <= 1:
            raise ValueError("top_p must be in (0, 1]")
        if not request.prompt_ids:
            raise ValueError("a request needs at least one prompt token")
        if request.seed is None:
            request.seed = int(torch.randint(0, 2**62, (1,)).item())
        completion = Completion(request=request, submitted_at=time.perf_counter())
        self._waiting.append(completion)
        return completion

    @property
    def running(self) -> int:
        return len(self._rows)

    @property
    def waiting(self) -> int:
        return len(self._waiting)

    def has_work(self) -> bool:
        return bool(self._rows or self._waiting)

    def cancel(self) -> None:
        """Drop every running and waiting request (their slots are free again)."""
        self._waiting.clear()
        self._rows.clear()

    def drop(self, completions: Iterable[Completion]) -> None:
        """Forget these requests now (their client went away): one still waiting is never prefilled, a
        running one frees its slot before the next step (the last running row moves into the hole). Each
        keeps what it decoded, with ``finish_reason`` "cancelled"; requests already finished are left."""
        completions = list(completions)
        gone = {id(c) for c in completions if not c.finish_reason}
        if not gone:
            return
        self._waiting = deque(c for c in self._waiting if id(c) not in gone)
        rows = self._rows
        for index in reversed(range(len(rows))):  # highest first: the row moved in is never a dropped one
            if id(rows[index].completion) in gone:
                last = len(rows) - 1
                if index != last:
                    self.cache.move(last, index, rows[last].position)
                    rows[index] = rows[last]
                rows.pop()
        now = time.perf_counter()
        for completion in completions:
            if id(completion) in gone:
                completion.finish_reason, completion.finished_at = "cancelled", now

    def run(
        self,
        requests: Iterable[Request],
        *,
        should_stop: Callable[[], bool] | None = None,
        progress: Callable[[int, int], None] | None = None,
    ) -> list[Completion]:
        """Submit ``requests``, step until all are done; completions in the order given.

        ``should_stop`` is asked between steps (throttle it yourself if asking is costly) and raises
        :class:`GenerationStopped`; ``progress(done, total)`` is called whenever requests finish."""
        completions = [self.submit(r) for r in requests]
        total, done = len(completions), 0
        while self.has_work():
            if should_stop is not None and should_stop():
                self.cancel()
                raise GenerationStopped
            finished = self.step()
            if finished and progress is not None:
                done += len(finished)
                progress(done, total)
        return completions

    # -- one scheduling step ----------------------------------------------------------------------------
    @torch.no_grad()
    def step(self) -> list[Completion]:
        finished: list[Completion] = []
        with self._attention(), self.packed:
            admitted: list[Completion] = []
            packed = 0
            while self._waiting and len(self._rows) + len(admitted) < self.max_batch:
                length = len(self._waiting[0].request.prompt_ids)
                if admitted and packed + length > PREFILL_PACK_TOKENS:
                    finished.extend(self._prefill(admitted))
                    admitted, packed = [], 0
                admitted.append(self._waiting.popleft())
                packed += length
            if admitted:
                finished.extend(self._prefill(admitted))
            if self._rows:
                finished.extend(self._decode())
        return finished

    def _prefill(self, completions: list[Completion]) -> list[Completion]:
        """One forward over the prompts packed end to end (each attends to itself only), their keys and
        values written to the next free slots; samples each one's first token. Returns those finished."""
        first_slot = len(self._rows)
        self.prefilled += len(completions)
        rows, lengths = [], []
        for completion in completions:
            request = completion.request
            stop_window = max((len(s) for s in request.stop), default=0)
            generator = torch.Generator(device="cpu").manual_seed(request.seed)
            rows.append(_Row(completion, generator, stop_window))
            lengths.append(len(request.prompt_ids))
            self.cache.reserve(lengths[-1] + request.max_new_tokens)
        self.cache.for_prefill(list(range(first_slot, first_slot + len(rows))), lengths)
        ids = torch.tensor([[t for c in completions for t in c.request.prompt_ids]], device=self.device)
        sizes = torch.tensor(lengths, device=self.device)
        segment = torch.repeat_interleave(torch.arange(len(rows), device=self.device), sizes)
        positions = torch.cat([torch.arange(n, device=self.device) for n in lengths])
        index = torch.arange(len(segment), device=self.device)
        mask = (segment[:, None] == segment[None, :]) & (index[None, :] <= index[:, None])
        last = sizes.cumsum(0) - 1
        logits = self._forward(ids, positions[None], mask[None, None], logits_to_keep=last)[0]
        tokens, logprobs, alternatives = self._choose(logits, rows)
        finished = []
        for i, row in enumerate(rows):
            row.position = lengths[i]
            self._take(row, tokens[i], logprobs[i], alternatives[i])
            if row.completion.finish_reason:
                finished.append(row.completion)
                continue
            slot = len(self._rows)  # close the gap a request finished at its first token left
            if slot != first_slot + i:
                self.cache.move(first_slot + i, slot, row.position)
            self._rows.append(row)
        return finished

    def _decode(self) -> list[Completion]:
        rows = self._rows
        positions = torch.tensor([r.position for r in rows], device=self.device)
        ids = torch.tensor([[r.next_token] for r in rows], device=self.device)
        self.cache.for_decode(positions)
        if self.decoder is not None:
            logits = self.decoder(ids[:, 0], positions, self.cache, self.cache._kv_len)
        else:
            span = torch.arange(self.cache._kv_len, device=self.device)
            mask = (span[None, :] <= positions[:, None])[:, None, None, :]
            logits = self._forward(ids, positions[:, None], mask)[:, -1]
        tokens, logprobs, alternatives = self._choose(logits, rows)
        self.steps += 1
        finished_at = []
        for index, row in enumerate(rows):
            row.position += 1
            self._take(row, tokens[index], logprobs[index], alternatives[index])
            if row.completion.finish_reason:
                finished_at.append(index)
        finished = [rows[index].completion for index in finished_at]
        # Free the slots at once: the last running row moves into each hole (highest hole first, so the
        # row moved is never one that just finished).
        for index in reversed(finished_at):
            last = len(rows) - 1
            if index != last:
                self.cache.move(last, index, rows[last].position)
                rows[index] = rows[last]
            rows.pop()
        return finished

    # -- helpers ----------------------------------------------------------------------------------------
    def _forward(self, ids, positions, mask, logits_to_keep: int | torch.Tensor = 1) -> torch.Tensor:
        if self.attention not in (GROUPED_ATTENTION, "sdpa") and mask.dtype == torch.bool:
            mask = torch.zeros(mask.shape, dtype=self.cache.dtype, device=self.device).masked_fill(
                ~mask, torch.finfo(self.cache.dtype).min
            )
        out = self.model(
            input_ids=ids,
            position_ids=positions,
            attention_mask=mask,
            cache=self.cache,
            use_cache=True,
            logits_to_keep=logits_to_keep,
        )
        return out.logits.float()

    def _choose(self, logits: torch.Tensor, rows: list[_Row]) -> tuple[list[int], list[float], list]:
        """Draw one token per row with that row's parameters and generator; return (tokens, logprobs,
        each row's top alternatives or None) as Python values (one conversion per step, not one per row)."""
        requests = [r.completion.request for r in rows]
        vocab = logits.shape[-1]
        temperature = torch.tensor([q.temperature for q in requests], device=logits.device)
        tops = [min(q.top_k, vocab) if q.top_k and q.top_k > 0 else vocab for q in requests]
        top_p = torch.tensor([q.top_p for q in requests], device=logits.device)
        probs, candidates = nucleus(logits / temperature[:, None], tops, top_p)
        keep = probs.shape[-1]
        cumulative = probs.cumsum(-1).cpu()  # the most likely candidate always survives (nothing before it)
        # One uniform draw per row from the row's own generator, then one searchsorted for all rows.
        draws = torch.stack([torch.rand((), generator=row.generator) for row in rows]) * cumulative[:, -1]
        pick = torch.searchsorted(cumulative, draws[:, None], right=True).clamp_(max=keep - 1)
        tokens = candidates.gather(-1, pick.to(logits.device))
        # log-softmax of the raw logits at the chosen token, without writing the whole log-softmax out
        normaliser = logits.logsumexp(-1, keepdim=True)
        logprobs = logits.gather(-1, tokens) - normaliser
        alternatives = _alternatives(logits, normaliser, requests)
        return tokens.squeeze(-1).tolist(), logprobs.squeeze(-1).tolist(), alternatives

    def _take(self, row: _Row, token_id: int, logprob: float, alternatives=None) -> None:
        completion, request = row.completion, row.completion.request
        now = time.perf_counter()
        if not completion.first_token_at:
            completion.first_token_at = now
        if token_id in self.eos_ids:
            self._finish(completion, "stop", now)
            return
        completion.response_ids.append(token_id)
        completion.logprobs.append(logprob)
        if alternatives is not None:
            completion.top_logprobs.append(alternatives)
        row.next_token = token_id
        if row.stop_window and self._hit_stop(completion, row.stop_window):
            self._finish(completion, "stop", now)
        elif len(completion.response_ids) >= request.max_new_tokens:
            self._finish(completion, "length", now)

    def _hit_stop(self, completion: Completion, window: int) -> bool:
        tail = self.tokenizer.decode(completion.response_ids[-(window + 2) :], skip_special_tokens=True)
        return any(stop in tail for stop in completion.request.stop)

    def _finish(self, completion: Completion, reason: str, now: float) -> None:
        completion.finish_reason = reason
        completion.finished_at = now
        text = self.tokenizer.decode(completion.response_ids, skip_special_tokens=True)
        cuts = [text.find(stop) for stop in completion.request.stop if stop in text]
        completion.text = text[: min(cuts)] if cuts else text

    def _attention(self):
        return _AttentionSwitch(self.model, self.attention)


def nucleus(scaled: torch.Tensor, tops: list[int], top_p: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Each row's sampling candidates, most likely first, and their probabilities: the softmax over the
    row's ``tops[i]`` most likely tokens of ``scaled`` (tempered logits), zeroed after the top-p mass.

    Rows without a top-k filter (``tops[i]`` = the vocabulary) would need the whole vocabulary sorted;
    their nucleus is found among the ``NUCLEUS_CANDIDATES`` most likely tokens instead, with the softmax's
    normaliser over the whole row, and the full sort is kept only for a row whose top-p mass is not
    reached within them. The tokens and probabilities are those of the full sort (to float rounding).

    >>> probs, ids = nucleus(torch.tensor([[0.0, 2.0, 1.0]]), [3], torch.tensor([0.5]))
    >>> ids.tolist(), [round(p, 3) for p in probs[0].tolist()]
    ([[1, 2, 0]], [0.665, 0.0, 0.0])
    """
    vocab = scaled.shape[-1]
    keep = max(tops)
    if keep > NUCLEUS_CANDIDATES and all(t == vocab or t <= NUCLEUS_CANDIDATES for t in tops):
        values, candidates = torch.topk(scaled, NUCLEUS_CANDIDATES, dim=-1)
        unfiltered = torch.tensor([t == vocab for t in tops], device=scaled.device)
        probs = _top_k_softmax(values, tops)
        # the whole row's softmax for the unfiltered rows: exp(x - max) / sum(exp(x - max)), as softmax
        whole = (values - values[:, :1]).exp() / (scaled - values[:, :1]).exp().sum(-1, keepdim=True)
        probs = torch.where(unfiltered[:, None], whole, probs)
        before = probs.cumsum(-1) - probs  # mass of the strictly more likely candidates
        if bool((before[:, -1] >= top_p)[unfiltered].all()):  # every cut falls among the candidates
            return probs.masked_fill(before >= top_p[:, None], 0.0), candidates
    values, candidates = torch.topk(scaled, keep, dim=-1)  # sorted, descending
    probs = _top_k_softmax(values, tops)
    before = probs.cumsum(-1) - probs
    return probs.masked_fill(before >= top_p[:, None], 0.0), candidates


def _top_k_softmax(values: torch.Tensor, tops: list[int]) -> torch.Tensor:
    """Softmax over each row's first ``tops[i]`` of ``values`` (sorted descending); zero beyond."""
    keep = values.shape[-1]
    if keep > min(tops):
        beyond = (
            torch.arange(keep, device=values.device)[None, :]
            >= torch.tensor(tops, device=values.device)[:, None]
        )
        values = values.masked_fill(beyond, float("-inf"))
    return values.softmax(-1)


def _alternatives(logits: torch.Tensor, normaliser: torch.Tensor, requests: list[Request]) -> list:
    """Each row's ``top_logprobs`` most likely (token id, logprob), or None where none were asked for
    (one top-k over the raw logits, normalised by the row's logsumexp: no cost at all when none asked)."""
    wanted = [q.top_logprobs for q in requests]
    most = min(max(wanted), logits.shape[-1])
    if most <= 0:
        return [None] * len(requests)
    values, ids = torch.topk(logits, most, dim=-1)
    values = values - normaliser
    values, ids = values.tolist(), ids.tolist()
    return [
        list(zip(ids[row][:k], values[row][:k], strict=True)) if k > 0 else None
        for row, k in enumerate(wanted)
    ]


class _AttentionSwitch:
    """Runs the model with the engine's attention implementation, restoring the model's own afterwards
    (the same policy object is trained between sampling stages)."""

    def __init__(self, model, implementation: str) -> None:
        self.configs = [c for c in _configs(model) if hasattr(c, "_attn_implementation")]
        self.implementation = implementation
        self.saved: list[str | None] = []

    def __enter__(self):
        self.saved = [c._attn_implementation for c in self.configs]
        for config in self.configs:
            config._attn_implementation = self.implementation
        return self

    def __exit__(self, *exc) -> None:
        for config, saved in zip(self.configs, self.saved, strict=True):
            config._attn_implementation = saved


def _configs(model) -> list:
    seen: dict[int, object] = {}
    for module in model.modules():
        config = getattr(module, "config", None)
        if config is not None and not isinstance(config, dict):
            seen.setdefault(id(config), config)
    return list(seen.values())


def eos_token_ids(tokenizer, model) -> list[int]:
    """End-of-sequence ids: the model's generation config first, then the tokenizer's."""
    ids: list[int] = []
    config_eos = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    for candidate in (config_eos, tokenizer.eos_token_id):
        if isinstance(candidate, int):
            ids.append(candidate)
        elif isinstance(candidate, list | tuple):
            ids.extend(int(c) for c in candidate)
    if not ids:
        raise ValueError("The tokenizer has no end-of-sequence token")
    return list(dict.fromkeys(ids))
