"""text2grad.policy and text2grad.engine on a tiny randomly initialised llama (no hub, no Django)."""

from __future__ import annotations

import copy
import math
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaConfig, LlamaForCausalLM

from text2grad.config import TrainingConfig
from text2grad.engine import Sample, collate, make_kl_controller, make_optimizer, ppo_update
from text2grad.policy import (
    VALUE_HEAD_FILE,
    PolicyWithValueHead,
    build_policy,
    pad_batch,
    reference_logprobs,
    response_logprobs,
    save_policy_atomic,
)
from text2grad.ppo import full_kl

VOCAB = 512
EMBEDDED_MODEL = Path(__file__).resolve().parents[2] / "var" / "models" / "base"


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    # A 32-wide model gains nothing from intra-op threads, and on a busy 2-core machine OpenMP's spinning
    # threads made these tests 10-40x slower. Restored afterwards: the thread count is process-global.
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def tiny_base(seed: int = 0) -> LlamaForCausalLM:
    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=VOCAB,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        pad_token_id=0,
    )
    return LlamaForCausalLM(config).eval()


def cfg(**overrides) -> TrainingConfig:
    # Deterministic (no dropout) and fast; lr high enough for a 32-wide model to move in a few steps.
    base = {"learning_rate": 1e-2, "lora_dropout": 0.0, "minibatch_size": 2, "ppo_epochs": 2, "kl_coef": 0.0}
    base.update(overrides)
    return TrainingConfig(**base)


SAMPLES = [
    Sample([1, 2, 3], [10, 11, 12], [1.0, 0.0, -1.0]),
    Sample([4, 5], [20, 21, 22, 23, 24], [0.0, -1.0, -1.0, 0.0, 0.5]),
    Sample([6], [30], [1.0]),
    Sample([7, 8, 9, 10, 11], [40, 41], [-0.5, 0.5]),
]


def base_logprobs(model: LlamaForCausalLM, sample: Sample) -> torch.Tensor:
    """log p(a_t) of the response under a plain model, one unpadded sequence, the textbook way."""
    ids = torch.tensor([sample.prompt_ids + sample.response_ids])
    with torch.no_grad():
        logits = model(input_ids=ids).logits[0]
    logp = torch.log_softmax(logits.float(), -1)
    start = len(sample.prompt_ids)
    return torch.stack([logp[start - 1 + k, tok] for k, tok in enumerate(sample.response_ids)])


def trained_policy(
    config: TrainingConfig | None = None, updates: int = 1
) -> tuple[PolicyWithValueHead, LlamaForCausalLM]:
    base = tiny_base()
    pristine = copy.deepcopy(base)
    config = config or cfg()
    policy = build_policy(base, config)
    optimizer, kl_ctl = make_optimizer(policy, config), make_kl_controller(config)
    for _ in range(updates):
        ppo_update(policy, SAMPLES, config, kl_ctl, optimizer=optimizer)
    return policy, pristine


def adapter_state(policy: PolicyWithValueHead) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone() for n, p in policy.named_parameters() if p.requires_grad}


# -- LoRA smoke test --------------------------------------------------------------------------------------


def test_update_changes_adapter_and_value_head_but_not_base_weights():
    base = tiny_base()
    config = cfg(lora_dropout=0.05)  # the paper's dropout, active in the gradient steps only
    policy = build_policy(base, config)
    assert not policy.training
    trainable_before = adapter_state(policy)
    frozen_before = {n: p.detach().clone() for n, p in policy.named_parameters() if not p.requires_grad}
    assert any("lora_A" in n for n in trainable_before) and any("lora_B" in n for n in trainable_before)
    assert {"value_head.weight", "value_head.bias"} <= set(trainable_before)
    assert all("lora_" in n or n.startswith("value_head") for n in trainable_before)

    metrics = ppo_update(policy, SAMPLES, config, make_kl_controller(config))

    for name, before in trainable_before.items():
        assert not torch.equal(before, dict(policy.named_parameters())[name]), f"{name} did not change"
    for name, before in frozen_before.items():
        assert torch.equal(before, dict(policy.named_parameters())[name]), f"base weight {name} changed"
    assert not policy.training  # the update restores the mode it found
    # 4 samples / minibatch 2 × 2 epochs
    assert metrics["optimizer_steps"] == 4
    assert metrics["num_tokens"] == 11
    assert metrics["mean_token_reward"] == pytest.approx(sum(sum(s.token_rewards) for s in SAMPLES) / 11)
    for key in ("policy_loss", "value_loss", "kl", "clipfrac", "ratio", "approx_kl", "entropy", "grad_norm"):
        assert math.isfinite(metrics[key]), key
    # With the adapter still at its zero-B init, the rollout policy is the base model: KL exactly 0.
    assert metrics["kl"] == 0.0
    assert 0 < metrics["entropy"] <= math.log(VOCAB) + 1e-4


def test_micro_batches_accumulate_to_the_same_update_and_metrics():
    """Splitting each minibatch into micro-batches changes only how many rows are alive at once."""
    whole, _ = trained_policy(cfg(minibatch_size=4, micro_batch_size=4))
    split, _ = trained_policy(cfg(minibatch_size=4, micro_batch_size=1))
    uneven, _ = trained_policy(cfg(minibatch_size=4, micro_batch_size=3))
    reference = adapter_state(whole)
    assert reference["value_head.bias"].abs().sum() > 0  # the update did move something
    for other in (split, uneven):
        for name, value in adapter_state(other).items():
            torch.testing.assert_close(value, reference[name], atol=1e-6, rtol=1e-5, msg=name)

    metrics = {}
    for micro in (4, 1):
        config = cfg(minibatch_size=4, micro_batch_size=micro)
        metrics[micro] = ppo_update(
            build_policy(tiny_base(), config), SAMPLES, config, make_kl_controller(config)
        )
    for key in ("policy_loss", "value_loss", "clipfrac", "ratio", "entropy", "grad_norm", "num_tokens"):
        assert metrics[1][key] == pytest.approx(metrics[4][key], rel=1e-5, abs=1e-7), key


def test_reference_logprobs_are_the_base_model_and_differ_from_the_policy():
    policy, pristine = trained_policy()
    batch = collate(SAMPLES, policy.pad_token_id)
    reference = reference_logprobs(policy, batch)
    with torch.no_grad():
        current = response_logprobs(policy, batch)
    for i, sample in enumerate(SAMPLES):
        n = len(sample.response_ids)
        expected = base_logprobs(pristine, sample)
        torch.testing.assert_close(reference[i, :n], expected, atol=1e-5, rtol=0)
        assert (current[i, :n] - expected).abs().max().item() > 1e-3  # the adapter is really on outside
    # And the adapter is on again after the context manager.
    with torch.no_grad():
        torch.testing.assert_close(response_logprobs(policy, batch), current)


def test_batched_scores_equal_unbatched_scores():
    policy, _ = trained_policy()
    batch = collate(SAMPLES, policy.pad_token_id)
    with torch.no_grad():
        batched = policy.score_responses(batch)
        for i, sample in enumerate(SAMPLES):
            alone = policy.score_responses(collate([sample], policy.pad_token_id))
            n = len(sample.response_ids)
            torch.testing.assert_close(batched.logprobs[i, :n], alone.logprobs[0], atol=1e-5, rtol=0)
            torch.testing.assert_close(batched.values[i, :n], alone.values[0], atol=1e-5, rtol=0)
            # ... and both agree with full-sequence logits/values from forward() on the unpadded row.
            ids = torch.tensor([sample.prompt_ids + sample.response_ids])
            logits, values = policy(ids, torch.ones_like(ids))
            start = len(sample.prompt_ids) - 1
            logp = torch.log_softmax(logits[0, start : start + n], -1)
            expected = logp.gather(-1, torch.tensor(sample.response_ids).unsqueeze(-1)).squeeze(-1)
            torch.testing.assert_close(alone.logprobs[0], expected, atol=1e-5, rtol=0)
            torch.testing.assert_close(alone.values[0], values[0, start : start + n], atol=1e-6, rtol=0)


def test_pad_batch_layout_and_validation():
    batch = pad_batch([[5, 6, 7], [8]], [[9], [10, 11]], pad_token_id=0, response_width=4)
    assert batch.input_ids.tolist() == [[5, 6, 7, 9, 0, 0, 0], [0, 0, 8, 10, 11, 0, 0]]
    assert batch.response_mask.tolist() == [[True, False, False, False], [True, True, False, False]]
    assert batch.position_ids[1].tolist()[2:5] == [0, 1, 2]
    with pytest.raises(ValueError, match="at least one token"):
        pad_batch([[]], [[1]], pad_token_id=0)


# -- the update moves probabilities where the critique points ---------------------------------------------


def logprobs_of(policy: PolicyWithValueHead, samples: list[Sample]) -> list[torch.Tensor]:
    with torch.no_grad():
        return [response_logprobs(policy, collate([s], policy.pad_token_id))[0] for s in samples]


def run_updates(config: TrainingConfig, samples: list[Sample], updates: int) -> tuple[list, list]:
    policy = build_policy(tiny_base(), config)
    before = logprobs_of(policy, samples)
    optimizer, kl_ctl = make_optimizer(policy, config), make_kl_controller(config)
    generator = torch.Generator().manual_seed(0)
    for _ in range(updates):
        ppo_update(policy, samples, config, kl_ctl, optimizer=optimizer, generator=generator)
    return before, logprobs_of(policy, samples)


def test_positive_tokens_become_likelier_and_negative_tokens_less_likely():
    samples = [
        Sample([1, 2, 3], [10, 11, 12], [1.0, 1.0, 1.0]),
        Sample([1, 2, 3], [20, 21, 22], [-1.0, -1.0, -1.0]),
        Sample([4, 5], [30, 31], [1.0, 1.0]),
        Sample([4, 5], [40, 41], [-1.0, -1.0]),
    ]
    before, after = run_updates(cfg(ppo_epochs=4), samples, updates=4)
    moves = {+1.0: [], -1.0: []}
    for sample, b, a in zip(samples, before, after, strict=True):
        for reward, lp_before, lp_after in zip(sample.token_rewards, b.tolist(), a.tolist(), strict=True):
            moves[reward].append(lp_after - lp_before)
    assert all(m > 0 for m in moves[+1.0]), moves
    assert all(m < 0 for m in moves[-1.0]), moves
    assert sum(moves[+1.0]) / len(moves[+1.0]) > 0.1 and sum(moves[-1.0]) / len(moves[-1.0]) < -0.1


def test_token_mode_assigns_credit_per_token_where_scalar_mode_cannot():
    # One response, the critique dislikes only its last token. λ = 0 makes each token's advantage its own
    # reward (minus the critic), which is what separates the two modes most clearly.
    samples = [Sample([1, 2, 3], [10, 11, 12, 13], [1.0, 1.0, 1.0, -1.0]), Sample([7], [50, 51], [0.0, 0.0])]
    before, after = run_updates(cfg(mode="token", lam=0.0, whiten_advantages=False), samples, updates=4)
    delta = (after[0] - before[0]).tolist()
    assert all(d > 0.02 for d in delta[:3]) and delta[3] < -0.02
    # Scalar PPO sees the sum (+2) at the end only: the disliked last token is pushed *up*.
    before, after = run_updates(cfg(mode="scalar", lam=0.0, whiten_advantages=False), samples, updates=4)
    assert (after[0] - before[0])[3].item() > 0.02


def test_scalar_mode_shares_the_code_path():
    # With one-token responses "sum on the last token" is the token itself: both modes must be identical.
    one_token = [Sample([1, 2], [10], [1.0]), Sample([3], [20], [-1.0]), Sample([4, 5, 6], [30], [0.5])]
    states = {}
    for mode in ("token", "scalar"):
        config = cfg(mode=mode, kl_coef=0.1)
        policy = build_policy(tiny_base(), config)
        ppo_update(policy, one_token, config, make_kl_controller(config))
        states[mode] = adapter_state(policy)
    for name in states["token"]:
        assert torch.equal(states["token"][name], states["scalar"][name]), name
    # With longer responses the layouts differ and so do the updates.
    for mode in ("token", "scalar"):
        config = cfg(mode=mode)
        policy = build_policy(tiny_base(), config)
        ppo_update(policy, SAMPLES, config, make_kl_controller(config))
        states[mode] = adapter_state(policy)
    assert not torch.equal(states["token"]["value_head.weight"], states["scalar"]["value_head.weight"])


# -- off-policy samples, KL, cancellation -----------------------------------------------------------------


def test_on_policy_behaviour_logprobs_give_unit_weights_and_the_same_update():
    config = cfg()
    results = []
    for with_behaviour in (False, True):
        policy = build_policy(tiny_base(), config)
        samples = SAMPLES
        if with_behaviour:
            current = logprobs_of(policy, SAMPLES)
            samples = [
                Sample(s.prompt_ids, s.response_ids, s.token_rewards, behaviour_logprobs=lp.tolist())
                for s, lp in zip(SAMPLES, current, strict=True)
            ]
        metrics = ppo_update(policy, samples, config, make_kl_controller(config))
        results.append((metrics, adapter_state(policy)))
    assert results[1][0]["importance_weight"] == pytest.approx(1.0, abs=1e-5)
    for name, tensor in results[0][1].items():
        torch.testing.assert_close(results[1][1][name], tensor, atol=1e-5, rtol=1e-4)


def test_stale_samples_are_down_weighted():
    config = cfg()
    policy = build_policy(tiny_base(), config)
    current = logprobs_of(policy, SAMPLES)
    # μ thought these tokens were 4× likelier than π does now: weight e^{−log 4} = 0.25 each.
    stale = [
        Sample(s.prompt_ids, s.response_ids, s.token_rewards, behaviour_logprobs=(lp + math.log(4)).tolist())
        for s, lp in zip(SAMPLES, current, strict=True)
    ]
    metrics = ppo_update(policy, stale, config, make_kl_controller(config))
    assert metrics["importance_weight"] == pytest.approx(0.25, abs=1e-4)


def test_full_kl_estimator_reports_the_exact_kl_and_adapts_beta():
    policy, pristine = trained_policy(updates=2)
    config = cfg(kl_estimator="full", kl_coef=0.1, adaptive_kl=True, kl_target=6.0, kl_horizon=100)
    expected = []
    with torch.no_grad():
        for sample in SAMPLES:
            ids = torch.tensor([sample.prompt_ids + sample.response_ids])
            logits, _ = policy(ids, torch.ones_like(ids))
            ref_logits = pristine(input_ids=ids).logits
            start, n = len(sample.prompt_ids) - 1, len(sample.response_ids)
            expected.append(
                full_kl(logits[:, start : start + n], ref_logits[:, start : start + n]).sum().item()
            )
    kl_ctl = make_kl_controller(config)
    metrics = ppo_update(policy, SAMPLES, config, kl_ctl)
    assert metrics["kl"] == pytest.approx(sum(expected) / len(expected), rel=1e-4)
    assert metrics["kl"] > 0
    error = min(max(metrics["kl"] / 6.0 - 1, -0.2), 0.2)
    assert kl_ctl.value == pytest.approx(0.1 * (1 + error * len(SAMPLES) / 100))
    assert metrics["kl_coef"] == 0.1 and metrics["kl_coef_next"] == kl_ctl.value


def test_on_step_reports_each_step_and_should_stop_cancels_between_steps():
    config = cfg()
    policy = build_policy(tiny_base(), config)
    seen: list[dict] = []
    metrics = ppo_update(
        policy,
        SAMPLES,
        config,
        make_kl_controller(config),
        on_step=seen.append,
        should_stop=lambda: len(seen) >= 3,
    )
    assert [m["step"] for m in seen] == [0, 1, 2]
    assert [m["epoch"] for m in seen] == [0, 0, 1]
    assert metrics["stopped"] is True and metrics["optimizer_steps"] == 3
    assert {"policy_loss", "value_loss", "clipfrac", "approx_kl", "ratio", "grad_norm", "entropy"} <= set(
        seen[0]
    )


# -- persistence ------------------------------------------------------------------------------------------


def test_save_and_load_round_trip_reproduces_logits_and_values(tmp_path: Path):
    policy, pristine = trained_policy()
    policy.eval()
    final = save_policy_atomic(policy, tmp_path / "v1")
    assert (final / VALUE_HEAD_FILE).exists() and (final / "adapter_model.safetensors").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["v1"]  # no temporary folder left behind
    with pytest.raises(FileExistsError):
        save_policy_atomic(policy, final)

    loaded = build_policy(pristine, cfg(), adapter_dir=final).eval()
    ids = torch.tensor([[1, 2, 3, 10, 11, 12], [0, 4, 5, 20, 21, 22]])
    mask = torch.tensor([[1, 1, 1, 1, 1, 1], [0, 1, 1, 1, 1, 1]])
    with torch.no_grad():
        logits, values = policy(ids, mask)
        logits_loaded, values_loaded = loaded(ids, mask)
    torch.testing.assert_close(logits_loaded, logits, atol=1e-6, rtol=0)
    torch.testing.assert_close(values_loaded, values, atol=1e-6, rtol=0)

    # The loaded version continues training: its adapter is trainable and moves.
    before = adapter_state(loaded)
    assert any("lora_B" in n for n in before)
    ppo_update(loaded, SAMPLES, cfg(), make_kl_controller(cfg()))
    assert any(not torch.equal(before[n], p) for n, p in loaded.named_parameters() if "lora_B" in n)


def test_new_adapter_initialisation_is_seeded_by_config():
    a = adapter_state(build_policy(tiny_base(), cfg(seed=3)))
    b = adapter_state(build_policy(tiny_base(), cfg(seed=3)))
    c = adapter_state(build_policy(tiny_base(), cfg(seed=4)))
    lora_a = next(n for n in a if "lora_A" in n)
    assert torch.equal(a[lora_a], b[lora_a]) and not torch.equal(a[lora_a], c[lora_a])


# -- the real embedded model ------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.skipif(not (EMBEDDED_MODEL / "config.json").exists(), reason="embedded SmolLM2 not cached")
def test_embedded_model_scores_padded_batches_like_single_rows_and_reference_is_base():
    tokenizer = AutoTokenizer.from_pretrained(EMBEDDED_MODEL)
    base = AutoModelForCausalLM.from_pretrained(EMBEDDED_MODEL).eval()
    pairs = [
        ("What is 2+2?", "The answer is 4."),
        ("Name a fruit.", "Orange, which is also a colour, is one."),
    ]
    samples = []
    for question, answer in pairs:
        prompt = tokenizer.apply_chat_template(
            [{"role": "user", "content": question}], add_generation_prompt=True
        )
        prompt = prompt if isinstance(prompt, list) else prompt["input_ids"]
        response = tokenizer(answer, add_special_tokens=False)["input_ids"]
        samples.append(Sample(list(prompt), response, [0.0] * len(response)))
    expected = [base_logprobs(base, s) for s in samples]  # before peft touches the model

    policy = build_policy(base, TrainingConfig())
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, param in policy.named_parameters():
            if "lora_B" in name:  # a non-trivial adapter, as after training
                param.copy_(torch.randn(param.shape, generator=generator) * 0.01)
        batch = collate(samples, policy.pad_token_id)
        batched = policy.score_responses(batch)
        reference = reference_logprobs(policy, batch)
        for i, sample in enumerate(samples):
            n = len(sample.response_ids)
            alone = policy.score_responses(collate([sample], policy.pad_token_id))
            torch.testing.assert_close(batched.logprobs[i, :n], alone.logprobs[0], atol=1e-4, rtol=0)
            torch.testing.assert_close(batched.values[i, :n], alone.values[0], atol=1e-4, rtol=0)
            torch.testing.assert_close(reference[i, :n], expected[i], atol=1e-4, rtol=0)
            assert (batched.logprobs[i, :n] - expected[i]).abs().max().item() > 1e-3


def test_stop_before_the_first_step_changes_nothing_and_errors_restore_the_mode():
    config = cfg()
    policy = build_policy(tiny_base(), config)
    before = adapter_state(policy)
    metrics = ppo_update(policy, SAMPLES, config, make_kl_controller(config), should_stop=lambda: True)
    assert metrics["stopped"] is True and metrics["optimizer_steps"] == 0 and metrics["policy_loss"] is None
    assert all(torch.equal(before[n], p) for n, p in policy.named_parameters() if p.requires_grad)

    def explode(_metrics: dict) -> None:
        raise RuntimeError("worker lost its lease")

    with pytest.raises(RuntimeError, match="lease"):
        ppo_update(policy, SAMPLES, config, make_kl_controller(config), on_step=explode)
    assert not policy.training  # not left in train mode with dropout on
