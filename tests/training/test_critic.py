"""The span critic in the studio, on a tiny model: a critic job, versions and activation, pre-annotation
through the Suggest-spans proposals, on-policy rounds, the critic page and its permissions."""

from __future__ import annotations

import pytest
from django.urls import reverse
from django.utils import timezone

from annotations.models import Annotation, Generation, Span
from artifacts import default_store
from training import selectors, services
from training.models import (
    AlignmentRequest,
    CriticPrediction,
    CriticPredictionJob,
    CriticTrainingJob,
    CriticVersion,
    ModelVersion,
    OnPolicySample,
    RoundMetric,
    TrainingRound,
)
from training.worker import critic as critic_worker
from training.worker import rounds

pytestmark = pytest.mark.django_db

FAST_CRITIC = {"epochs": 2, "learning_rate": 0.01, "held_out_fraction": 0.25}


def _train(project, admin_user, **kwargs) -> CriticVersion:
    job = services.critic_job_create(project=project, config=FAST_CRITIC, created_by=admin_user, **kwargs)
    assert critic_worker.critic_job_run(job_id=job.pk) == CriticTrainingJob.Status.SUCCEEDED
    job.refresh_from_db()
    return job.output_version


@pytest.mark.heavy
def test_critic_job_trains_a_version_with_metrics_and_lineage(
    tiny_settings, project, labelled, admin_user, annotator, make_generation
):
    version = _train(project, admin_user)
    job = version.created_by_job
    assert job.status == "succeeded" and job.progress_step == job.progress_total > 1
    assert version.snapshot == services.critic_snapshot(project=project) and len(version.snapshot) == 8
    # Published to the artifact store like a model version (tests/storage/test_critics_across_hosts.py).
    assert version.storage_key == f"models/critics/{version.name}" and len(version.content_hash) == 64
    assert default_store().is_file(f"{version.storage_key}/critic_head.safetensors")
    assert not (tiny_settings.T2G_MODELS_DIR / "critics").exists() and not version.adapter_path
    metrics = version.metrics
    assert metrics["held_out_outputs"] == 2 and metrics["train_outputs"] == 6 and not metrics["in_sample"]
    reports = metrics["reports"]
    assert {"critic", "all_neutral", "token_prior"} <= set(reports)
    assert reports["all_neutral"]["labels"]["poor"]["f1"] == 0.0
    assert reports["critic"]["labels"]["poor"]["support"] > 0
    assert set(metrics["timings"]) == {"data", "load", "train", "evaluate", "save"}
    assert not version.is_active  # activation is explicit unless asked
    assert metrics["held_out_prompt_ids"] == metrics["lineage_held_out_prompt_ids"]
    assert len(metrics["held_out_prompt_ids"]) == 2 and len(metrics["lineage_trained_prompt_ids"]) == 6
    # Continuing from a parent records the lineage, and keeps its held-out prompts held out even as new
    # outputs arrive (a fresh random split would measure the child on its parent's training data).
    for n in range(8, 12):
        text = f"Ann Lee visited the fair in {1900 + 7 * n} with friends."
        generation = make_generation(
            project, text, prompt_text=f"Summarise item {n}: Ann Lee visited the fair."
        )
        annotation = Annotation.objects.create(generation=generation, annotator=annotator, status="submitted",
                                               submitted_at=timezone.now())  # fmt: skip
        Span.objects.create(annotation=annotation, start=0, end=7, text="Ann Lee", label="good", polarity=1)
    child = _train(project, admin_user, parent=version, auto_activate=True)
    assert child.parent == version and child.is_active
    held = set(child.metrics["held_out_prompt_ids"])
    assert set(metrics["held_out_prompt_ids"]) <= held
    assert held.isdisjoint(metrics["lineage_trained_prompt_ids"])
    assert child.metrics["held_out_outputs"] == 3 and child.metrics["train_outputs"] == 9


def test_critic_data_follows_the_rounds_filters_gold_replaces_rejected_excluded(
    tiny_settings, project, labelled, annotator2, reviewer, admin_user
):
    """The critic learns from human or gold spans as rounds choose them: a rejected annotation is left
    out, an output's gold replaces its annotators' (not one more vote), and the job records the filters."""
    from annotations import services as annotation_services
    from text2grad import critic_metrics as cm
    from text2grad import model_store
    from training.worker.runtime import base_dir

    mine = {g.pk: Annotation.objects.get(generation=g, annotator__username="ann1") for g in labelled}
    rejected, adjudicated, doubled = labelled[0], labelled[1], labelled[2]
    annotation_services.review_set(annotation=mine[rejected.pk], reviewer=reviewer, verdict="rejected")
    second = Annotation.objects.create(generation=adjudicated, annotator=annotator2, status="submitted",
                                       submitted_at=timezone.now())  # fmt: skip
    other = Annotation.objects.create(generation=doubled, annotator=annotator2, status="submitted",
                                      submitted_at=timezone.now())  # fmt: skip
    # The gold says the output has nothing poor and nothing good: it must not be outvoted.
    gold = annotation_services.gold_save(
        generation=adjudicated, reviewer=reviewer, spans=[], overall_critique="Nothing to flag."
    )
    expected = sorted(
        {*(a.pk for g, a in mine.items() if g not in (rejected.pk, adjudicated.pk)), other.pk, gold.pk}
    )
    assert services.critic_snapshot(project=project) == expected
    assert second.pk not in expected and mine[adjudicated.pk].pk not in expected
    assert services.critic_snapshot(project=project, selection={"review": "gold"}) == [gold.pk]
    accepted = services.critic_snapshot(project=project, selection={"review": "accepted"})
    assert accepted == [gold.pk]  # nothing accepted yet; the gold still replaces

    job = services.critic_job_create(project=project, config=FAST_CRITIC, created_by=admin_user)
    assert job.snapshot == expected
    assert job.selection == {"project_id": project.pk, "review": "submitted", "origin": "people"}

    # The rows the critic learns from: the gold alone for the adjudicated output.
    tokenizer = model_store.load_tokenizer(base_dir())
    rows = {r["generation_id"]: r for r in critic_worker.labelled_outputs(expected, tokenizer)}
    assert rejected.pk not in rows
    assert rows[adjudicated.pk]["annotation_ids"] == [gold.pk]
    assert set(rows[adjudicated.pk]["labels"]) == {cm.NEUTRAL}
    # Fed both ids anyway (a snapshot taken before), the gold still replaces the annotator's.
    both = critic_worker.labelled_outputs([mine[adjudicated.pk].pk, gold.pk], tokenizer)
    assert both[0]["annotation_ids"] == [gold.pk] and set(both[0]["labels"]) == {cm.NEUTRAL}


def test_held_out_split_is_by_prompt_and_keeps_the_lineage_apart():
    rows = [{"generation_id": n, "prompt_id": n // 2} for n in range(20)]  # two outputs per prompt
    train, held = critic_worker.split_held_out(rows, 0.25, seed=3)
    held_prompts = {r["prompt_id"] for r in held}
    assert len(held) == 6 and held_prompts.isdisjoint(r["prompt_id"] for r in train)
    # A child sees new prompts: the parent's held-out prompts stay held out, its trained ones stay in training.
    grown = rows + [{"generation_id": 100 + n, "prompt_id": 100 + n} for n in range(10)]
    trained_prompts = {r["prompt_id"] for r in train}
    for seed in range(20):
        child_train, child_held = critic_worker.split_held_out(
            grown, 0.25, seed=seed, keep_held=held_prompts, keep_trained=trained_prompts
        )
        child_held_prompts = {r["prompt_id"] for r in child_held}
        assert held_prompts <= child_held_prompts
        assert child_held_prompts.isdisjoint(trained_prompts)
        assert child_held_prompts.isdisjoint(r["prompt_id"] for r in child_train)
        assert len(child_held) >= 7  # about a quarter of 30 outputs, the inherited six included
    # Fewer than five outputs: nothing new is held out, but inherited prompts still are.
    few = [{"generation_id": n, "prompt_id": n} for n in range(4)]
    assert critic_worker.split_held_out(few, 0.5, seed=0) == (few, [])
    assert critic_worker.split_held_out(few, 0.5, seed=0, keep_held={2})[1] == [few[2]]


@pytest.mark.heavy
def test_activation_is_per_project_and_queues_pre_annotation(
    tiny_settings, project, labelled, admin_user, make_generation, django_capture_on_commit_callbacks
):
    from annotations import webhooks
    from annotations.models import WebhookDelivery

    webhooks.webhook_create(url="http://127.0.0.1:9/hook", events=["critic_version.ready"])
    first = _train(project, admin_user)
    second = _train(project, admin_user)
    ready = [d.payload["data"]["critic_version"] for d in WebhookDelivery.objects.order_by("id")]
    assert [(v["id"], v["project"]) for v in ready] == [(first.pk, project.pk), (second.pk, project.pk)]
    fresh = make_generation(project, "Ann Lee went to the fair in 2044.")
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        services.critic_version_activate(version=first)
    assert len(callbacks) == 1  # one prediction task for the unannotated output
    services.critic_version_activate(version=second)
    first.refresh_from_db()
    assert not first.is_active and CriticVersion.objects.get(is_active=True) == second
    services.critic_version_activate(version=first)  # roll back
    assert services.critic_active(project_id=project.pk) == first

    assert critic_worker.critic_predict_run(critic_version_id=first.pk, generation_ids=[fresh.pk]) == 1
    assert critic_worker.critic_predict_run(critic_version_id=first.pk, generation_ids=[fresh.pk]) == 0
    prediction = CriticPrediction.objects.get(generation=fresh, critic_version=first)
    assert 0.0 <= prediction.uncertainty <= 1.0
    for span in prediction.spans:
        assert 0 <= span["start"] < span["end"] <= len(fresh.text)
        assert fresh.text[span["start"] : span["end"]] == span["text"]

    # Outputs a team's application sends get the active critic's predictions too.
    from annotations.services import ingest
    from jobs.models import Outbox

    record, _ = ingest.ingest_record_clean(
        {"prompt": "Summarise: Ann Lee.", "output": "Ann Lee went in 2051."}
    )
    [result] = ingest.outputs_ingest(project=project, records=[record])
    job = CriticPredictionJob.objects.get(critic_version=first, generation_ids=[result["generation"]])
    assert Outbox.objects.filter(task_name="training.critic_predict", args=[job.pk]).exists()


@pytest.mark.heavy
def test_pre_annotation_becomes_suggestions_with_acceptance_and_edit_rates(
    tiny_settings, project, labelled, admin_user, annotator, annotator2, make_generation, login
):
    version = _train(project, admin_user, auto_activate=True)
    fresh = make_generation(project, "Ann Lee went to the fair in 2044.")
    # The tiny critic's guesses are noise; the suggestion path must carry whatever it predicted.
    CriticPrediction.objects.create(
        generation=fresh, critic_version=version, uncertainty=0.4,
        spans=[{"start": 28, "end": 32, "polarity": -1, "score": 0.9, "text": "2044"},
               {"start": 0, "end": 7, "polarity": 1, "score": 0.8, "text": "Ann Lee"}],
    )  # fmt: skip
    annotation = Annotation.objects.create(generation=fresh, annotator=annotator2)
    client = login(annotator2)
    url = reverse("annotation_critic_suggestions", args=[annotation.pk])
    response = client.post(url)
    assert response.status_code == 200
    html = response.content.decode()
    assert html.count('data-state="open"') == 2 and "critic" in html
    client.post(url)  # asking again reuses the same proposals
    request = AlignmentRequest.objects.get(annotation=annotation)
    assert request.critic_version == version and [p["method"] for p in request.proposals] == ["critic"] * 2

    accept = reverse("alignment_decide", args=[request.pk, 0, "accept"])
    reject = reverse("alignment_decide", args=[request.pk, 1, "reject"])
    assert client.post(accept).status_code == 200 and client.post(reject).status_code == 200
    # An accepted critic suggestion keeps its origin (not "aligned"), as the span panel and exports show.
    assert list(annotation.spans.values_list("start", "end", "polarity", "origin")) == [
        (28, 32, -1, "critic")
    ]
    assert (
        "Proposed by the learned critic"
        in client.get(reverse("annotate", args=[annotation.pk])).content.decode()
    )
    stats = selectors.review_stats(version)
    assert stats["accepted"] == 1 and stats["rejected"] == 1 and stats["acceptance_rate"] == 0.5
    assert stats["submitted"] == 0 and stats["edit_rate"] is None and stats["kept_rate"] is None

    Annotation.objects.filter(pk=annotation.pk).update(status="submitted", submitted_at=timezone.now())
    stats = selectors.review_stats(version)
    assert stats["edit_rate"] == 0.0  # submitted exactly the accepted suggestion
    assert (stats["kept_rate"], stats["adjusted"], stats["added"]) == (1.0, 0, 0)
    # The origin travels to the API and the span exports.
    api_spans = client.get(f"/api/v1/annotations/{annotation.pk}/").json()["spans"]
    assert [s["origin"] for s in api_spans] == ["critic"]
    from annotations.exports.spans import SPAN_FIELDS, _spans_by_annotation

    exported = _spans_by_annotation([annotation.pk])[annotation.pk]
    assert [dict(zip(SPAN_FIELDS, row, strict=True))["origin"] for row in exported] == ["critic"]
    # Poor chars agree (4), the proposed good span was rejected: F1 = 2*4 / (11 + 4).
    assert stats["char_f1"] == pytest.approx(8 / 15)
    Span.objects.create(annotation=annotation, start=8, end=12, text="went", label="poor", polarity=-1)
    stats = selectors.review_stats(version)
    assert stats["edit_rate"] == 1.0
    assert (stats["kept_rate"], stats["adjusted"], stats["added"]) == (1.0, 0, 1)  # a hand-drawn span
    # Moving the accepted span keeps its origin: the suggestion counts as adjusted, no longer kept.
    annotation.spans.filter(origin="critic").update(start=27, text=" 2044")
    stats = selectors.review_stats(version)
    assert (stats["kept_rate"], stats["adjusted"], stats["added"]) == (0.0, 1, 1)

    # Someone else's annotation: 404 for an annotator; an admin reading it gets nothing and creates nothing.
    other = Annotation.objects.create(generation=fresh, annotator=admin_user)
    assert client.post(reverse("annotation_critic_suggestions", args=[other.pk])).status_code == 404
    own_draft = Annotation.objects.create(generation=fresh, annotator=annotator)
    assert (
        login(admin_user).post(reverse("annotation_critic_suggestions", args=[own_draft.pk])).status_code
        == 204
    )
    assert not AlignmentRequest.objects.filter(annotation=own_draft).exists()


@pytest.mark.heavy
def test_on_policy_round_samples_scores_trains_and_sends_a_share_to_audit(
    tiny_settings, project, labelled, admin_user, login
):
    version = _train(project, admin_user, auto_activate=True)
    # Six of the eight prompts are held out (evaluation campaigns judge on them): never sampled.
    from annotations.models import Prompt

    held_out = [g.prompt_id for g in labelled[2:]]
    Prompt.objects.filter(pk__in=held_out).update(held_out=True)
    config = {"steps": 2, "batch_size": 2, "minibatch_size": 2, "ppo_epochs": 1, "learning_rate": 1e-3}
    training_round = services.on_policy_round_launch(
        project=project,
        config=config,
        audit_share=1.0,
        max_new_tokens=6,
        created_by=admin_user,
        enqueue=False,
    )
    assert training_round.critic_version == version and training_round.snapshot == []
    before = Generation.objects.count()

    def stop_after_first(done, total, metrics):
        raise RuntimeError("the host went away")

    # Interrupted after its first update, it resumes from that checkpoint (a store key, as offline rounds).
    assert rounds.round_run(round_id=training_round.pk, on_update=stop_after_first) == "failed"
    training_round.refresh_from_db()
    assert training_round.checkpoint_path == f"checkpoints/round-{training_round.pk}/step-1"
    assert training_round.progress_step == 1
    services.round_resume(training_round=training_round)
    assert rounds.round_run(round_id=training_round.pk) == TrainingRound.Status.SUCCEEDED, (
        TrainingRound.objects.get(pk=training_round.pk).error
    )
    training_round.refresh_from_db()
    assert training_round.attempts == 2
    assert (
        RoundMetric.objects.filter(training_round=training_round, data__update=0).count() == 1
    )  # not redone
    samples = list(OnPolicySample.objects.filter(training_round=training_round))
    assert 1 <= len(samples) <= 4 and {s.update for s in samples} <= {0, 1}
    assert {s.prompt_id for s in samples} <= {g.prompt_id for g in labelled[:2]}
    for sample in samples:
        assert len(sample.token_rewards) == len(sample.response_token_ids)
        assert all(-1.0 <= r <= 1.0 for r in sample.token_rewards)
        assert sample.audit_generation is not None  # audit_share 1.0: every sample goes to the queue
    audited = Generation.objects.filter(pk__in=[s.audit_generation_id for s in samples])
    assert Generation.objects.count() == before + len(samples)
    assert all(g.sampling_params["purpose"] == "on_policy_audit" for g in audited)
    assert CriticPrediction.objects.filter(generation__in=audited, critic_version=version).count() == len(
        samples
    )
    assert RoundMetric.objects.filter(training_round=training_round).exists()
    assert {"load", "sample", "score", "update", "record", "save"} <= set(training_round.summary["timings"])
    output = training_round.output_version
    assert isinstance(output, ModelVersion) and output.parent == training_round.base_version

    page = login(admin_user).get(reverse("round_detail", args=[training_round.pk]))
    assert page.status_code == 200 and "as the critic saw them" in page.content.decode()
    assert "sent for audit" in page.content.decode()


@pytest.mark.heavy
def test_critic_page_and_bad_input(tiny_settings, project, labelled, admin_user, researcher, login):
    version = _train(project, admin_user, auto_activate=True)
    client = login(admin_user)
    page = client.get(reverse("critic_home", args=[project.pk]))
    html = page.content.decode()
    assert page.status_code == 200 and version.name in html
    assert "Every token neutral" in html and "P(poor) calibration" in html
    assert html.count('data-chart-kind="reliability"') == 2 and 'id="critic-charts"' in html

    jobs_before = CriticTrainingJob.objects.count()
    bad = client.post(reverse("critic_train", args=[project.pk]), {"epochs": 0, "learning_rate": 0.001,
                                                                    "held_out_fraction": 0.2})  # fmt: skip
    assert bad.status_code == 400 and CriticTrainingJob.objects.count() == jobs_before
    rounds_before = TrainingRound.objects.count()
    services.critic_version_deactivate(project=project)
    no_critic = client.post(reverse("on_policy_launch", args=[project.pk]), {
        "steps": 2, "batch_size": 2, "learning_rate": 1e-3, "audit_share": 0.5, "max_new_tokens": 8,
        "temperature": 0.8})  # fmt: skip
    assert no_critic.status_code == 400 and "no active critic" in no_critic.content.decode()
    assert TrainingRound.objects.count() == rounds_before

    viewer = login(researcher)
    assert viewer.get(reverse("critic_home", args=[project.pk])).status_code == 200
    assert viewer.post(reverse("critic_activate", args=[version.pk])).status_code == 403
    assert viewer.post(reverse("critic_train", args=[project.pk]), FAST_CRITIC).status_code == 403
    assert CriticTrainingJob.objects.count() == jobs_before


def test_too_few_annotations_is_refused(project, make_generation, annotator, admin_user, login):
    generation = make_generation(project, "Only one output.")
    Annotation.objects.create(generation=generation, annotator=annotator, status="submitted",
                              submitted_at=timezone.now())  # fmt: skip
    response = login(admin_user).post(reverse("critic_train", args=[project.pk]), FAST_CRITIC)
    assert response.status_code == 400 and "at least" in response.content.decode()
    assert not CriticTrainingJob.objects.exists()
    with pytest.raises(ValueError):
        services.critic_config_checked({"epochs": 2, "dropout": 0.5})


def test_queue_order_by_critic_uncertainty(project, make_generation, annotator, admin_user, login):
    from annotations.selectors import next_candidates

    outputs = [make_generation(project, f"Output number {n}.") for n in range(3)]
    version = CriticVersion.objects.create(project=project, name="c1", base_model="tiny", adapter_path="x",
                                           is_active=True)  # fmt: skip
    stale = CriticVersion.objects.create(project=project, name="c0", base_model="tiny", adapter_path="y")
    CriticPrediction.objects.create(generation=outputs[0], critic_version=version, uncertainty=0.2)
    CriticPrediction.objects.create(generation=outputs[1], critic_version=version, uncertainty=0.9)
    CriticPrediction.objects.create(
        generation=outputs[2], critic_version=stale, uncertainty=1.0
    )  # not active

    def order():
        project.refresh_from_db()
        return [g.pk for g in next_candidates(project, annotator, timezone.now())]

    assert order() == [g.pk for g in outputs]  # arrival order by default
    client = login(admin_user)
    response = client.post(reverse("critic_settings", args=[project.pk]), {"queue_order": "uncertainty"})
    assert response.status_code == 302
    assert order() == [outputs[1].pk, outputs[0].pk, outputs[2].pk]
    bad = client.post(reverse("critic_settings", args=[project.pk]), {"queue_order": "random"})
    assert bad.status_code == 400
    assert project.critic_settings.queue_order == "uncertainty"
    client.post(reverse("critic_settings", args=[project.pk]), {"queue_order": "arrival"})
    assert order() == [g.pk for g in outputs]


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)  # the session's worker runs the job: rows must be committed
def test_cancelling_a_running_critic_job_is_honoured(celery_worker_process, project, labelled, admin_user):
    """A running job stops before its next training step: it ends cancelled, and no version (or adapter
    folder) is created. A queued job cancelled before a worker claims it never starts.

    Through the session's real worker (a job launched in a committed transaction is dispatched to it; a
    second runner of the same job in this process would race it for the claim)."""
    import time

    from django.db import transaction

    from tests.conftest import wait_for

    critics = celery_worker_process.models_dir / "critics"
    adapters_before = set(critics.iterdir()) if critics.exists() else set()
    job = services.critic_job_create(
        project=project, config={**FAST_CRITIC, "epochs": 100, "batch_size": 1}, created_by=admin_user
    )  # 600 steps: far more than the test waits for

    def training() -> bool:
        job.refresh_from_db()
        return job.status == CriticTrainingJob.Status.RUNNING and job.progress_step >= 2

    wait_for(training, timeout=180, message="the worker to train two steps")
    assert services.critic_job_cancel(job=job)
    cancelled_at = time.monotonic()
    wait_for(lambda: CriticTrainingJob.objects.get(pk=job.pk).is_finished, timeout=120,
             message="the worker to honour the cancel")  # fmt: skip
    assert time.monotonic() - cancelled_at < 60  # before its next step, not after the 600
    job.refresh_from_db()
    assert job.status == CriticTrainingJob.Status.CANCELLED and job.finished_at is not None
    assert job.progress_step < job.progress_total - 1  # stopped mid-training, not after it
    assert job.output_version is None and not CriticVersion.objects.filter(project=project).exists()
    assert (set(critics.iterdir()) if critics.exists() else set()) == adapters_before  # no adapter saved
    assert not services.critic_job_cancel(job=job)  # finished: nothing to cancel

    log = celery_worker_process.log_path
    refusals_before = log.read_text().count("not claimed")
    with transaction.atomic():  # cancelled before the commit hands it to the broker
        queued = services.critic_job_create(project=project, config=FAST_CRITIC, created_by=admin_user)
        assert services.critic_job_cancel(job=queued)
    wait_for(lambda: log.read_text().count("not claimed") > refusals_before, timeout=60,
             message="the worker to receive the cancelled job and refuse it")  # fmt: skip
    assert critic_worker.critic_job_run(job_id=queued.pk).startswith("not claimed")
    queued.refresh_from_db()
    assert queued.status == CriticTrainingJob.Status.CANCELLED and queued.started_at is None
    assert not CriticVersion.objects.filter(project=project).exists()
