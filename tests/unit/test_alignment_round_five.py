"""Issue 28, round five: polarity of "too <praise>" and of ", while" clauses, a corrected quote with a
shorter quote inside it, the occurrence of a repeated quote that the critique describes, and a blamed
function's body when another quote of the sentence holds a signature word."""

from __future__ import annotations

from text2grad.alignment import align_critique
from text2grad.alignment.critique import _split_clauses, described_part, infer_polarity

from .test_alignment_round_two import texts


def test_praise_taken_too_far_is_a_complaint_and_a_key_point_is_praise():
    assert infer_polarity("is overly concise here") == -1
    assert infer_polarity("is too precise, though") == -1
    assert infer_polarity("is precise") == 1
    assert infer_polarity("is the key detail of the story") == 1


def test_a_comma_while_sets_two_clauses_against_each_other():
    critique = "The date is right, while the venue is a guess."
    clauses = _split_clauses(critique, 0, len(critique), 0)
    assert [critique[c.start : c.end] for c in clauses] == ["The date is right", "the venue is a guess."]
    assert [c.contrasted for c in clauses] == [False, True]


def test_mixed_verdicts_joined_by_while_get_one_polarity_each(minilm):
    output = "The bakery opens at 7 am on weekdays. It sells sourdough made with rye flour."
    critique = '"opens at 7 am" is accurate, while "made with rye flour" is just a guess.'
    found = texts(output, critique, semantic=True, embedder=minilm)
    assert found == [("opens at 7 am", 1), ("made with rye flour", -1)]


def test_a_corrected_quote_stays_the_target_of_a_shorter_quote_inside_it():
    output = "Turn it off and wait a minute. Then turn it on again."
    corrected = '"Turn it off" should be "Switch the modem off", since "it" is unclear.'
    assert texts(output, corrected) == [("Turn it off", -1)]
    # a longer quote that only frames the shorter one still narrows it to the occurrence inside
    framed = 'In "Then turn it on again", "it" should be "the modem".'
    assert texts(output, framed) == [("it", -1)]


def test_described_part_reads_the_words_that_name_a_part_of_the_output():
    assert described_part("In the pricing paragraph, QQQQ is wrong") == "pricing"
    assert described_part("The sentence about the museum QQQQ is fine") == "the museum"
    assert described_part("The bit on opening hours is accurate and concise.") == "opening hours"
    assert described_part("In the second sentence, QQQQ is wrong") == ""  # an ordinal is a reference
    assert described_part("QQQQ is wrong everywhere") == ""


def test_a_repeated_quote_is_narrowed_to_the_sentence_the_critique_describes(minilm):
    output = (
        "The museum is free on Sundays and open until 6 pm. The cafe upstairs is also open until 6 pm, "
        "and it serves lunch until three."
    )
    described = 'In the sentence about the cafe, "open until 6 pm" is wrong: it closes at five.'
    assert texts(output, described, semantic=True, embedder=minilm) == [("open until 6 pm", -1)]
    start = align_critique(output, described, embedder=minilm)[0].start
    assert start == output.index("open until 6 pm", output.index("cafe"))
    # without a description every occurrence stays
    plain = '"open until 6 pm" is wrong both times: the building closes at five.'
    assert len(align_critique(output, plain, embedder=minilm)) == 2


def test_a_blamed_function_is_its_body_even_when_another_quote_says_name():
    output = "def greet(name):\n    return 'Hi ' + name\n\ndef is_positive(x):\n    return x >= 0\n"
    critique = "`'Hi ' + name` is fine, but `is_positive` wrongly accepts zero."
    assert texts(output, critique) == [("return 'Hi ' + name", 1), ("return x >= 0", -1)]


TWO_SENTENCES = (
    "The council voted 7-2 to repave Main Street next summer, with work starting in June. A state grant of "
    "$1.2 million covers most of the cost, and the rest comes from parking fees."
)


def test_an_unquoted_description_names_the_part_it_is_about(minilm):
    """Issue 24: the sentence's verdict words ("accurate and concise") kept its similarity to the part it
    names under the threshold; the named topic is now read on its own."""
    first, second = (
        TWO_SENTENCES[: TWO_SENTENCES.index(" A state")],
        TWO_SENTENCES[TWO_SENTENCES.index("A state") :],
    )
    roadworks = "The part about the roadworks is accurate and concise."
    assert texts(TWO_SENTENCES, roadworks, semantic=True, embedder=minilm) == [(first, 1)]
    funding = "The bit about the funding is fine."
    assert texts(TWO_SENTENCES, funding, semantic=True, embedder=minilm) == [(second, 1)]
    # a topic the output does not talk about names nothing
    assert (
        texts(TWO_SENTENCES, "The part about the weather is accurate.", semantic=True, embedder=minilm) == []
    )
