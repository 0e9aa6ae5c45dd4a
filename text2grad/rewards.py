"""Span-level feedback to per-token rewards (TEXT2GRAD step 3), with no Django and no torch.

An annotator's highlights are character spans ``[start, end)`` into a response, counted in Python code
points. A token receives a span's reward when the characters the tokenizer says it came from (its
``offset_mapping`` entry ``(a, b)``) overlap the span: ``a < end and start < b``. Every token of the response
gets exactly one reward, so the result always has ``len(response_ids)`` entries; nothing is matched by
decoded text, so nothing can be skipped (the paper's code matched decoded words greedily and dropped the
ones it could not find).

What the fast tokenizers' offsets look like, checked for the three families this project meets:

* byte-level BPE (SmolLM2, GPT-2 style): offsets are code points; a token that starts a word includes the
  leading space (this tokenizer has no offset-trimming post-processor), and a character that is split over
  several byte tokens (emoji, CJK, combining marks) gives each of those tokens the same ``(a, b)``, so all of
  them get that character's reward. Every character the vocabulary can encode is covered by some token. The
  base vocab has no token for six ASCII control bytes nor for the UTF-8 lead bytes of U+40000-U+BFFFF (all
  unassigned): the tokenizer drops those bytes, which shifts the offsets of the rest of that pre-token by
  one character. The model cannot write such characters, so only imported text can hold them.
* WordPiece (BERT, all-MiniLM): offsets refer to the original text although the tokenizer lowercases and
  strips accents; whitespace and stripped marks belong to no token, so a span made only of them rewards
  nothing.
* Metaspace/Unigram (SentencePiece style): the ``▁`` that stands for a space covers that space; the ``▁``
  prepended to the text covers the first character. A normalizer that composes ``e`` + U+0301 into ``é``
  maps the token to ``e`` alone, so the lone combining mark belongs to no token.

Tokens with zero-width offsets ``(a, a)`` (special tokens such as an end-of-turn marker) carry no character
of the response: they get ``0.0``, not ``scheme.outside``.

>>> spans = [SpanReward(0, 5, polarity=+1), SpanReward(6, 11, polarity=-1, weight=2.0)]
>>> token_rewards_from_offsets([(0, 5), (5, 11), (11, 12)], spans)
[1.0, -2.0, 0.0]
"""

from __future__ import annotations

import math
import statistics
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import chain, compress, count, islice, pairwise
from operator import eq, le
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # only for type hints: importing transformers here would slow every importer down
    from transformers import PreTrainedTokenizerBase

__all__ = [
    "CONFLICT_MODES",
    "COMBINE_MODES",
    "RewardScheme",
    "SpanReward",
    "TokenizedResponse",
    "TokenizedRewards",
    "batch_token_rewards",
    "batch_tokenized_rewards",
    "combine_rewards",
    "token_rewards",
    "token_rewards_from_offsets",
    "tokenize_response",
    "validate_spans",
]

GOOD, NEUTRAL, POOR = 1, 0, -1
CONFLICT_MODES = ("negative", "sum", "mean")
COMBINE_MODES = ("mean", "min", "max", "median")


@dataclass(frozen=True)
class SpanReward:
    """One highlighted span of a response: ``[start, end)`` in code points, its polarity and weight.

    ``polarity`` is ``+1`` (good), ``-1`` (poor) or ``0`` (neutral: marked, but worth ``0.0``).

    >>> SpanReward(3, 9, polarity=-1, weight=0.5)
    SpanReward(start=3, end=9, polarity=-1, weight=0.5)
    """

    start: int
    end: int
    polarity: int
    weight: float = 1.0

    def __post_init__(self) -> None:
        # Checked once here so that the per-token code need not re-check every span on every call.
        if self.start < 0:
            raise ValueError(f"span start must be >= 0, got {self.start} in {self!r}")
        if self.start >= self.end:
            raise ValueError(f"span must be non-empty (start < end), got [{self.start}, {self.end})")
        if self.polarity not in (GOOD, NEUTRAL, POOR):
            raise ValueError(f"span polarity must be +1, 0 or -1, got {self.polarity!r}")
        if not (math.isfinite(self.weight) and self.weight >= 0):
            raise ValueError(f"span weight must be finite and >= 0, got {self.weight!r}")


@dataclass(frozen=True)
class RewardScheme:
    """Reward values for good, poor and unmarked tokens, and how overlapping spans combine.

    ``conflict``:

    * ``"negative"`` (the paper's min-merge): a token touched by any poor span gets the poor value of largest
      magnitude; otherwise one touched by good spans gets the good value of largest magnitude; otherwise a
      neutral span gives ``0.0``. A neutral span never erases a good or poor one.
    * ``"sum"``: the sum of the values of all spans touching the token.
    * ``"mean"``: their mean (a neutral span counts, with value ``0.0``).

    >>> RewardScheme(poor=-2.0).span_value(SpanReward(0, 1, polarity=-1, weight=0.5))
    -1.0
    """

    good: float = 1.0
    poor: float = -1.0
    outside: float = 0.0
    conflict: str = "negative"

    def __post_init__(self) -> None:
        if self.conflict not in CONFLICT_MODES:
            raise ValueError(f"conflict must be one of {CONFLICT_MODES}, got {self.conflict!r}")
        for name in ("good", "poor", "outside"):
            value = getattr(self, name)
            if not math.isfinite(value):
                raise ValueError(f"RewardScheme.{name} must be finite, got {value!r}")

    def span_value(self, span: SpanReward) -> float:
        """The reward a token touched only by ``span`` receives."""
        if span.polarity == GOOD:
            return self.good * span.weight
        if span.polarity == POOR:
            return self.poor * span.weight
        return 0.0


DEFAULT_SCHEME = RewardScheme()


@dataclass(frozen=True)
class TokenizedResponse:
    """A response tokenized on its own, after an optional chat-template prompt.

    ``prompt_ids + response_ids`` is what the policy sees; only ``response_ids`` are rewarded.
    ``response_offsets[i]`` is the code-point interval of ``response`` that token ``i`` came from.
    """

    prompt_ids: list[int]
    response_ids: list[int]
    response_offsets: list[tuple[int, int]]


@dataclass(frozen=True)
class TokenizedRewards:
    """A :class:`TokenizedResponse` plus one reward per response token."""

    prompt_ids: list[int]
    response_ids: list[int]
    response_offsets: list[tuple[int, int]]
    rewards: list[float]

    @property
    def input_ids(self) -> list[int]:
        """Prompt and response ids, ready to feed the policy."""
        return self.prompt_ids + self.response_ids

    @property
    def full_rewards(self) -> list[float]:
        """Rewards aligned with :attr:`input_ids`: the prompt part gets ``0.0``."""
        return [0.0] * len(self.prompt_ids) + self.rewards


def validate_spans(spans: Sequence[SpanReward], text_length: int) -> None:
    """Raise ``ValueError`` if a span does not lie inside a text of ``text_length`` code points.

    >>> validate_spans([SpanReward(0, 4, polarity=1)], text_length=3)
    Traceback (most recent call last):
    ...
    ValueError: span [0, 4) ends after the end of the text (length 3)
    """
    for span in spans:
        if not isinstance(span, SpanReward):
            raise TypeError(f"expected SpanReward, got {type(span).__name__}")
        if span.end > text_length:
            raise ValueError(
                f"span [{span.start}, {span.end}) ends after the end of the text (length {text_length})"
            )


def _resolve(active: list[tuple[int, float]], conflict: str) -> float:
    """Combine the (polarity, value) pairs of the spans touching one token into its reward."""
    if conflict == "sum":
        return math.fsum(value for _, value in active)
    if conflict == "mean":
        return math.fsum(value for _, value in active) / len(active)
    # "negative": poor beats good beats neutral; within a polarity the largest magnitude wins.
    return max(active, key=_strength)[1]


_PRIORITY = {NEUTRAL: 0, GOOD: 1, POOR: 2}


def _strength(item: tuple[Any, ...]) -> tuple[int, float]:
    """Order of precedence under ``conflict="negative"`` for (..., polarity, value) tuples."""
    polarity, value = item[-2], item[-1]
    return _PRIORITY[polarity], abs(value)


# A run is (first_token, stop_token, polarity, value): the tokens [first, stop) that overlap one span.
Run = tuple[int, int, int, float]


def _apply_runs(rewards: list[float], runs: list[Run], conflict: str) -> None:
    """Write the runs' resolved values into ``rewards`` (which holds ``outside`` everywhere)."""
    if not runs:
        return
    if len(runs) == 1:
        first, stop, _, value = runs[0]
        rewards[first:stop] = [value] * (stop - first)
        return
    if conflict == "negative":
        # Weakest first, so that on every token the run that must win is the one written last.
        for first, stop, _, value in sorted(runs, key=_strength):
            rewards[first:stop] = [value] * (stop - first)
        return
    # Cut the token axis at every run boundary; inside one piece the set of touching spans is constant.
    bounds = sorted({run[0] for run in runs} | {run[1] for run in runs})
    for lo, hi in pairwise(bounds):
        active = [(polarity, value) for first, stop, polarity, value in runs if first <= lo and hi <= stop]
        if active:
            rewards[lo:hi] = [_resolve(active, conflict)] * (hi - lo)


def _non_decreasing(values: Sequence[int]) -> bool:
    # map/islice keep the loop in C: this runs once per token.
    return all(map(le, values, islice(values, 1, None)))


def token_rewards_from_offsets(
    offsets: Sequence[tuple[int, int]],
    spans: Sequence[SpanReward],
    scheme: RewardScheme = DEFAULT_SCHEME,
    *,
    text_length: int | None = None,
) -> list[float]:
    """One reward per token: the resolved value of the spans its ``[a, b)`` overlaps, else ``outside``.

    ``offsets`` are the tokens' code-point intervals in the response (a fast tokenizer's
    ``offset_mapping``). Zero-width tokens ``(a, a)`` get ``0.0``. Pass ``text_length`` to check that every
    span lies inside the text.

    >>> offsets = [(0, 3), (3, 7), (7, 7)]  # "def", " foo", then an end-of-turn token
    >>> token_rewards_from_offsets(offsets, [SpanReward(4, 7, polarity=-1)], RewardScheme(outside=0.1))
    [0.1, -1.0, 0.0]
    """
    if text_length is not None:
        validate_spans(spans, text_length)
    n_tokens = len(offsets)
    rewards = [scheme.outside] * n_tokens
    if n_tokens == 0:
        return rewards
    starts, ends = zip(*offsets, strict=True)
    if spans:
        if _non_decreasing(starts) and _non_decreasing(ends):
            # Then the tokens overlapping [s, e) are one contiguous run, from the first token ending after s
            # to the last one starting before e: two binary searches per span instead of a scan.
            runs = []
            for span in spans:
                first = bisect_right(ends, span.start)
                stop = bisect_left(starts, span.end, lo=first)
                if first < stop:
                    runs.append((first, stop, span.polarity, scheme.span_value(span)))
            _apply_runs(rewards, runs, scheme.conflict)
        else:
            _fill_any_order(rewards, offsets, spans, scheme)
    # Zero-width tokens hold no character, so neither a span nor `outside` applies to them.
    for index in compress(count(), map(eq, starts, ends)):
        rewards[index] = 0.0
    return rewards


def _fill_any_order(
    rewards: list[float],
    offsets: Sequence[tuple[int, int]],
    spans: Sequence[SpanReward],
    scheme: RewardScheme,
) -> None:
    """The plain tokens × spans scan, for offsets that are not sorted (no tokenizer seen; kept for safety)."""
    items = [(span.start, span.end, span.polarity, scheme.span_value(span)) for span in spans]
    for index, (token_start, token_end) in enumerate(offsets):
        active = [
            (polarity, value)
            for start, end, polarity, value in items
            if token_start < end and start < token_end
        ]
        if active:
            rewards[index] = _resolve(active, scheme.conflict)


def _batch_rewards_from_offsets(
    offsets_per_response: Sequence[Sequence[tuple[int, int]]],
    spans_per_response: Sequence[Sequence[SpanReward]],
    text_lengths: Sequence[int],
    scheme: RewardScheme,
) -> list[list[float]]:
    """:func:`token_rewards_from_offsets` for many responses at once, with the per-token work in numpy.

    All responses' offsets go into one array, each shifted by the characters of the responses before it
    (plus one), so the whole batch is sorted whenever each response is, and one ``searchsorted`` finds every
    span's run. Reading the offsets once into numpy is the only per-token Python-level work; a response whose
    offsets are unsorted or run past its text (no tokenizer seen does this) takes the per-response path.
    """
    n_responses = len(offsets_per_response)
    lengths = np.fromiter(map(len, offsets_per_response), dtype=np.int64, count=n_responses)
    token_base = np.zeros(n_responses + 1, dtype=np.int64)
    np.cumsum(lengths, out=token_base[1:])
    flat = np.fromiter(
        chain.from_iterable(chain.from_iterable(offsets_per_response)),
        dtype=np.int64,
        count=2 * int(token_base[-1]),
    )
    starts, ends = flat[0::2], flat[1::2]
    text_lengths_array = np.asarray(text_lengths, dtype=np.int64)
    char_base = np.zeros(n_responses + 1, dtype=np.int64)
    np.cumsum(text_lengths_array + 1, out=char_base[1:])
    token_char_base = np.repeat(char_base[:-1], lengths)
    key_starts = starts + token_char_base
    key_ends = ends + token_char_base

    # Inside [0, text length] every response's keys stay below the next response's, so the batch is
    # sorted exactly when each response is. Responses that break either condition take the exact path.
    irregular = (starts < 0) | (ends > np.repeat(text_lengths_array, lengths))
    irregular[:-1] |= (np.diff(key_starts) < 0) | (np.diff(key_ends) < 0)
    fallback = set(_response_of(np.flatnonzero(irregular), token_base).tolist())
    for response in fallback:
        # A constant key between its neighbours' keeps the batch sorted; its runs are ignored below.
        lo, hi = token_base[response], token_base[response + 1]
        key_starts[lo:hi] = key_ends[lo:hi] = char_base[response]

    span_counts = [len(spans) for spans in spans_per_response]
    all_spans = list(chain.from_iterable(spans_per_response))
    span_char_base = np.repeat(char_base[:-1], span_counts)
    span_token_base = np.repeat(token_base[:-1], span_counts)
    span_starts = np.fromiter((span.start for span in all_spans), dtype=np.int64, count=len(all_spans))
    span_ends = np.fromiter((span.end for span in all_spans), dtype=np.int64, count=len(all_spans))
    firsts = np.searchsorted(key_ends, span_starts + span_char_base, side="right") - span_token_base
    stops = np.searchsorted(key_starts, span_ends + span_char_base, side="left") - span_token_base
    all_runs = list(
        zip(
            firsts.tolist(),
            stops.tolist(),
            [span.polarity for span in all_spans],
            [scheme.span_value(span) for span in all_spans],
            strict=True,
        )
    )

    outside, conflict = scheme.outside, scheme.conflict
    results: list[list[float]] = []
    span_index = 0
    for response, (n_response_tokens, n_spans) in enumerate(zip(lengths.tolist(), span_counts, strict=True)):
        if response in fallback:
            rewards = token_rewards_from_offsets(
                offsets_per_response[response], spans_per_response[response], scheme
            )
        else:
            rewards = [outside] * n_response_tokens
            if n_spans:
                runs = [run for run in all_runs[span_index : span_index + n_spans] if run[0] < run[1]]
                _apply_runs(rewards, runs, conflict)
        results.append(rewards)
        span_index += n_spans
    zero_width = np.flatnonzero(starts == ends)
    for token, response in zip(
        zero_width.tolist(), _response_of(zero_width, token_base).tolist(), strict=True
    ):
        results[response][token - int(token_base[response])] = 0.0
    return results


def _response_of(tokens: np.ndarray, token_base: np.ndarray) -> np.ndarray:
    """The response each global token index belongs to (``token_base`` holds each response's first)."""
    return np.searchsorted(token_base, tokens, side="right") - 1


def _require_fast(tokenizer: PreTrainedTokenizerBase) -> None:
    if not getattr(tokenizer, "is_fast", False):
        raise ValueError(
            f"{type(tokenizer).__name__} is not a fast (Rust) tokenizer: character offsets need "
            "return_offsets_mapping, which only fast tokenizers provide"
        )


# A response is untrusted model output: a literal "<|im_end|>" in it is text the model wrote piece by
# piece, never a control token, so the response is always encoded with special tokens split.
_RESPONSE_ENCODE_KWARGS: dict[str, Any] = {
    "add_special_tokens": False,
    "return_offsets_mapping": True,
    "return_attention_mask": False,
    "split_special_tokens": True,
}


def tokenize_response(
    tokenizer: PreTrainedTokenizerBase,
    response: str,
    prompt_messages: list[dict[str, str]] | None = None,
) -> TokenizedResponse:
    """Tokenize ``response`` by itself, with code-point offsets, after an optional chat prompt.

    With ``prompt_messages`` the tokenizer's chat template renders them with
    ``add_generation_prompt=True``; those ids go to ``prompt_ids`` and are never rewarded. The response is
    encoded without added special tokens, so ``response_ids`` and ``response_offsets`` have equal length.

    These ids come from re-tokenizing the text. Ids a model sampled need not be the canonical tokenization of
    the text they decode to, so a caller that trains on stored generation ids should check that they equal
    ``response_ids`` before pairing them with these rewards.

    >>> from transformers import AutoTokenizer  # doctest: +SKIP
    >>> tok = AutoTokenizer.from_pretrained("var/models/base")  # doctest: +SKIP
    >>> tokenize_response(tok, "Hi 👋", [{"role": "user", "content": "hello"}]).response_offsets  # doctest: +SKIP
    [(0, 2), (2, 4), (3, 4), (3, 4)]
    """
    _require_fast(tokenizer)
    prompt_ids: list[int] = []
    if prompt_messages is not None:
        if not getattr(tokenizer, "chat_template", None):
            raise ValueError(f"{type(tokenizer).__name__} has no chat template; pass prompt_messages=None")
        rendered = tokenizer.apply_chat_template(
            prompt_messages, add_generation_prompt=True, tokenize=True, return_dict=True
        )
        prompt_ids = list(rendered["input_ids"])
    encoded = tokenizer(response, **_RESPONSE_ENCODE_KWARGS)
    return TokenizedResponse(
        prompt_ids=prompt_ids,
        response_ids=list(encoded["input_ids"]),
        response_offsets=[(start, end) for start, end in encoded["offset_mapping"]],
    )


def token_rewards(
    tokenizer: PreTrainedTokenizerBase,
    response: str,
    spans: Sequence[SpanReward],
    scheme: RewardScheme = DEFAULT_SCHEME,
    prompt_messages: list[dict[str, str]] | None = None,
) -> TokenizedRewards:
    """Tokenize one response (see :func:`tokenize_response`) and give each response token its reward.

    >>> from transformers import AutoTokenizer  # doctest: +SKIP
    >>> tok = AutoTokenizer.from_pretrained("var/models/base")  # doctest: +SKIP
    >>> token_rewards(tok, "x = 1 / 0", [SpanReward(4, 9, polarity=-1)]).rewards  # doctest: +SKIP
    [0.0, 0.0, 0.0, -1.0, -1.0, -1.0, -1.0]
    """
    validate_spans(spans, len(response))
    tokenized = tokenize_response(tokenizer, response, prompt_messages)
    rewards = token_rewards_from_offsets(tokenized.response_offsets, spans, scheme)
    return TokenizedRewards(
        prompt_ids=tokenized.prompt_ids,
        response_ids=tokenized.response_ids,
        response_offsets=tokenized.response_offsets,
        rewards=rewards,
    )


def batch_token_rewards(
    tokenizer: PreTrainedTokenizerBase,
    responses: Sequence[str],
    spans_per_response: Sequence[Sequence[SpanReward]],
    scheme: RewardScheme = DEFAULT_SCHEME,
) -> list[list[float]]:
    """Rewards for many responses with one batched tokenizer call (the Rust side runs it in parallel).

    Entry ``i`` has one reward per token of ``tokenize_response(tokenizer, responses[i]).response_ids``.

    >>> from transformers import AutoTokenizer  # doctest: +SKIP
    >>> tok = AutoTokenizer.from_pretrained("var/models/base")  # doctest: +SKIP
    >>> batch_token_rewards(tok, ["good", "bad"], [[SpanReward(0, 4, 1)], [SpanReward(0, 3, -1)]])  # doctest: +SKIP
    [[1.0], [-1.0]]
    """
    return [
        item.rewards for item in batch_tokenized_rewards(tokenizer, responses, spans_per_response, scheme)
    ]


def batch_tokenized_rewards(
    tokenizer: PreTrainedTokenizerBase,
    responses: Sequence[str],
    spans_per_response: Sequence[Sequence[SpanReward]],
    scheme: RewardScheme = DEFAULT_SCHEME,
) -> list[TokenizedRewards]:
    """:func:`batch_token_rewards` with each response's ids and offsets kept (``prompt_ids`` left empty):
    what the studio stores per annotation. One batched tokenizer call and the numpy mapping for all."""
    if len(responses) != len(spans_per_response):
        raise ValueError(
            f"got {len(responses)} responses but {len(spans_per_response)} span lists; they must pair up"
        )
    _require_fast(tokenizer)
    for response, spans in zip(responses, spans_per_response, strict=True):
        validate_spans(spans, len(response))
    if not responses:
        return []
    encoded = tokenizer(list(responses), **_RESPONSE_ENCODE_KWARGS)
    offsets = encoded["offset_mapping"]
    rewards = _batch_rewards_from_offsets(
        offsets, spans_per_response, [len(response) for response in responses], scheme
    )
    # The tokenizer's own lists are kept as they are: no per-token copy on the path every submission takes.
    return [
        TokenizedRewards(
            prompt_ids=[], response_ids=ids, response_offsets=response_offsets, rewards=response_rewards
        )
        for ids, response_offsets, response_rewards in zip(
            encoded["input_ids"], offsets, rewards, strict=True
        )
    ]


_COMBINERS: dict[str, Callable[[Sequence[float]], float]] = {
    "mean": statistics.fmean,
    "min": min,
    "max": max,
    "median": statistics.median,
}


def combine_rewards(vectors: Sequence[Sequence[float]], how: str = "mean") -> list[float]:
    """Merge several annotators' reward vectors for the same tokens, position by position.

    >>> combine_rewards([[1.0, 0.0, -1.0], [0.0, 0.0, -1.0]])
    [0.5, 0.0, -1.0]
    >>> combine_rewards([[1.0, 0.0], [-1.0, 0.0]], how="min")
    [-1.0, 0.0]
    """
    if how not in _COMBINERS:
        raise ValueError(f"how must be one of {COMBINE_MODES}, got {how!r}")
    if not vectors:
        raise ValueError("combine_rewards needs at least one reward vector")
    lengths = sorted({len(vector) for vector in vectors})
    if len(lengths) > 1:
        raise ValueError(
            f"reward vectors must all have the same length (one per token of the same tokenization); "
            f"got lengths {lengths}"
        )
    combine = _COMBINERS[how]
    return [float(combine(column)) for column in zip(*vectors, strict=True)]
