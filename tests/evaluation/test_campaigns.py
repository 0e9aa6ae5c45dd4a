"""Campaign creation, pairwise leases (quota, no self-repeat, expiry), submissions and results."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.utils import timezone

from annotations.models import Annotation, Generation
from annotations.selectors import next_candidates
from evaluation import selectors, services
from evaluation.models import CampaignGeneration, EvaluationCampaign, PairwiseJudgement, PairwiseTask
from jobs import lifecycle

pytestmark = pytest.mark.django_db


def test_campaign_freezes_prompts_and_settings_and_makes_a_task_per_prompt_and_pair(versions, make_campaign):
    campaign = make_campaign(versions, prompt_count=4)
    assert campaign.status == EvaluationCampaign.Status.JUDGING
    assert campaign.prompts.count() == 4 and campaign.versions.count() == 3
    assert PairwiseTask.objects.filter(campaign=campaign).count() == 4 * 3
    assert campaign.sampling_params["temperature"] > 0 and "max_new_tokens" in campaign.sampling_params
    orders = list(
        PairwiseTask.objects.filter(campaign=campaign).order_by("id").values_list("order_key", flat=True)
    )
    assert sorted(orders) == list(range(12)) and orders != sorted(orders)  # shuffled, seeded


def test_evaluation_outputs_never_enter_the_annotation_queue(versions, make_campaign, project, annotator):
    make_campaign(versions)
    assert Generation.objects.count() == 0
    assert not next_candidates(project, annotator, timezone.now()).exists()


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"versions": "one"}, "between 2 and"),
        ({"prompt_count": 50}, "Only 6 prompts match"),
        ({"judgements_per_pair": 0}, "Judgements per pair"),
        ({"name": "  "}, "name"),
        ({"sampling_params": {"temperature": 0}}, "temperature"),
        ({"sampling_params": {"evil": 1}}, "Unknown sampling"),
        ({"prompt_source": "mystery"}, "prompt source"),
    ],
)
def test_bad_campaigns_are_refused_and_store_nothing(
    versions, project, admin_user, prompts, changes, message
):
    arguments = {
        "name": "x", "project": project, "versions": versions, "prompt_count": 3, "created_by": admin_user,
    }  # fmt: skip
    arguments.update(changes)
    if arguments["versions"] == "one":
        arguments["versions"] = versions[:1]
    with pytest.raises(ValidationError, match=message):
        services.campaign_create(**arguments)
    assert not EvaluationCampaign.objects.exists()


def test_only_admins_create_campaigns(versions, project, researcher, prompts):
    with pytest.raises(PermissionDenied):
        services.campaign_create(
            name="x", project=project, versions=versions, prompt_count=2, created_by=researcher
        )


def test_campaigns_judge_on_the_held_out_set_that_rounds_never_train_on(
    versions, project, admin_user, prompts, annotator, client, login
):
    """The held-out prompts are the project's held-out set (marked, or a fraction by a stable hash of the
    prompt id), not "prompts nobody annotated yet": rounds leave them out and campaigns draw from them."""
    from annotations.models import Prompt, held_out_bucket
    from training import services as training_services

    Prompt.objects.filter(pk=prompts[0].pk).update(held_out=False)
    trainable = [Prompt.objects.create(project=project, text=f"Trainable {n}.") for n in range(4)]
    campaign = services.campaign_create(
        name="x", project=project, versions=versions[:2], prompt_count=5, created_by=admin_user
    )
    chosen = set(campaign.prompts.values_list("pk", flat=True))
    assert chosen == {p.pk for p in prompts[1:]}  # unannotated trainable prompts are not held out
    with pytest.raises(ValidationError, match="Only 5 prompts"):
        services.campaign_create(
            name="x", project=project, versions=versions[:2], prompt_count=6, created_by=admin_user
        )
    # The campaign page says which prompts are held out.
    page = login(admin_user).get(f"/evaluation/{campaign.pk}/").content.decode()
    assert '<span id="held-out-count">5</span>' in page and page.count('<span class="chip held-out">') == 5

    # Rounds never train on annotations of held-out prompts.
    for prompt in [prompts[1], trainable[0]]:
        generation = Generation(prompt=prompt, text="an output", source_model="t")
        generation.save()
        Annotation.objects.create(
            generation=generation, annotator=annotator, status=Annotation.Status.SUBMITTED
        )
    snapshot = training_services.round_snapshot(selection={"project_id": project.pk})
    assert snapshot == list(
        Annotation.objects.filter(generation__prompt=trainable[0]).values_list("pk", flat=True)
    )

    # Nothing held out: a held-out campaign is refused, with the reason.
    Prompt.objects.filter(project=project).update(held_out=False)
    with pytest.raises(ValidationError, match="holds no prompts out of training"):
        services.campaign_create(
            name="x", project=project, versions=versions[:2], prompt_count=1, created_by=admin_user
        )
    # A fraction: a stable hash of the prompt id, the same rule in SQL and in Python, about that share.
    project.held_out_fraction = 0.5
    project.save()
    extra = [Prompt.objects.create(project=project, text=f"More {n}.") for n in range(30)]
    held = set(services.held_out_prompts(project).values_list("pk", flat=True))
    everyone = list(Prompt.objects.filter(project=project))
    assert held == {p.pk for p in everyone if held_out_bucket(p.pk) < 500}
    assert held == {p.pk for p in everyone if p.is_held_out}
    assert 15 <= len(held) <= 25 and len(extra) == 30
    assert {p.pk for p in everyone} - held  # not everything
    home = login(admin_user).get(f"/projects/{project.pk}/").content.decode()
    assert f"<strong>{len(held)}</strong> of {len(everyone)} prompts held out" in home


def test_quota_per_pair_no_self_repeat_and_random_sides(versions, make_campaign, annotator, annotator2):
    campaign = make_campaign(versions[:2], prompt_count=6, per_pair=1)
    first = services.judgement_next(campaign=campaign, judge=annotator)
    # The open lease comes back rather than a second one.
    assert services.judgement_next(campaign=campaign, judge=annotator).pk == first.pk
    second = services.judgement_next(campaign=campaign, judge=annotator2)
    assert second.task_id != first.task_id  # the first task's only slot is leased
    seen = {annotator.pk: [], annotator2.pk: []}
    sides = set()
    for judge in (annotator, annotator2):
        while (lease := services.judgement_next(campaign=campaign, judge=judge)) is not None:
            seen[judge.pk].append(lease.task_id)
            sides.add(lease.first_on_left)
            services.judgement_submit(judgement=lease, judge=judge, verdict="tie")
    tasks = seen[annotator.pk] + seen[annotator2.pk]
    assert sorted(tasks) == sorted(
        PairwiseTask.objects.filter(campaign=campaign).values_list("pk", flat=True)
    )
    assert sides == {True, False}
    assert all(t.submitted_count == 1 for t in PairwiseTask.objects.filter(campaign=campaign))


def test_two_judgements_per_pair_come_from_two_judges(
    versions, make_campaign, annotator, annotator2, admin_user
):
    campaign = make_campaign(versions[:2], prompt_count=2, per_pair=2)
    for judge in (annotator, annotator2, admin_user):
        while (lease := services.judgement_next(campaign=campaign, judge=judge)) is not None:
            services.judgement_submit(judgement=lease, judge=judge, verdict="a")
    judges_per_task = {}
    for judgement in PairwiseJudgement.objects.filter(status="submitted"):
        judges_per_task.setdefault(judgement.task_id, set()).add(judgement.judge_id)
    assert [len(j) for j in judges_per_task.values()] == [2, 2]
    assert not PairwiseJudgement.objects.filter(judge=admin_user).exists()


def test_an_expired_lease_frees_its_slot(versions, make_campaign, annotator, annotator2):
    campaign = make_campaign(versions[:2], prompt_count=1, per_pair=1)
    lease = services.judgement_next(campaign=campaign, judge=annotator)
    assert services.judgement_next(campaign=campaign, judge=annotator2) is None
    later = timezone.now() + timedelta(days=2)
    taken = services.judgement_next(campaign=campaign, judge=annotator2, now=later)
    assert taken.task_id == lease.task_id
    services.judgement_submit(judgement=taken, judge=annotator2, verdict="b", now=later)
    with pytest.raises(ValidationError, match="expired"):
        services.judgement_submit(judgement=lease, judge=annotator, verdict="a", now=later)
    assert PairwiseJudgement.objects.filter(status="submitted").count() == 1


def test_bad_submissions_store_nothing(versions, make_campaign, annotator, annotator2):
    campaign = make_campaign(versions[:2], prompt_count=1)
    lease = services.judgement_next(campaign=campaign, judge=annotator)
    with pytest.raises(ValidationError):
        services.judgement_submit(judgement=lease, judge=annotator, verdict="maybe")
    with pytest.raises(ValidationError):
        services.judgement_submit(judgement=lease, judge=annotator, verdict="a", reason="x" * 2001)
    with pytest.raises(PermissionDenied):
        services.judgement_submit(judgement=lease, judge=annotator2, verdict="a")
    lease.refresh_from_db()
    assert lease.status == "leased" and lease.verdict == ""


def test_only_the_chosen_judges_may_judge(versions, make_campaign, annotator, annotator2, researcher):
    campaign = make_campaign(versions[:2], judges=[annotator])
    assert services.judgement_next(campaign=campaign, judge=annotator) is not None
    for outsider in (annotator2, researcher):
        with pytest.raises(PermissionDenied):
            services.judgement_next(campaign=campaign, judge=outsider)


def test_results_rank_the_preferred_version_first(versions, make_campaign, judge_all, annotator, annotator2):
    campaign = make_campaign(versions, prompt_count=6, per_pair=2)
    ranking = ["v2-round", "v1-round", "v0-base"]
    n = judge_all(campaign, [annotator, annotator2], ranking, tie_every=5)
    results = selectors.campaign_results(campaign)
    assert results.judgements == n == 6 * 3 * 2
    assert [s.version.name for s in results.standings] == ranking
    top = results.standings[0]
    assert top.lower < top.theta < top.upper
    pair = next(p for p in results.pairs if {p.first.name, p.second.name} == {"v0-base", "v2-round"})
    assert pair.ties > 0 and pair.first_wins == 0 and pair.total == 12
    matrix = dict((v.name, cells) for v, cells in results.matrix)
    assert matrix["v2-round"][0] > 0.5 and matrix["v0-base"][2] < 0.5 and matrix["v0-base"][0] is None
    rows = selectors.prompt_rows(campaign)
    assert all(row["judgements"] == 6 for row in rows)


def test_promotion_evidence(versions, make_campaign, judge_all, annotator, annotator2):
    base, worse, better = versions
    assert not selectors.promotion_evidence(better, base)["significant"]  # no campaign yet
    campaign = make_campaign([base, better, worse], prompt_count=6, per_pair=2)
    judge_all(campaign, [annotator, annotator2], ["v2-round", "v0-base", "v1-round"])
    evidence = selectors.promotion_evidence(better, base)
    assert evidence["significant"] and evidence["lower"] > 0 and evidence["campaign"] == campaign
    against = selectors.promotion_evidence(worse, base)
    assert not against["significant"] and "not significantly better" in against["reason"]
    standings = selectors.version_standings(versions)
    assert standings[better.pk]["standing"].rank == 1 and standings[worse.pk]["standing"].rank == 3


def test_metrics_length_and_flagged_share(versions, make_campaign, project, admin_user, prompts):
    from annotations.models import Span

    campaign = make_campaign(versions[:2], prompt_count=2)
    for index, prompt in enumerate(campaign.prompts.order_by("id")):
        generation = Generation(prompt=prompt, text="The cat sat.", model_version=versions[1])
        generation.save()
        annotation = Annotation.objects.create(
            generation=generation, annotator=admin_user, status=Annotation.Status.SUBMITTED
        )
        Span.objects.create(
            annotation=annotation,
            start=0,
            end=3,
            text="The",
            label="poor" if index == 0 else "good",
            polarity=-1 if index == 0 else 1,
        )
    metrics = {m["version"].name: m for m in selectors.version_metrics(campaign)}
    assert metrics["v1-round"]["annotated"] == 2 and metrics["v1-round"]["flagged_share"] == 0.5
    assert metrics["v0-base"]["flagged_share"] is None
    assert metrics["v0-base"]["mean_chars"] == len("answer item-0 by v0-base")
    assert metrics["v0-base"]["pass_rate"] is None


def test_closing_stops_judging(versions, make_campaign, annotator):
    campaign = make_campaign(versions[:2])
    lease = services.judgement_next(campaign=campaign, judge=annotator)
    services.campaign_close(campaign=campaign)
    assert services.judgement_next(campaign=campaign, judge=annotator) is None
    with pytest.raises(ValidationError):
        services.judgement_submit(judgement=lease, judge=annotator, verdict="a")


def test_a_failed_generation_is_retried_as_a_new_job(versions, project, admin_user, prompts):
    """Stale runs are the one reaper's (tests/jobs/test_one_framework.py); here a failed run is retried."""
    campaign = services.campaign_create(
        name="x", project=project, versions=versions[:2], prompt_count=2, created_by=admin_user
    )
    first = lifecycle.claim(CampaignGeneration, campaign.generation.pk)
    assert lifecycle.fail(first, "boom")
    services.campaign_generation_ended(first.pk)
    campaign.refresh_from_db()
    assert campaign.status == "failed" and campaign.error == "boom"
    with pytest.raises(ValidationError):
        services.campaign_close(campaign=campaign)
    services.campaign_retry(campaign=campaign)
    campaign.refresh_from_db()
    assert campaign.status == "generating" and campaign.worker_status == "queued" and campaign.error == ""
    assert campaign.generation.pk != first.pk
    with pytest.raises(ValidationError, match="Only a failed"):
        services.campaign_retry(campaign=campaign)


def test_a_clean_sweep_of_three_is_not_significant(versions, make_campaign, judge_all, annotator):
    base, candidate, _ = versions
    campaign = make_campaign([base, candidate], prompt_count=3)
    judge_all(campaign, [annotator], ["v1-round", "v0-base"])
    evidence = selectors.promotion_evidence(candidate, base)
    assert evidence["lower"] == evidence["upper"]  # the bootstrap alone would call this certain
    assert not evidence["significant"] and evidence["p_value"] == pytest.approx(0.25)
    assert "3 wins, 0 losses" in evidence["reason"]
