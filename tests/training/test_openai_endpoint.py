"""The OpenAI-compatible endpoint, driven by the official ``openai`` client against a real
``manage.py serve_openai`` process on the test database, with a tiny random llama (and a LoRA adapter)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.conftest import _worker_env
from tests.support.endpoint import serve_openai

openai = pytest.importorskip("openai")

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.heavy]


@pytest.fixture(scope="module")
def adapter_dir(tiny_model_dir, tmp_path_factory) -> Path:
    """A LoRA adapter on the tiny model with non-zero weights, so it changes what the model says."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    peft_model = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"]))
    torch.manual_seed(1)
    with torch.no_grad():
        for name, param in peft_model.named_parameters():
            if "lora_B" in name:
                param.normal_(0, 2.0)
    out = tmp_path_factory.mktemp("adapter")
    peft_model.save_pretrained(out)
    return out


@pytest.fixture(scope="module")
def endpoint(django_db_setup, django_db_blocker, tiny_model_dir, tmp_path_factory):
    """``manage.py serve_openai --port 0`` against the test database; yields its base URL."""
    with django_db_blocker.unblock():
        env = _worker_env(tiny_model_dir, tmp_path_factory.mktemp("endpoint-models"))
    env.update({"DEBUG": "1", "T2G_ENDPOINT_MAX_TOKENS": "64", "T2G_ENDPOINT_BATCH": "8"})
    log_path = tmp_path_factory.mktemp("endpoint-log") / "endpoint.log"
    with serve_openai(env, log_path) as url:
        yield url


@pytest.fixture
def studio(researcher, adapter_dir):
    """Two projects, the active base version, a LoRA version trained on project A and one on project B,
    and a key of the researcher's scoped to project A."""
    from annotations.services import project_create
    from training import services
    from training.models import ModelVersion, TrainingRound
    from training.services import api_keys

    alpha = project_create(name="Alpha news", kind="summarization")
    beta = project_create(name="Beta code", kind="code")
    base = services.model_version_bootstrap()
    versions = {}
    for project, name in ((alpha, "v1-alpha"), (beta, "v1-beta")):
        round_ = TrainingRound.objects.create(project=project, base_version=base)
        versions[name] = ModelVersion.objects.create(
            name=name, base_model=base.base_model, parent=base, adapter_path=str(adapter_dir),
            created_by_round=round_,
        )  # fmt: skip
    key, secret = api_keys.api_key_create(user=researcher, name="app", projects=[alpha])
    return {"alpha": alpha, "beta": beta, "base": base, "key": key, "secret": secret, **versions}


def client(endpoint: str, secret: str):
    return openai.OpenAI(base_url=endpoint, api_key=secret, max_retries=0, timeout=60)


def test_models_lists_what_the_key_may_use_with_the_projects_alias(endpoint, studio):
    ids = [m.id for m in client(endpoint, studio["secret"]).models.list().data]
    assert ids[0] == "project/alpha-news"  # the active version under the project's alias
    assert set(ids) == {"project/alpha-news", "v1-alpha", "v0-base"}  # not beta's version, not its alias


def test_completion_with_usage_stop_and_logprobs(endpoint, studio):
    api = client(endpoint, studio["secret"])
    out = api.completions.create(
        model="v1-alpha", prompt="Once upon a time", max_tokens=12, seed=3, logprobs=1
    )
    choice = out.choices[0]
    assert out.object == "text_completion" and out.model == "v1-alpha"
    assert out.usage.prompt_tokens == 4 and out.usage.completion_tokens == len(choice.logprobs.tokens)
    assert out.usage.total_tokens == out.usage.prompt_tokens + out.usage.completion_tokens
    assert choice.finish_reason in ("stop", "length")
    assert all(lp <= 0 for lp in choice.logprobs.token_logprobs)
    assert len(choice.logprobs.token_logprobs) == len(choice.logprobs.text_offset)
    # A stop string taken from that very output ends the next answer before it (same seed, same draws).
    cut = choice.text[3:6]
    assert cut, choice.text
    stopped = api.completions.create(
        model="v1-alpha", prompt="Once upon a time", max_tokens=12, seed=3, stop=[cut]
    )
    assert stopped.choices[0].text == choice.text[: choice.text.find(cut)]
    assert stopped.choices[0].finish_reason == "stop"


def test_chat_seed_reproducible_and_the_adapter_changes_the_answer(endpoint, studio):
    api = client(endpoint, studio["secret"])
    messages = [{"role": "user", "content": "Summarize: the cat sat on the mat."}]
    ask = {"messages": messages, "max_tokens": 16, "temperature": 0.9, "seed": 42}
    first = api.chat.completions.create(model="v1-alpha", **ask)
    again = api.chat.completions.create(model="v1-alpha", **ask)
    other_seed = api.chat.completions.create(model="v1-alpha", **(ask | {"seed": 43}))
    base = api.chat.completions.create(model="v0-base", **ask)
    assert first.object == "chat.completion" and first.choices[0].message.role == "assistant"
    assert first.choices[0].message.content == again.choices[0].message.content
    assert first.choices[0].message.content != other_seed.choices[0].message.content
    assert first.choices[0].message.content != base.choices[0].message.content  # the LoRA is applied
    alias = api.chat.completions.create(model="project/alpha-news", **ask)
    assert alias.choices[0].message.content == base.choices[0].message.content  # the active one is the base


def test_chat_stream_matches_the_whole_answer(endpoint, studio):
    api = client(endpoint, studio["secret"])
    ask = {
        "model": "v1-alpha",
        "messages": [{"role": "user", "content": "Hello"}],
        "max_tokens": 20,
        "seed": 7,
        "logprobs": True,
    }
    whole = api.chat.completions.create(**ask)
    chunks = list(api.chat.completions.create(**ask, stream=True, stream_options={"include_usage": True}))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == whole.choices[0].message.content
    assert len(chunks) > 3  # token by token, not one blob
    assert chunks[-1].usage.completion_tokens == whole.usage.completion_tokens
    streamed_lps = [
        t.logprob
        for c in chunks
        if c.choices and c.choices[0].logprobs
        for t in c.choices[0].logprobs.content
    ]
    assert streamed_lps == [t.logprob for t in whole.choices[0].logprobs.content]
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == whole.choices[0].finish_reason


def test_raw_stream_ends_with_done(endpoint, studio):
    import httpx2 as httpx

    body = {"model": "v0-base", "prompt": "Hi", "max_tokens": 4, "stream": True}
    with httpx.stream(
        "POST", f"{endpoint}/completions", json=body, headers={"Authorization": f"Bearer {studio['secret']}"}
    ) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        lines = [line for line in response.iter_lines() if line]
    assert lines[-1] == "data: [DONE]"
    assert all(line.startswith("data: ") for line in lines)


def test_bad_key_is_401_in_openai_format(endpoint, studio):
    with pytest.raises(openai.AuthenticationError) as caught:
        client(endpoint, "t2g-not-a-real-key").models.list()
    assert caught.value.status_code == 401
    assert caught.value.body["code"] == "invalid_api_key"
    from audit.models import AuditEvent

    assert AuditEvent.objects.filter(action="endpoint.refused.key").exists()


def test_revoked_key_stops_working_at_once(endpoint, studio, researcher):
    from training.services import api_keys

    api = client(endpoint, studio["secret"])
    assert api.models.list().data
    api_keys.api_key_revoke(key=studio["key"], user=researcher)
    with pytest.raises(openai.AuthenticationError):
        api.models.list()


def test_another_projects_version_and_alias_are_404(endpoint, studio):
    api = client(endpoint, studio["secret"])
    for model in ("v1-beta", "project/beta-code", "no-such-model"):
        with pytest.raises(openai.NotFoundError) as caught:
            api.chat.completions.create(
                model=model, messages=[{"role": "user", "content": "Hi"}], max_tokens=2
            )
        assert caught.value.body["code"] == "model_not_found", model
        assert model in caught.value.body["message"]


def test_too_long_prompt_and_bad_parameters_are_400(endpoint, studio):
    api = client(endpoint, studio["secret"])
    with pytest.raises(openai.BadRequestError) as caught:
        api.completions.create(model="v0-base", prompt="word " * 1100, max_tokens=4)
    assert caught.value.body["code"] == "context_length_exceeded"
    assert "maximum context length is 1024 tokens" in caught.value.body["message"]
    bad = [
        {"temperature": 3},
        {"top_p": 0},
        {"max_tokens": 0},
        {"max_tokens": 65},  # over the server's cap
        {"stop": ["a", "b", "c", "d", "e"]},
        {"n": 99},
        {"extra_body": {"presence_penalty": 0.5}},
    ]
    for params in bad:
        with pytest.raises(openai.BadRequestError) as caught:
            api.completions.create(model="v0-base", prompt="Hi", **({"max_tokens": 4} | params))
        assert caught.value.status_code == 400, params
        assert caught.value.body["param"], params


def test_rate_limit_is_429_with_retry_after(endpoint, studio):
    studio["key"].rate_limit_per_minute = 2
    studio["key"].save(update_fields=["rate_limit_per_minute"])
    api = client(endpoint, studio["secret"])
    api.models.list()
    api.models.list()
    with pytest.raises(openai.RateLimitError) as caught:
        api.models.list()
    assert caught.value.body["code"] == "rate_limit_exceeded"
    assert int(caught.value.response.headers["retry-after"]) >= 1


def test_use_is_counted_and_audited(endpoint, studio):
    from audit.models import AuditEvent

    api = client(endpoint, studio["secret"])
    out = api.completions.create(model="v0-base", prompt="Hi there", max_tokens=5, seed=1)
    key = studio["key"]
    key.refresh_from_db()
    assert key.requests == 1 and key.last_used_at is not None
    assert key.prompt_tokens == out.usage.prompt_tokens
    assert key.completion_tokens == out.usage.completion_tokens
    event = AuditEvent.objects.get(action="endpoint.completion")
    assert event.details["model"] == "v0-base" and event.details["prefix"] == key.prefix
    assert event.actor_username == key.user.username


def test_concurrent_requests_decode_together_and_keep_their_seeds(endpoint, studio):
    from concurrent.futures import ThreadPoolExecutor

    api = client(endpoint, studio["secret"])

    def ask(seed):
        # top_k (vLLM's extension): a random model's next-token distribution is nearly flat over 49k
        # tokens, where the last-bit differences of a batched forward can move a draw across a boundary
        # (without it, this test fails at the 6th token; a trained model's peaked distribution does not).
        out = api.completions.create(
            model="v1-alpha", prompt="The", max_tokens=8, seed=seed, extra_body={"top_k": 20}
        )
        return out.choices[0].text

    alone = [ask(s) for s in (1, 2)]
    with ThreadPoolExecutor(6) as pool:
        together = list(pool.map(ask, [1, 2, 1, 2, 1, 2]))
    assert together == alone * 3


def test_playground_asks_two_versions_with_one_seed_and_sends_an_answer_to_the_queue(
    endpoint, studio, login, researcher, settings
):
    from django.urls import reverse

    from annotations.models import Generation
    from audit.models import AuditEvent

    settings.T2G_ENDPOINT_URL = endpoint
    web = login(researcher)
    ask = {"prompt": "Summarize: the cat sat on the mat.", "seed": 42, "temperature": 0.9, "max_tokens": 16}
    response = web.post(
        reverse("playground"), {"version_a": studio["v1-alpha"].pk, "version_b": studio["base"].pk, **ask}
    )
    assert response.status_code == 200
    answers = response.context["answers"]
    assert [a.version.name for a in answers] == ["v1-alpha", "v0-base"] and not any(a.error for a in answers)
    api = client(endpoint, studio["secret"])
    for answer in answers:  # what any client gets for the same prompt and seed
        same = api.chat.completions.create(
            model=answer.version.name,
            messages=[{"role": "user", "content": ask["prompt"]}],
            seed=42,
            temperature=0.9,
            max_tokens=16,
        )
        assert answer.text == same.choices[0].message.content
    assert answers[0].text != answers[1].text
    assert AuditEvent.objects.filter(action="endpoint.completion", actor_id=researcher.pk).count() == 2 + 2

    sent = web.post(
        reverse("playground_send"),
        {
            "project": studio["beta"].pk,
            "version": studio["v1-alpha"].pk,
            "prompt": ask["prompt"],
            "text": answers[0].text,
            "seed": 42,
            "temperature": 0.9,
        },
    )
    assert sent.status_code == 302
    generation = Generation.objects.get(prompt__project=studio["beta"])
    assert generation.text == answers[0].text and generation.model_version == studio["v1-alpha"]
    assert generation.prompt.text == ask["prompt"] and generation.sampling_params["seed"] == 42
    assert AuditEvent.objects.filter(action="playground.send", object_id=str(generation.pk)).exists()


def test_a_stale_or_forged_studio_token_is_401(endpoint, studio, researcher):
    from django.core import signing

    from training.services import api_keys

    forged = api_keys.STUDIO_TOKEN_PREFIX + signing.dumps(researcher.pk, salt="something else")
    with pytest.raises(openai.AuthenticationError):
        client(endpoint, forged).models.list()
    good = client(endpoint, api_keys.studio_token_for(researcher))
    assert {"v1-alpha", "v1-beta"} <= {m.id for m in good.models.list().data}  # every open project


def test_n_choices_and_greedy_temperature_zero(endpoint, studio):
    api = client(endpoint, studio["secret"])
    out = api.completions.create(model="v1-alpha", prompt=["Hello", "Goodbye"], max_tokens=6, n=2, seed=9)
    assert [c.index for c in out.choices] == [0, 1, 2, 3]
    assert out.choices[0].text != out.choices[1].text  # each choice has its own seed stream
    singles = [api.completions.create(model="v1-alpha", prompt=p, max_tokens=1) for p in ("Hello", "Goodbye")]
    assert out.usage.prompt_tokens == sum(x.usage.prompt_tokens for x in singles)  # each prompt once
    assert out.usage.completion_tokens == 4 * 6
    greedy = [
        api.completions.create(model="v1-alpha", prompt="Hello", max_tokens=6, temperature=0).choices[0].text
        for _ in range(2)
    ]
    assert greedy[0] == greedy[1]  # no seed needed: temperature 0 takes the most likely token


def _reference_first_logprobs(model_dir, prompt_ids: list[int]):
    """The base model's log-probabilities of the first response token, by a plain transformers forward."""
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(model_dir).eval()
    with torch.no_grad():
        return model(torch.tensor([prompt_ids])).logits[0, -1].float().log_softmax(-1)


def test_chat_top_logprobs_streamed_and_not(endpoint, studio, tiny_model_dir):
    from transformers import AutoTokenizer

    from text2grad.generation import encode_prompt

    api = client(endpoint, studio["secret"])
    messages = [{"role": "user", "content": "Name three colours."}]
    ask = {"model": "v0-base", "messages": messages, "max_tokens": 10, "seed": 5, "logprobs": True}
    whole = api.chat.completions.create(**ask, top_logprobs=3)
    content = whole.choices[0].logprobs.content
    assert len(content) == whole.usage.completion_tokens
    for item in content:
        alternatives = [a.logprob for a in item.top_logprobs]
        assert len(alternatives) == 3 and alternatives == sorted(alternatives, reverse=True)
        assert item.logprob <= alternatives[0] + 1e-6
        # the raw bytes; the text escapes those that are no whole character (OpenAI's "\\xNN")
        assert all(a.token == bytes(a.bytes).decode("utf-8", "backslashreplace") for a in item.top_logprobs)
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    reference = _reference_first_logprobs(tiny_model_dir, encode_prompt(tokenizer, messages))
    values, ids = reference.topk(3)
    got = [a.logprob for a in content[0].top_logprobs]
    assert max(abs(a - b) for a, b in zip(got, values.tolist(), strict=True)) < 1e-4, (got, values)
    assert content[0].top_logprobs[0].token == tokenizer.decode([int(ids[0])])

    chunks = list(api.chat.completions.create(**ask, top_logprobs=3, stream=True))
    streamed = [
        t for c in chunks if c.choices and c.choices[0].logprobs for t in c.choices[0].logprobs.content
    ]
    assert [t.model_dump() for t in streamed] == [t.model_dump() for t in content]
    plain = api.chat.completions.create(**ask)  # logprobs without alternatives: empty lists, as OpenAI's
    assert [t.logprob for t in plain.choices[0].logprobs.content] == [t.logprob for t in content]
    assert all(t.top_logprobs == [] for t in plain.choices[0].logprobs.content)


def test_completion_logprobs_alternatives_and_offsets_streamed_and_not(endpoint, studio, tiny_model_dir):
    api = client(endpoint, studio["secret"])
    ask = {"model": "v0-base", "prompt": "The weather today", "max_tokens": 12, "seed": 11, "logprobs": 2}
    whole = api.completions.create(**ask).choices[0]
    lp = whole.logprobs
    assert len(lp.tokens) == len(lp.token_logprobs) == len(lp.top_logprobs) == len(lp.text_offset) == 12
    assert lp.text_offset == sorted(lp.text_offset)
    for token, offset in zip(lp.tokens, lp.text_offset, strict=True):  # offsets index the text
        assert "\\x" in token or whole.text[offset:].startswith(token), (token, offset, whole.text)
    for token_lp, alternatives in zip(lp.token_logprobs, lp.top_logprobs, strict=True):
        assert 1 <= len(alternatives) <= 2  # two ids that decode alike share one text key
        assert token_lp <= max(alternatives.values()) + 1e-6
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    reference = _reference_first_logprobs(tiny_model_dir, tokenizer("The weather today")["input_ids"])
    assert abs(max(lp.top_logprobs[0].values()) - float(reference.max())) < 1e-4

    chunks = list(api.completions.create(**ask, stream=True))
    streamed = [c.choices[0].logprobs for c in chunks if c.choices and c.choices[0].logprobs]
    assert [t for s in streamed for t in s.tokens] == lp.tokens
    assert [t for s in streamed for t in s.text_offset] == lp.text_offset  # offsets run on across chunks
    assert [t for s in streamed for t in s.top_logprobs] == lp.top_logprobs
    assert [t for s in streamed for t in s.token_logprobs] == lp.token_logprobs


def test_bad_logprobs_parameters_are_400(endpoint, studio):
    api = client(endpoint, studio["secret"])
    chat = {"model": "v0-base", "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 2}
    for params in ({"top_logprobs": 2}, {"logprobs": True, "top_logprobs": 21}):
        with pytest.raises(openai.BadRequestError) as caught:
            api.chat.completions.create(**chat, **params)
        assert caught.value.body["param"] in ("logprobs", "top_logprobs"), params
    with pytest.raises(openai.BadRequestError) as caught:
        api.completions.create(model="v0-base", prompt="Hi", max_tokens=2, logprobs=6)
    assert caught.value.body["param"] == "logprobs"


def _in_flight(endpoint: str) -> int:
    import httpx2 as httpx

    return httpx.get(endpoint.removesuffix("/v1") + "/health").json()["requests"]


def _post_and_hang_up(endpoint: str, secret: str, body: dict, *, read_first: bool) -> None:
    """Send a request on a raw socket, wait until the server is decoding it (reading the first streamed
    bytes, if asked), then close the connection: a real disconnect, as a client killed mid-answer."""
    import json
    import socket
    from urllib.parse import urlsplit

    url = urlsplit(endpoint)
    data = json.dumps(body).encode()
    head = (
        f"POST {url.path}/completions HTTP/1.1\r\nHost: {url.netloc}\r\nAuthorization: Bearer {secret}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(data)}\r\n\r\n"
    )
    with socket.create_connection((url.hostname, url.port), timeout=30) as sock:
        sock.sendall(head.encode() + data)
        deadline = time.monotonic() + 30
        while _in_flight(endpoint) == 0 and time.monotonic() < deadline:
            time.sleep(0.02)
        if read_first:
            assert sock.recv(4096).startswith(b"HTTP/1.1 200")
        assert _in_flight(endpoint) > 0, "the request finished before the client could hang up"


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
def test_a_client_that_hangs_up_cancels_its_request(endpoint, studio, stream):
    # 8 prompts x 8 choices x 64 tokens on 8 slots: 8 waves of 64 steps, seconds of decoding.
    total = 8 * 8 * 64
    body = {
        "model": "v0-base",
        "prompt": ["Tell me"] * 8,
        "n": 8,
        "max_tokens": 64,
        "seed": 1,
        "stream": stream,
    }
    _post_and_hang_up(endpoint, studio["secret"], body, read_first=stream)
    hung_up = time.monotonic()
    while _in_flight(endpoint) and time.monotonic() - hung_up < 30:
        time.sleep(0.02)
    freed_after = time.monotonic() - hung_up
    assert _in_flight(endpoint) == 0
    key = studio["key"]
    deadline = time.monotonic() + 10
    while key.requests == 0 and time.monotonic() < deadline:
        time.sleep(0.1)
        key.refresh_from_db()
    assert key.requests == 1  # what was decoded before the hang-up is counted
    assert 0 < key.completion_tokens < total / 2, (key.completion_tokens, freed_after)


def test_the_playground_sends_an_answer_exactly_as_the_model_gave_it(studio, login, researcher):
    from django.urls import reverse

    from annotations.models import Generation

    answer = " leading space, as a model's first token often has\n"
    sent = login(researcher).post(
        reverse("playground_send"),
        {"project": studio["alpha"].pk, "version": studio["v1-alpha"].pk, "prompt": "Hi", "text": answer,
         "seed": 1, "temperature": 0.7},
    )  # fmt: skip
    assert sent.status_code == 302
    assert Generation.objects.get(prompt__project=studio["alpha"]).text == answer
