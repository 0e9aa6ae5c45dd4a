"""Training rounds end to end on a tiny model: rewards, PPO, a new version, promotion, failure handling."""

import pytest
import torch
from django.db.models import F

from artifacts import default_store
from jobs import reaper
from text2grad import model_store
from training import services
from training.models import ModelVersion, RoundMetric, TokenReward, TrainingRound
from training.worker import rounds
from training.worker import runtime as jobs

pytestmark = pytest.mark.django_db

FAST = {
    "learning_rate": 5e-3,
    "steps": 6,
    "batch_size": 2,
    "minibatch_size": 2,
    "ppo_epochs": 2,
    "kl_coef": 0.01,
}


def _span_logprob(version, generation, phrase) -> float:
    """Mean log-probability the version's model gives to the tokens of ``phrase`` in the generation."""
    from text2grad import generation as gen_mod
    from text2grad import rewards

    model, tokenizer = model_store.load(jobs.base_dir(), jobs.adapter_dir(version))
    tokenized = rewards.tokenize_response(tokenizer, generation.text)
    prompt_ids = gen_mod.encode_prompt(tokenizer, generation.prompt.chat_messages())
    start = generation.text.index(phrase)
    end = start + len(phrase)
    picked = [i for i, (a, b) in enumerate(tokenized.response_offsets) if a < end and start < b]
    ids = torch.tensor([prompt_ids + tokenized.response_ids])
    with torch.no_grad():
        logits = model(ids).logits[0, len(prompt_ids) - 1 : -1].log_softmax(-1)
    chosen = logits.gather(-1, torch.tensor(tokenized.response_ids)[:, None]).squeeze(-1)
    return chosen[picked].mean().item()


@pytest.mark.heavy
def test_round_moves_poor_spans_down_and_good_spans_up(tiny_settings, critiqued, admin_user):
    start_version = services.model_version_bootstrap()
    before = {
        g.pk: (_span_logprob(start_version, g, poor), _span_logprob(start_version, g, good))
        for g, poor, good in critiqued
    }

    training_round = services.round_launch(mode="token", config=FAST, created_by=admin_user)
    assert training_round.snapshot_size == 4
    assert rounds.round_run(round_id=training_round.pk) == TrainingRound.Status.SUCCEEDED
    training_round.refresh_from_db()

    assert TokenReward.objects.count() == 4  # computed for every snapshot annotation
    version = training_round.output_version
    assert version.parent == start_version and version.created_by_round == training_round
    assert not version.is_active  # promotion is explicit unless the round asks for it
    assert version.storage_key == f"models/versions/{version.name}" and len(version.content_hash) == 64
    assert (jobs.adapter_dir(version) / "adapter_config.json").is_file()
    assert default_store().list("checkpoints") == []  # the version holds the result; checkpoints are gone
    assert (
        RoundMetric.objects.filter(training_round=training_round).count() == 6 * 2
    )  # updates x epochs x minibatches
    assert set(training_round.summary["timings"]) == {"rewards", "load", "train", "save", "promote"}

    # Averaged over all critiqued spans: a tiny random model shares most of its parameters between tokens,
    # so one short span can drift with the rest; the mean over spans is what the update must move.
    poor_shift = sum(_span_logprob(version, g, poor) - before[g.pk][0] for g, poor, _ in critiqued) / len(
        critiqued
    )
    good_shift = sum(_span_logprob(version, g, good) - before[g.pk][1] for g, _, good in critiqued) / len(
        critiqued
    )
    assert poor_shift < -0.02, poor_shift
    assert good_shift > 0.02, good_shift

    services.model_version_activate(version=version)
    assert ModelVersion.objects.get(is_active=True) == version
    services.model_version_activate(version=start_version)  # rollback is the same one action
    assert ModelVersion.objects.get(is_active=True) == start_version


@pytest.mark.heavy
def test_failed_round_leaves_active_version_and_can_resume(tiny_settings, critiqued):
    active = services.model_version_bootstrap()
    training_round = services.round_launch(mode="scalar", config={**FAST, "steps": 2})
    # Break the run after the first checkpoint by pointing the base model somewhere that cannot load.
    TrainingRound.objects.filter(pk=training_round.pk).update(config={**training_round.config, "lora_r": 0})
    assert rounds.round_run(round_id=training_round.pk) == TrainingRound.Status.FAILED
    training_round.refresh_from_db()
    assert "lora_r" in training_round.error
    assert ModelVersion.objects.get(is_active=True) == active
    assert ModelVersion.objects.count() == 1

    TrainingRound.objects.filter(pk=training_round.pk).update(config={**training_round.config, "lora_r": 16})
    services.round_resume(training_round=training_round)
    assert rounds.round_run(round_id=training_round.pk) == TrainingRound.Status.SUCCEEDED
    training_round.refresh_from_db()
    assert training_round.attempts == 2 and training_round.output_version is not None


def test_round_refuses_an_empty_snapshot(tiny_settings, project):
    with pytest.raises(ValueError, match="No submitted annotations"):
        services.round_launch(selection={"project_id": project.pk})


def test_round_refuses_a_bad_config(tiny_settings, critiqued):
    with pytest.raises(ValueError, match="unknown training config key"):
        services.round_launch(config={"learnin_rate": 1})


def test_cancel_stops_a_queued_round(tiny_settings, critiqued):
    training_round = services.round_launch(config=FAST)
    services.round_cancel(training_round=training_round)
    assert rounds.round_run(round_id=training_round.pk).startswith("not claimed")
    training_round.refresh_from_db()
    assert training_round.status == TrainingRound.Status.CANCELLED


def test_stale_running_round_is_reaped(tiny_settings, critiqued):
    from django.utils import timezone

    from annotations import webhooks
    from annotations.models import WebhookDelivery

    webhooks.webhook_create(url="http://127.0.0.1:9/hook", events=["round.failed"])
    training_round = services.round_launch(config=FAST)
    TrainingRound.objects.filter(pk=training_round.pk).update(
        status="running", heartbeat_at=timezone.now() - timezone.timedelta(hours=1)
    )
    assert reaper.reap(stale_after_s=60)["training.traininground"] == {"resumed": 0, "failed": 1}
    training_round.refresh_from_db()
    assert (
        training_round.status == TrainingRound.Status.FAILED and "stopped reporting" in training_round.error
    )
    [delivery] = WebhookDelivery.objects.all()  # its dead worker could not say so: the reaper does
    assert delivery.payload["data"]["round"]["id"] == training_round.pk


@pytest.mark.heavy
@pytest.mark.django_db(transaction=True)  # the rank processes read the round from the database
def test_two_process_round_matches_one_process(tiny_settings, critiqued):
    """The Celery-side launcher runs the round as 2 gloo ranks under torchrun: same adapter as 1 process."""
    from safetensors.torch import load_file

    config = {**FAST, "steps": 2, "batch_size": 4, "minibatch_size": 2, "lora_dropout": 0.0}
    single = services.round_launch(config=config, enqueue=False)
    assert rounds.round_run(round_id=single.pk) == TrainingRound.Status.SUCCEEDED
    tiny_settings.T2G_TRAIN_PROCS = 2
    double = services.round_launch(config=config, enqueue=False)
    assert rounds.round_run(round_id=double.pk) == TrainingRound.Status.SUCCEEDED
    single.refresh_from_db()
    double.refresh_from_db()
    assert double.metrics.count() == single.metrics.count() > 0

    def weights(training_round):
        folder = jobs.adapter_dir(training_round.output_version)
        return load_file(str(folder / "adapter_model.safetensors"))

    one, two = weights(single), weights(double)
    assert one.keys() == two.keys()
    for key in one:
        assert torch.allclose(one[key], two[key], atol=1e-4), key
    start = next(iter(one))
    assert not torch.equal(one[start], torch.zeros_like(one[start]))


def test_cancel_or_lost_ownership_stops_a_running_round_between_updates(tiny_settings, critiqued):
    services.model_version_bootstrap()
    running = services.round_launch(config={**FAST, "steps": 3})

    def cancel_after_first(done, total, metrics):
        TrainingRound.objects.filter(pk=running.pk).update(cancel_requested=True)

    assert (
        rounds.round_run(round_id=running.pk, on_update=cancel_after_first) == TrainingRound.Status.CANCELLED
    )
    running.refresh_from_db()
    assert running.status == TrainingRound.Status.CANCELLED and running.progress_step == 1
    assert running.output_version is None and set(running.metrics.values_list("data__update", flat=True)) == {
        0
    }
    assert running.checkpoint_path == f"checkpoints/round-{running.pk}/step-1"  # kept: it can resume

    reaped = services.round_launch(config={**FAST, "steps": 3})

    def resumed_elsewhere(done, total, metrics):  # the reaper failed it and another attempt claimed it
        TrainingRound.objects.filter(pk=reaped.pk).update(attempts=F("attempts") + 1)

    assert rounds.round_run(round_id=reaped.pk, on_update=resumed_elsewhere) == "lost"
    reaped.refresh_from_db()
    assert reaped.status == TrainingRound.Status.RUNNING and reaped.progress_step == 1
    assert reaped.output_version is None and ModelVersion.objects.count() == 1


@pytest.mark.heavy
def test_a_rounds_failure_and_its_version_reach_the_webhooks(tiny_settings, critiqued):
    """round.failed from the run that failed, round.finished from the publish transaction, delivered
    to a real receiver that checks the signature."""
    from annotations import webhooks
    from annotations.models import WebhookDelivery
    from tests.automation.receiver import Receiver

    services.model_version_bootstrap()
    with Receiver() as receiver:
        webhook = webhooks.webhook_create(url=receiver.url, events=["round.failed", "round.finished"])
        receiver.secret = webhook.secret
        training_round = services.round_launch(mode="scalar", config={**FAST, "steps": 2})
        TrainingRound.objects.filter(pk=training_round.pk).update(
            config={**training_round.config, "lora_r": 0}
        )
        assert rounds.round_run(round_id=training_round.pk) == TrainingRound.Status.FAILED
        TrainingRound.objects.filter(pk=training_round.pk).update(
            config={**training_round.config, "lora_r": 16}
        )
        services.round_resume(training_round=training_round)
        assert rounds.round_run(round_id=training_round.pk) == TrainingRound.Status.SUCCEEDED
        for delivery in WebhookDelivery.objects.order_by("id"):
            assert webhooks.webhook_deliver(delivery_id=delivery.pk) == "delivered"
    events = [(r["json"]["event"], r["signature_ok"]) for r in receiver.requests]
    assert events == [("round.failed", True), ("round.finished", True)]
    failed, finished = (r["json"]["data"] for r in receiver.requests)
    assert failed["round"]["id"] == training_round.pk and "lora_r" in failed["round"]["error"]
    training_round.refresh_from_db()
    assert finished["round"]["status"] == "succeeded"
    assert finished["version"]["id"] == training_round.output_version_id


def test_a_cancelled_round_emits_round_cancelled_once_whether_queued_or_running(
    tiny_settings, critiqued, settings
):
    from annotations import webhooks
    from annotations.models import WebhookDelivery

    settings.T2G_WEBHOOK_ALLOW_PRIVATE = True
    webhooks.webhook_create(url="http://127.0.0.1:9/hook", events=["round.cancelled", "round.failed"])
    services.model_version_bootstrap()
    queued = services.round_launch(config=FAST)
    services.round_cancel(training_round=queued)
    services.round_cancel(training_round=queued)  # already ended: nothing more to tell
    [delivery] = WebhookDelivery.objects.all()
    assert delivery.event == "round.cancelled"
    assert delivery.payload["data"]["round"]["id"] == queued.pk
    assert delivery.payload["data"]["round"]["status"] == "cancelled"

    running = services.round_launch(config={**FAST, "steps": 3})

    def cancel_after_first(done, total, metrics):  # as the page's button does while the round runs
        services.round_cancel(training_round=TrainingRound.objects.get(pk=running.pk))
        assert WebhookDelivery.objects.count() == 1  # not yet: the round is still running

    assert rounds.round_run(round_id=running.pk, on_update=cancel_after_first) == "cancelled"
    latest = WebhookDelivery.objects.latest("id")
    assert latest.event == "round.cancelled" and WebhookDelivery.objects.count() == 2
    assert latest.payload["data"]["round"] | {"finished_at": None} == {
        "id": running.pk, "project": running.project_id, "mode": running.mode, "status": "cancelled",
        "snapshot_hash": running.snapshot_hash, "snapshot_size": len(running.snapshot), "finished_at": None,
        "error": "Cancelled by a user.",
    }  # fmt: skip
