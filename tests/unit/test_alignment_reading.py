"""Issue 17: which occurrence a critique means, identifiers as lines, corrected values, list ordinals,
quote normalisation, the clause classifier, and the dev/frozen-test protocol of the evaluation script."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from text2grad.alignment import align_critique
from text2grad.alignment.classifier import (
    ClauseClassifier,
    configure_cache_dir,
    fit_logistic,
    load_clauses,
    ngram_features,
    predict_logistic,
)

from .test_alignment import _load_eval_module

REPO = Path(__file__).resolve().parents[2]
DEV = REPO / "tests" / "data" / "alignment_dev.jsonl"
FROZEN = REPO / "tests" / "data" / "alignment_test_frozen.jsonl"

AVERAGE = "def average(nums):\n    total = 0\n    for n in nums:\n        total += n\n    return total / len(nums)\n"


def texts(output: str, critique: str, **kwargs) -> list[tuple[str, int, str]]:
    kwargs.setdefault("semantic", False)
    return [(p.text_in(output), p.polarity, p.method) for p in align_critique(output, critique, **kwargs)]


# ------------------------------------------------------------------------------------ occurrence choice
def test_an_ordinal_before_a_quote_picks_that_occurrence():
    output = "The derivative of sin(x) is cos(x). The derivative of cos(x) is sin(x)."
    found = align_critique(output, "The second 'sin(x)' is missing a minus sign.", semantic=False)
    assert [(p.start, p.end) for p in found] == [(output.rindex("sin(x)"), output.rindex("sin(x)") + 6)]
    found = align_critique(output, "The first `cos(x)` is right.", semantic=False)
    assert [(p.start, p.polarity) for p in found] == [(output.index("cos(x)"), 1)]
    # no ordinal, prose: every occurrence
    assert len(align_critique(output, "'sin(x)' is wrong.", semantic=False)) == 2


def test_a_line_reference_stands_for_the_identifiers_in_its_sentence():
    found = texts(AVERAGE, "Line 5 divides by zero when `nums` is empty.", is_code=True)
    assert found == [("return total / len(nums)", -1, "line-ref")]
    # an expression quoted inside the named line is read as the line too
    found = texts(AVERAGE, "Returning `total / len(nums)` on line 5 crashes on [].", is_code=True)
    assert found == [("return total / len(nums)", -1, "line-ref")]


def test_a_backticked_identifier_in_code_is_the_line_the_critique_describes():
    config = "def read(path):\n    f = open(path)\n    data = f.read()\n    return data\n"
    assert texts(config, "`f` is never closed.", is_code=True) == [("f = open(path)", -1, "quote-exact")]
    find_max = "def find_max(items):\n    best = 0\n    for x in items:\n        if x > best:\n            best = x\n    return best\n"  # fmt: skip
    assert [t for t, _, _ in texts(find_max, "Initialising `best` to 0 is wrong.", is_code=True)] == [
        "best = 0"
    ]
    bucket = "def add(item, bucket=[]):\n    bucket.append(item)\n    return bucket\n"
    assert [t for t, _, _ in texts(bucket, "`bucket` is a mutable default.", is_code=True)] == [
        "def add(item, bucket=[]):"
    ]
    # an expression stands for its line, at the occurrence the sentence describes (the recursive call)
    fact = "def factorial(n):\n    if n == 0:\n        return 1\n    return n * factorial(n)\n"
    found = align_critique(fact, "`factorial(n)` recurses forever.", semantic=False, is_code=True)
    assert [(p.start, p.text_in(fact)) for p in found] == [(fact.rindex("return"), "return n * factorial(n)")]


# ------------------------------------------------------------------------------ phrases and list ordinals
def test_an_unquoted_correction_proposes_the_wrong_value():
    output = "The poster, a 31-year-old nurse, has worked night shifts for twenty years. She asks what to do."
    assert texts(output, "She has been a nurse for twelve years, not twenty years.") == [
        ("twenty years", -1, "phrase")
    ]
    assert texts("The meeting is in room 4B. Bring snacks.", "It is in 5B, not 4B.") == [("4B", -1, "phrase")]
    # a corrected predicate marks its statement, not the words alone
    cells = "Photosynthesis happens in the mitochondria. Oxygen is released."
    assert texts(cells, "It happens in the chloroplasts, not in the mitochondria.") == [
        ("Photosynthesis happens in the mitochondria.", -1, "phrase")
    ]


def test_ordinals_count_list_items_and_questions():
    recipe = "1. Preheat the oven.\n2. Mix the flour.\n3. Add two eggs.\n4. Bake for 45 minutes."
    assert texts(recipe, "Step 4 is wrong: 30 minutes.") == [("Bake for 45 minutes.", -1, "line-ref")]
    assert texts(recipe, "The third step should say three eggs.") == [("Add two eggs.", -1, "line-ref")]
    chat = "Is it open? Yes. Should I call first? Yes, call ahead."
    assert texts(chat, "The final question is the right one.", polarity_hint=1) == [
        ("Should I call first?", 1, "line-ref")
    ]


# ------------------------------------------------------------------------------------ quote normalisation
@pytest.mark.parametrize(
    "output, critique, expected",
    [
        ("Power is proportional to T⁴ here.", '"proportional to T^4" is right.', "proportional to T⁴"),
        ("Il faut réserver à l’avance.", '"reserver a l\'avance" is right.', "réserver à l’avance"),
        (
            "You can append to a list with `append`, not to a tuple.",
            '"You can append to a list with append" is right.',
            "You can append to a list with `append`",
        ),
        (
            "Der jüngere will darin wohnen.",
            '"der jungere will darin wohnen" is wrong.',
            "Der jüngere will darin wohnen",
        ),
    ],
)
def test_inexact_quotes_are_normalised(output, critique, expected):
    assert [t for t, _, _ in texts(output, critique)] == [expected]


def test_a_suggestion_after_the_quote_is_not_searched_fuzzily():
    assert texts(AVERAGE, "`sum(nums)` would be simpler.", is_code=True) == []


# -------------------------------------------------------------------------------------------- classifier
def test_logistic_regression_separates_and_the_clause_file_is_valid(tmp_path):
    rng = np.random.default_rng(0)
    features = np.vstack([rng.normal(-1, 0.5, (40, 3)), rng.normal(1, 0.5, (40, 3))])
    labels = np.array([0.0] * 40 + [1.0] * 40)
    weights = fit_logistic(features, labels)
    assert ((predict_logistic(weights, features) > 0.5) == (labels > 0.5)).mean() > 0.95
    rows = load_clauses()
    assert len(rows) >= 300 and {s for _, s, _ in rows} == {"span", "whole", "fix"}
    assert sum(p > 0 for p, _, _ in rows) > 100 and sum(p < 0 for p, _, _ in rows) > 100
    bad = tmp_path / "bad.tsv"
    bad.write_text("+\tspan\tfine\n?\tspan\tbroken\n", encoding="utf-8")
    with pytest.raises(ValueError, match="bad.tsv:2"):
        load_clauses(bad)
    features = ngram_features(["is correct", "is not correct", ""])
    assert np.allclose(np.linalg.norm(features[:2], axis=1), 1.0) and not features[2].any()


@pytest.mark.heavy
def test_the_classifier_reads_praise_without_cue_words(minilm, tmp_path):
    classifier = ClauseClassifier(minilm)
    polarity, scope = classifier.read(
        ["the phrase is an important safety note", "the phrase matches the report", "the phrase is made up",
         "add a docstring", "the loop never terminates"]
    )  # fmt: skip
    assert [round(p) for p in polarity[:3]] == [1, 1, 0]
    assert scope[3] < 0.5 < scope[4]
    # cached weights under a directory give the same verdicts in a fresh classifier, without training
    configure_cache_dir(tmp_path)
    try:
        first = ClauseClassifier(minilm).polarity(["the phrase is wrong"])
        assert len(list(tmp_path.glob("clause-classifier-*.npz"))) == 1
        cached = ClauseClassifier(minilm)
        cached._train = None  # would raise if called: the cache must be used
        assert cached.polarity(["the phrase is wrong"]) == pytest.approx(first)
    finally:
        configure_cache_dir(None)


@pytest.mark.heavy
def test_a_second_process_waits_for_the_first_training_and_loads_its_weights(minilm, tmp_path):
    """Two pool children warming up at once: one trains, the other waits on the cache's file lock and
    loads the file (flock locks conflict between separate opens, so two classifiers in two threads stand
    in for two processes)."""
    import threading

    configure_cache_dir(tmp_path)
    try:
        first, second = ClauseClassifier(minilm), ClauseClassifier(minilm)
        training_started = threading.Event()
        real_train = first._train

        def slow_train():
            training_started.set()
            return real_train()

        def never_train():
            raise AssertionError("the second classifier trained although the first was training")

        first._train, second._train = slow_train, never_train
        results = {}
        runner = threading.Thread(target=lambda: results.setdefault("first", first.polarity(["it is wrong"])))
        runner.start()
        assert training_started.wait(60)
        results["second"] = second.polarity(["it is wrong"])  # blocks until the first has written the file
        runner.join(60)
        assert results["second"] == pytest.approx(results["first"])
    finally:
        configure_cache_dir(None)


@pytest.mark.heavy
def test_praise_quotes_and_whole_output_remarks_with_the_classifier(minilm):
    output = "Take ibuprofen with food. If the pain lasts more than three days, see a doctor."
    found = align_critique(output, '"see a doctor" is an important safety note.', embedder=minilm)
    assert [(p.text_in(output), p.polarity) for p in found] == [("see a doctor", 1)]
    assert align_critique(output, "Add a note about dosage for children.", embedder=minilm) == []


# ------------------------------------------------------------------------------------------- protocol
def test_dev_and_frozen_splits_are_well_formed_and_disjoint():
    splits = {}
    for path, minimum, outputs in ((DEV, 200, 40), (FROZEN, 100, 40)):
        cases = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
        assert len(cases) >= minimum and len({c["output"] for c in cases}) >= outputs
        assert {c["kind"] for c in cases} == {"quoted", "unquoted", "code"}
        assert {c["id"].split("-")[1] for c in cases} == {"summary", "qa", "chat", "code"}
        assert sum(any(ord(ch) > 127 for ch in c["output"]) for c in cases) >= 15
        assert sum(not c["gold"] for c in cases) >= 8  # remarks that point nowhere
        for case in cases:
            assert set(case) == {"id", "kind", "is_code", "output", "critique", "gold"}
            for gold in case["gold"]:
                text = case["output"][gold["start"] : gold["end"]]
                assert text and text == text.strip() and gold["polarity"] in (-1, 1), case["id"]
        splits[path] = cases
    assert not {c["output"] for c in splits[DEV]} & {c["output"] for c in splits[FROZEN]}
    assert not {c["critique"] for c in splits[DEV]} & {c["critique"] for c in splits[FROZEN]}


def test_eval_script_reports_both_splits_and_never_details_frozen_cases(capsys):
    eval_alignment = _load_eval_module()
    assert eval_alignment.main(["--details", "--no-semantic"]) == 0
    printed = capsys.readouterr().out
    assert "## alignment_dev.jsonl" in printed and "## alignment_test_frozen.jsonl (FROZEN" in printed
    assert "| code |" in printed and "| domain:chat |" in printed
    assert "### dev-" in printed and "test-" not in printed.replace("alignment_test_frozen", "")
