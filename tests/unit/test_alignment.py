"""text2grad.alignment: quotes, line references, polarity, merging, semantic pass, LLM aligner, gold F1.

Tests that need all-MiniLM-L6-v2 share one session-scoped embedder, so the model loads once.
"""

from __future__ import annotations

import contextlib
import doctest
import importlib.util
import json
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from tests.support.http import LocalServer, QuietHandler
from text2grad import alignment
from text2grad.alignment import (
    LLMAligner,
    LLMAlignerError,
    MiniLMEmbedder,
    SpanProposal,
    align_critique,
    extract_quotes,
    infer_polarity,
    looks_like_code,
)
from text2grad.alignment import proposals as proposals_module
from text2grad.alignment import semantic as semantic_module

REPO = Path(__file__).resolve().parents[2]
ALIGNMENT_MODULES = (
    "align",
    "classifier",
    "critique",
    "llm",
    "occurrences",
    "phrases",
    "proposals",
    "quotes",
    "references",
    "semantic",
    "text",
    "values",
)
CASES_PATH = REPO / "tests" / "data" / "alignment_cases.jsonl"


def _load_eval_module():
    spec = importlib.util.spec_from_file_location("eval_alignment", REPO / "scripts" / "eval_alignment.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["eval_alignment"] = module  # dataclasses resolve their module through sys.modules
    spec.loader.exec_module(module)
    return module


def spans(output: str, critique: str, **kwargs) -> list[tuple[str, int, str]]:
    """(text, polarity, method) of each proposal, without the semantic pass unless asked."""
    kwargs.setdefault("semantic", False)
    return [(p.text_in(output), p.polarity, p.method) for p in align_critique(output, critique, **kwargs)]


class KeywordEmbedder:
    """Deterministic stand-in for MiniLM: a normalised bag of lower-cased words (4+ letters)."""

    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    def encode(self, texts):
        import re

        self.calls.append(list(texts))
        vocabulary: dict[str, int] = {}
        bags = []
        for text in texts:
            words = re.findall(r"[a-z]{4,}", text.lower())
            bags.append(words)
            for word in words:
                vocabulary.setdefault(word, len(vocabulary))
        matrix = np.zeros((len(texts), max(1, len(vocabulary))), dtype=np.float32)
        for row, words in enumerate(bags):
            for word in words:
                matrix[row, vocabulary[word]] += 1.0
        norms = np.linalg.norm(matrix, axis=1, keepdims=True)
        return matrix / np.where(norms == 0, 1.0, norms)


# ------------------------------------------------------------------------------------------- quote styles
@pytest.mark.parametrize(
    "critique, expected",
    [
        ('The phrase "moved to Seattle" is wrong.', ["moved to Seattle"]),
        ("It's wrong: 'he doesn't care' isn't said.", ["he doesn't care"]),
        ("\u201cproduce glucose\u201d is right.", ["produce glucose"]),
        ("\u2018I don\u2019t think\u2019 is hedged.", ["I don\u2019t think"]),
        ("`total / len(nums)` crashes.", ["total / len(nums)"]),
        ("See:\n```python\nreturn x\n```\nbad.", ["return x"]),
        ("```s = s.lower()``` is incomplete", ["s = s.lower()"]),
        ("The date \u00abcompleted in 1899\u00bb is wrong.", ["completed in 1899"]),
        ('Use `raise ValueError("x")` here, and "y" too.', ['raise ValueError("x")', "y"]),
    ],
)
def test_extract_quotes_styles(critique, expected):
    assert [q.text for q in extract_quotes(critique)] == expected


@pytest.mark.parametrize(
    "critique",
    [
        "It's wrong and you don't handle it.",
        "The players' union isn't mentioned; that's the author's point.",
        "Back in the '90s it\u2019s what everyone did.",
        "The cats' bowls don\u2019t count.",
    ],
)
def test_apostrophes_are_not_quotes(critique):
    assert extract_quotes(critique) == []


def test_each_quote_style_is_located():
    output = "alpha beta. gamma delta. epsilon zeta. eta theta. iota kappa."
    critique = (
        'Bad "alpha beta". Bad \u201cgamma delta\u201d. Bad \u2018epsilon zeta\u2019. '
        "Bad `eta theta`. Bad 'iota kappa'."
    )
    found = spans(output, critique)
    assert [text for text, _, _ in found] == [
        "alpha beta",
        "gamma delta",
        "epsilon zeta",
        "eta theta",
        "iota kappa",
    ]
    assert {method for _, _, method in found} == {"quote-exact"}
    assert {polarity for _, polarity, _ in found} == {-1}


def test_all_exact_occurrences_and_word_boundaries():
    output = "He basically said it. It basically works, basically."
    found = align_critique(output, 'Drop the filler "basically".', semantic=False)
    assert [output[p.start : p.end] for p in found] == ["basically"] * 3
    assert [p.start for p in found] == [3, 25, 42]
    # "i" is a variable here, not the letter inside "print" or "if"
    code = "for i in range(3):\n    print(i)\n"
    found = align_critique(code, "`i` is a poor name", semantic=False, is_code=False)
    assert [(p.start, p.end) for p in found] == [(4, 5), (29, 30)]
    # In code a backticked name is about one line (issue 17): here the one that introduces it.
    found = align_critique(code, "`i` is a poor name", semantic=False, is_code=True)
    assert [code[p.start : p.end] for p in found] == ["for i in range(3):"]


def test_fuzzy_misquote_is_located_with_lower_score():
    output = "def f(items):\n    result = []\n    for item in items:\n        if item not in result:\n"
    (proposal,) = align_critique(output, 'The check "if item not in reslt" is quadratic.', semantic=False)
    assert proposal.text_in(output) == "if item not in result:"  # in code, a quote stands for its line
    assert proposal.method == "quote-fuzzy"
    assert 0.7 <= proposal.score < 0.9


def test_fuzzy_case_whitespace_and_spelling():
    output = "The Patient should stop  taking the medication. The committee will analyze the proposal."
    found = spans(output, '"the patient should stop taking the medication" is dangerous.')
    assert found == [("The Patient should stop  taking the medication", -1, "quote-fuzzy")]
    found = spans(output, "\u201cwill analyse the proposal\u201d is clear and good.")
    assert found == [("will analyze the proposal", 1, "quote-fuzzy")]
    code = "for j in range(i + 1, len(xs)):\n    pass\n"
    assert spans(code, "`for j in range(i+1, len(xs))` is slow", is_code=True) == [
        ("for j in range(i + 1, len(xs)):", -1, "quote-fuzzy")
    ]


def test_unrelated_or_suggested_quotes_are_not_fuzzily_placed():
    output = "To reverse a list call list.reverse(), which returns a new reversed list."
    found = spans(output, 'You probably meant "reversed(lst)" here. "the moon is cheese" is odd.')
    assert found == []


def test_quote_trailing_punctuation_and_ellipsis():
    output = (
        "She borrowed $2,000 and never paid it back. He also mentions that he plays guitar in a band. End."
    )
    assert spans(output, 'I like "borrowed $2,000 and never paid it back," a lot.') == [
        ("borrowed $2,000 and never paid it back", 1, "quote-exact")
    ]
    assert spans(output, 'Cut "He also mentions that he plays..." entirely.') == [
        ("He also mentions that he plays guitar in a band.", -1, "quote-exact")
    ]


def test_trivial_quotes_are_ignored():
    code = 'key, value = line.split("=")\nx = 1\n'
    assert spans(code, "Values containing '=' break this; '-' too.", is_code=True) == []


# ------------------------------------------------------------------------------------------- line references
CODE = (
    "import math\n"  # 1
    "\n"  # 2 (blank)
    "def area(r):\n"  # 3
    "    if r < 0:\n"  # 4
    "        return 0\n"  # 5
    "    return math.pi * r ** 2\n"  # 6
)


@pytest.mark.parametrize(
    "critique, expected",
    [
        ("Line 5 hides the error.", ["return 0"]),
        ("The bug is on line 4.", ["if r < 0:"]),
        ("Wrong (line 6).", ["return math.pi * r ** 2"]),
        ("L3 lacks type hints.", ["def area(r):"]),
        ("lines 4-5 should raise", ["if r < 0:\n        return 0"]),
        ("Lines 4\u20135 should raise", ["if r < 0:\n        return 0"]),
        ("L4-L5 should raise", ["if r < 0:\n        return 0"]),
        ("Lines 3 and 5 are bad.", ["def area(r):", "return 0"]),
        ("The last line is wrong.", ["return math.pi * r ** 2"]),
        ("Line 2 is blank, line 40 does not exist.", []),
        ("Add L2 regularisation.", []),
    ],
)
def test_line_references(critique, expected):
    found = align_critique(CODE, critique, is_code=True, semantic=False)
    assert [p.text_in(CODE) for p in found] == expected
    assert all(p.method == "line-ref" and p.score == 1.0 for p in found)


def test_ordinal_sentence_references_in_prose():
    output = "The rent rises by 20%. It starts on March 1, 2023. The OP asks if this is legal."
    assert spans(output, "The second sentence invents a date.") == [
        ("It starts on March 1, 2023.", -1, "line-ref")
    ]
    assert spans(output, "The final sentence is accurate.") == [
        ("The OP asks if this is legal.", 1, "line-ref")
    ]
    # a sentence that quotes the output points at the quote, not at the sentence it mentions
    found = spans(output, '"rises by 20%" contradicts the second sentence.')
    assert found == [("rises by 20%", -1, "quote-exact")]


def test_line_refs_ignored_for_single_line_prose():
    assert spans("A single line of prose.", "line 1 is wrong", is_code=False) == []


# ------------------------------------------------------------------------------------------------ polarity
@pytest.mark.parametrize(
    "text, expected",
    [
        ("this is wrong", -1),
        ("the date is hallucinated", -1),
        ("unnecessary filler", -1),
        ("it fails on empty input", -1),
        ("nice and clear", 1),
        ("exactly right", 1),
        ("is accurate", 1),
        ("not accurate", -1),
        ("isn't correct", -1),
        ("she should pay the fine", -1),  # "fine" the noun is not praise
        ("Einstein's work, not Newton's", -1),
        ("the summary says X", None),
    ],
)
def test_infer_polarity(text, expected):
    assert infer_polarity(text) == expected


def test_polarity_per_clause_default_and_hint():
    output = "It was published in 1967. It is called realisme magique in French."
    critique = '"published in 1967" is right, but "realisme magique in French" is an odd aside.'
    assert spans(output, critique) == [
        ("published in 1967", 1, "quote-exact"),
        ("realisme magique in French", -1, "quote-exact"),
    ]
    # no cue anywhere: critiques mostly point at problems
    assert spans(output, 'It says "published in 1967".') == [("published in 1967", -1, "quote-exact")]
    # the hint wins over the wording
    assert spans(output, critique, polarity_hint=-1) == [
        ("published in 1967", -1, "quote-exact"),
        ("realisme magique in French", -1, "quote-exact"),
    ]
    with pytest.raises(ValueError):
        align_critique(output, critique, polarity_hint=0)


def test_clause_without_cue_falls_back_to_critique_tone():
    output = "A nurse is tired. She wants to say no without losing her job."
    assert spans(output, "Concise and faithful. The last sentence states her question.") == [
        ("She wants to say no without losing her job.", 1, "line-ref")
    ]


# ------------------------------------------------------------------------------------------------- merging
def test_merging_duplicates_and_overlaps():
    code = "def safe_div(a, b):\n    try:\n        return a / b\n    except:\n        return None\n"
    found = align_critique(
        code, "On line 4 the bare \u201cexcept:\u201d swallows everything.", semantic=False
    )
    assert [(p.text_in(code), p.method) for p in found] == [("except:", "quote-exact")]

    stack = "class Stack:\n    def pop(self):\n        return self.items.pop(0)\n"
    found = align_critique(stack, "`items.pop(0)` is wrong; pop from the end with `pop()`.", semantic=False)
    # the quote stands for its line, and the line found again through `pop()` merges into it
    assert [(p.text_in(stack), p.score) for p in found] == [("return self.items.pop(0)", 1.0)]


def test_merge_keeps_opposite_polarities_and_sorts():
    proposals = [
        SpanProposal(10, 20, -1, 0.6, "semantic", "a"),
        SpanProposal(12, 18, -1, 0.9, "quote-fuzzy", "b"),
        SpanProposal(12, 18, 1, 0.5, "semantic", "c"),
        SpanProposal(0, 4, -1, 1.0, "quote-exact", "d"),
    ]
    merged = proposals_module._merge(proposals)
    assert [(p.start, p.end, p.polarity, p.evidence) for p in merged] == [
        (0, 4, -1, "d"),
        (12, 18, -1, "b"),
        (12, 18, 1, "c"),
    ]


def test_span_proposal_validation():
    with pytest.raises(ValueError):
        SpanProposal(5, 5, -1, 1.0, "quote-exact", "")
    with pytest.raises(ValueError):
        SpanProposal(0, 5, 0, 1.0, "quote-exact", "")
    with pytest.raises(ValueError):
        SpanProposal(0, 5, 1, 1.5, "quote-exact", "")
    with pytest.raises(ValueError):
        SpanProposal(0, 5, 1, 0.5, "regex", "")


# ------------------------------------------------------------------------------------------------- unicode
def test_offsets_are_code_points():
    output = "Great! \U0001f60a\U0001f1eb\U0001f1f7 \u4e1c\u4eac\u662f\u9996\u90fd\u3002 It is in Lyon, Fran\u00e7e."
    found = align_critique(
        output, 'Wrong: "It is in Lyon, Fran\u00e7e". Remove "\U0001f60a".', semantic=False
    )
    by_text = {p.text_in(output): p for p in found}
    assert set(by_text) == {"It is in Lyon, Fran\u00e7e", "\U0001f60a"}
    assert by_text["\U0001f60a"].start == 7 and by_text["\U0001f60a"].end == 8
    lyon = by_text["It is in Lyon, Fran\u00e7e"]
    assert lyon.start == output.index("It is in")
    # a UTF-16 count would be larger: the emoji are astral characters
    assert lyon.start < len(output[: lyon.start].encode("utf-16-le")) // 2
    cjk = align_critique(output, "\u201c\u662f\u9996\u90fd\u201d is right.", semantic=False)
    assert [(p.start, p.end, p.polarity) for p in cjk] == [(13, 16, 1)]


def test_looks_like_code():
    assert looks_like_code(CODE)
    assert looks_like_code("function f(x) {\n  return x;\n}\n")
    assert not looks_like_code("The OP wants advice. Her landlord refuses.\nShe is upset.")


# ------------------------------------------------------------------------------------- semantic (no model)
def test_semantic_pass_with_stub_embedder_is_one_to_one():
    output = (
        "Pluto is the ninth planet in our solar system. It was discovered by Clyde Tombaugh in 1930. "
        "Pluto has five known moons."
    )
    critique = "Calling Pluto the ninth planet is outdated. The Clyde Tombaugh discovery is accurate."
    embedder = KeywordEmbedder()
    found = align_critique(output, critique, embedder=embedder)
    assert [(p.text_in(output), p.polarity, p.method) for p in found] == [
        ("Pluto is the ninth planet in our solar system.", -1, "semantic"),
        ("It was discovered by Clyde Tombaugh in 1930.", 1, "semantic"),
    ]
    assert len(embedder.calls) == 1  # one batched call for critique units and segments


def test_semantic_skips_explained_sentences_and_low_similarity():
    output = "The OP is 24. She moved to Seattle for work. She is lonely."
    embedder = KeywordEmbedder()
    found = align_critique(
        output, 'The phrase "moved to Seattle" is wrong. Zebras quantum.', embedder=embedder
    )
    assert [(p.text_in(output), p.method) for p in found] == [("moved to Seattle", "quote-exact")]
    # only the unexplained sentence is embedded (with the 3 output sentences), and it matches nothing
    assert embedder.calls == [
        ["Zebras quantum.", "The OP is 24.", "She moved to Seattle for work.", "She is lonely."]
    ]


def test_min_score_drops_weak_proposals():
    output = "if item not in result:\n    result.append(item)\n"
    critique = '"if item not in reslt" is quadratic.'
    assert len(align_critique(output, critique, semantic=False, is_code=True)) == 1
    assert align_critique(output, critique, semantic=False, is_code=True, min_score=0.95) == []


def test_semantic_false_never_embeds():
    class Exploding:
        def encode(self, texts):
            raise AssertionError("should not be called")

    assert align_critique("One. Two.", "Something vague.", embedder=Exploding(), semantic=False) == []


# ----------------------------------------------------------------------------------------------- MiniLM
@pytest.mark.heavy
def test_minilm_embeddings_are_normalised_and_meaningful(minilm):
    vectors = minilm.encode(["The cat sat on the mat.", "A cat was sitting on a rug.", "Stock prices fell."])
    assert vectors.shape == (3, 384)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert vectors[0] @ vectors[1] > vectors[0] @ vectors[2] + 0.3
    assert minilm.encode([]).shape == (0, 384)


@pytest.mark.heavy
def test_minilm_loads_once_and_restores_threads(minilm):
    import torch

    before = semantic_module._load_minilm.cache_info().misses
    other = MiniLMEmbedder(num_threads=1, batch_size=2)
    threads = torch.get_num_threads()
    torch.set_num_threads(2)  # not the encoder's 1, whatever this test process's share is (tests/conftest.py)
    try:
        batched = other.encode(["a", "b", "c"])
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(threads)
    assert semantic_module._load_minilm.cache_info().misses == before  # same process: no second load
    assert np.allclose(batched, minilm.encode(["a", "b", "c"]), atol=1e-5)


@pytest.mark.heavy
def test_minilm_semantic_alignment_on_prose(minilm):
    output = (
        "The Treaty of Versailles was signed in 1919. It required Germany to pay reparations. "
        "The treaty was drafted mainly by Woodrow Wilson and Napoleon Bonaparte."
    )
    found = align_critique(
        output, "Napoleon had been dead for a century, so that is hallucinated.", embedder=minilm
    )
    assert [(p.text_in(output), p.polarity, p.method) for p in found] == [
        ("The treaty was drafted mainly by Woodrow Wilson and Napoleon Bonaparte.", -1, "semantic")
    ]


@pytest.mark.heavy
def test_module_doctests(minilm):
    attempted = 0
    for module in (alignment, *(getattr(alignment, name) for name in ALIGNMENT_MODULES)):
        results = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
        assert results.failed == 0, module.__name__
        attempted += results.attempted
    assert attempted >= 8


# ------------------------------------------------------------------------------------------ gold evaluation
def test_case_file_is_well_formed():
    cases = [json.loads(line) for line in CASES_PATH.read_text(encoding="utf-8").splitlines() if line.strip()]
    kinds = [case["kind"] for case in cases]
    assert len(cases) >= 70 and kinds.count("quoted") >= 35 and kinds.count("unquoted") >= 30
    assert len({case["id"] for case in cases}) == len(cases)
    assert any(any(ord(ch) > 0xFFFF for ch in case["output"]) for case in cases)  # astral (emoji)
    assert sum(case["is_code"] for case in cases) >= 20
    for case in cases:
        assert set(case) == {"id", "kind", "is_code", "output", "critique", "gold"}
        for gold in case["gold"]:
            assert 0 <= gold["start"] < gold["end"] <= len(case["output"])
            assert gold["polarity"] in (-1, 1)
            text = case["output"][gold["start"] : gold["end"]]
            assert text == text.strip(), case["id"]  # gold never includes surrounding blanks


def test_eval_matching_criterion():
    eval_alignment = _load_eval_module()
    assert eval_alignment.iou(0, 10, 5, 15) == pytest.approx(1 / 3)
    gold = [{"start": 0, "end": 10, "polarity": -1}, {"start": 20, "end": 30, "polarity": 1}]
    proposals = [
        SpanProposal(0, 8, -1, 1.0, "quote-exact", ""),  # IoU 0.8: match
        SpanProposal(2, 9, -1, 1.0, "quote-exact", ""),  # IoU 0.7, same gold already taken: unmatched
        SpanProposal(20, 30, -1, 1.0, "quote-exact", ""),  # wrong polarity
    ]
    assert eval_alignment.match_spans(proposals, gold) == [(0, 0)]


@pytest.mark.heavy
def test_gold_f1_goals(minilm):
    """Regression guard: span-level F1 on the gold cases (IoU ≥ 0.5 and equal polarity)."""
    eval_alignment = _load_eval_module()
    cases = eval_alignment.load_cases(CASES_PATH)
    results, _ = eval_alignment.evaluate(cases, embedder=minilm)
    quoted_f1 = results["quoted"].span_prf[2]
    unquoted_f1 = results["unquoted"].span_prf[2]
    assert quoted_f1 >= 0.9, eval_alignment.markdown_table(results)
    assert unquoted_f1 >= 0.6, eval_alignment.markdown_table(results)


# ---------------------------------------------------------------------------------------------- LLM aligner
class _FakeChatServer(LocalServer):
    """A real HTTP server on 127.0.0.1 that answers /v1/chat/completions with canned content."""

    def __init__(self) -> None:
        self.requests: list[dict] = []
        self.content: str = "{}"
        self.status = 200
        self.raw_body: str | None = None
        self.delay = 0.0
        server = self

        class Handler(QuietHandler):
            def do_POST(self):
                body = json.loads(self.read_body())
                server.requests.append({"path": self.path, "headers": dict(self.headers), "body": body})
                time.sleep(server.delay)
                if server.raw_body is not None:
                    payload = server.raw_body.encode()
                else:
                    payload = json.dumps(
                        {"choices": [{"message": {"role": "assistant", "content": server.content}}]}
                    ).encode()
                with contextlib.suppress(
                    BrokenPipeError, ConnectionResetError
                ):  # the client gave up (timeout test)
                    self.send_body(server.status, payload, [("Content-Type", "application/json")])

        super().__init__(Handler)
        self.start()
        self.base_url = f"{self.origin}/v1"


@pytest.fixture
def chat_server():
    server = _FakeChatServer()
    yield server
    server.close()


LLM_OUTPUT = "def average(nums):\n    total = sum(nums)\n    return total / len(nums)\n"


def test_llm_aligner_round_trip(chat_server):
    chat_server.content = (
        "Sure! Here is the alignment:\n```json\n"
        '{"critique": "Divides by zero on empty input.", "good_spans": ["total = sum(nums)"], '
        '"poor_spans": ["return total/len(nums)", "not in the output at all"]}\n```\nHope this helps.'
    )
    aligner = LLMAligner(base_url=chat_server.base_url, api_key="sk-test", model="gpt-4o", timeout=5)
    found = aligner.align(LLM_OUTPUT, "Crashes on an empty list.", prompt="Write average().")
    assert [(p.text_in(LLM_OUTPUT), p.polarity, p.method) for p in found] == [
        ("total = sum(nums)", 1, "llm"),
        ("return total / len(nums)", -1, "llm"),
    ]
    assert found[0].score == 1.0 and found[1].score < 1.0  # the second phrase was located fuzzily
    (request,) = chat_server.requests
    assert request["path"] == "/v1/chat/completions"
    assert request["headers"]["Authorization"] == "Bearer sk-test"
    assert request["body"]["model"] == "gpt-4o"
    user_message = request["body"]["messages"][-1]["content"]
    assert "Crashes on an empty list." in user_message and LLM_OUTPUT in user_message
    assert "good_spans" in request["body"]["messages"][0]["content"]


def test_llm_aligner_tolerates_bare_json_with_trailing_text(chat_server):
    chat_server.content = '{"critique": "ok", "good_spans": [], "poor_spans": "total / len(nums)"} -- done'
    aligner = LLMAligner(base_url=chat_server.base_url, model="m")
    answer = aligner.request(LLM_OUTPUT, "x")
    assert answer == {"critique": "ok", "good_spans": [], "poor_spans": ["total / len(nums)"]}
    assert "Authorization" not in chat_server.requests[0]["headers"]


@pytest.mark.parametrize(
    "content",
    [
        "I cannot help with that.",
        '{"critique": "unterminated", "poor_spans": [',
        '```json\n{"good_spans": [1, 2\n```',
    ],
)
def test_llm_aligner_malformed_json_raises(chat_server, content):
    chat_server.content = content
    aligner = LLMAligner(base_url=chat_server.base_url, model="m")
    with pytest.raises(LLMAlignerError, match="no JSON object"):
        aligner.align(LLM_OUTPUT, "x")


def test_llm_aligner_wrong_types_raise(chat_server):
    chat_server.content = '{"good_spans": {"a": 1}, "poor_spans": []}'
    with pytest.raises(LLMAlignerError, match="list of strings"):
        LLMAligner(base_url=chat_server.base_url, model="m").align(LLM_OUTPUT, "x")


def test_llm_aligner_http_and_protocol_errors(chat_server):
    aligner = LLMAligner(base_url=chat_server.base_url, model="m")
    chat_server.status = 500
    chat_server.raw_body = '{"error": "overloaded"}'
    with pytest.raises(LLMAlignerError, match="HTTP 500.*overloaded"):
        aligner.align(LLM_OUTPUT, "x")
    chat_server.status = 200
    chat_server.raw_body = '{"id": "no choices"}'
    with pytest.raises(LLMAlignerError, match="not a chat completion"):
        aligner.align(LLM_OUTPUT, "x")


def test_llm_aligner_timeout_and_unreachable(chat_server):
    chat_server.delay = 1.0
    with pytest.raises(LLMAlignerError, match="could not reach"):
        LLMAligner(base_url=chat_server.base_url, model="m", timeout=0.2).align(LLM_OUTPUT, "x")
    with pytest.raises(ValueError):
        LLMAligner(base_url="ftp://example", model="m")
