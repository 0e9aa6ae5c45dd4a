"""text2grad.critic and text2grad.critic_metrics: the span critic on a tiny llama, metrics against slow
obvious references (no Django)."""

from __future__ import annotations

import itertools
import random

import numpy as np
import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from text2grad import critic_metrics as cm
from text2grad.critic import (
    HEAD_FILE,
    CriticConfig,
    CriticExample,
    CriticInput,
    SpanCritic,
    build_critic,
    load_critic,
    predict_token_probs,
    response_uncertainty,
    save_critic_atomic,
    set_prior_bias,
    spans_from_probs,
    token_labels,
    token_rewards_from_probs,
    train_critic,
)
from text2grad.generation import encode_prompt
from text2grad.rewards import SpanReward, tokenize_response


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


# -- labels and spans ----------------------------------------------------------------------------------------
def test_token_labels_follow_the_reward_mapping_with_conflicts_negative():
    offsets = [(0, 2), (2, 5), (5, 9), (9, 9)]
    spans = [SpanReward(0, 5, 1), SpanReward(3, 7, -1)]
    # token 1 touches both spans: poor wins; the zero-width end token is neutral.
    assert token_labels(offsets, spans) == [cm.GOOD, cm.POOR, cm.POOR, cm.NEUTRAL]
    assert token_labels(offsets, [SpanReward(0, 9, 0)]) == [0, 0, 0, 0]  # a neutral span marks nothing


def test_spans_from_probs_merges_runs_and_trims_spaces():
    text = "Ann met Bob in 1999 at home"
    offsets = [(0, 3), (3, 7), (7, 11), (11, 14), (14, 19), (19, 22), (22, 27)]
    probs = np.array(
        [[0.1, 0.1, 0.8], [0.9, 0.05, 0.05], [0.2, 0.1, 0.7], [0.3, 0.6, 0.1], [0.1, 0.8, 0.1],
         [0.9, 0.1, 0.0], [0.1, 0.2, 0.7]]
    )  # fmt: skip
    spans = spans_from_probs(text, offsets, probs)
    assert [(s.text, s.polarity) for s in spans] == [("Ann", 1), ("Bob", 1), ("in 1999", -1), ("home", 1)]
    assert spans[2].score == pytest.approx((0.6 + 0.8) / 2)
    assert [s.text for s in spans_from_probs(text, offsets, probs, min_score=0.75)] == ["Ann"]


def test_rewards_from_probs_and_uncertainty():
    probs = np.array([[0.5, 0.5, 0.0], [0.0, 0.0, 1.0]])
    assert token_rewards_from_probs(probs) == [-0.5, 1.0]
    assert token_rewards_from_probs(probs, how="hard") == [0.0, 1.0]  # argmax ties go to neutral (first)
    with pytest.raises(ValueError):
        token_rewards_from_probs(probs, how="median")
    sure = np.tile([1.0, 0.0, 0.0], (4, 1))
    assert response_uncertainty(sure) == pytest.approx(0.0, abs=1e-9)
    assert response_uncertainty(np.vstack([sure, [[0.5, 0.5, 0.0]]]), top_k=1) == pytest.approx(
        np.log(2) / np.log(3)
    )


# -- metrics against slow references -------------------------------------------------------------------------
def _slow_auroc(positive, scores):
    pos = [s for s, p in zip(scores, positive, strict=True) if p]
    neg = [s for s, p in zip(scores, positive, strict=True) if not p]
    wins = sum(1.0 if a > b else 0.5 if a == b else 0.0 for a, b in itertools.product(pos, neg))
    return wins / (len(pos) * len(neg))


def test_metrics_match_slow_references_on_random_data():
    rng = random.Random(3)
    true = [np.array([rng.choice([0, 0, 0, 1, 2]) for _ in range(rng.randint(1, 12))]) for _ in range(30)]
    # Probabilities rounded to one decimal: plenty of ties for the AUROC's tie handling.
    probs = []
    for labels in true:
        raw = np.array([[rng.random() + (2 if k == lab and rng.random() < 0.6 else 0) for k in range(3)]
                        for lab in labels])  # fmt: skip
        probs.append(np.round(raw / raw.sum(axis=1, keepdims=True), 1))
    report = cm.evaluate(true, probs, n_bins=5)
    flat_true = [int(x) for labels in true for x in labels]
    flat_probs = [row for p in probs for row in p]
    predicted = [int(np.argmax(row)) for row in flat_probs]
    for index, name in enumerate(cm.LABELS):
        tp = sum(1 for t, p in zip(flat_true, predicted, strict=True) if t == p == index)
        fp = sum(1 for t, p in zip(flat_true, predicted, strict=True) if p == index and t != index)
        fn = sum(1 for t, p in zip(flat_true, predicted, strict=True) if t == index and p != index)
        precision, recall = tp / (tp + fp), tp / (tp + fn)
        stats = report["labels"][name]
        assert stats["precision"] == pytest.approx(precision)
        assert stats["recall"] == pytest.approx(recall)
        assert stats["f1"] == pytest.approx(2 * precision * recall / (precision + recall))
        slow = _slow_auroc([t == index for t in flat_true], [row[index] for row in flat_probs])
        assert stats["auroc"] == pytest.approx(slow)
    # Calibration of P(poor): recompute every bin by a plain loop.
    bins = report["calibration"]["poor"]["bins"]
    gap = 0.0
    for k, b in enumerate(bins):
        members = [(row[1], t == 1) for row, t in zip(flat_probs, flat_true, strict=True)
                   if k / 5 <= min(row[1], 0.9999) < (k + 1) / 5]  # fmt: skip
        assert b["count"] == len(members)
        if members:
            assert b["predicted"] == pytest.approx(sum(s for s, _ in members) / len(members))
            assert b["observed"] == pytest.approx(sum(o for _, o in members) / len(members))
            gap += abs(b["predicted"] - b["observed"]) * len(members)
    assert report["calibration"]["poor"]["ece"] == pytest.approx(gap / len(flat_true))


def test_baselines():
    true = [np.array([0, 1, 0]), np.array([2, 0])]
    neutral = cm.evaluate(true, cm.all_neutral_probs([3, 2]))
    assert neutral["labels"]["poor"]["f1"] == 0.0 and neutral["labels"]["poor"]["auroc"] == 0.5
    ids = [[5, 9, 5], [7, 5]]
    prior = cm.token_prior_fit(ids, true)
    probs = cm.token_prior_probs(prior, [[9, 7, 5, 123]])[0]
    assert probs.argmax(axis=1).tolist() == [cm.POOR, cm.GOOD, cm.NEUTRAL, cm.NEUTRAL]
    assert probs.sum(axis=1) == pytest.approx(np.ones(4))
    assert cm.auroc(np.array([True, True]), np.array([0.1, 0.2])) is None


# -- training on the tiny model ------------------------------------------------------------------------------
def _examples(tokenizer, n: int = 12) -> list[tuple[CriticExample, CriticInput]]:
    """Responses where every number is poor and every 'Bob' good: learnable from the tokens alone."""
    rng = random.Random(0)
    out = []
    for _ in range(n):
        number = str(rng.randint(10, 99))
        text = f"Bob saw {number} cats and left at {rng.randint(1, 9)}."
        prompt = encode_prompt(tokenizer, [{"role": "user", "content": "Tell me about Bob."}])
        tokenized = tokenize_response(tokenizer, text)
        spans = [SpanReward(0, 3, 1), SpanReward(8, 8 + len(number), -1)]
        spans.append(SpanReward(len(text) - 2, len(text) - 1, -1))
        labels = token_labels(tokenized.response_offsets, spans)
        out.append(
            (
                CriticExample(prompt, tokenized.response_ids, labels),
                CriticInput(prompt, tokenized.response_ids, text, tokenized.response_offsets),
            )
        )
    return out


def test_training_lowers_loss_changes_adapter_not_base_and_roundtrips(tiny_model_dir, tmp_path):
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32)
    base_before = {k: v.clone() for k, v in base.state_dict().items()}
    config = CriticConfig(learning_rate=2e-2, epochs=6, batch_size=4, lora_dropout=0.0)
    critic = build_critic(base, config)
    lora_before = {n: p.detach().clone() for n, p in critic.named_parameters() if "lora_" in n}
    head_before = critic.head.weight.detach().clone()
    data = _examples(tokenizer)
    examples = [e for e, _ in data]
    steps: list[dict] = []
    result = train_critic(critic, examples, config, on_step=steps.append)
    assert result["steps"] == 6 * 3 == len(steps) and steps[-1]["total"] == 18
    first, last = np.mean(result["losses"][:3]), np.mean(result["losses"][-3:])
    assert last < 0.7 * first, result["losses"]
    assert any(not torch.equal(p, lora_before[n]) for n, p in critic.named_parameters() if "lora_" in n)
    assert not torch.equal(critic.head.weight, head_before)
    # peft wraps the base modules in place; their original weights must be untouched.
    for name, tensor in critic.model.get_base_model().state_dict().items():
        if "lora_" in name:
            continue
        original = name.replace("base_layer.", "")
        assert torch.equal(tensor, base_before[original]), name

    probs = predict_token_probs(critic, [e.prompt_ids for e in examples], [e.response_ids for e in examples])
    report = cm.evaluate([np.array(e.labels) for e in examples], probs)
    assert report["labels"]["poor"]["f1"] > 0.5

    folder = save_critic_atomic(critic, tmp_path / "critic-v1", {"name": "v1"})
    assert (folder / HEAD_FILE).is_file() and not list(tmp_path.glob(".critic-v1.tmp-*"))
    with pytest.raises(FileExistsError):
        save_critic_atomic(critic, folder)
    fresh = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32)
    loaded = load_critic(fresh, folder)
    again = predict_token_probs(loaded, [e.prompt_ids for e in examples], [e.response_ids for e in examples])
    for a, b in zip(probs, again, strict=True):
        np.testing.assert_allclose(a, b, atol=1e-5)
    assert isinstance(loaded, SpanCritic)
    outputs = loaded.critique([i for _, i in data[:2]])
    assert len(outputs) == 2 and outputs[0].token_probs.shape == (len(data[0][1].response_ids), 3)
    assert all(0 <= s.start < s.end <= len(data[0][1].text) for s in outputs[0].spans)


def test_a_fresh_head_starts_at_the_label_frequencies_not_a_third_each(tiny_model_dir, tmp_path):
    """An untrained head at 1/3 each would give every token a reward of (good + poor) / 3 and teach the
    policy to say less; from the label frequencies an undertrained critic rewards an average token as the
    data does."""
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32)
    critic = build_critic(base, CriticConfig())
    data = [e for e, _ in _examples(tokenizer)]
    labels = np.concatenate([e.labels for e in data])
    expected = (np.bincount(labels, minlength=3) + 1) / (len(labels) + 3)
    uniform = predict_token_probs(critic, [e.prompt_ids for e in data], [e.response_ids for e in data])
    assert np.allclose(np.concatenate(uniform).mean(axis=0), 1 / 3, atol=0.05)  # what a zero bias gives

    # No step runs (stopped at once), yet the head now starts from the data's frequencies.
    result = train_critic(critic, data, CriticConfig(), should_stop=lambda: True)
    assert result["steps"] == 0 and result["stopped"] and not critic.fresh
    probs = np.concatenate(
        predict_token_probs(critic, [e.prompt_ids for e in data], [e.response_ids for e in data])
    )
    np.testing.assert_allclose(probs.mean(axis=0), expected, atol=0.05)
    rewards = token_rewards_from_probs(probs)
    assert np.mean(rewards) == pytest.approx(float(expected @ np.array([0.0, -1.0, 1.0])), abs=0.05)

    # Only a fresh head: training a saved critic further keeps what it learned.
    assert set_prior_bias(critic, data) == pytest.approx(list(expected), abs=1e-6)
    with torch.no_grad():
        critic.head.bias.add_(1.0)  # an arbitrary learned state, saved next
    folder = save_critic_atomic(critic, tmp_path / "critic-2")
    again = build_critic(AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32),
                         CriticConfig(), init_dir=folder)  # fmt: skip
    before = again.head.bias.detach().clone()
    train_critic(again, data, CriticConfig(), should_stop=lambda: True)
    assert not again.fresh and torch.equal(again.head.bias, before)


def test_padding_does_not_change_predictions(tiny_model_dir):
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32)
    critic = build_critic(base, CriticConfig())
    data = [e for e, _ in _examples(tokenizer, 3)]
    data[1].response_ids = data[1].response_ids[:4]
    together = predict_token_probs(critic, [e.prompt_ids for e in data], [e.response_ids for e in data])
    for example, batched in zip(data, together, strict=True):
        alone = predict_token_probs(critic, [example.prompt_ids], [example.response_ids])[0]
        np.testing.assert_allclose(batched, alone, atol=1e-5)
    assert predict_token_probs(critic, [[1]], [[]])[0].shape == (0, 3)


def test_config_rejects_bad_values():
    with pytest.raises(ValueError):
        CriticConfig(class_weights=[1.0, 2.0])
    with pytest.raises(ValueError):
        CriticConfig.from_dict({"epochs": 2, "bogus": 1})
    assert CriticConfig.from_dict(CriticConfig(epochs=2).to_dict()).epochs == 2


@pytest.mark.parametrize("lookahead", [0, 2])
def test_lookahead_lets_later_tokens_inform_a_token(tiny_model_dir, lookahead):
    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32)
    critic = build_critic(base, CriticConfig(lookahead=lookahead))
    a = predict_token_probs(critic, [[5, 6]], [[10, 11, 12, 13, 14]])[0]
    b = predict_token_probs(critic, [[5, 6]], [[10, 11, 12, 99, 14]])[0]  # only token 3 differs
    np.testing.assert_allclose(a[0], b[0], atol=1e-6)  # token 0 reads tokens 0..2 at most
    assert np.allclose(a[1], b[1], atol=1e-6) == (lookahead == 0)  # token 1 reads 1..3 with lookahead 2
