"""Database constraints, roles, login pages and the project pages."""

import pytest
from django.contrib.auth.models import Group
from django.db import IntegrityError, transaction
from django.urls import reverse

from annotations.models import Annotation, Span
from training.models import ModelVersion, TrainingRound

pytestmark = pytest.mark.django_db


def test_role_groups_exist_with_permissions():
    annotator = Group.objects.get(name="annotator")
    researcher = Group.objects.get(name="researcher")
    codes = set(annotator.permissions.values_list("codename", flat=True))
    assert {"add_annotation", "change_annotation", "add_span"} <= codes
    assert "view_tokenreward" not in codes
    research_codes = set(researcher.permissions.values_list("codename", flat=True))
    assert "view_traininground" in research_codes
    # TokenReward is training's (issue 23): researchers keep reading it under its new app label.
    assert researcher.permissions.filter(
        content_type__app_label="training", codename="view_tokenreward"
    ).exists()
    assert not any(code.startswith(("change_", "delete_")) for code in research_codes)


@pytest.mark.django_db(transaction=True)
def test_a_flush_syncs_the_role_groups_once_with_every_apps_permissions():
    """A test database is flushed after every transactional test: the groups are set once per flush (not
    once per app), after the training app's permissions exist."""
    from django.core.management import call_command
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as queries:
        call_command("flush", interactive=False, verbosity=0, reset_sequences=False)
    lookups = [
        q["sql"]
        for q in queries.captured_queries
        if 'FROM "auth_group"' in q["sql"] and "'researcher'" in q["sql"]
    ]
    assert len(lookups) == 1, lookups
    researcher = Group.objects.get(name="researcher")
    assert researcher.permissions.filter(
        content_type__app_label="training", codename="view_traininground"
    ).exists()


def test_span_start_must_be_before_end(project, make_generation, annotator):
    generation = make_generation(project, "hello world")
    annotation = Annotation.objects.create(generation=generation, annotator=annotator)
    with pytest.raises(IntegrityError), transaction.atomic():
        Span.objects.create(annotation=annotation, start=5, end=5, text="", label="poor", polarity=-1)


def test_one_annotation_per_annotator_and_generation(project, make_generation, annotator):
    generation = make_generation(project, "hello world")
    Annotation.objects.create(generation=generation, annotator=annotator)
    with pytest.raises(IntegrityError), transaction.atomic():
        Annotation.objects.create(generation=generation, annotator=annotator)


def test_only_one_active_model_version():
    ModelVersion.objects.create(name="a", base_model="m", is_active=True)
    with pytest.raises(IntegrityError), transaction.atomic():
        ModelVersion.objects.create(name="b", base_model="m", is_active=True)


def test_only_one_round_runs_at_a_time():
    TrainingRound.objects.create(status=TrainingRound.Status.RUNNING)
    with pytest.raises(IntegrityError), transaction.atomic():
        TrainingRound.objects.create(status=TrainingRound.Status.RUNNING)


def test_job_claim_is_won_once():
    job = TrainingRound.objects.create()
    other = TrainingRound.objects.get(pk=job.pk)
    assert job.claim() is True
    assert other.claim() is False


def test_login_page_and_login_flow(client, annotator):
    response = client.get(reverse("login"))
    assert response.status_code == 200
    assert b'name="password"' in response.content
    response = client.post(reverse("login"), {"username": "ann1", "password": "correct-horse-battery-9"})
    assert response.status_code == 302
    assert client.get(reverse("project_list")).status_code == 200


def test_pages_require_login(client, project):
    response = client.get(reverse("project_detail", args=[project.pk]))
    assert response.status_code == 302
    assert reverse("login") in response["Location"]


def test_project_page_escapes_model_output(login, annotator, project, make_generation):
    make_generation(project, '<script>alert("x")</script><img src=x onerror=alert(1)>')
    response = login(annotator).get(reverse("project_detail", args=[project.pk]))
    body = response.content.decode()
    assert "<script>alert" not in body
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in body
    assert "<img src=x" not in body


def test_only_admins_start_generation(login, annotator, project):
    response = login(annotator).post(reverse("generation_job_start", args=[project.pk]), {"per_prompt": 1})
    assert response.status_code == 403


def test_healthz(client):
    response = client.get(reverse("healthz"))
    body = response.json()
    assert response.status_code == 200 and body["database"] == "ok"
    # No worker runs in this test: the lanes are down, so the app is degraded, not ok.
    assert body["status"] == "degraded" and body["lanes"]["interactive"] == "down"
