"""API keys of the OpenAI-compatible endpoint: hashed at rest, shown once, revocable, scoped, audited."""

from __future__ import annotations

import hashlib

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.urls import reverse

from audit.models import AuditEvent
from training.models import ApiKey, ModelVersion, TrainingRound
from training.services import api_keys

pytestmark = pytest.mark.django_db


@pytest.fixture
def projects(db):
    from annotations.services import project_create

    return project_create(name="Alpha news", kind="summarization"), project_create(
        name="Beta code", kind="code"
    )


def test_a_key_is_stored_only_as_its_hash(researcher, projects):
    key, secret = api_keys.api_key_create(user=researcher, name="app", projects=[projects[0]])
    assert secret.startswith("t2g-") and len(secret) > 40
    stored = ApiKey.objects.get(pk=key.pk)
    assert stored.key_hash == hashlib.sha256(secret.encode()).hexdigest()
    assert secret not in str(list(ApiKey.objects.values()))  # nowhere in the row
    assert stored.prefix == secret[:12]
    assert api_keys.api_key_authenticate(secret) == stored
    assert api_keys.api_key_authenticate(secret + "x") is None
    event = AuditEvent.objects.get(action="api_key.create")
    assert secret not in str(event.details) and event.details["prefix"] == key.prefix


def test_revoked_and_role_less_keys_do_not_authenticate(researcher, admin_user, annotator, projects):
    key, secret = api_keys.api_key_create(user=researcher, name="app", projects=[projects[0]])
    with pytest.raises(PermissionDenied):
        api_keys.api_key_revoke(key=key, user=annotator)
    api_keys.api_key_revoke(key=key, user=admin_user)
    assert api_keys.api_key_authenticate(secret) is None
    assert AuditEvent.objects.filter(action="api_key.revoke", actor_id=admin_user.pk).count() == 1
    with pytest.raises(PermissionDenied):
        api_keys.api_key_create(user=annotator, name="x", projects=[projects[0]])
    other, other_secret = api_keys.api_key_create(user=researcher, name="b", projects=[projects[0]])
    researcher.groups.clear()  # lost the researcher role: the key stops with it
    assert api_keys.api_key_authenticate(other_secret) is None


def test_bad_key_input_is_refused(researcher, projects):
    with pytest.raises(ValidationError):
        api_keys.api_key_create(user=researcher, name=" ", projects=[projects[0]])
    with pytest.raises(ValidationError):
        api_keys.api_key_create(user=researcher, name="x", projects=[])
    with pytest.raises(ValidationError):
        api_keys.api_key_create(user=researcher, name="x", projects=[projects[0]], rate_limit_per_minute=0)


def test_models_follow_the_projects_and_the_active_version(researcher, projects):
    alpha, beta = projects
    base = ModelVersion.objects.create(name="v0-base", base_model="tiny", is_active=True)
    for project, name in ((alpha, "v1-alpha"), (beta, "v1-beta")):
        ModelVersion.objects.create(
            name=name,
            base_model="tiny",
            parent=base,
            created_by_round=TrainingRound.objects.create(project=project, base_version=base),
        )
    key, _ = api_keys.api_key_create(user=researcher, name="app", projects=[alpha])
    served = {m.id: m.version.name for m in api_keys.api_key_models(key)}
    assert served == {"project/alpha-news": "v0-base", "v1-alpha": "v1-alpha", "v0-base": "v0-base"}
    assert api_keys.api_key_resolve(key, "v1-beta") is None
    assert api_keys.api_key_resolve(key, "project/beta-code") is None
    ModelVersion.objects.filter(pk=base.pk).update(is_active=False)
    ModelVersion.objects.filter(name="v1-alpha").update(is_active=True)  # promoted: the alias follows
    assert api_keys.api_key_resolve(key, "project/alpha-news").version.name == "v1-alpha"


def test_rate_limit_counts_per_key_per_minute(researcher, projects):
    from django.core.cache import cache

    key, _ = api_keys.api_key_create(
        user=researcher, name="app", projects=[projects[0]], rate_limit_per_minute=2
    )
    cache.clear()
    minute = 1_000_000 * 60 + 5
    assert [api_keys.rate_limit_admit(key, now=minute) for _ in range(3)] == [0, 0, 55]
    assert api_keys.rate_limit_admit(key, now=minute + 60) == 0  # a new minute


def test_page_shows_a_new_key_once_and_revokes(login, researcher, projects):
    client = login(researcher)
    url = reverse("api_key_list")
    response = client.post(
        url, {"name": "notebook", "projects": [projects[0].pk], "rate_limit_per_minute": ""}
    )
    assert response.status_code == 200
    secret = response.context["secret"]
    assert secret and secret in response.content.decode()
    assert "no-store" in response["Cache-Control"]
    again = client.get(url).content.decode()
    assert secret not in again and secret[:12] in again  # shown once; the prefix names it afterwards
    key = ApiKey.objects.get(name="notebook")
    assert key.rate_limit_per_minute == 60
    assert client.post(reverse("api_key_revoke", args=[key.pk])).status_code == 302
    key.refresh_from_db()
    assert key.is_revoked


def test_page_refuses_a_key_without_projects(login, researcher, projects):
    response = login(researcher).post(reverse("api_key_list"), {"name": "x", "projects": []})
    assert response.status_code == 400
    assert not ApiKey.objects.exists()
    assert "This field is required" in response.content.decode()


def test_playground_says_when_the_endpoint_is_down(login, researcher, projects, settings):
    import socket

    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    settings.T2G_ENDPOINT_URL = f"http://127.0.0.1:{port}/v1"
    version = ModelVersion.objects.create(name="v0-base", base_model="tiny", is_active=True)
    response = login(researcher).post(
        reverse("playground"),
        {"version_a": version.pk, "prompt": "Hi", "seed": 1, "temperature": 0.6, "max_tokens": 8},
    )
    assert response.status_code == 200
    [answer] = response.context["answers"]
    assert "did not answer" in answer.error and "serve_openai" in response.content.decode()


def test_playground_send_refuses_an_archived_project_and_bad_input(login, researcher, projects):
    from annotations.models import Generation

    version = ModelVersion.objects.create(name="v0-base", base_model="tiny", is_active=True)
    alpha = projects[0]
    alpha.is_archived = True
    alpha.save()
    web = login(researcher)
    body = {
        "project": alpha.pk,
        "version": version.pk,
        "prompt": "Hi",
        "text": "Hello",
        "seed": 1,
        "temperature": 0.6,
    }
    web.post(reverse("playground_send"), body)
    web.post(reverse("playground_send"), body | {"project": projects[1].pk, "text": ""})
    assert not Generation.objects.exists()
    web.post(reverse("playground_send"), body | {"project": projects[1].pk})
    assert Generation.objects.get().prompt.project == projects[1]
