"""The optional LLM pass of 'Suggest spans' (issue 28): a per-project OpenAI-compatible endpoint, a per-request
choice on the annotate page, its spans merged with the other passes, its failures reported, not fatal.

The studio serves no chat-completions endpoint of its own and no capable model runs on this machine, so the
happy path talks over real HTTP to a separate server process (``tests/unit/openai_server.py``,
``serve_scripted``) that speaks the protocol and answers the text the test wrote; the failure path talks to
a real transformers model behind the same protocol (``ChatServer``), whose answer is not the JSON asked for.
"""

import json
import subprocess
import sys
from pathlib import Path

import pytest
from django.urls import reverse
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from annotations.models import Annotation
from training.models import AlignmentRequest
from training.worker import alignment as alignment_jobs

pytestmark = pytest.mark.django_db

REPO = Path(__file__).resolve().parents[2]
OUTPUT = "The bridge opened in 1932. It is 503 metres long. Locals call it the Coathanger."
CRITIQUE = '"It is 503 metres long" is correct. The nickname is a nice touch.'


@pytest.fixture
def scripted_server(tmp_path):
    """A chat-completions server in its own process; yields (base_url, answers file, request log)."""
    answers, log = tmp_path / "answers.json", tmp_path / "requests.jsonl"
    answers.write_text(json.dumps(["{}"]), encoding="utf-8")
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.unit.openai_server", "--scripted", str(answers), str(log)],
        cwd=REPO, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        line = process.stdout.readline()
        assert line.startswith("port "), line
        yield f"http://127.0.0.1:{int(line.split()[1])}/v1", answers, log
    finally:
        process.terminate()
        process.wait(timeout=10)


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
def test_llm_pass_from_the_page_is_merged_with_the_other_passes(
    scripted_server, monkeypatch, project, make_generation, annotator, login
):
    base_url, answers, log = scripted_server
    project.llm_aligner_url, project.llm_aligner_model = base_url, "judge-model"
    project.llm_aligner_key_env = "T2G_TEST_ALIGNER_KEY"
    project.save()
    monkeypatch.setenv("T2G_TEST_ALIGNER_KEY", "sk-local-test")
    # The LLM reads the quoted sentence the other way (the rule's reading stands), and names the nickname
    # sentence, which no quote names (it replaces any similarity guess there).
    answers.write_text(
        json.dumps(
            ['```json\n{"critique": "x", "good_spans": ["Locals call it the Coathanger."], '
             '"poor_spans": ["It is 503 metres long"]}\n```']
        ),
        encoding="utf-8",
    )  # fmt: skip
    annotation = Annotation.objects.create(
        generation=make_generation(project, OUTPUT, prompt_text="Describe the Sydney Harbour Bridge."),
        annotator=annotator,
    )
    client = login(annotator)
    page = client.get(reverse("annotate", args=[annotation.pk])).content.decode()
    assert 'id="use-llm"' in page and "#overall-critique, #use-llm" in page

    response = client.post(reverse("annotation_suggest", args=[annotation.pk]), {"critique": CRITIQUE})
    assert response.status_code == 200
    plain = AlignmentRequest.objects.get()
    assert plain.use_llm is False  # the choice is per request: unticked, no LLM call
    alignment_jobs.alignment_request_run(request_id=plain.pk)
    assert not log.exists()

    response = client.post(
        reverse("annotation_suggest", args=[annotation.pk]), {"critique": CRITIQUE, "use_llm": "1"}
    )
    assert response.status_code == 200
    request = AlignmentRequest.objects.exclude(pk=plain.pk).get()
    alignment_jobs.alignment_request_run(request_id=request.pk)
    request.refresh_from_db()
    assert request.status == "succeeded" and request.error == ""
    found = [(p["text"], p["polarity"], p["method"]) for p in request.proposals]
    assert ("It is 503 metres long", 1, "quote-exact") in found
    assert ("Locals call it the Coathanger.", 1, "llm") in found
    assert not any(p["method"] == "llm" and p["polarity"] == -1 for p in request.proposals)
    assert not any(p["method"] == "semantic" and p["text"].startswith("Locals") for p in request.proposals)

    (call,) = [json.loads(line) for line in log.read_text(encoding="utf-8").splitlines()]
    assert call["authorization"] == "Bearer sk-local-test"
    assert call["body"]["model"] == "judge-model"
    user_message = call["body"]["messages"][-1]["content"]
    assert "Describe the Sydney Harbour Bridge." in user_message and OUTPUT in user_message
    assert CRITIQUE in user_message
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
