"""text2grad.agreement against the reference implementation (the ``krippendorff`` package) on random data,
and against hand-computed values on small cases. No database: ``pytest tests/unit/test_agreement.py``."""

from __future__ import annotations

import doctest
import math

import krippendorff
import numpy as np
import pytest

from text2grad import agreement
from text2grad.agreement import (
    GOOD,
    MISSING,
    NONE,
    POOR,
    OutputInput,
    alpha_from_coincidence,
    batch_agreement,
    binary_coincidence,
    coincidence_matrix,
    krippendorff_alpha,
    span_f1,
    token_labels,
    unit_labels,
)


def reference_alpha(data: np.ndarray, n_values: int, level: str) -> float:
    as_float = np.where(data == MISSING, np.nan, data).astype(float)
    return krippendorff.alpha(
        reliability_data=as_float, level_of_measurement=level, value_domain=list(range(n_values))
    )


def test_doctests():
    assert doctest.testmod(agreement).failed == 0


@pytest.mark.parametrize("level,n_values", [("nominal", 3), ("ordinal", 5), ("interval", 5)])
@pytest.mark.parametrize("seed", range(8))
def test_alpha_matches_the_reference_on_random_data(seed, level, n_values):
    rng = np.random.default_rng(seed)
    coders, units = rng.integers(2, 6), rng.integers(5, 120)
    truth = rng.integers(0, n_values, units)
    # Coders copy the truth with some noise, so alpha lands anywhere from negative to near 1.
    noise = rng.random((coders, units)) < rng.random()
    data = np.where(noise, rng.integers(0, n_values, (coders, units)), truth[None, :])
    data[rng.random(data.shape) < 0.25] = MISSING
    ours = krippendorff_alpha(data, n_values, level)
    expected = reference_alpha(data, n_values, level)
    assert ours == pytest.approx(expected, abs=1e-9)


def test_perfect_agreement_is_one():
    data = np.array(
        [[POOR, GOOD, NONE, NONE, POOR], [POOR, GOOD, NONE, NONE, POOR], [POOR, GOOD, NONE, NONE, POOR]]
    )
    assert krippendorff_alpha(data, 3) == 1.0


def test_chance_agreement_is_near_zero():
    rng = np.random.default_rng(7)
    data = rng.integers(0, 3, (3, 60_000))  # independent coders: agreement only by chance
    assert abs(krippendorff_alpha(data, 3)) < 0.01


def test_systematic_disagreement_is_negative_and_hand_computed():
    # Two coders, four units, always opposite: o[poor,good] = o[good,poor] = 4, n = 8, n_poor = n_good = 4.
    # alpha = 1 - (n - 1) * D_o / D_e = 1 - 7 * 8 / (2 * 4 * 4) = -0.75
    data = np.array([[POOR, GOOD, POOR, GOOD], [GOOD, POOR, GOOD, POOR]])
    assert krippendorff_alpha(data, 3) == pytest.approx(-0.75)
    assert reference_alpha(data, 3, "nominal") == pytest.approx(-0.75)


def test_hand_computed_mixed_case():
    # Units: (poor, poor), (none, poor), (none, none). o: poor-poor 2, none-poor 1, poor-none 1, none-none 2.
    # n = 6, n_none = 3, n_poor = 3. D_o = 2, D_e = 2 * 3 * 3 = 18 -> alpha = 1 - 5 * 2 / 18 = 0.444...
    data = np.array([[POOR, NONE, NONE], [POOR, POOR, NONE]])
    matrix = coincidence_matrix(data, 3)
    assert matrix.tolist() == [[2, 1, 0], [1, 2, 0], [0, 0, 0]]
    assert alpha_from_coincidence(matrix) == pytest.approx(1 - 5 * 2 / 18)


def test_undefined_without_variation():
    assert math.isnan(krippendorff_alpha(np.array([[NONE, NONE], [NONE, NONE]]), 3))
    assert math.isnan(krippendorff_alpha(np.array([[NONE, MISSING], [MISSING, NONE]]), 3))


def test_coincidences_add_up_to_the_pooled_alpha():
    rng = np.random.default_rng(3)
    blocks = [rng.integers(0, 3, (3, rng.integers(4, 30))) for _ in range(6)]
    summed = sum(coincidence_matrix(block, 3) for block in blocks)
    pooled = reference_alpha(np.concatenate(blocks, axis=1), 3, "nominal")
    assert alpha_from_coincidence(summed) == pytest.approx(pooled, abs=1e-12)


def test_binary_collapse_is_the_per_label_alpha():
    rng = np.random.default_rng(4)
    data = rng.integers(0, 3, (3, 80))
    for value in range(3):
        binary = (data == value).astype(int)
        collapsed = binary_coincidence(coincidence_matrix(data, 3), value)
        assert alpha_from_coincidence(collapsed) == pytest.approx(reference_alpha(binary, 2, "nominal"))


def test_unit_and_token_labels():
    assert unit_labels(8, [(0, 4, 1), (3, 6, -1), (7, 20, 0)]).tolist() == [2, 2, 2, 1, 1, 1, 0, 0]
    chars = unit_labels(6, [(1, 2, -1), (4, 5, 1)])
    assert token_labels(chars, [(0, 3), (3, 4), (4, 6), (6, 6)]).tolist() == [POOR, NONE, GOOD, NONE]


@pytest.mark.parametrize(
    "first,second,expected",
    [
        ([], [], 1.0),
        ([(0, 10, "poor")], [], 0.0),
        ([(0, 10, "poor")], [(0, 10, "poor")], 1.0),
        ([(0, 10, "poor")], [(0, 10, "good")], 0.0),  # same range, other label
        ([(0, 10, "poor")], [(5, 15, "poor")], 0.0),  # IoU 5/15
        ([(0, 10, "poor")], [(0, 5, "poor")], 1.0),  # IoU exactly 0.5
        ([(0, 10, "poor")], [(0, 4, "poor")], 0.0),  # IoU 0.4
        ([(0, 10, "poor")], [(0, 9, "poor"), (1, 10, "poor")], 2 / 3),  # one-to-one
    ],
)
def test_span_f1_hand_cases(first, second, expected):
    assert span_f1(first, second) == pytest.approx(expected)
    assert span_f1(second, first) == pytest.approx(expected)


def _random_output(rng, coders: int, with_gold: bool) -> OutputInput:
    length = int(rng.integers(20, 200))
    base = []
    for _ in range(rng.integers(0, 5)):
        start = int(rng.integers(0, length - 1))
        end = int(rng.integers(start + 1, min(length, start + 40) + 1))
        polarity = int(rng.choice([-1, 1]))
        base.append((start, end, polarity, "poor" if polarity < 0 else "good"))
    people = []
    for _ in range(coders):
        spans = []
        for start, end, polarity, label in base:
            if rng.random() < 0.7:
                shift = int(rng.integers(-3, 4))
                spans.append((max(0, start + shift), min(length, end + shift) or 1, polarity, label))
        if rng.random() < 0.3:
            spans.append((0, int(rng.integers(1, length)), -1, "poor"))
        people.append([s for s in spans if s[0] < s[1]])
    ratings = [int(rng.integers(1, 6)) if rng.random() < 0.8 else None for _ in people]
    if with_gold:
        people.append([(s, e, p, lab) for s, e, p, lab in base])
        ratings.append(4)
    return OutputInput(
        length=length,
        coders=people,
        reference=len(people) - 1 if with_gold else None,
        ratings=ratings,
        token_offsets=[(i, min(i + 3, length)) for i in range(0, length, 3)],
    )


def test_batch_matches_one_output_at_a_time():
    rng = np.random.default_rng(11)
    outputs = [_random_output(rng, int(rng.integers(1, 5)), bool(rng.random() < 0.4)) for _ in range(60)]
    result = batch_agreement(outputs)
    for index, output in enumerate(outputs):
        annotators = [c for c in range(len(output.coders)) if c != output.reference]
        chars = np.stack(
            [unit_labels(output.length, [(s, e, p) for s, e, p, _ in output.coders[c]]) for c in annotators]
        )
        if len(annotators) >= 2:
            assert np.allclose(result.coincidence[index], coincidence_matrix(chars, 3), rtol=0, atol=1e-9)
            expected = reference_alpha(chars, 3, "nominal") if len(np.unique(chars)) > 1 else math.nan
            assert result.alpha[index] == pytest.approx(expected, nan_ok=True)
            tokens = np.stack([token_labels(row, output.token_offsets) for row in chars])
            expected_tokens = (
                reference_alpha(tokens, 3, "nominal") if len(np.unique(tokens)) > 1 else math.nan
            )
            assert result.token_alpha[index] == pytest.approx(expected_tokens, nan_ok=True)
            f1s = [
                span_f1(
                    [(s, e, lab) for s, e, _, lab in output.coders[a]],
                    [(s, e, lab) for s, e, _, lab in output.coders[b]],
                )
                for i, a in enumerate(annotators)
                for b in annotators[i + 1 :]
            ]
            assert result.span_f1[index] == pytest.approx(sum(f1s) / len(f1s))
        else:
            assert result.coincidence[index].sum() == 0
            assert math.isnan(result.span_f1[index])
    for row in range(len(result.pair_output)):
        output = outputs[result.pair_output[row]]
        first, second = result.pair_first[row], result.pair_second[row]
        assert first != output.reference  # the gold side of a pair is always second
        pair_spans = [output.coders[first], output.coders[second]]
        chars = np.stack([unit_labels(output.length, [(s, e, p) for s, e, p, _ in c]) for c in pair_spans])
        assert np.array_equal(result.pair_coincidence[row], coincidence_matrix(chars, 3))
        assert result.pair_f1[row] == pytest.approx(
            span_f1(*[[(s, e, lab) for s, e, _, lab in c] for c in pair_spans])
        )


def test_batch_ratings_pool_to_the_reference_ordinal_alpha():
    rng = np.random.default_rng(5)
    outputs = [_random_output(rng, 3, False) for _ in range(40)]
    result = batch_agreement(outputs)
    table = np.array([[(r - 1) if r else MISSING for r in o.ratings] for o in outputs]).T
    pooled = alpha_from_coincidence(result.rating_coincidence.sum(axis=0), "ordinal")
    assert pooled == pytest.approx(reference_alpha(table, 5, "ordinal"))


def test_batch_of_nothing():
    result = batch_agreement([])
    assert result.alpha.shape == (0,) and result.pair_f1.shape == (0,)
