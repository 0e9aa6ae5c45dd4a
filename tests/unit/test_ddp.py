"""Two gloo processes under torchrun produce the same update as one process on the same data.

The worker code below is written to a file and launched with ``python -m torch.distributed.run``; the
test process executes the very same code in-process (world size 1) as the reference, so the model, data,
config and seeds cannot drift apart between the two setups.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

REPO_ROOT = Path(__file__).resolve().parents[2]

WORKER = textwrap.dedent(
    """
    import sys

    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from text2grad.config import TrainingConfig
    from text2grad.engine import Sample, make_kl_controller, make_optimizer, ppo_update
    from text2grad.policy import build_policy

    # Minibatches of 2 over 5 samples: sizes 2, 2, 1, so one step leaves rank 1 without rows, and the
    # ranks hold different token counts; one sample is off-policy (importance weights).
    CONFIG = TrainingConfig(
        learning_rate=1e-2, lora_dropout=0.0, minibatch_size=2, ppo_epochs=2, kl_coef=0.05, kl_horizon=100
    )
    SAMPLES = [
        Sample([1, 2, 3], [10, 11, 12], [1.0, 0.0, -1.0]),
        Sample([4, 5], [20, 21, 22, 23, 24], [0.0, -1.0, -1.0, 0.0, 0.5]),
        Sample([6], [30], [1.0], behaviour_logprobs=[-5.5]),
        Sample([7, 8, 9, 10, 11], [40, 41], [-0.5, 0.5]),
        Sample([12, 13], [50, 51, 52, 53], [0.0, 0.0, 1.0, 1.0]),
    ]


    def run(collective=None, updates=2):
        torch.manual_seed(0)
        config = LlamaConfig(
            vocab_size=512, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
            num_attention_heads=4, num_key_value_heads=2, pad_token_id=0,
        )
        policy = build_policy(LlamaForCausalLM(config).eval(), CONFIG)
        optimizer, kl_ctl = make_optimizer(policy, CONFIG), make_kl_controller(CONFIG)
        generator = torch.Generator().manual_seed(123)  # the same seed on every rank
        metrics = [
            ppo_update(
                policy, SAMPLES, CONFIG, kl_ctl, optimizer=optimizer, generator=generator, collective=collective
            )
            for _ in range(updates)
        ]
        state = {n: p.detach().clone() for n, p in policy.named_parameters() if p.requires_grad}
        return policy, state, metrics, kl_ctl.value


    if __name__ == "__main__":
        import torch.distributed as dist

        from text2grad.distributed import init_distributed, sync_trainable_parameters, trainable_parameters_in_sync

        torch.set_num_threads(1)
        collective = init_distributed("gloo")
        policy, state, metrics, beta = run(collective)
        in_sync = trainable_parameters_in_sync(policy, collective)
        torch.save(
            {"state": state, "metrics": metrics, "beta": beta, "in_sync": in_sync, "world": collective.world_size},
            f"{sys.argv[1]}/rank{collective.rank}.pt",
        )
        dist.destroy_process_group()
    """
)


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    # Tiny model: intra-op threads only add OpenMP contention on a busy 2-core machine.
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.mark.heavy
def test_two_process_update_equals_single_process_update(tmp_path: Path):
    script = tmp_path / "ddp_worker.py"
    script.write_text(WORKER)
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")])),
        "OMP_NUM_THREADS": "1",
    }
    # --standalone: a rendezvous on a free localhost port, so parallel test runs cannot collide.
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    result = subprocess.run(
        [*command, str(script), str(tmp_path)],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=False) for r in range(2)]
    assert all(r["world"] == 2 and r["in_sync"] for r in ranks)

    namespace: dict = {"__name__": "ddp_reference"}
    exec(compile(WORKER, str(script), "exec"), namespace)
    _, single_state, single_metrics, single_beta = namespace["run"]()

    for name, expected in single_state.items():
        assert torch.equal(ranks[0]["state"][name], ranks[1]["state"][name]), f"ranks disagree on {name}"
        torch.testing.assert_close(ranks[0]["state"][name], expected, atol=2e-5, rtol=1e-4, msg=name)
    # The weights really moved, so agreeing is not trivial.
    lora_b = next(n for n in single_state if "lora_B" in n)
    assert single_state[lora_b].abs().max().item() > 1e-3

    for distributed, single in zip(ranks[0]["metrics"], single_metrics, strict=True):
        assert distributed["optimizer_steps"] == single["optimizer_steps"] == 6
        for key in ("policy_loss", "value_loss", "kl", "clipfrac", "ratio", "entropy", "importance_weight"):
            assert distributed[key] == pytest.approx(single[key], rel=1e-4, abs=1e-5), key
    assert ranks[0]["beta"] == pytest.approx(single_beta, rel=1e-6)
