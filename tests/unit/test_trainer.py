"""text2grad.trainer on the tiny random llama: the module's notebook example as written, resume, stop."""

from __future__ import annotations

import doctest

import pytest
import torch
from transformers import AutoModelForCausalLM, LlamaConfig, LlamaForCausalLM

from text2grad import trainer
from text2grad.config import TrainingConfig
from text2grad.engine import Sample
from text2grad.policy import build_policy
from text2grad.rewards import tokenize_response

pytestmark = pytest.mark.heavy  # each test trains a tiny policy


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def _run_module_example(tiny_model_dir, out_dir) -> dict:
    """Run the module docstring's example (``>>>`` lines and their expected output) as a doctest."""
    (test,) = [t for t in doctest.DocTestFinder().find(trainer) if t.name == "text2grad.trainer"]
    test.globs.update({"MODEL": str(tiny_model_dir), "OUT": str(out_dir)})
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    runner.run(test, clear_globs=False)
    assert runner.failures == 0 and runner.tries >= 10, runner.summarize()
    return test.globs


def _span_logprobs(model, sample: Sample, picked: list[int]) -> float:
    ids = torch.tensor([sample.prompt_ids + sample.response_ids])
    with torch.no_grad():
        logits = model(input_ids=ids).logits[0, len(sample.prompt_ids) - 1 : -1].float().log_softmax(-1)
    chosen = logits.gather(-1, torch.tensor(sample.response_ids)[:, None]).squeeze(-1)
    return chosen[picked].mean().item()


def test_the_notebook_example_trains_the_adapter_and_moves_the_poor_span_down(tiny_model_dir, tmp_path):
    pristine = AutoModelForCausalLM.from_pretrained(tiny_model_dir).eval()
    pristine_state = {k: v.clone() for k, v in pristine.state_dict().items()}
    ns = _run_module_example(tiny_model_dir, tmp_path / "adapter")
    policy, samples, result = ns["policy"], ns["samples"], ns["result"]
    assert result.first == 0 and result.updates == 6 and result.metrics["optimizer_steps"] == 2

    # The adapter moved away from its zero-B start; the base weights are exactly the pristine ones.
    lora_b = [p for n, p in policy.named_parameters() if "lora_B" in n]
    assert lora_b and all(p.abs().max() > 0 for p in lora_b)
    base = policy.model.get_base_model()
    for name, param in base.named_parameters():
        if "lora_" not in name:
            key = name.replace(".base_layer", "")
            assert torch.equal(param, pristine_state[key]), name
    assert (tmp_path / "adapter" / "adapter_model.safetensors").is_file()

    # The poor span ("5") of the first answer is less likely than before, the good one ("Red") more.
    tokenizer = ns["tokenizer"]
    poor_sample, good_sample = samples
    assert min(poor_sample.token_rewards) == -1.0 and max(good_sample.token_rewards) == 1.0
    poor = [i for i, r in enumerate(poor_sample.token_rewards) if r < 0]
    good = [i for i, r in enumerate(good_sample.token_rewards) if r > 0]
    offsets = tokenize_response(tokenizer, "2 + 2 = 5, of course.").response_offsets
    assert [offsets[i] for i in poor] == [(8, 9)]  # "5": digits are tokens of their own
    policy.eval()
    with torch.no_grad():
        poor_after = _span_logprobs(policy.model, poor_sample, poor)
        good_after = _span_logprobs(policy.model, good_sample, good)
    assert poor_after < _span_logprobs(pristine, poor_sample, poor) - 0.05
    assert good_after > _span_logprobs(pristine, good_sample, good) + 0.05


def _tiny_policy(config: TrainingConfig):
    torch.manual_seed(0)
    base = LlamaForCausalLM(
        LlamaConfig(
            vocab_size=256,
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            pad_token_id=0,
        )  # fmt: skip
    ).eval()
    return build_policy(base, config)


SAMPLES = [
    Sample([1, 2, 3], [10, 11, 12], [1.0, 0.0, -1.0]),
    Sample([4, 5], [20, 21, 22, 23], [0.0, -1.0, -1.0, 0.5]),
    Sample([6], [30, 31], [1.0, 0.0]),
]
CONFIG = TrainingConfig(
    steps=3, batch_size=2, minibatch_size=2, ppo_epochs=1, learning_rate=1e-2, lora_dropout=0.0
)


def _trainable(policy) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone() for n, p in policy.named_parameters() if p.requires_grad}


class _Recorder(trainer.Hooks):
    """Keeps checkpoints in a folder, stops after ``stop_after`` updates, resumes from ``resume_dir``."""

    def __init__(self, folder, stop_after=None, resume_dir=None):
        self.folder, self.stop_after, self.resume_dir = folder, stop_after, resume_dir
        self.reports: list[trainer.UpdateReport] = []
        self.started_at = None

    def resume(self):
        return self.resume_dir

    def started(self, first, total):
        self.started_at = (first, total)

    def should_stop(self):
        return self.stop_after is not None and len(self.reports) >= self.stop_after

    def checkpoint(self, checkpoint):
        checkpoint.save(self.folder)

    def progress(self, report):
        self.reports.append(report)

    def publish(self, policy, result):
        return ("published", result.updates)


def test_a_stopped_run_resumes_from_its_checkpoint_to_the_same_weights(tmp_path):
    straight = _tiny_policy(CONFIG)
    hooks = _Recorder(tmp_path / "straight")
    result = trainer.train(CONFIG, straight, SAMPLES, hooks)
    assert result.published == ("published", 3) and hooks.started_at == (0, 3)
    assert [(r.update, r.done, r.first) for r in hooks.reports] == [(0, 1, 0), (1, 2, 0), (2, 3, 0)]
    assert hooks.reports[-1].eta_s == 0.0 and len(hooks.reports[0].steps) == 1

    interrupted = _tiny_policy(CONFIG)
    first_run = _Recorder(tmp_path / "ckpt", stop_after=1)
    with pytest.raises(trainer.Stopped):
        trainer.train(CONFIG, interrupted, SAMPLES, first_run)
    assert len(first_run.reports) == 1

    resumed = _tiny_policy(CONFIG)  # a fresh process: base weights and a new LoRA, then the checkpoint
    second_run = _Recorder(tmp_path / "ckpt", resume_dir=tmp_path / "ckpt")
    result = trainer.train(CONFIG, resumed, SAMPLES, second_run)
    assert result.first == 1 and second_run.started_at == (1, 3)
    assert [r.update for r in second_run.reports] == [1, 2]
    expected = _trainable(straight)
    for name, value in _trainable(resumed).items():
        torch.testing.assert_close(value, expected[name], atol=1e-6, rtol=1e-5, msg=name)


def test_load_checkpoint_refuses_a_different_adapter_shape(tmp_path):
    policy = _tiny_policy(CONFIG)
    trainer.train(CONFIG, policy, SAMPLES, _Recorder(tmp_path / "ckpt"))
    other = _tiny_policy(TrainingConfig(**{**CONFIG.to_dict(), "lora_target_modules": ["q_proj"]}))
    with pytest.raises(ValueError, match="does not fit"):
        trainer.load_checkpoint(tmp_path / "ckpt", other, torch.optim.SGD(other.trainable_parameters()), None)


def test_fixed_batches_cycle_through_a_seeded_order():
    batches = trainer.fixed_batches(SAMPLES, CONFIG)
    seen = [s for update in range(3) for s in batches(update)]
    assert len(seen) == 6 and all(seen.count(s) == 2 for s in SAMPLES)
    assert batches(1) == trainer.fixed_batches(list(SAMPLES), CONFIG)(1)
    with pytest.raises(ValueError, match="no samples"):
        trainer.fixed_batches([], CONFIG)
