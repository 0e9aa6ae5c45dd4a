"""Issue 28, round six (fixes found on the blind dev batch): a day or a month corrects a date, a value
named in a remark on the whole output corrects nothing, and a quote whose sentence gives another value of
its type is criticised whatever the tone of the rest."""

from __future__ import annotations

from text2grad.alignment.values import contradicted_value, restates_differently, typed_values

from .test_alignment_round_two import texts

NOTES = "Launch moved from 14 April to 28 April. Bilal owns pricing. Next meeting: 10 March."


def _corrected(output: str, sentence: str) -> str | None:
    found = contradicted_value(output, sentence)
    return output[found[0] : found[1]] if found else None


def test_a_day_and_a_month_are_one_date_either_way_round():
    found = [(v.kind, v.text) for v in typed_values("Due 10 March, moved to April 3rd, then May.")]
    assert found == [("date", "10 March"), ("date", "April 3rd"), ("month", "May")]


def test_a_day_alone_corrects_the_date_whose_day_differs():
    assert _corrected(NOTES, "The next meeting date is wrong, it's the 17th.") == "10 March"
    # the day the output already gives is a reference to it, not a correction
    assert _corrected(NOTES, "The meeting is on the 10th.") is None


def test_a_month_alone_corrects_the_month_of_a_date():
    assert _corrected(NOTES, "The next meeting is in April.") == "March"


def test_a_number_in_a_remark_on_the_whole_output_corrects_nothing(minilm):
    story = "Each night he climbed the 112 steps and lit the lamp."
    assert (
        texts(story, "Too short for the prompt, which asked for 500 words.", semantic=True, embedder=minilm)
        == []
    )
    # the same value corrects the output when the sentence is about a part of it
    assert texts(
        story, "The tower has 99 steps, so the number is wrong.", semantic=True, embedder=minilm
    ) == [("112", -1)]


def test_a_quote_restated_with_another_value_is_a_correction():
    assert restates_differently("hold it for 10 seconds", " - it's 30 seconds for a full reset.")
    assert not restates_differently("within 30 days", " is right, 30 days it is.")
    assert not restates_differently("10 seconds", " - and 30 km away.")  # another unit: another quantity


def test_the_quoted_value_is_criticised_when_the_critique_gives_another(minilm):
    output = "If the light stays red, hold the reset button for 10 seconds.\nNote: this erases your settings."
    critique = '"hold the reset button for 10 seconds" - it\'s 30 seconds for a factory reset.'
    # the classifier alone reads the remark as neutral-to-praising: the other value decides
    found = texts(output, critique, semantic=True, embedder=minilm)
    assert found == [("hold the reset button for 10 seconds", -1)]


def test_an_unquoted_day_correction_points_at_the_date_not_the_line():
    critique = "The next meeting date is wrong, it's the 17th."
    assert texts(NOTES, critique) == [("10 March", -1)]


def test_a_short_verdict_clause_decides_when_the_classifier_leans_its_way(minilm):
    output = "Adults can take 400 mg of ibuprofen every six hours. Do not exceed 1,200 mg a day."
    critique = "\u201c1,200 mg a day\u201d is the US label figure; fine for this audience."
    found = texts(output, critique, semantic=True, embedder=minilm)
    assert found == [("1,200 mg a day", 1)]
