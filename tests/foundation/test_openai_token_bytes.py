"""Logprobs of tokens that hold part of a character, through the endpoint's HTTP server and the official
``openai`` client, on a tiny llama with SmolLM2's byte-level tokenizer whose weights are set so that it
answers any prompt with text whose characters are split over several tokens (an emoji, a CJK character)."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from text2grad import generation, model_store
from text2grad.openai_server import ApiError, make_server, model_not_found

openai = pytest.importorskip("openai")

ANSWER = "🦩ꙮ鱻"  # nine tokens, each a part of a character
DECOY = "ᚠ"  # its tokens are each step's runner-up: partial alternatives too
KEY = "t2g-test"
MESSAGES = [{"role": "user", "content": "Say it."}]


@pytest.fixture(scope="module")
def scripted_model_dir(tiny_model_dir, tmp_path_factory) -> Path:
    """The tiny llama with every layer's output zeroed (the residual stream is the token's embedding) and
    an untied head: each chain token's orthonormal embedding points the head at the next, so greedy
    decoding says ``ANSWER`` then ends, whatever the prompt."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    config = LlamaConfig.from_pretrained(tiny_model_dir)
    config.tie_word_embeddings = False
    torch.manual_seed(0)
    model = LlamaForCausalLM(config)
    start = generation.encode_prompt(tokenizer, MESSAGES)[-1]
    answer = tokenizer(ANSWER, add_special_tokens=False)["input_ids"]
    decoy = tokenizer(DECOY, add_special_tokens=False)["input_ids"]
    chain = [start, *answer]
    assert len(set(chain)) == len(chain) and not set(decoy) & set(chain)
    basis = torch.linalg.qr(torch.randn(config.hidden_size, len(chain)))[0].T  # orthonormal rows
    with torch.no_grad():
        for layer in model.model.layers:
            layer.self_attn.o_proj.weight.zero_()
            layer.mlp.down_proj.weight.zero_()
        model.lm_head.weight.zero_()
        for position, token in enumerate(chain):
            model.model.embed_tokens.weight[token] = basis[position]
            following = chain[position + 1] if position + 1 < len(chain) else tokenizer.eos_token_id
            model.lm_head.weight[following] += 20 * basis[position]
            model.lm_head.weight[decoy[position % len(decoy)]] += 10 * basis[position]
    out = tmp_path_factory.mktemp("scripted-llama")
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


class _Backend:
    """One key, one model, nothing recorded."""

    def __init__(self, model_dir: Path) -> None:
        self.model_dir = model_dir
        self.tokenizer = model_store.load_tokenizer(model_dir)
        self.context_length, self.max_tokens = 1024, 32

    def authenticate(self, api_key, ip):
        if api_key != KEY:
            raise ApiError(401, "bad key", code="invalid_api_key")
        return api_key

    def admit(self, principal, ip):
        return None

    def list_models(self, principal):
        return [{"id": "scripted", "created": 0, "owned_by": "test"}]

    def resolve(self, principal, model, ip):
        if model != "scripted":
            raise model_not_found(model)
        return model

    def load(self, model_key):
        return model_store.load(self.model_dir)

    def record(self, principal, **kwargs):
        return None

    def release(self):
        return None


@pytest.fixture(scope="module")
def api(scripted_model_dir):
    server = make_server(_Backend(scripted_model_dir), port=0, max_batch=4, max_models=1)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield openai.OpenAI(
            base_url=f"http://127.0.0.1:{server.server_address[1]}/v1",
            api_key=KEY,
            max_retries=0,
            timeout=120,
        )
    finally:
        server.shutdown()
        server.scheduler.stop()
        server.server_close()


@pytest.fixture(scope="module")
def raw_bytes(scripted_model_dir):
    """A token's bytes by transformers' own byte-level table (the reference, not the server's code)."""
    from transformers import AutoTokenizer
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    tokenizer = AutoTokenizer.from_pretrained(scripted_model_dir)
    table = {char: byte for byte, char in bytes_to_unicode().items()}
    return lambda token_id: bytes(table[c] for c in tokenizer.convert_ids_to_tokens(token_id))


def _clean(text: str) -> bool:
    """Valid UTF-8 when encoded (no lone surrogate) and no replacement character."""
    text.encode("utf-8")  # raises UnicodeEncodeError on a lone surrogate
    return "\ufffd" not in text


def test_chat_logprobs_carry_each_tokens_raw_bytes(api, scripted_model_dir, raw_bytes):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(scripted_model_dir)
    ids = tokenizer(ANSWER, add_special_tokens=False)["input_ids"]
    decoy = tokenizer(DECOY, add_special_tokens=False)["input_ids"]
    ask = {"model": "scripted", "messages": MESSAGES, "temperature": 0, "logprobs": True, "top_logprobs": 3}
    whole = api.chat.completions.create(**ask)
    assert whole.choices[0].message.content == ANSWER and whole.choices[0].finish_reason == "stop"
    content = whole.choices[0].logprobs.content
    assert [bytes(t.bytes) for t in content] == [raw_bytes(i) for i in ids]
    assert b"".join(bytes(t.bytes) for t in content).decode() == ANSWER
    assert all(
        _clean(t.token) and t.token == bytes(t.bytes).decode("utf-8", "backslashreplace") for t in content
    )
    assert content[0].token == "\\xf0\\x9f"  # OpenAI's escape for bytes that are no whole character
    for position, item in enumerate(content):
        chosen, runner_up, third = item.top_logprobs
        assert bytes(chosen.bytes) == bytes(item.bytes) and chosen.token == item.token
        assert bytes(runner_up.bytes) == raw_bytes(decoy[position % len(decoy)])
        assert all(_clean(a.token) for a in item.top_logprobs)
        assert len(bytes(third.bytes)) >= 1
    streamed = [
        t
        for chunk in api.chat.completions.create(**ask, stream=True)
        if chunk.choices and chunk.choices[0].logprobs
        for t in chunk.choices[0].logprobs.content
    ]
    assert [t.model_dump() for t in streamed] == [t.model_dump() for t in content]


def test_completion_tokens_and_offsets_with_split_characters(api, raw_bytes):
    ask = {"model": "scripted", "prompt": "Say it.", "max_tokens": 9, "temperature": 0, "logprobs": 2}
    # The completions prompt ends on another token than the chat template: the answer is whatever the
    # head says after it, so the check is on consistency, not on ANSWER.
    whole = api.completions.create(**ask).choices[0]
    lp = whole.logprobs
    assert all(_clean(t) for t in lp.tokens) and all(_clean(a) for top in lp.top_logprobs for a in top)
    text = whole.text
    for token, offset in zip(lp.tokens, lp.text_offset, strict=True):
        if "\\x" not in token:  # whole characters start at their offset in the text
            assert text[offset:].startswith(token), (token, offset, text)
    assert lp.text_offset == sorted(lp.text_offset) and lp.text_offset[-1] <= len(text)
    chunks = [
        c.choices[0].logprobs for c in api.completions.create(**ask, stream=True) if c.choices[0].logprobs
    ]
    assert [t for c in chunks for t in c.tokens] == lp.tokens
    assert [t for c in chunks for t in c.text_offset] == lp.text_offset


def test_completion_offsets_follow_characters_split_over_tokens(scripted_model_dir):
    from transformers import AutoTokenizer

    from text2grad.openai_server import TokenPieces, _logprobs_block

    tokenizer = AutoTokenizer.from_pretrained(scripted_model_dir)
    text = "a 🦩 b"
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    block = _logprobs_block(TokenPieces(tokenizer), ids, [0.0] * len(ids), [], chat=False)
    # every part of the flamingo starts where the flamingo starts; " b" starts after it
    starts = {token: offset for token, offset in zip(block["tokens"], block["text_offset"], strict=True)}
    assert starts[" b"] == text.index(" b")
    assert {o for t, o in starts.items() if "\\x" in t} <= {text.index("🦩") - 1, text.index("🦩")}
