"""The generation engine on the tiny random llama: continuous batching, seeds, logprobs, slots, stops, cancel."""

from __future__ import annotations

import importlib.util

import pytest
import torch

from text2grad import generation, inference, model_store
from text2grad.inference import Engine, GenerationStopped, Request


@pytest.fixture(scope="module")
def tiny(tiny_model_dir):
    return model_store.load(tiny_model_dir)


def _prompts(tokenizer) -> list[list[int]]:
    texts = ["Go", "Tell me a story about a fox", "What is 2+2?", "A much longer prompt " * 6, "Hi"]
    return [generation.encode_prompt(tokenizer, [{"role": "user", "content": t}]) for t in texts]


def _requests(tokenizer) -> list[Request]:
    # Finish at different steps, so rows leave and others join mid-run; the first ends at its prefill, so
    # the second (prefilled in the same pack) moves into its slot.
    budgets = [1, 7, 3, 12, 5]
    return [
        Request(prompt_ids=ids, max_new_tokens=budget, temperature=0.9, top_p=0.95, top_k=50, seed=100 + i)
        for i, (ids, budget) in enumerate(zip(_prompts(tokenizer), budgets, strict=True))
    ]


def test_continuous_batching_gives_each_request_its_solo_tokens(tiny):
    model, tokenizer = tiny
    engine = Engine(model, tokenizer, max_batch=2)
    completions = [engine.submit(r) for r in _requests(tokenizer)]
    running = []
    while engine.has_work():
        engine.step()
        running.append(engine.running)
    assert max(running) == 2 and engine.steps < sum(r.max_new_tokens for r in _requests(tokenizer))
    for completion, request in zip(completions, _requests(tokenizer), strict=True):
        [alone] = Engine(model, tokenizer, max_batch=1).run([request])
        assert completion.response_ids == alone.response_ids
        assert len(completion.response_ids) == request.max_new_tokens  # a random model rarely says EOS
        assert completion.finish_reason == "length"
        assert torch.allclose(torch.tensor(completion.logprobs), torch.tensor(alone.logprobs), atol=1e-5)


def test_logprobs_match_a_separate_forward_pass(tiny):
    model, tokenizer = tiny
    completions = Engine(model, tokenizer, max_batch=4).run(_requests(tokenizer))
    for completion in completions:
        prompt, response = completion.request.prompt_ids, completion.response_ids
        with torch.no_grad():
            logits = model(torch.tensor([prompt + response])).logits[0, len(prompt) - 1 : -1]
        expected = logits.float().log_softmax(-1).gather(-1, torch.tensor(response)[:, None]).squeeze(-1)
        assert torch.allclose(expected, torch.tensor(completion.logprobs), atol=1e-4, rtol=0)


def test_top_logprobs_are_the_most_likely_tokens_of_a_separate_forward_pass(tiny):
    model, tokenizer = tiny
    requests = _requests(tokenizer)
    for request, k in zip(requests, [3, 0, 5, 1, 20], strict=True):
        request.top_logprobs = k
    completions = Engine(model, tokenizer, max_batch=4).run(requests)
    for completion in completions:
        prompt, response = completion.request.prompt_ids, completion.response_ids
        k = completion.request.top_logprobs
        if k == 0:
            assert completion.top_logprobs == []  # nothing asked, nothing kept
            continue
        assert len(completion.top_logprobs) == len(response)
        with torch.no_grad():
            logits = model(torch.tensor([prompt + response])).logits[0, len(prompt) - 1 : -1]
        reference = logits.float().log_softmax(-1)
        values = reference.topk(k, dim=-1).values
        for position, alternatives in enumerate(completion.top_logprobs):
            ids = torch.tensor([i for i, _ in alternatives])
            got = torch.tensor([lp for _, lp in alternatives])
            # The k largest values, each the logprob of the id it names (ids compared through their values:
            # a random model's near-ties may order differently in a batched forward).
            assert torch.allclose(got, values[position], atol=1e-4, rtol=0)
            assert torch.allclose(reference[position, ids], got, atol=1e-4, rtol=0)
            assert len(set(ids.tolist())) == k
            sampled = completion.logprobs[position]
            assert sampled <= alternatives[0][1] + 1e-6  # nothing beats the most likely


def test_top_k_one_is_greedy_whatever_the_temperature(tiny):
    model, tokenizer = tiny
    prompt = _prompts(tokenizer)[1]
    [done] = Engine(model, tokenizer).run(
        [Request(prompt_ids=prompt, max_new_tokens=6, temperature=5.0, top_k=1)]
    )
    ids = list(prompt)
    for token in done.response_ids:
        with torch.no_grad():
            assert int(model(torch.tensor([ids])).logits[0, -1].argmax()) == token
        ids.append(token)


def test_a_finished_request_frees_its_slot_at_once(tiny):
    model, tokenizer = tiny
    prompts = _prompts(tokenizer)
    engine = Engine(model, tokenizer, max_batch=2)
    short = engine.submit(Request(prompt_ids=prompts[0], max_new_tokens=3, seed=1))
    long = engine.submit(Request(prompt_ids=prompts[1], max_new_tokens=12, seed=2))
    waiting = engine.submit(Request(prompt_ids=prompts[2], max_new_tokens=3, seed=3))
    # Step 1: two prefills (a token each) and one decoding step; the third request waits for a slot.
    assert engine.step() == [] and engine.running == 2 and engine.waiting == 1
    assert engine.step() == [short] and engine.running == 1  # the slot is free after that very step
    engine.step()  # the waiting request joins while the long one is mid-way
    assert engine.running == 2 and engine.waiting == 0 and len(long.response_ids) == 4
    assert len(waiting.response_ids) == 2 and not long.finish_reason
    while engine.has_work():
        engine.step()
    assert [len(c.response_ids) for c in (short, long, waiting)] == [3, 12, 3]
    assert waiting.finished_at < long.finished_at  # it ran beside the long one, not after it


def test_stop_strings_end_the_text_before_them(tiny):
    model, tokenizer = tiny
    request = _requests(tokenizer)[3]
    [free] = Engine(model, tokenizer).run([request])
    stop = tokenizer.decode(free.response_ids[4:6], skip_special_tokens=True).strip()[:3]
    assert stop
    stopped_request = Request(**{**request.__dict__, "stop": (stop,)})
    [stopped] = Engine(model, tokenizer).run([stopped_request])
    assert stopped.finish_reason == "stop"
    assert stopped.text == free.text[: free.text.find(stop)]
    assert free.response_ids[: len(stopped.response_ids)] == stopped.response_ids
    assert stop in tokenizer.decode(stopped.response_ids) and len(stopped.response_ids) <= 6
    assert stop not in tokenizer.decode(stopped.response_ids[:-1])  # ended on the token that completed it


def test_cancel_between_steps_frees_everything(tiny):
    model, tokenizer = tiny
    engine = Engine(model, tokenizer, max_batch=2)
    asked = []

    def should_stop() -> bool:
        asked.append(engine.steps)
        return len(asked) == 3

    with pytest.raises(GenerationStopped):
        engine.run(_requests(tokenizer), should_stop=should_stop)
    assert asked == [0, 1, 2]  # asked before each step, stopped at the third question
    assert engine.running == 0 and engine.waiting == 0


def test_sample_is_the_same_whatever_the_batch_size(tiny):
    model, tokenizer = tiny
    prompts = [[{"role": "user", "content": t}] for t in ("Say hi", "A longer prompt for the engine")]
    one = generation.sample(model, tokenizer, prompts, n_per_prompt=2, max_new_tokens=6, seed=5, batch_size=1)
    four = generation.sample(
        model, tokenizer, prompts, n_per_prompt=2, max_new_tokens=6, seed=5, batch_size=4
    )
    assert [[o.response_ids for o in g] for g in one] == [[o.response_ids for o in g] for g in four]
    assert one[0][0].response_ids != one[0][1].response_ids  # the two copies of a prompt draw apart
    other = generation.sample(model, tokenizer, prompts, n_per_prompt=2, max_new_tokens=6, seed=6)
    assert other[0][0].response_ids != one[0][0].response_ids


def test_the_padded_sampler_is_still_there_for_the_benchmark(tiny):
    model, tokenizer = tiny
    outs = generation.sample_padded(
        model, tokenizer, [[{"role": "user", "content": "Hi"}]], max_new_tokens=4, seed=1
    )
    assert len(outs[0][0].response_ids) == len(outs[0][0].logprobs) == 4


def test_the_engine_setting_is_checked(tiny, monkeypatch):
    model, tokenizer = tiny
    monkeypatch.setenv(inference.ENGINE_ENV, "llamas")
    with pytest.raises(ValueError, match="T2G_GENERATION_ENGINE"):
        inference.engine_for(model, tokenizer)
    if importlib.util.find_spec("vllm") is None:
        from text2grad.inference.vllm_backend import VllmUnavailable

        monkeypatch.setenv(inference.ENGINE_ENV, "vllm")
        with pytest.raises(VllmUnavailable, match="vllm is not installed"):
            inference.engine_for(model, tokenizer)


@pytest.mark.skipif(
    not torch.cuda.is_available() or importlib.util.find_spec("vllm") is None,
    reason="the vLLM backend needs a CUDA GPU and the optional vllm package (neither is required here)",
)
def test_vllm_backend_keeps_the_interface(tiny_model_dir, monkeypatch):
    model, tokenizer = model_store.load(tiny_model_dir)
    monkeypatch.setenv(inference.ENGINE_ENV, "vllm")
    engine = inference.engine_for(model, tokenizer, max_batch=4)
    requests = _requests(tokenizer)
    first = engine.run(requests)
    again = engine.run(_requests(tokenizer))
    for completion, repeat, request in zip(first, again, requests, strict=True):
        assert completion.response_ids == repeat.response_ids  # the seed decides
        assert len(completion.response_ids) == len(completion.logprobs) <= request.max_new_tokens
        prompt, response = request.prompt_ids, completion.response_ids
        with torch.no_grad():
            logits = model(torch.tensor([prompt + response])).logits[0, len(prompt) - 1 : -1]
        expected = logits.float().log_softmax(-1).gather(-1, torch.tensor(response)[:, None]).squeeze(-1)
        assert torch.allclose(expected, torch.tensor(completion.logprobs), atol=1e-2)


def test_a_lora_policy_samples_through_its_adapters(tiny_model_dir):
    """The on-policy sample stage hands the engine a peft-wrapped policy: the adapters must take part."""
    from peft import LoraConfig, get_peft_model

    model, tokenizer = model_store.load(tiny_model_dir)
    torch.manual_seed(0)
    config = LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    policy = get_peft_model(model, config)
    policy.eval()
    engine = Engine(policy, tokenizer)
    assert engine.decoder is not None  # the lean step, through the adapted projections
    [done] = engine.run([_requests(tokenizer)[1]])
    prompt, response = done.request.prompt_ids, done.response_ids
    with torch.no_grad():
        logits = policy(input_ids=torch.tensor([prompt + response])).logits[0, len(prompt) - 1 : -1]
        with policy.disable_adapter():
            base_logits = policy(input_ids=torch.tensor([prompt + response])).logits[0, len(prompt) - 1 : -1]
    pick = torch.tensor(response)[:, None]
    expected = logits.float().log_softmax(-1).gather(-1, pick).squeeze(-1)
    without = base_logits.float().log_softmax(-1).gather(-1, pick).squeeze(-1)
    assert torch.allclose(expected, torch.tensor(done.logprobs), atol=1e-4, rtol=0)
    assert not torch.allclose(without, torch.tensor(done.logprobs), atol=1e-3)  # the adapters mattered
    assert policy.config._attn_implementation != "t2g_grouped_decode"  # the policy's own attention is back


def test_the_lean_decoding_step_matches_the_models_own_forward(tiny):
    """The engine decodes Llama models with its own step (llama_decode); the model's forward, the
    reference, must give the same tokens and logprobs for requests that join and leave mid-run."""
    model, tokenizer = tiny
    lean = Engine(model, tokenizer, max_batch=3)
    reference = Engine(model, tokenizer, max_batch=3, decoder="model")
    assert lean.decoder is not None and reference.decoder is None
    fast, slow = lean.run(_requests(tokenizer)), reference.run(_requests(tokenizer))
    assert lean.steps == reference.steps
    for a, b in zip(fast, slow, strict=True):
        assert a.response_ids == b.response_ids and a.finish_reason == b.finish_reason
        assert torch.allclose(torch.tensor(a.logprobs), torch.tensor(b.logprobs), atol=1e-5, rtol=0)


def test_the_lean_step_writes_the_same_cache_as_the_model(tiny):
    """Keys and values a lean step writes are what the model's forward would write (rotary included)."""
    model, tokenizer = tiny
    engines = [Engine(model, tokenizer, max_batch=2, decoder=d) for d in ("lean", "model")]
    for engine in engines:
        for request in _requests(tokenizer)[1:3]:
            engine.submit(request)
        for _ in range(3):
            engine.step()
    (lean, reference) = (e.cache for e in engines)
    for layer in range(lean.layers):
        assert torch.allclose(lean.keys[layer], reference.keys[layer], atol=1e-5)
        assert torch.allclose(lean.values[layer], reference.values[layer], atol=1e-5)


def test_other_architectures_decode_through_the_model(tiny):
    from transformers import GPT2Config, GPT2LMHeadModel

    from text2grad.inference.llama_decode import LlamaDecoder

    model, _ = tiny
    assert LlamaDecoder.for_model(model) is not None
    gpt2 = GPT2LMHeadModel(GPT2Config(n_layer=1, n_embd=16, n_head=2, vocab_size=64, n_positions=32))
    assert LlamaDecoder.for_model(gpt2) is None


def test_packed_projections_give_the_same_tokens_as_torchs_linear(tiny):
    """oneDNN's packed projections (the default) against PyTorch's F.linear: same tokens, logprobs to
    float32 rounding, for requests that join and leave mid-run; the model is itself again afterwards."""
    from text2grad.inference import packed

    model, tokenizer = tiny
    if not packed.available():
        pytest.skip("this PyTorch has no oneDNN")
    fast = Engine(model, tokenizer, max_batch=2)
    plain = Engine(model, tokenizer, max_batch=2, packed=False)
    assert len(fast.packed.modules) == 2 * 7 + 1  # q k v o gate up down per layer, and the head
    for a, b in zip(fast.run(_requests(tokenizer)), plain.run(_requests(tokenizer)), strict=True):
        assert a.response_ids == b.response_ids
        assert torch.allclose(torch.tensor(a.logprobs), torch.tensor(b.logprobs), atol=1e-5, rtol=0)
    assert not any("forward" in m.__dict__ for m in model.modules())
    ids = torch.tensor([_prompts(tokenizer)[1]])
    loss = model(ids, labels=ids).loss
    loss.backward()  # trainable outside the engine's steps
    assert model.lm_head.weight.grad is not None
    model.zero_grad(set_to_none=True)


def test_a_weight_changed_in_place_is_packed_again(tiny):
    from text2grad.inference import packed

    model, _ = tiny
    if not packed.available():
        pytest.skip("this PyTorch has no oneDNN")
    layer = model.model.layers[0].mlp.down_proj
    x = torch.randn(3, layer.in_features)
    with torch.no_grad(), packed.PackedLinears(model):
        before = layer(x)
        layer.weight.mul_(2.0)  # what a merged adapter or an optimizer step does
        after = layer(x)
        layer.weight.div_(2.0)
    assert torch.allclose(after, 2 * before, atol=1e-5)


def _full_sort_nucleus(scaled, tops, top_p):
    """The engine's sampling distribution before its candidate set: the whole vocabulary sorted (by
    ``topk``, as it was) when a row has no top-k filter."""
    values, candidates = torch.topk(scaled, max(tops), dim=-1)
    beyond = torch.arange(values.shape[-1])[None, :] >= torch.tensor(tops)[:, None]
    probs = values.masked_fill(beyond, float("-inf")).softmax(-1)
    before = probs.cumsum(-1) - probs
    return probs.masked_fill(before >= top_p[:, None], 0.0), candidates


@pytest.mark.parametrize("spread", [10.0, 0.05])  # peaked rows (nucleus among the candidates), flat rows
def test_the_nucleus_without_top_k_is_the_full_sorts(spread):
    from text2grad.inference import engine as engine_module

    torch.manual_seed(0)
    vocab = 49152
    scaled = torch.randn(6, vocab) * spread
    tops = [vocab, 50, vocab, 1, vocab, 200]
    top_p = torch.tensor([0.95, 0.9, 0.5, 1.0, 0.99, 0.8])
    probs, ids = engine_module.nucleus(scaled, tops, top_p)
    reference, reference_ids = _full_sort_nucleus(scaled, tops, top_p)
    keep = probs.shape[-1]
    assert keep == (engine_module.NUCLEUS_CANDIDATES if spread > 1 else vocab)  # flat rows: the full sort
    assert torch.equal(ids, reference_ids[:, :keep])
    assert torch.allclose(probs, reference[:, :keep], atol=1e-7, rtol=1e-5)
    assert float(reference[:, keep:].sum()) == 0.0  # nothing the candidates left out could be drawn
    assert all(0 < int((row > 0).sum()) <= engine_module.NUCLEUS_CANDIDATES for row in probs) or keep == vocab


def test_requests_without_top_k_draw_the_full_sorts_tokens(tiny, monkeypatch):
    """Same seeds, requests joining and leaving: identical tokens and logprobs with the candidate set
    and with the whole vocabulary sorted (the engine's sampling before it)."""
    from text2grad.inference import engine as engine_module

    model, tokenizer = tiny
    requests = lambda: [  # noqa: E731
        Request(**{**r.__dict__, "top_k": None, "temperature": t, "top_p": 0.9})
        for r, t in zip(_requests(tokenizer), [0.02, 0.05, 1.0, 0.03, 0.02], strict=True)
    ]
    fast = Engine(model, tokenizer, max_batch=2).run(requests())
    monkeypatch.setattr(engine_module, "nucleus", _full_sort_nucleus)
    slow = Engine(model, tokenizer, max_batch=2).run(requests())
    for a, b in zip(fast, slow, strict=True):
        assert a.response_ids == b.response_ids
        assert a.logprobs == b.logprobs
