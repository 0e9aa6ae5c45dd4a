"""Issue 28, round four: quotes that are not verbatim copies of the output (line breaks, ellipses, spacing,
paraphrase), repeated quotes narrowed by a named sentence, and polarity from a trailing verdict clause."""

from __future__ import annotations

import pytest

from text2grad.alignment import align_critique, extract_quotes

from .test_alignment_round_two import texts

CANAL = (
    "The canal was dug by hand between 1790 and 1796. Horses towed the barges along a path beside the\n"
    "water, and the locks were worked by the boatmen themselves. Coal was the main cargo until the\n"
    "railway opened in 1841.\n\nToday the canal is used by narrowboats and anglers."
)


# ---------------------------------------------------------------------------------------- line breaks
def test_a_quote_may_run_over_one_line_break_of_the_critique_but_not_a_blank_line():
    assert [q.text for q in extract_quotes('It says "dug by\nhand" and "the boatmen".')] == [
        "dug by\nhand",
        "the boatmen",
    ]
    assert [q.text for q in extract_quotes("'worked by\nthe boatmen' is right")] == ["worked by\nthe boatmen"]
    assert extract_quotes('A "first\n\nsecond" pair is no quote.') == []


def test_a_quote_matches_output_text_wrapped_differently():
    # the output wraps "beside the\nwater"; the critique quotes it on one line, exactly otherwise
    assert texts(CANAL, '"a path beside the water" is right.') == [("a path beside the\nwater", 1)]
    # the critique wraps where the output does not
    assert texts(CANAL, 'Good: "narrowboats\nand anglers".') == [("narrowboats and anglers", 1)]


def test_a_replacement_is_recognised_even_over_a_line_break():
    # text after "should be" is the annotator's own unless the output holds it, line breaks aside
    assert texts(CANAL, 'It should be "until the railway opened", which is fine.') == [
        ("until the\nrailway opened", 1)
    ]


# ------------------------------------------------------------------------------------------ ellipses
def test_an_ellipsis_inside_a_quote_spans_the_words_it_leaves_out():
    found = texts(CANAL, '"Horses towed the barges ... beside the water" is correct.')
    assert found == [("Horses towed the barges along a path beside the\nwater", 1)]
    found = texts(CANAL, "'The canal was dug [...] 1796' is accurate.")
    assert found == [("The canal was dug by hand between 1790 and 1796", 1)]
    # the parts must come in order and close together: otherwise nothing is claimed
    assert texts(CANAL, '"anglers ... Horses" is odd.') == []


def test_an_ellipsis_at_the_end_runs_to_the_end_of_a_hard_wrapped_sentence():
    found = texts(CANAL, '"Coal was the main cargo ..." is wrong: it was limestone.')
    assert found == [("Coal was the main cargo until the\nrailway opened in 1841.", -1)]


# ------------------------------------------------------------------------------------------------ code
def test_a_code_quote_over_two_lines_is_both_lines():
    code = "def first(items):\n    if not items:\n        return None\n    return items[0]\n"
    found = texts(code, "The guard `if not items: return None` is right.", is_code=True)
    assert found == [("if not items:\n        return None", 1)]


# ------------------------------------------------------------------------------------ repeated quotes
def test_a_repeated_quote_is_narrowed_to_the_sentence_the_critique_names():
    output = "The canal is old. Boats use the canal daily. Anglers like the canal too."
    assert texts(output, "In the last sentence, 'the canal' repeats the subject.") == [("the canal", -1)]
    assert align_critique(output, "In the last sentence, 'the canal' is clumsy.", semantic=False)[
        0
    ].start == output.rindex("the canal")
    # a named sentence that holds no occurrence narrows nothing (the first has "The canal": an exact match
    # keeps case, so the two lower-case occurrences stay)
    assert len(texts(output, "In the first sentence, 'the canal' is vague.")) == 2


# ----------------------------------------------------------------------------------------- paraphrase
def test_an_unlocated_quote_is_matched_to_the_clause_it_paraphrases(minilm):
    found = align_critique(
        CANAL, 'Saying "coal was carried until the trains came" is right.', embedder=minilm
    )
    assert [(p.text_in(CANAL), p.polarity, p.method) for p in found] == [
        ("Coal was the main cargo until the\nrailway opened in 1841.", 1, "semantic")
    ]


@pytest.mark.parametrize(
    "critique",
    [
        'It never mentions "the aqueduct over the river", which matters.',  # text the output lacks
        'It should also say "the canal closed in 1955".',  # a suggested addition
        'The last part should be "used by walkers and cyclists".',  # a replacement
    ],
)
def test_a_quote_of_text_the_output_lacks_is_not_paraphrased_onto_a_sentence(minilm, critique):
    assert align_critique(CANAL, critique, embedder=minilm) == []


# ------------------------------------------------------------------------------------------- polarity
def test_a_trailing_verdict_clause_is_the_verdict_on_the_quote_before_it(minilm):
    code = "def load(path):\n    with open(path) as handle:\n        return handle.read()\n"
    found = align_critique(code, "`with open(path)` closes the file after reading; good.", embedder=minilm)
    assert [(p.text_in(code), p.polarity) for p in found] == [("with open(path) as handle:", 1)]
    found = align_critique(
        CANAL, 'It says "worked by the boatmen themselves"; that is right.', embedder=minilm
    )
    assert [(p.text_in(CANAL), p.polarity) for p in found] == [("worked by the boatmen themselves", 1)]


def test_an_elliptical_clause_takes_the_polarity_of_the_clause_before(minilm):
    found = align_critique(
        CANAL, '"dug by hand" is correct, and mentioning "the boatmen themselves" is too.', embedder=minilm
    )
    assert [(p.text_in(CANAL), p.polarity) for p in found] == [
        ("dug by hand", 1),
        ("the boatmen themselves", 1),
    ]
    # "too" before a word is still a complaint
    found = align_critique(CANAL, '"dug by hand" is too vague.', embedder=minilm)
    assert [(p.text_in(CANAL), p.polarity) for p in found] == [("dug by hand", -1)]


# ------------------------------------------------------------------------------- a second, unquoted point
def test_a_pronoun_sentence_that_opens_a_new_point_is_aligned_on_its_own(minilm):
    found = align_critique(
        CANAL, '"dug by hand" is right. It also rightly says what the main cargo was.', embedder=minilm
    )
    assert [(p.text_in(CANAL), p.polarity) for p in found] == [
        ("dug by hand", 1),
        ("Coal was the main cargo until the\nrailway opened in 1841.", 1),
    ]
    # a pronoun that only goes on about the quote adds nothing
    found = align_critique(CANAL, '"dug by hand" is right. It is a vivid detail.', embedder=minilm)
    assert [(p.text_in(CANAL), p.polarity) for p in found] == [("dug by hand", 1)]
