"""The round page asks "did it help?": one click starts a blind pairwise campaign between the round's new
version and its parent on a few held-out prompts; the page then links it and, once judged, says the
verdict. Warnings from the KL and reward trends are tested in test_round_warnings_browser.py."""

from __future__ import annotations

import re

import pytest
from django.urls import reverse

from annotations.models import Prompt
from evaluation.models import EvaluationCampaign
from jobs.models import Outbox
from training.models import ModelVersion, TrainingRound

pytestmark = pytest.mark.django_db


@pytest.fixture
def finished_round(make_finished_round):
    return make_finished_round(held_out_every=2)  # 6 of its 12 prompts held out


def _page(client, training_round) -> str:
    response = client.get(reverse("round_detail", args=[training_round.pk]))
    assert response.status_code == 200
    return response.content.decode()


def test_one_click_starts_blind_pairs_against_the_parent_on_held_out_prompts(
    login, admin_user, finished_round, django_capture_on_commit_callbacks
):
    client = login(admin_user)
    page = _page(client, finished_round)
    assert "Did it help?" in page and 'id="round-evaluate"' in page and "Evaluate against v0-base" in page
    action = reverse("round_action", args=[finished_round.pk, "evaluate"])
    assert f'action="{action}"' in page
    with django_capture_on_commit_callbacks(execute=False):
        response = client.post(action)
    campaign = EvaluationCampaign.objects.get()
    assert response.status_code == 302 and response["Location"] == reverse(
        "campaign_detail", args=[campaign.pk]
    )
    assert {v.name for v in campaign.versions.all()} == {"v0-base", "v1-round"}
    prompts = list(campaign.prompts.all())
    assert len(prompts) == 6 and all(p.held_out for p in prompts)  # 6 held out (< 8): all of them
    assert campaign.name == f"Round #{finished_round.pk}: v1-round vs its parent v0-base"
    job = campaign.generations.get()  # a campaign generation job, queued through the outbox
    assert Outbox.objects.filter(task_name="training.evaluation_generate", args=[job.pk]).count() == 1

    # A second click does not start a second campaign; the page now links the one that runs.
    client.post(action)
    assert EvaluationCampaign.objects.count() == 1
    page = _page(client, finished_round)
    assert reverse("campaign_detail", args=[campaign.pk]) in page and 'id="round-evaluate"' not in page
    assert "The verdict appears here once annotators have judged the pairs." in page


def test_without_held_out_prompts_it_takes_any_eight(login, admin_user, finished_round):
    Prompt.objects.update(held_out=False)
    login(admin_user).post(reverse("round_action", args=[finished_round.pk, "evaluate"]))
    assert EvaluationCampaign.objects.get().prompts.count() == 8


def test_only_admins_start_it_and_only_for_a_round_with_a_parent(
    login, admin_user, researcher, annotator, finished_round
):
    action = reverse("round_action", args=[finished_round.pk, "evaluate"])
    page = _page(login(researcher), finished_round)
    assert "Did it help?" in page and 'id="round-evaluate"' not in page and "an admin starts one here" in page
    assert login(researcher).post(action).status_code == 403
    assert login(annotator).post(action).status_code == 403
    assert not EvaluationCampaign.objects.exists()

    orphan = finished_round.output_version
    ModelVersion.objects.filter(pk=orphan.pk).update(parent=None)
    client = login(admin_user)
    assert "Did it help?" not in _page(client, finished_round)
    response = client.post(action, follow=True)
    assert "v1-round has no parent version to compare with." in response.content.decode()
    assert not EvaluationCampaign.objects.exists()


def test_a_round_still_running_offers_no_evaluation(login, admin_user, finished_round):
    TrainingRound.objects.filter(pk=finished_round.pk).update(status="running")
    client = login(admin_user)
    assert "Did it help?" not in _page(client, finished_round)
    response = client.post(reverse("round_action", args=[finished_round.pk, "evaluate"]), follow=True)
    assert "Only a round that finished with a new version can be evaluated." in response.content.decode()
    assert not EvaluationCampaign.objects.exists()


def test_once_judged_the_round_page_says_whether_the_round_helped(
    login, admin_user, annotator, annotator2, finished_round
):
    from evaluation import services as evaluation_services
    from evaluation.models import EvaluationOutput

    client = login(admin_user)
    client.post(reverse("round_action", args=[finished_round.pk, "evaluate"]))
    campaign = EvaluationCampaign.objects.get()
    versions = list(campaign.versions.all())
    for prompt in campaign.prompts.all():
        for version in versions:
            EvaluationOutput.objects.create(campaign=campaign, prompt=prompt, model_version=version,
                                            text=f"answer {prompt.pk} by {version.name}", finish_reason="stop")  # fmt: skip
    evaluation_services.campaign_outputs_ready(campaign=campaign)
    for judge in (annotator, annotator2):  # the parent wins every pair: the round made things worse
        while (lease := evaluation_services.judgement_next(campaign=campaign, judge=judge)) is not None:
            verdict = "a" if lease.left.model_version.name == "v0-base" else "b"
            evaluation_services.judgement_submit(judgement=lease, judge=judge, verdict=verdict)
    page = _page(client, finished_round)
    verdict = re.search(r'<p class="round-verdict">(.*?)</p>', page, re.S).group(1)
    assert "v1-round is not significantly better than v0-base" in verdict
    assert "head to head 0 wins, 6 losses" in verdict
