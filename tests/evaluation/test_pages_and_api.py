"""Evaluation pages (blind judging, results, drill-down, promotion confirmation), API and DPO export."""

from __future__ import annotations

import json

import pytest
from django.urls import reverse

from evaluation import services
from evaluation.models import EvaluationCampaign, PairwiseJudgement
from training.models import ModelVersion

pytestmark = pytest.mark.django_db
API = "/api/v1"


def test_judge_page_is_blind_and_htmx_submit_serves_the_next_pair(versions, make_campaign, login, annotator):
    campaign = make_campaign(versions[:2], prompt_count=2)
    client = login(annotator)
    page = client.get(reverse("campaign_judge", args=[campaign.pk])).content.decode()
    lease = PairwiseJudgement.objects.get(judge=annotator)
    assert lease.left.text.replace(" ", "") in page.replace(" ", "") or "answer" in page
    # Outputs are shown; the versions that wrote them are not (outside the outputs' own text).
    for version in versions[:2]:
        assert page.count(version.name) == page.count(f"by {version.name}")
    assert 'data-verdict="both_bad"' in page and "judge.js" in page
    response = client.post(
        reverse("judgement_submit", args=[lease.pk]),
        {"verdict": "a", "reason": "clearer"},
        headers={"HX-Request": "true"},
    )
    body = response.content.decode()
    assert (
        response.status_code == 200
        and body.lstrip().startswith('<div id="judge-task"')
        and "<html" not in body
    )
    lease.refresh_from_db()
    assert lease.status == "submitted" and lease.reason == "clearer" and lease.verdict == "a"
    second = PairwiseJudgement.objects.get(judge=annotator, status="leased")
    assert second.task_id != lease.task_id and f"/evaluation/judgements/{second.pk}/" in body


def test_bad_verdict_is_a_400_and_stores_nothing(versions, make_campaign, login, annotator, annotator2):
    campaign = make_campaign(versions[:2], prompt_count=1)
    login(annotator).get(reverse("campaign_judge", args=[campaign.pk]))
    lease = PairwiseJudgement.objects.get(judge=annotator)
    client = login(annotator)
    response = client.post(
        reverse("judgement_submit", args=[lease.pk]), {"verdict": "meh"}, headers={"HX-Request": "true"}
    )
    assert response.status_code == 400 and "verdict is one of" in response.content.decode()
    other = login(annotator2).post(reverse("judgement_submit", args=[lease.pk]), {"verdict": "a"})
    assert other.status_code == 404
    lease.refresh_from_db()
    assert lease.status == "leased"


def test_results_pages_for_researchers_only(versions, make_campaign, judge_all, login, annotator, researcher):
    campaign = make_campaign(versions, prompt_count=3)
    judge_all(campaign, [annotator], ["v1-round", "v2-round", "v0-base"])
    assert login(annotator).get(reverse("campaign_detail", args=[campaign.pk])).status_code == 403
    client = login(researcher)
    page = client.get(reverse("campaign_detail", args=[campaign.pk])).content.decode()
    assert 'data-leader="v1-round"' in page and "Win-rate matrix" in page
    assert (
        page.count('data-chart-kind="intervals"') == 2
        and 'id="campaign-charts"' in page
        and "<svg" not in page
    )
    prompt = campaign.prompts.order_by("id").first()
    assert f"/evaluation/{campaign.pk}/prompts/{prompt.pk}/" in page
    detail = client.get(reverse("campaign_prompt", args=[campaign.pk, prompt.pk])).content.decode()
    assert detail.count("answer item-0 by") == 3 and "v1-round better" in detail
    outside = client.get(reverse("campaign_prompt", args=[campaign.pk, 999999]))
    assert outside.status_code == 404
    fragment = client.get(
        reverse("campaign_detail", args=[campaign.pk]) + "?part=progress", headers={"HX-Request": "true"}
    ).content.decode()
    assert fragment.lstrip().startswith('<div id="campaign-progress"')


def test_untrusted_outputs_are_escaped(versions, make_campaign, login, annotator, researcher):
    campaign = make_campaign(versions[:2], prompt_count=1)
    campaign.outputs.update(text="<script>alert(1)</script>")
    page = login(annotator).get(reverse("campaign_judge", args=[campaign.pk])).content.decode()
    assert "<script>alert(1)" not in page and "&lt;script&gt;alert(1)" in page


def test_admin_creates_a_campaign_from_the_form(versions, prompts, project, login, admin_user, researcher):
    data = {
        "name": "Round 3 check", "project": project.pk, "versions": [versions[0].pk, versions[1].pk],
        "prompt_source": "held_out", "prompt_count": 3, "judgements_per_pair": 2, "temperature": 0.7,
        "max_new_tokens": 64, "seed": 5,
    }  # fmt: skip
    assert login(researcher).post(reverse("campaign_create"), data).status_code == 403
    response = login(admin_user).post(reverse("campaign_create"), data)
    campaign = EvaluationCampaign.objects.get()
    assert response.status_code == 302 and response["Location"] == reverse(
        "campaign_detail", args=[campaign.pk]
    )
    assert campaign.sampling_params["max_new_tokens"] == 64 and campaign.seed == 5
    bad = login(admin_user).post(reverse("campaign_create"), {**data, "versions": [versions[0].pk]})
    assert bad.status_code == 400 and EvaluationCampaign.objects.count() == 1


def test_promotion_asks_for_confirmation_without_significant_evidence(versions, login, admin_user):
    base, candidate, _ = versions
    client = login(admin_user)
    response = client.post(reverse("version_activate", args=[candidate.pk]))
    page = response.content.decode()
    assert response.status_code == 409 and "not shown to be significantly better" in page
    assert "No judged evaluation campaign compares v1-round with v0-base" in page
    assert ModelVersion.objects.get(is_active=True) == base
    client.post(reverse("version_activate", args=[candidate.pk]), {"confirm": "yes"})
    assert ModelVersion.objects.get(is_active=True) == candidate


def test_significantly_better_version_is_promoted_at_once_and_shows_its_standing(
    versions, make_campaign, judge_all, login, admin_user, annotator, annotator2
):
    base, candidate, _ = versions
    campaign = make_campaign([base, candidate], prompt_count=6, per_pair=2)
    judge_all(campaign, [annotator, annotator2], ["v1-round", "v0-base"])
    client = login(admin_user)
    home = client.get(reverse("training_home")).content.decode()
    assert "#1 of 2" in home and "#2 of 2" in home
    response = client.post(reverse("version_activate", args=[candidate.pk]))
    assert response.status_code == 302 and ModelVersion.objects.get(is_active=True) == candidate


def test_auto_promotion_passes_the_same_gate_as_a_manual_promotion(
    versions, make_campaign, judge_all, annotator, annotator2
):
    from training import services

    base, candidate, other = versions
    refused = services.model_version_auto_promote(version=other)  # no campaign compares it with base
    assert (
        refused["promoted"] is False
        and "No judged evaluation campaign compares v2-round" in refused["reason"]
    )
    assert ModelVersion.objects.get(is_active=True) == base
    campaign = make_campaign([base, candidate], prompt_count=6, per_pair=2)
    judge_all(campaign, [annotator, annotator2], ["v1-round", "v0-base"])
    passed = services.model_version_auto_promote(version=candidate)
    assert passed["promoted"] is True and "significantly better than v0-base" in passed["reason"]
    assert ModelVersion.objects.get(is_active=True) == candidate


def test_api_campaigns_results_and_permissions(
    versions, make_campaign, judge_all, prompts, project, annotator
):
    from rest_framework.test import APIClient

    from annotations import roles

    campaign = make_campaign(versions[:2], prompt_count=2)
    judge_all(campaign, [annotator], ["v1-round", "v0-base"])
    researcher = type(annotator).objects.create_user("apires", password="x")
    roles.assign_role(researcher, "researcher")
    client = APIClient()
    client.force_authenticate(annotator)
    assert client.get(f"{API}/evaluation-campaigns/").status_code == 403
    client.force_authenticate(researcher)
    listed = client.get(f"{API}/evaluation-campaigns/").json()
    assert [row["id"] for row in listed["results"]] == [campaign.pk]
    results = client.get(f"{API}/evaluation-campaigns/{campaign.pk}/results/").json()
    assert results["judgements"] == 2 and results["standings"][0]["version_name"] == "v1-round"
    assert results["win_rate_matrix"][1][0] == 1.0 and results["metrics"][0]["outputs"] == 2
    payload = {
        "name": "api",
        "project": project.pk,
        "versions": [versions[0].pk, versions[2].pk],
        "prompt_count": 2,
    }
    assert client.post(f"{API}/evaluation-campaigns/", payload, format="json").status_code == 403
    admin = type(annotator).objects.create_user("apiadmin", password="x")
    roles.assign_role(admin, "admin")
    client.force_authenticate(admin)
    created = client.post(f"{API}/evaluation-campaigns/", payload, format="json")
    assert created.status_code == 201 and created.json()["status"] == "generating"
    bad = client.post(f"{API}/evaluation-campaigns/", {**payload, "prompt_count": 99}, format="json")
    assert bad.status_code == 400 and EvaluationCampaign.objects.count() == 2
    schema = client.get(f"{API}/schema/").content.decode()
    assert "/api/v1/evaluation-campaigns/{id}/results/" in schema


def test_preference_export_loads_as_a_trl_dpo_dataset(
    versions, make_campaign, judge_all, login, researcher, annotator, tmp_path, base_tokenizer_dir
):
    datasets = pytest.importorskip("datasets")
    campaign = make_campaign(versions[:2], prompt_count=4)
    judge_all(campaign, [annotator], ["v1-round", "v0-base"], tie_every=4)  # one tie: left out
    response = login(researcher).get(reverse("campaign_preferences", args=[campaign.pk]))
    path = tmp_path / "prefs.jsonl"
    path.write_bytes(b"".join(response.streaming_content))
    dataset = datasets.load_dataset("json", data_files=str(path), split="train")
    assert dataset.num_rows == 3
    row = dataset[0]
    assert row["prompt"][-1]["role"] == "user" and row["chosen"][0]["role"] == "assistant"
    assert row["chosen"][0]["content"].endswith("by v1-round") and row["chosen_version"] == "v1-round"
    assert row["rejected"][0]["content"].endswith("by v0-base")
    trl_utils = pytest.importorskip("trl.data_utils")
    assert trl_utils.is_conversational(row)
    # What TRL's DPO trainer does to each row first: the chat template turns it into text triples.
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(base_tokenizer_dir)
    texts = trl_utils.maybe_apply_chat_template(row, tokenizer)
    assert texts["prompt"].rstrip().endswith("assistant") and "Summarise item" in texts["prompt"]
    assert texts["chosen"].startswith("answer item-") and "v1-round" in texts["chosen"]
    assert login(annotator).get(reverse("campaign_preferences", args=[campaign.pk])).status_code == 403
    assert json.loads(path.read_text().splitlines()[0])["campaign_id"] == campaign.pk


def test_campaign_list_shows_judges_their_campaigns(versions, make_campaign, login, annotator, annotator2):
    campaign = make_campaign(versions[:2], judges=[annotator])
    assert (
        reverse("campaign_judge", args=[campaign.pk]) in login(annotator).get("/evaluation/").content.decode()
    )
    assert (
        reverse("campaign_judge", args=[campaign.pk])
        not in login(annotator2).get("/evaluation/").content.decode()
    )
    assert login(annotator2).get(reverse("campaign_judge", args=[campaign.pk])).status_code == 403
    services.campaign_close(campaign=campaign)


def test_close_and_retry_from_the_page(versions, make_campaign, login, admin_user, researcher):
    campaign = make_campaign(versions[:2])
    close = reverse("campaign_action", args=[campaign.pk, "close"])
    assert login(researcher).post(close).status_code == 403
    client = login(admin_user)
    assert client.post(close).status_code == 302
    campaign.refresh_from_db()
    assert campaign.status == "closed"
    assert client.post(reverse("campaign_action", args=[campaign.pk, "explode"])).status_code == 403
    client.post(reverse("campaign_action", args=[campaign.pk, "retry"]))  # not failed: refused, unchanged
    campaign.refresh_from_db()
    assert campaign.status == "closed"
    judge_url = reverse("campaign_judge", args=[campaign.pk])
    assert judge_url.endswith("/judge/") and client.get(judge_url).status_code == 200
