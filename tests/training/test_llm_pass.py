"""The optional LLM pass of 'Suggest spans' (issue 28): a per-project OpenAI-compatible endpoint, a per-request
choice on the annotate page, its spans merged with the other passes, its failures reported, not fatal.

The happy path goes through the studio's own endpoint (``manage.py serve_openai`` on the test database, with
a project-scoped API key) serving a real transformers model. No model small enough for a test answers the
JSON the pass asks for, so that model is a tiny llama whose weights are set by hand (``chain_model_dir``):
every layer adds nothing to the residual stream, so each next token depends on the current one only, and
the embeddings and output head chain the chat template's last token through the answer the test wants to
its end-of-turn token. Greedy decoding (the pass asks for temperature 0) then answers exactly that text.
The failure path talks to a tiny random model behind a minimal protocol server (``ChatServer``), whose
answer is not the JSON asked for.
"""

from pathlib import Path

import pytest
from django.urls import reverse
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from annotations.models import Annotation
from tests.conftest import _worker_env
from tests.support.endpoint import serve_openai
from training.models import AlignmentRequest
from training.worker import alignment as alignment_jobs

pytestmark = pytest.mark.django_db

REPO = Path(__file__).resolve().parents[2]
OUTPUT = "The bridge opened in 1932. It is 503 metres long. Locals call it the Coathanger."
CRITIQUE = '"It is 503 metres long" is correct. The nickname is a nice touch.'
# The chain model's whole answer: the LLM reads the quoted sentence the other way round from the critique
# below (the rule's reading stands), and names the nickname sentence, which no quote names.
CHAIN_ANSWER = '{"good_spans": ["It is 503 metres long", "Locals call it the Coathanger."]}'
WRONG_LENGTH = '"It is 503 metres long" is wrong: it is 1,149 metres. The nickname is a nice touch.'


@pytest.fixture(scope="module")
def chain_model_dir(tmp_path_factory, base_tokenizer_dir) -> Path:
    """A llama with SmolLM2's tokenizer that answers ``CHAIN_ANSWER`` to any chat prompt, greedily."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from text2grad.generation import encode_prompt

    tokenizer = AutoTokenizer.from_pretrained(base_tokenizer_dir)
    last = encode_prompt(tokenizer, [{"role": "user", "content": "x"}])[-1]  # "\n" after "assistant"
    chain = [last, *tokenizer.encode(CHAIN_ANSWER, add_special_tokens=False), tokenizer.eos_token_id]
    successors = {}
    for token, following in zip(chain, chain[1:], strict=False):
        assert successors.setdefault(token, following) == following, "a token with two successors"
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=64, intermediate_size=64, num_hidden_layers=1,
        num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=2048,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id, tie_word_embeddings=False,
    )  # fmt: skip
    assert len(successors) <= config.hidden_size
    model = LlamaForCausalLM(config)
    with torch.no_grad():
        for param in model.parameters():
            param.zero_()
        model.model.norm.weight.fill_(1.0)
        for layer in model.model.layers:
            layer.input_layernorm.weight.fill_(1.0)
            layer.post_attention_layernorm.weight.fill_(1.0)
        for axis, (token, following) in enumerate(successors.items()):
            model.model.embed_tokens.weight[token, axis] = 1.0
            model.lm_head.weight[following, axis] = 10.0
    out = tmp_path_factory.mktemp("chain-llama")
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


@pytest.fixture(scope="module")
def studio_endpoint(django_db_setup, django_db_blocker, chain_model_dir, tmp_path_factory):
    """``manage.py serve_openai --port 0`` on the test database, serving the chain model as the base."""
    with django_db_blocker.unblock():
        env = _worker_env(chain_model_dir, tmp_path_factory.mktemp("endpoint-models"))
    # The endpoint's own defaults (its max_tokens cap included): the LLM pass must work against them.
    env.update({"DEBUG": "1"})
    log_path = tmp_path_factory.mktemp("endpoint-log") / "endpoint.log"
    with serve_openai(env, log_path) as url:
        yield url


def _api(user) -> APIClient:
    client = APIClient()
    token, _ = Token.objects.get_or_create(user=user)
    client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    return client


def test_project_llm_settings_are_validated_and_off_by_default(project, admin_user, annotator):
    assert not project.llm_aligner_enabled
    client = _api(admin_user)
    url = f"/api/v1/projects/{project.pk}/"
    response = client.patch(url, {"llm_aligner_url": "http://127.0.0.1:8000/v1"}, format="json")
    assert response.status_code == 400 and "llm_aligner_model" in response.json()
    response = client.patch(url, {"llm_aligner_url": "not a url", "llm_aligner_model": "m"}, format="json")
    assert response.status_code == 400 and "llm_aligner_url" in response.json()
    response = client.patch(
        url, {"llm_aligner_url": "http://127.0.0.1:8000/v1", "llm_aligner_model": "m",
              "llm_aligner_key_env": "sk-the-key-itself"}, format="json",
    )  # fmt: skip
    assert response.status_code == 400 and "llm_aligner_key_env" in response.json()
    response = client.patch(
        url, {"llm_aligner_url": "http://127.0.0.1:8000/v1", "llm_aligner_model": "gpt-4o",
              "llm_aligner_key_env": "STUDIO_LLM_KEY"}, format="json",
    )  # fmt: skip
    assert response.status_code == 200, response.content
    assert response.json()["llm_aligner_key_env"] == "STUDIO_LLM_KEY"
    project.refresh_from_db()
    assert project.llm_aligner_enabled and project.llm_aligner_model == "gpt-4o"
    # Where the LLM runs is the admins' business: an annotator's view of the project leaves it out.
    seen = _api(annotator).get(url)
    assert seen.status_code == 200 and not any(name.startswith("llm_aligner") for name in seen.json())


def test_asking_for_the_llm_without_an_endpoint_is_a_400(
    settings, project, make_generation, annotator, login
):
    settings.T2G_LLM_ALIGNER_URL = ""
    annotation = Annotation.objects.create(generation=make_generation(project, OUTPUT), annotator=annotator)
    client = login(annotator)
    page = client.get(reverse("annotate", args=[annotation.pk])).content.decode()
    assert 'id="use-llm"' not in page  # not offered where it is not configured
    response = client.post(
        reverse("annotation_suggest", args=[annotation.pk]), {"critique": CRITIQUE, "use_llm": "1"}
    )
    assert response.status_code == 400 and "no LLM endpoint" in response.content.decode()
    assert not AlignmentRequest.objects.exists()


@pytest.mark.heavy
@pytest.mark.django_db(
    transaction=True
)  # the endpoint process reads the key and the version from the database
def test_llm_pass_from_the_page_goes_through_the_studio_endpoint_and_is_merged(
    studio_endpoint, chain_model_dir, monkeypatch, project, make_generation, annotator, researcher, login
):
    from audit.models import AuditEvent
    from text2grad.generation import encode_prompt
    from training.services import api_keys, model_version_bootstrap

    base = model_version_bootstrap()
    _key, secret = api_keys.api_key_create(user=researcher, name="aligner", projects=[project])
    project.llm_aligner_url, project.llm_aligner_model = studio_endpoint, base.name
    project.llm_aligner_key_env = "T2G_TEST_ALIGNER_KEY"
    project.save()
    monkeypatch.setenv("T2G_TEST_ALIGNER_KEY", secret)
    prompt = "Describe the Sydney Harbour Bridge."
    annotation = Annotation.objects.create(
        generation=make_generation(project, OUTPUT, prompt_text=prompt), annotator=annotator
    )
    client = login(annotator)
    page = client.get(reverse("annotate", args=[annotation.pk])).content.decode()
    assert 'id="use-llm"' in page and "#overall-critique, #use-llm" in page

    suggest = reverse("annotation_suggest", args=[annotation.pk])
    assert client.post(suggest, {"critique": WRONG_LENGTH}).status_code == 200
    plain = AlignmentRequest.objects.get()
    assert plain.use_llm is False  # the choice is per request: unticked, no LLM call
    alignment_jobs.alignment_request_run(request_id=plain.pk)
    assert not AuditEvent.objects.filter(action="endpoint.completion").exists()

    assert client.post(suggest, {"critique": WRONG_LENGTH, "use_llm": "1"}).status_code == 200
    request = AlignmentRequest.objects.exclude(pk=plain.pk).get()
    alignment_jobs.alignment_request_run(request_id=request.pk)
    request.refresh_from_db()
    assert request.status == "succeeded" and request.error == ""
    found = [(p["text"], p["polarity"], p["method"]) for p in request.proposals]
    assert ("It is 503 metres long", -1, "quote-exact") in found  # the quote's rule stands
    assert ("Locals call it the Coathanger.", 1, "llm") in found
    assert not any(p["method"] == "llm" and p["text"].startswith("It is") for p in request.proposals)
    assert not any(p["method"] == "semantic" and p["text"].startswith("Locals") for p in request.proposals)

    # The endpoint served it under the project's key, for the version named, on the pass's own prompt.
    (served,) = AuditEvent.objects.filter(action="endpoint.completion")
    assert served.details["model"] == base.name and served.details["endpoint"].endswith("chat/completions")
    from transformers import AutoTokenizer

    from text2grad.alignment import LLMAligner

    sent = LLMAligner(base_url=studio_endpoint, model=base.name)._messages(OUTPUT, WRONG_LENGTH, prompt)
    tokenizer = AutoTokenizer.from_pretrained(chain_model_dir)
    assert served.details["prompt_tokens"] == len(encode_prompt(tokenizer, sent))
    # the whole answer, greedily, and then the end-of-turn token, which ends it and is not counted
    assert served.details["completion_tokens"] == len(tokenizer.encode(CHAIN_ANSWER))
    fragment = client.get(reverse("alignment_status", args=[request.pk])).content.decode()
    assert "The LLM pass ran" in fragment and "Coathanger" in fragment


@pytest.mark.heavy
def test_a_failing_llm_pass_keeps_the_other_passes(
    tiny_model_dir, project, make_generation, annotator, login
):
    from tests.unit.openai_server import ChatServer

    annotation = Annotation.objects.create(generation=make_generation(project, OUTPUT), annotator=annotator)
    with ChatServer(tiny_model_dir, max_new_tokens=16) as server:
        project.llm_aligner_url, project.llm_aligner_model = server.base_url, "tiny"
        project.save()
        client = login(annotator)
        client.post(
            reverse("annotation_suggest", args=[annotation.pk]), {"critique": CRITIQUE, "use_llm": "1"}
        )
        request = AlignmentRequest.objects.get()
        alignment_jobs.alignment_request_run(request_id=request.pk)
        assert server.answers  # the real model answered, with text that is not the JSON asked for
    request.refresh_from_db()
    assert request.status == "succeeded"
    assert request.error.startswith("The LLM pass failed") and "no JSON object" in request.error
    assert ("It is 503 metres long", 1) in [(p["text"], p["polarity"]) for p in request.proposals]
    assert not any(p["method"] == "llm" for p in request.proposals)
    fragment = client.get(reverse("alignment_status", args=[request.pk])).content.decode()
    assert "The LLM pass failed" in fragment and "503 metres" in fragment
