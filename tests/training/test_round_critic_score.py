"""The round page's second "did it help?": the project's active critic scores the round's new version and
its parent on the same held-out prompts. The page and its permissions here; the worker on a tiny model and
a tiny trained critic in ``test_round_critic_score_worker``; the page in Chromium in
``test_round_critic_score_browser``."""

from __future__ import annotations

import pytest
from django.urls import reverse
from django.utils.html import escape

from annotations.models import Prompt
from jobs.models import Outbox
from training.models import CriticVersion, ModelVersion, RoundCriticScore, TrainingRound
from training.views.rounds import critic_verdict

pytestmark = pytest.mark.django_db


@pytest.fixture
def finished_round(make_finished_round):
    return make_finished_round(held_out_every=3)  # 4 of its 12 prompts held out


@pytest.fixture
def critic(project):
    return CriticVersion.objects.create(project=project, name="critic-a", base_model="tiny", is_active=True)


def _page(client, training_round) -> str:
    response = client.get(reverse("round_detail", args=[training_round.pk]))
    assert response.status_code == 200
    return response.content.decode()


RESULT = {
    "critic": "critic-a", "version": "v1-round", "parent": "v0-base", "n": 8, "baseline_mean": -0.21,
    "candidate_mean": 0.034, "wins": 8, "losses": 0, "ties": 0, "p_value": 0.007812,
    "prompts": [{"id": 1, "parent": -0.21, "version": 0.034}],
}  # fmt: skip


def test_one_click_queues_the_critic_score_on_held_out_prompts(login, admin_user, finished_round, critic):
    client = login(admin_user)
    page = _page(client, finished_round)
    assert "Did it help?" in page and 'id="round-evaluate"' in page  # the blind pairs stay beside it
    assert 'id="round-critic-score-start"' in page and "Score with critic-a" in page
    action = reverse("round_action", args=[finished_round.pk, "critic_score"])
    assert f'action="{action}"' in page
    response = client.post(action)
    assert response.status_code == 302 and response["Location"] == reverse(
        "round_detail", args=[finished_round.pk]
    )
    job = RoundCriticScore.objects.get()
    held_out = list(Prompt.objects.filter(held_out=True).order_by("id").values_list("id", flat=True))
    assert job.prompt_ids == held_out and len(held_out) == 4  # 4 held out (< 8): all of them, in order
    assert job.critic_version == critic and job.created_by == admin_user and job.progress_total == 8
    assert Outbox.objects.filter(task_name="training.round_critic_score", args=[job.pk]).count() == 1

    # Asking again returns the queued score; the page follows it (htmx every 2 s) and says where it stands.
    client.post(action)
    assert RoundCriticScore.objects.count() == 1
    page = _page(client, finished_round)
    assert 'id="round-critic-score-start"' not in page and 'data-status="queued"' in page
    assert 'hx-select="#round-critic-score"' in page and "critic-a scores 0 of 8 answers" in page

    # Once done, the page says the verdict and stops polling; a failed score can be asked again.
    RoundCriticScore.objects.filter(pk=job.pk).update(status="succeeded", progress_step=8, result=RESULT)
    page = _page(client, finished_round)
    assert escape(critic_verdict(RESULT)) in page and 'hx-select="#round-critic-score"' not in page
    RoundCriticScore.objects.filter(pk=job.pk).update(status="failed", error="OSError: disk full")
    page = _page(client, finished_round)
    assert "The last score stopped: OSError: disk full" in page and 'id="round-critic-score-start"' in page
    client.post(action)
    assert RoundCriticScore.objects.count() == 2


def test_without_held_out_prompts_it_takes_the_first_eight(login, admin_user, finished_round, critic):
    Prompt.objects.update(held_out=False)
    login(admin_user).post(reverse("round_action", args=[finished_round.pk, "critic_score"]))
    first = list(Prompt.objects.order_by("id").values_list("id", flat=True)[:8])
    assert RoundCriticScore.objects.get().prompt_ids == first


def test_without_an_active_critic_the_page_says_how_to_get_one(login, admin_user, finished_round, critic):
    CriticVersion.objects.update(is_active=False)
    client = login(admin_user)
    page = _page(client, finished_round)
    project = finished_round.project
    assert (
        f"{project.name} has no active critic" in page and reverse("critic_home", args=[project.pk]) in page
    )
    assert 'id="round-critic-score-start"' not in page and 'id="round-evaluate"' in page
    response = client.post(reverse("round_action", args=[finished_round.pk, "critic_score"]), follow=True)
    assert (
        "The project has no active critic: train one on its critic page first." in response.content.decode()
    )
    assert not RoundCriticScore.objects.exists()


def test_only_admins_start_it_and_only_for_a_finished_round_with_a_parent(
    login, admin_user, researcher, annotator, finished_round, critic
):
    action = reverse("round_action", args=[finished_round.pk, "critic_score"])
    page = _page(login(researcher), finished_round)
    assert "critic-a has not scored this round yet; an admin starts it here." in page
    assert 'id="round-critic-score-start"' not in page
    assert login(researcher).post(action).status_code == 403
    assert login(annotator).post(action).status_code == 403
    TrainingRound.objects.filter(pk=finished_round.pk).update(status="running")
    response = login(admin_user).post(action, follow=True)
    assert "Only a round that finished with a new version can be evaluated." in response.content.decode()
    TrainingRound.objects.filter(pk=finished_round.pk).update(status="succeeded")
    ModelVersion.objects.filter(name="v1-round").update(parent=None)
    response = login(admin_user).post(action, follow=True)
    assert "v1-round has no parent version to compare with." in response.content.decode()
    assert not RoundCriticScore.objects.exists()


def test_the_verdict_names_a_winner_only_when_the_sign_test_says_so():
    assert critic_verdict(RESULT) == (
        "By critic-a, v1-round's answers score +0.034 (mean token reward) against -0.210 for its parent "
        "v0-base on 8 held-out prompts: better on 8, worse on 0, tied on 0 (sign test p = 0.01). "
        "The critic clearly prefers v1-round."
    )
    worse = {**RESULT, "wins": 0, "losses": 8, "candidate_mean": -0.5}
    assert critic_verdict(worse).endswith("The critic clearly prefers v0-base.")
    unclear = {**RESULT, "wins": 5, "losses": 3, "p_value": 0.726562}
    assert critic_verdict(unclear).endswith(
        "(sign test p = 0.73). No clear difference by the critic's measure."
    )


def test_an_admin_cancels_the_score_and_the_page_says_cancelled_without_a_result(
    login, admin_user, researcher, finished_round, critic
):
    client = login(admin_user)
    client.post(reverse("round_action", args=[finished_round.pk, "critic_score"]))
    job = RoundCriticScore.objects.get()
    page = _page(client, finished_round)
    cancel = reverse("round_action", args=[finished_round.pk, "critic_score_cancel"])
    assert f'action="{cancel}"' in page and 'id="round-critic-score-cancel"' in page
    assert 'id="round-critic-score-cancel"' not in _page(login(researcher), finished_round)
    assert login(researcher).post(cancel).status_code == 403

    response = login(admin_user).post(cancel, follow=True)
    assert "Cancel requested: the critic&#x27;s score stops and keeps nothing." in response.content.decode()
    job.refresh_from_db()
    assert job.status == "cancelled" and job.result == {}
    page = _page(client, finished_round)
    assert 'data-status="cancelled"' in page and "The last score was cancelled" in page
    assert 'class="round-critic-verdict"' not in page and 'hx-select="#round-critic-score"' not in page
    assert 'id="round-critic-score-start"' in page  # asked again from here
    response = client.post(cancel, follow=True)
    assert "The critic&#x27;s score had already finished." in response.content.decode()


def test_a_score_whose_worker_died_says_so_runs_again_then_is_given_up_with_a_restart(
    login, admin_user, finished_round, critic
):
    from datetime import timedelta

    from django.utils import timezone

    from jobs import lifecycle, reaper

    client = login(admin_user)
    client.post(reverse("round_action", args=[finished_round.pk, "critic_score"]))
    job = RoundCriticScore.objects.get()

    def worker_dies() -> None:
        assert lifecycle.claim(RoundCriticScore, job.pk) is not None
        RoundCriticScore.objects.filter(pk=job.pk).update(heartbeat_at=timezone.now() - timedelta(hours=1))
        reaper.reap()

    worker_dies()
    job.refresh_from_db()
    assert job.status == "queued" and job.requeues == 1
    page = _page(client, finished_round)
    assert 'data-status="queued"' in page and "stopped reporting" in page
    assert "it scores both versions again from the start" in page

    RoundCriticScore.objects.filter(pk=job.pk).update(requeues=3)
    worker_dies()
    job.refresh_from_db()
    assert job.status == "failed" and job.result == {}
    page = _page(client, finished_round)
    assert "The last score stopped: " in page and "stopped 4 times" in page
    assert "Nothing of it was kept; score the round again." in page and "What it finished is kept" not in page
    assert 'id="round-critic-score-start"' in page and 'class="round-critic-verdict"' not in page
    client.post(reverse("round_action", args=[finished_round.pk, "critic_score"]))
    assert RoundCriticScore.objects.count() == 2
