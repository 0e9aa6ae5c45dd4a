"""text2grad.ppo and text2grad.config against slow, obvious reference implementations in plain Python."""

from __future__ import annotations

import json
import math
import statistics

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from text2grad.config import TrainingConfig
from text2grad.ppo import (
    AdaptiveKLController,
    FixedKLController,
    full_kl,
    gae,
    masked_mean,
    masked_whiten,
    per_token_kl,
    policy_loss,
    shape_rewards,
    truncated_importance_weights,
    value_loss,
)

# -- reference implementations ----------------------------------------------------------------------------


def ref_gae(rewards: list[float], values: list[float], mask: list[int], gamma: float, lam: float):
    """GAE from its definition, A_k = Σ_{j≥k} (γλ)^{j−k} δ_j over the valid tokens only (holes skipped)."""
    valid = [t for t, m in enumerate(mask) if m]
    advantages = [0.0] * len(rewards)
    returns = [0.0] * len(rewards)
    for k, t in enumerate(valid):
        total = 0.0
        for j in range(k, len(valid)):
            here = valid[j]
            next_value = values[valid[j + 1]] if j + 1 < len(valid) else 0.0
            delta = rewards[here] + gamma * next_value - values[here]
            total += (gamma * lam) ** (j - k) * delta
        advantages[t] = total
        returns[t] = total + values[t]
    return advantages, returns


def ref_whiten(values: list[list[float]], mask: list[list[int]]) -> list[list[float]]:
    flat = [v for row, mrow in zip(values, mask, strict=True) for v, m in zip(row, mrow, strict=True) if m]
    mean, var = statistics.fmean(flat), statistics.variance(flat)
    return [
        [(v - mean) / math.sqrt(var + 1e-8) if m else 0.0 for v, m in zip(row, mrow, strict=True)]
        for row, mrow in zip(values, mask, strict=True)
    ]


def ref_policy_loss(logprobs, old_logprobs, advantages, mask, eps, weights=None):
    total, count, clipped = 0.0, 0, 0
    for i in range(len(logprobs)):
        for t in range(len(logprobs[i])):
            if not mask[i][t]:
                continue
            ratio = math.exp(logprobs[i][t] - old_logprobs[i][t])
            a = advantages[i][t]
            loss_unclipped = -a * ratio
            loss_clipped = -a * min(max(ratio, 1 - eps), 1 + eps)
            w = 1.0 if weights is None else weights[i][t]
            total += w * max(loss_unclipped, loss_clipped)
            clipped += loss_clipped > loss_unclipped
            count += 1
    return total / count, clipped / count


def ref_value_loss(values, old_values, returns, mask, clip):
    total, count = 0.0, 0
    for i in range(len(values)):
        for t in range(len(values[i])):
            if mask[i][t]:
                v_clipped = old_values[i][t] + min(max(values[i][t] - old_values[i][t], -clip), clip)
                total += 0.5 * max((values[i][t] - returns[i][t]) ** 2, (v_clipped - returns[i][t]) ** 2)
                count += 1
    return total / count


def ref_full_kl(logits_row: list[float], ref_row: list[float]) -> float:
    z = sum(math.exp(x) for x in logits_row)
    z_ref = sum(math.exp(x) for x in ref_row)
    kl = 0.0
    for x, y in zip(logits_row, ref_row, strict=True):
        p, q = math.exp(x) / z, math.exp(y) / z_ref
        kl += p * math.log(p / q)
    return kl


def t(rows) -> torch.Tensor:
    return torch.tensor(rows, dtype=torch.float64)


# -- masked statistics ------------------------------------------------------------------------------------


def test_masked_mean_ignores_padding_even_when_it_is_nan():
    values = torch.tensor([[1.0, 2.0, float("nan")], [3.0, float("inf"), 0.0]])
    mask = torch.tensor([[1, 1, 0], [1, 0, 0]])
    assert masked_mean(values, mask).item() == pytest.approx(2.0)
    assert masked_mean(values, mask, dim=1).tolist() == pytest.approx([1.5, 3.0])


def test_masked_whiten_matches_reference():
    values = [[1.0, -2.0, 5.0, 9.0], [0.5, 4.0, 0.0, 0.0]]
    mask = [[1, 1, 1, 0], [1, 1, 0, 0]]
    got = masked_whiten(t(values), t(mask))
    torch.testing.assert_close(got, t(ref_whiten(values, mask)), atol=1e-9, rtol=0)
    valid = t(mask).bool()
    assert got[valid].mean().item() == pytest.approx(0.0, abs=1e-12)
    assert got[valid].std().item() == pytest.approx(1.0, abs=1e-6)
    assert got[~valid].tolist() == [0.0, 0.0, 0.0]


def test_masked_whiten_single_token_does_not_produce_nan():
    got = masked_whiten(torch.tensor([[3.0, 7.0]]), torch.tensor([[1, 0]]))
    assert got.tolist() == [[0.0, 0.0]]


# -- GAE --------------------------------------------------------------------------------------------------


def test_gae_with_right_padding_matches_reference():
    rewards = [[0.5, -1.0, 0.0, 2.0, 9.0], [1.0, 0.0, 0.0, 0.0, 0.0]]
    values = [[0.1, 0.2, -0.3, 0.4, 7.0], [0.5, 3.0, 3.0, 3.0, 3.0]]
    mask = [[1, 1, 1, 1, 0], [1, 0, 0, 0, 0]]
    advantages, returns = gae(t(rewards), t(values), t(mask), gamma=0.9, lam=0.8)
    for i in range(2):
        ref_adv, ref_ret = ref_gae(rewards[i], values[i], mask[i], 0.9, 0.8)
        assert advantages[i].tolist() == pytest.approx(ref_adv, abs=1e-12)
        assert returns[i].tolist() == pytest.approx(ref_ret, abs=1e-12)
    # The last valid token does not bootstrap from the padding's value (7.0 / 3.0).
    assert advantages[0, 3].item() == pytest.approx(2.0 - 0.4)
    assert advantages[1, 0].item() == pytest.approx(1.0 - 0.5)


def test_gae_does_not_reset_at_a_masked_token_inside_the_response():
    # The paper's code zeroed the running advantage at masked tokens: token 0 would then get 0, not −1.
    rewards = t([[0.0, 5.0, -1.0]])
    advantages, _ = gae(rewards, torch.zeros(1, 3, dtype=torch.float64), t([[1, 0, 1]]), gamma=1.0, lam=1.0)
    assert advantages.tolist() == [[-1.0, 0.0, -1.0]]


def test_gae_lambda_one_gamma_one_is_reward_to_go_minus_value():
    rewards = [1.0, 2.0, -4.0, 0.5]
    values = [0.3, -0.2, 0.7, 0.1]
    advantages, returns = gae(t([rewards]), t([values]), t([[1, 1, 1, 1]]), gamma=1.0, lam=1.0)
    reward_to_go = [sum(rewards[k:]) for k in range(4)]
    assert returns[0].tolist() == pytest.approx(reward_to_go)
    assert advantages[0].tolist() == pytest.approx([g - v for g, v in zip(reward_to_go, values, strict=True)])


@settings(max_examples=60, deadline=None)
@given(
    data=st.lists(
        st.tuples(
            st.floats(-3, 3, allow_nan=False),
            st.floats(-3, 3, allow_nan=False),
            st.sampled_from([0, 1, 1, 1]),
        ),
        min_size=1,
        max_size=9,
    ),
    gamma=st.floats(0.0, 1.0),
    lam=st.floats(0.0, 1.0),
)
def test_gae_matches_reference_on_random_masks(data, gamma, lam):
    rewards, values, mask = (list(col) for col in zip(*data, strict=True))
    advantages, returns = gae(t([rewards]), t([values]), t([mask]), gamma=gamma, lam=lam)
    ref_adv, ref_ret = ref_gae(rewards, values, mask, gamma, lam)
    assert advantages[0].tolist() == pytest.approx(ref_adv, abs=1e-9)
    assert returns[0].tolist() == pytest.approx(ref_ret, abs=1e-9)


# -- rewards ----------------------------------------------------------------------------------------------


def test_token_and_scalar_reward_layouts():
    delta = [[1.0, -2.0, 0.5, 100.0], [-1.0, 0.0, 0.0, 0.0]]
    kl = [[0.1, 0.2, -0.3, 50.0], [0.4, 9.0, 9.0, 9.0]]
    mask = [[1, 1, 1, 0], [1, 0, 0, 0]]
    beta = 0.5
    token = shape_rewards(t(delta), t(kl), t(mask), beta, "token")
    scalar = shape_rewards(t(delta), t(kl), t(mask), beta, "scalar")
    for i in range(2):
        last = max(j for j, m in enumerate(mask[i]) if m)
        total = sum(d for d, m in zip(delta[i], mask[i], strict=True) if m)
        for j in range(4):
            penalty = -beta * kl[i][j] if mask[i][j] else 0.0
            expected_token = delta[i][j] + penalty if mask[i][j] else 0.0
            expected_scalar = (total if j == last else 0.0) + penalty
            assert token[i, j].item() == pytest.approx(expected_token)
            assert scalar[i, j].item() == pytest.approx(expected_scalar)
    # Both modes carry the same total human signal and the same KL penalty.
    assert token.sum().item() == pytest.approx(scalar.sum().item())


def test_terminal_reward_lands_on_last_valid_token_in_both_modes():
    mask = t([[1, 0, 1, 0]])  # a hole: the last valid token is index 2
    for mode in ("token", "scalar"):
        rewards = shape_rewards(
            torch.zeros(1, 4, dtype=torch.float64),
            torch.zeros(1, 4),
            mask,
            0.1,
            mode,
            terminal_rewards=t([0.7]),
        )
        assert rewards.tolist() == [[0.0, 0.0, 0.7, 0.0]]


def test_unknown_reward_mode_is_refused():
    with pytest.raises(ValueError, match="reward mode"):
        shape_rewards(torch.zeros(1, 1), torch.zeros(1, 1), torch.ones(1, 1), 0.1, "dense")


# -- KL ---------------------------------------------------------------------------------------------------


def test_per_token_kl_estimators_match_formulas():
    logp = [-0.5, -2.0, -1.0]
    ref = [-1.5, -0.1, -1.0]
    for estimator, formula in {
        "k1": lambda lp, rp: lp - rp,
        "k2": lambda lp, rp: 0.5 * (rp - lp) ** 2,
        "k3": lambda lp, rp: math.exp(rp - lp) - 1 - (rp - lp),
    }.items():
        got = per_token_kl(t(logp), t(ref), estimator)
        assert got.tolist() == pytest.approx([formula(a, b) for a, b in zip(logp, ref, strict=True)])
    with pytest.raises(ValueError):
        per_token_kl(t(logp), t(ref), "full")


def test_sampled_estimators_are_unbiased_for_the_full_kl():
    # k1 and k3 averaged over samples from π converge to the exact KL that full_kl computes.
    torch.manual_seed(0)
    logits, ref_logits = torch.randn(6), torch.randn(6)
    exact = full_kl(logits.view(1, 1, 6), ref_logits.view(1, 1, 6)).item()
    samples = torch.distributions.Categorical(logits=logits).sample((200_000,))
    logp = torch.log_softmax(logits, -1)[samples]
    ref = torch.log_softmax(ref_logits, -1)[samples]
    assert per_token_kl(logp, ref, "k1").mean().item() == pytest.approx(exact, abs=0.01)
    assert per_token_kl(logp, ref, "k3").mean().item() == pytest.approx(exact, abs=0.01)


def test_full_kl_matches_reference_and_masks():
    torch.manual_seed(1)
    logits = torch.randn(2, 3, 5, dtype=torch.float64)
    ref_logits = torch.randn(2, 3, 5, dtype=torch.float64)
    mask = t([[1, 1, 0], [1, 0, 0]])
    got = full_kl(logits, ref_logits, mask)
    for i in range(2):
        for j in range(3):
            expected = ref_full_kl(logits[i, j].tolist(), ref_logits[i, j].tolist()) if mask[i, j] else 0.0
            assert got[i, j].item() == pytest.approx(expected, abs=1e-6)
    assert full_kl(logits, logits).abs().max().item() < 1e-6


# -- losses -----------------------------------------------------------------------------------------------


def test_policy_loss_matches_reference_with_clipped_branches_active():
    eps = 0.2
    # ratios: 1.5 (A>0 → clipped), 0.5 (A<0 → clipped), 1.5 (A<0 → unclipped, larger), 1.1 (inside), pad
    logprobs = [[math.log(1.5), math.log(0.5), math.log(1.5), math.log(1.1), 3.0]]
    old = [[0.0, 0.0, 0.0, 0.0, 0.0]]
    adv = [[1.0, -2.0, -1.0, 0.5, 7.0]]
    mask = [[1, 1, 1, 1, 0]]
    loss, stats = policy_loss(t(logprobs), t(old), t(adv), t(mask), eps)
    ref_loss, ref_clipfrac = ref_policy_loss(logprobs, old, adv, mask, eps)
    assert loss.item() == pytest.approx(ref_loss)
    assert loss.item() == pytest.approx((-1.2 + 2 * 0.8 + 1.5 - 0.55) / 4)
    assert stats["clipfrac"] == pytest.approx(ref_clipfrac) == pytest.approx(0.5)
    assert stats["ratio"] == pytest.approx((1.5 + 0.5 + 1.5 + 1.1) / 4)
    assert stats["approx_kl"] == pytest.approx(
        0.5 * (math.log(1.5) ** 2 * 2 + math.log(0.5) ** 2 + math.log(1.1) ** 2) / 4
    )


def test_policy_loss_gradient_is_zero_exactly_on_clipped_tokens():
    logprobs = t([[math.log(1.5), math.log(0.5), math.log(1.5), math.log(1.1)]]).requires_grad_()
    loss, _ = policy_loss(logprobs, torch.zeros(1, 4), t([[1.0, -2.0, -1.0, 0.5]]), torch.ones(1, 4), 0.2)
    loss.backward()
    grad = logprobs.grad[0].tolist()
    assert grad[0] == 0.0 and grad[1] == 0.0
    # d/dlogp of −A·ratio/4 = −A·ratio/4
    assert grad[2] == pytest.approx(1.0 * 1.5 / 4) and grad[3] == pytest.approx(-0.5 * 1.1 / 4)


def test_policy_loss_weights_and_global_token_count():
    logprobs = t([[-0.1, -0.3, 0.0]])
    old = t([[-0.2, -0.2, 0.0]])
    adv = t([[1.0, -1.0, 5.0]])
    mask = t([[1, 1, 0]])
    weights = [[0.5, 2.0, 9.0]]
    loss, _ = policy_loss(logprobs, old, adv, mask, 0.2, t(weights))
    ref_loss, _ = ref_policy_loss(logprobs.tolist(), old.tolist(), adv.tolist(), mask.tolist(), 0.2, weights)
    assert loss.item() == pytest.approx(ref_loss)
    # Dividing by a global count of 8 tokens (this shard holds 2 of them) scales the mean by 2/8.
    sharded, _ = policy_loss(logprobs, old, adv, mask, 0.2, t(weights), num_tokens=8)
    assert sharded.item() == pytest.approx(ref_loss * 2 / 8)


def test_value_loss_matches_reference_with_clipped_branch_active():
    values = [[1.0, 0.1, -0.5, 4.0]]
    old = [[0.0, 0.0, 0.0, 0.0]]
    returns = [[0.5, 1.0, -0.5, 0.0]]
    mask = [[1, 1, 1, 0]]
    loss, stats = value_loss(t(values), t(old), t(returns), t(mask), clip=0.2)
    assert loss.item() == pytest.approx(ref_value_loss(values, old, returns, mask, 0.2))
    # token 0: clipped V=0.2 → (0.3)² < (0.5)²: unclipped wins; token 2: clipped V=−0.2 → 0.09 > 0: clipped wins
    assert stats["vf_clipfrac"] == pytest.approx(1 / 3)
    v = t(values).requires_grad_()
    value_loss(v, t(old), t(returns), t(mask), clip=0.2)[0].backward()
    assert v.grad[0, 2].item() == 0.0  # the clipped branch carries no gradient
    assert v.grad[0, 0].item() == pytest.approx((1.0 - 0.5) / 3)


def test_truncated_importance_weights_match_reference():
    old = [[-1.0, -0.2, -3.0, 0.0]]
    behaviour = [[-2.0, -0.1, -0.5, -50.0]]
    mask = [[1, 1, 1, 0]]
    got = truncated_importance_weights(t(old), t(behaviour), t(mask), cap=2.0)
    expected = [
        min(math.exp(o - b), 2.0) if m else 0.0 for o, b, m in zip(old[0], behaviour[0], mask[0], strict=True)
    ]
    assert got[0].tolist() == pytest.approx(expected)
    assert got[0, 0].item() == 2.0  # e¹ capped
    # An extreme stale token is capped rather than overflowing to inf.
    assert truncated_importance_weights(t([[0.0]]), t([[-1e4]]), t([[1]]), cap=2.0).item() == 2.0


# -- KL controllers ---------------------------------------------------------------------------------------


def test_adaptive_kl_controller_follows_ziegler_update():
    ctl = AdaptiveKLController(0.1, target=6.0, horizon=10000)
    expected = 0.1
    for kl, n in [(9.0, 16), (6.0, 16), (3.0, 32), (100.0, 500), (0.0, 500)]:
        ctl.update(kl, n)
        error = min(max(kl / 6.0 - 1, -0.2), 0.2)
        expected *= 1 + error * n / 10000
        assert ctl.value == pytest.approx(expected)
    assert ctl.value < 0.1  # the last two updates were clipped symmetrically, net slightly below start


def test_fixed_kl_controller_never_moves():
    ctl = FixedKLController(0.05)
    ctl.update(1000.0, 10000)
    assert ctl.value == 0.05


# -- config -----------------------------------------------------------------------------------------------


def test_config_json_round_trip():
    cfg = TrainingConfig(
        mode="scalar", lora_target_modules=["q_proj"], kl_estimator="full", learning_rate=3e-4
    )
    stored = json.loads(json.dumps(cfg.to_dict()))
    assert TrainingConfig.from_dict(stored) == cfg


def test_config_missing_keys_take_defaults_and_ints_widen_to_float():
    cfg = TrainingConfig.from_dict({"learning_rate": 1, "gamma": 1})
    assert cfg.learning_rate == 1.0 and isinstance(cfg.learning_rate, float)
    assert cfg.ppo_epochs == TrainingConfig().ppo_epochs


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"learning_rat": 1e-4}, "unknown training config key"),
        ({"ppo_epochs": 2.0}, "ppo_epochs must be int"),
        ({"ppo_epochs": True}, "ppo_epochs must be int"),
        ({"adaptive_kl": 1}, "adaptive_kl must be bool"),
        ({"mode": "dense"}, "mode must be one of"),
        ({"kl_estimator": "k9"}, "kl_estimator must be one of"),
        ({"lora_target_modules": "q_proj"}, "lora_target_modules must be a list"),
        ({"learning_rate": "1e-4"}, "learning_rate must be float"),
        ({"learning_rate": float("nan")}, "learning_rate must be finite"),
        ({"clip_eps": 0}, "clip_eps must be > 0"),
        ({"lam": 1.5}, "lam must be in"),
        ({"importance_cap": 0.5}, "importance_cap must be >= 1"),
        ({"lora_target_modules": []}, "at least one module"),
    ],
)
def test_config_rejects_bad_values(data, message):
    with pytest.raises(ValueError, match=message):
        TrainingConfig.from_dict(data)


def test_config_fields_all_have_defaults_and_a_comment():
    import dataclasses
    import inspect

    import text2grad.config as module

    source = inspect.getsource(module.TrainingConfig)
    lines = source.splitlines()
    for f in dataclasses.fields(TrainingConfig):
        assert f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING
        index = next(i for i, line in enumerate(lines) if line.strip().startswith(f"{f.name}:"))
        assert lines[index - 1].strip().startswith("#"), f"{f.name} has no comment saying why"
