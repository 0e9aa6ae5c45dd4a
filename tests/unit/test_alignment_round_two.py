"""Issue 28: clause polarity, nested quotes, code lines, typed value corrections, Minor: criticisms, and
the dev and frozen F1 floors."""

from __future__ import annotations

import pytest

from text2grad.alignment import align_critique
from text2grad.alignment.values import contradicted_value, typed_values

from .test_alignment import _load_eval_module
from .test_alignment_reading import DEV, FROZEN, REPO


def texts(output: str, critique: str, **kwargs) -> list[tuple[str, int]]:
    kwargs.setdefault("semantic", False)
    return [(p.text_in(output), p.polarity) for p in align_critique(output, critique, **kwargs)]


FERRY = (
    "The ferry to the island runs twice a day in summer. Tickets cost €18 return. The crossing takes "
    "40 minutes, and the last boat leaves at 6 pm."
)


# -------------------------------------------------------------------------------------------- typed values
def test_typed_values_are_claimed_by_the_most_specific_type():
    found = [
        (v.kind, v.text)
        for v in typed_values("Sold 3,200 units (12%) for £4.5 million over 2 weeks in 2021.")
    ]
    assert found == [
        ("count", "3,200"),
        ("percent", "12%"),
        ("money", "£4.5 million"),
        ("duration", "2 weeks"),
        ("year", "2021"),
    ]
    assert [(v.kind, v.text) for v in typed_values("a 19th-century mill; the match ended 3-1")] == [
        ("ordinal", "19th-century"),
        ("score", "3-1"),
    ]


@pytest.mark.parametrize(
    ("critique", "wrong"),
    [
        ("The crossing takes an hour.", "40 minutes"),  # a duration in other units
        ("A return ticket is €22; the price here is wrong.", "€18"),
        ("It runs four times a day.", None),  # no typed value to contradict: no guess
        ("The 40 minutes are right.", None),  # a value the output states is a reference, not a correction
    ],
)
def test_a_correction_naming_only_the_right_value_proposes_the_wrong_one(critique, wrong):
    found = contradicted_value(FERRY, critique)
    assert (FERRY[found[0] : found[1]] if found else None) == wrong
    assert texts(FERRY, critique) == ([(wrong, -1)] if wrong else [])


def test_the_value_whose_sentence_the_critique_echoes_is_chosen():
    output = "The bridge opened in 1932. It was widened in 1968 and repainted in 2004."
    assert texts(output, "The widening happened in 1971.") == [("1968", -1)]
    # two candidates and nothing to tell them apart: nothing is proposed
    assert texts("Built in 1901, sold in 1950.", "It was 1920.") == []


@pytest.mark.heavy  # loads MiniLM
def test_a_wrong_job_title_is_found_by_meaning(minilm):
    output = "The article quotes a local dentist, Dr Amal Haddad, who says waiting lists have doubled."
    found = align_critique(output, "Haddad is a pharmacist; the job given here is wrong.", embedder=minilm)
    assert [(p.text_in(output), p.polarity) for p in found] == [("dentist", -1)]


# ----------------------------------------------------------------------------------------- nested quotes
def test_a_short_quote_inside_a_longer_one_is_only_that_occurrence():
    output = "The lake freezes in winter. Skaters use the lake in January, when the lake is safest."
    found = texts(output, 'In "when the lake is safest", "lake" should be "ice".')
    assert found == [("lake", -1)]
    assert align_critique(output, 'In "when the lake is safest", "lake" should be "ice".', semantic=False)[
        0
    ].start == output.rindex("lake")


def test_a_repeated_quote_is_pinned_down_by_the_words_around_it():
    output = "Use `sorted` for a copy. A list has a `sort` method; `sort` works in place."
    assert texts(output, "Saying a list has a `sort` method is right.") == [("A list has a `sort` method", 1)]
    # without a run of the critique's words in the output, every occurrence stays
    assert len(texts(output, "Drop `sort` everywhere.")) == 2


# ---------------------------------------------------------------------------------------------- code lines
CODE = "def median(xs):\n    xs.sort()\n    mid = len(xs) // 2\n    return xs[mid]\n"


def test_a_backticked_sub_expression_is_its_line():
    assert texts(CODE, "`len(xs) // 2` is fine.", is_code=True) == [("mid = len(xs) // 2", 1)]
    # text quoted from a string literal stays as quoted
    code = 'def greet(name):\n    return f"Hello, {name}!"\n'
    assert texts(code, "The greeting 'Hello' is helpful.", is_code=True) == [("Hello", 1)]


def test_a_blamed_function_name_is_a_line_of_its_body_not_its_def_line():
    found = texts(CODE, "`median` sorts the caller's list in place.", is_code=True)
    assert found == [("xs.sort()", -1)]
    # about the name itself: the def line
    assert texts(CODE, "`median` is a clear name.", is_code=True) == [("def median(xs):", 1)]


# ------------------------------------------------------------------------------------ polarity and Minor
@pytest.mark.heavy  # loads MiniLM
def test_polarity_comes_from_the_clause_holding_each_quote(minilm):
    output = "The summit is 4,810 m high. It was first climbed in 1786 by two men from Chamonix."
    critique = 'Good that it says "first climbed in 1786". But "4,810 m" is outdated: it is 4,806 m now.'
    found = align_critique(output, critique, embedder=minilm)
    assert [(p.text_in(output), p.polarity) for p in found] == [("4,810 m", -1), ("first climbed in 1786", 1)]


@pytest.mark.heavy  # loads MiniLM
def test_cue_words_overrule_an_unsure_classifier(minilm):
    code = "def lines(text):\n    return text.splitlines()\n"
    found = align_critique(code, "Good use of `splitlines` rather than split on newlines.", embedder=minilm)
    assert [(p.text_in(code), p.polarity) for p in found] == [("return text.splitlines()", 1)]


@pytest.mark.heavy  # loads MiniLM
def test_a_minor_criticism_is_poor_and_points_somewhere(minilm):
    output = "Preheat the oven to 200 °C. Knead the dough for ten minutes. Let it rise for an hour."
    found = align_critique(
        output, "Clear steps. Minor: the kneading time is on the long side.", embedder=minilm
    )
    assert [(p.text_in(output), p.polarity) for p in found] == [("Knead the dough for ten minutes.", -1)]


@pytest.mark.heavy  # loads MiniLM
def test_a_quote_set_against_another_by_but_takes_the_other_polarity(minilm):
    output = "The lake is 12 km long. Boats can be hired at the north pier. It freezes most winters."
    critique = (
        "The mention of 'the north pier' is a pleasant extra, but 'freezes most winters' exaggerates it."
    )
    found = align_critique(output, critique, embedder=minilm)
    assert [(p.text_in(output), p.polarity) for p in found] == [
        ("the north pier", 1),
        ("freezes most winters", -1),
    ]


@pytest.mark.heavy  # loads MiniLM
def test_a_minor_criticism_in_code_naming_only_the_fix_finds_its_line(minilm):
    code = "def top_three(values):\n    ordered = sorted(values, reverse=True)\n    return ordered[:3]\n"
    critique = "`ordered[:3]` is right. Minor: `heapq.nlargest` would avoid sorting the whole list."
    found = align_critique(code, critique, embedder=minilm)
    assert [(p.text_in(code), p.polarity) for p in found] == [
        ("ordered = sorted(values, reverse=True)", -1),
        ("return ordered[:3]", 1),
    ]


# ----------------------------------------------------------------------------- typed values, round three
@pytest.mark.parametrize(
    ("output", "critique", "wrong"),
    [
        # a vote or a match written with "to"; a range with a unit after it is not a score
        ("The board voted 5 to 4 to sell the land.", "The board split 6 to 3.", "5 to 4"),
        ("Delivery takes 2 to 4 days and costs $5.", "It costs $7.", "$5"),
        # months are capitalised names: "may" the verb is not one
        ("The fair runs from June to August. You may bring a dog.", "It runs from July to August.", "June"),
    ],
)
def test_scores_with_to_and_capitalised_months_are_typed_values(output, critique, wrong):
    found = contradicted_value(output, critique)
    assert (output[found[0] : found[1]] if found else None) == wrong


def test_the_value_in_the_same_slot_as_the_right_one_is_the_wrong_one():
    output = "The market is open from April until October, closing on Sundays."
    # April and October are both months; "from" sits before both the right value and April
    found = contradicted_value(output, "The market is open from May until October.")
    assert output[found[0] : found[1]] == "April"


def test_not_the_noun_proposes_the_noun_not_its_sentence():
    output = "Store the jar in the fridge. Keep it away from the window."
    assert texts(output, "Keep it in the cupboard, not the fridge.") == [("fridge", -1)]
    # a predicate after "not" still means its sentence
    assert texts(output, "The storage advice is fine, not vague.") == []


@pytest.mark.heavy  # loads MiniLM
def test_a_word_the_critique_says_the_output_calls_someone_is_the_span(minilm):
    output = "A retired firefighter, now a beekeeper, sells honey at the market. He started in 2015."
    found = align_critique(output, "Calling him a beekeeper is accurate.", embedder=minilm)
    assert [(p.text_in(output), p.polarity) for p in found] == [("beekeeper", 1)]
    found = align_critique(
        output, "The text never says he is a firefighter; he was a nurse.", embedder=minilm
    )
    assert [(p.text_in(output), p.polarity) for p in found] == [("firefighter", -1)]


# -------------------------------------------------------------------------------------------------- floors
# Span F1 per kind a little under what the aligner reaches (docs/benchmarks.md, issue 28), so that a
# regression fails. The frozen split is never tuned on; its floor only guards against losing ground.
BLIND = REPO / "tests" / "data" / "alignment_dev_blind.jsonl"
FLOORS = {
    # reached (round five, 328 dev cases): 0.980 / 0.879 / 0.947
    DEV: {"quoted": 0.975, "unquoted": 0.85, "code": 0.93},
    # reached (round four and five alike): 0.905 / 0.881 / 0.894
    FROZEN: {"quoted": 0.88, "unquoted": 0.86, "code": 0.87},
    # reached (round six, 72 cases written before reading the aligner): 0.831 / 0.400; no code cases
    BLIND: {"quoted": 0.82, "unquoted": 0.35},
}


@pytest.mark.heavy  # MiniLM over both splits: minutes
@pytest.mark.parametrize("path", [DEV, BLIND, FROZEN], ids=["dev", "blind", "frozen"])
def test_dev_and_frozen_f1_hold_their_floors(minilm, path):
    eval_alignment = _load_eval_module()
    results, _ = eval_alignment.evaluate(eval_alignment.load_cases(path), embedder=minilm)
    table = eval_alignment.markdown_table(results)
    for kind, floor in FLOORS[path].items():
        assert results[kind].span_prf[2] >= floor, f"{path.name} {kind}\n{table}"
