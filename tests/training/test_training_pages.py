"""The admin training pages: launch a round, watch it, promote and roll back, permissions."""

import pytest
from django.urls import reverse

from training import services
from training.models import ModelVersion, TrainingRound
from training.worker import rounds

pytestmark = pytest.mark.django_db

FAST = {"steps": 2, "batch_size": 2, "minibatch_size": 2, "ppo_epochs": 1, "learning_rate": 1e-3}


def test_researcher_sees_training_but_cannot_launch(login, researcher, critiqued):
    client = login(researcher)
    assert client.get(reverse("training_home")).status_code == 200
    response = client.post(reverse("round_launch"), {"mode": "token"})
    assert response.status_code == 403
    assert TrainingRound.objects.count() == 0


def test_annotator_cannot_see_training(login, annotator):
    assert login(annotator).get(reverse("training_home")).status_code == 403


def test_admin_launches_a_round_from_the_form(
    login, admin_user, critiqued, tiny_settings, django_capture_on_commit_callbacks
):
    form = {
        "mode": "scalar", "learning_rate": 0.001, "kl_coef": 0.1, "lam": 0.95, "gamma": 1.0, "clip_eps": 0.2,
        "steps": 2, "batch_size": 2, "minibatch_size": 2, "ppo_epochs": 1, "seed": 3, "adaptive_kl": "on",
    }  # fmt: skip
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = login(admin_user).post(reverse("round_launch"), form)
    assert response.status_code == 302
    training_round = TrainingRound.objects.get()
    assert len(callbacks) == 1  # the task is enqueued once, after commit
    assert training_round.mode == "scalar" and training_round.config["seed"] == 3
    assert training_round.config["steps"] == 2 and training_round.snapshot_size == 4
    assert training_round.config["micro_batch_size"] == 2  # left out of the form: the config's default


def test_form_errors_are_shown(login, admin_user, critiqued):
    response = login(admin_user).post(reverse("round_launch"), {"mode": "token", "learning_rate": "-1"})
    assert response.status_code == 400
    assert TrainingRound.objects.count() == 0
    assert "Ensure this value is greater than or equal to" in response.content.decode()


def test_round_page_shows_progress_charts_and_live_fragment(login, admin_user, critiqued, tiny_settings):
    training_round = services.round_launch(config=FAST, enqueue=False)
    rounds.round_run(round_id=training_round.pk)
    client = login(admin_user)
    page = client.get(reverse("round_detail", args=[training_round.pk])).content.decode()
    assert "update 2 of 2" in page and page.count('class="card chart-card"') == 4
    assert "Human token reward" in page and "optimizer step" in page  # human names, labelled axes
    assert "Learning rate" in page and "{'" not in page  # the config as a labelled table, not a dict
    fragment = client.get(reverse("round_detail", args=[training_round.pk]), headers={"HX-Request": "true"})
    body = fragment.content.decode()
    assert body.lstrip().startswith('<div id="round-live"') and "<html" not in body
    assert 'hx-trigger="every 2s"' not in body  # finished rounds stop polling


def test_promote_and_roll_back_buttons(login, admin_user, researcher, critiqued, tiny_settings):
    base = services.model_version_bootstrap()
    training_round = services.round_launch(config=FAST, enqueue=False)
    rounds.round_run(round_id=training_round.pk)
    new = TrainingRound.objects.get(pk=training_round.pk).output_version
    assert login(researcher).post(reverse("version_activate", args=[new.pk])).status_code == 403
    client = login(admin_user)
    # No evaluation campaign shows the new version better: promotion asks first, and says why.
    asked = client.post(reverse("version_activate", args=[new.pk]))
    assert asked.status_code == 409 and "not shown to be significantly better" in asked.content.decode()
    assert ModelVersion.objects.get(is_active=True) == base
    client.post(reverse("version_activate", args=[new.pk]), {"confirm": "yes"})
    assert ModelVersion.objects.get(is_active=True) == new
    page = client.get(reverse("training_home")).content.decode()
    assert "Roll back" in page and new.name in page
    client.post(reverse("version_activate", args=[base.pk]), {"confirm": "yes"})
    assert ModelVersion.objects.get(is_active=True) == base


def test_train_round_command_promotes_only_past_the_evaluation_gate(critiqued, tiny_settings, capsys):
    from django.core.management import call_command

    base = services.model_version_bootstrap()
    args = ("train_round", "--mode", "token", "--steps", "1", "--batch-size", "2", "--promote",
            "--config", '{"minibatch_size": 2, "ppo_epochs": 1}')  # fmt: skip
    # No judged campaign shows the new version better than the active one: saved, not promoted, and why.
    call_command(*args)
    out = capsys.readouterr().out
    assert "succeeded: version" in out and "(active)" not in out
    assert "Not promoted: No judged evaluation campaign compares" in out
    assert ModelVersion.objects.get(is_active=True) == base
    first = TrainingRound.objects.get()
    assert first.output_version is not None and not first.output_version.is_active
    assert first.summary["promotion"]["promoted"] is False
    assert base.name in first.summary["promotion"]["reason"]


def test_recover_jobs_after_a_restart(project, critiqued, django_capture_on_commit_callbacks):
    from django.core.management import call_command

    from training.models import GenerationJob

    job = GenerationJob.objects.create(project=project, status="running")
    training_round = services.round_launch(config=FAST, enqueue=False)
    TrainingRound.objects.filter(pk=training_round.pk).update(status="running")
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        call_command("recover_jobs")
    job.refresh_from_db()
    training_round.refresh_from_db()
    assert job.status == "queued" and len(callbacks) == 1  # re-enqueued once, after commit
    assert training_round.status == "failed" and "Resume" in training_round.error


def test_the_project_page_shows_trainings_section(login, admin_user, annotator, project):
    """Training's generation jobs reach annotations' project page through the registered section."""
    job = services.generation_job_create(project=project, per_prompt=2, created_by=admin_user)
    page = login(admin_user).get(reverse("project_detail", args=[project.pk])).content.decode()
    assert f'id="generation-job-{job.pk}"' in page and "<h2>Generation jobs</h2>" in page
    assert f"Active model <strong>{job.model_version.name}</strong>" in page
    assert page.index("Generation jobs") < page.index("Prompts and outputs")  # where the tag used to be
    assert (
        f'id="generation-job-{job.pk}"'
        in login(annotator).get(reverse("project_detail", args=[project.pk])).content.decode()
    )
