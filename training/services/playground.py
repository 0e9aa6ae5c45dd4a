"""The playground: ask one or two versions the same prompt with the same seed, through the endpoint; send
an answer to a project's annotation queue as an output to critique (web-safe: no torch here).

The web process never runs a model: :func:`playground_ask` sends the prompt to the OpenAI-compatible
endpoint (``T2G_ENDPOINT_URL``) with a short-lived token signed for the user
(``api_keys.studio_token_for``), so the playground is counted, rate-limited and audited like any key.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from dataclasses import dataclass

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction

from annotations.models import Generation, Project, Prompt, content_hash
from audit.services import audit_record

from ..models import ModelVersion
from . import api_keys

MAX_PROMPT_CHARS = 8_000
PLAYGROUND_PURPOSE = "playground"


@dataclass
class Answer:
    version: ModelVersion
    text: str = ""
    finish_reason: str = ""
    completion_tokens: int = 0
    error: str = ""


def _ask_one(*, token: str, model: str, messages: list[dict], seed: int, temperature: float, max_tokens: int):
    body = json.dumps(
        {
            "model": model,
            "messages": messages,
            "seed": seed,
            "temperature": temperature,
            "max_tokens": max_tokens,
        }
    ).encode()
    request = urllib.request.Request(
        settings.T2G_ENDPOINT_URL.rstrip("/") + "/chat/completions",
        data=body,
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=settings.T2G_PLAYGROUND_TIMEOUT_S) as response:
            return json.loads(response.read()), ""
    except urllib.error.HTTPError as exc:
        try:
            message = json.loads(exc.read())["error"]["message"]
        except (ValueError, KeyError, TypeError):
            message = f"HTTP {exc.code}"
        return None, message
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        return (
            None,
            f"The endpoint at {settings.T2G_ENDPOINT_URL} did not answer ({exc}); is serve_openai running?",
        )


def playground_ask(
    *, user, versions: list[ModelVersion], prompt: str, seed: int, temperature: float, max_tokens: int
) -> list[Answer]:
    """Each version's answer to the same chat prompt and seed (an error in place of a failed answer)."""
    token = api_keys.studio_token_for(user)
    messages = [{"role": "user", "content": prompt}]
    answers = []
    for version in versions:
        payload, error = _ask_one(
            token=token,
            model=version.name,
            messages=messages,
            seed=seed,
            temperature=temperature,
            max_tokens=max_tokens,
        )
        if payload is None:
            answers.append(Answer(version=version, error=error))
            continue
        choice = payload["choices"][0]
        answers.append(
            Answer(
                version=version,
                text=choice["message"]["content"],
                finish_reason=choice["finish_reason"],
                completion_tokens=payload["usage"]["completion_tokens"],
            )
        )
    return answers


@transaction.atomic
def playground_output_send(
    *, user, project: Project, version: ModelVersion, prompt: str, text: str, seed: int, temperature: float
) -> Generation:
    """Put an answer into ``project``'s annotation queue as an output of ``version`` (the prompt is the
    project's existing one with that text, or a new one). The tokens are computed where rewards are."""
    if not api_keys.can_use_keys(user):
        raise PermissionDenied("The playground is for researchers and admins.")
    if project.is_archived:
        raise ValidationError("That project is archived.")
    if not prompt.strip() or not text.strip():
        raise ValidationError("Both the prompt and the answer are needed.")
    if len(prompt) > MAX_PROMPT_CHARS:
        raise ValidationError(f"The prompt is longer than {MAX_PROMPT_CHARS} characters.")
    prompt_row = Prompt.objects.filter(project=project, content_hash=content_hash(prompt)).first()
    if prompt_row is None:
        prompt_row = Prompt.objects.create(
            project=project, text=prompt, metadata={"source": PLAYGROUND_PURPOSE}
        )
    generation = Generation.objects.create(
        prompt=prompt_row,
        model_version=version,
        source_model=version.name,
        text=text,
        sampling_params={"seed": seed, "temperature": temperature, "source": PLAYGROUND_PURPOSE},
    )
    audit_record(
        action="playground.send",
        actor=user,
        obj=generation,
        details={"project": project.pk, "version": version.name, "prompt": prompt_row.pk},
    )
    return generation
