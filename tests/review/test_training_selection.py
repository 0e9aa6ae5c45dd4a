"""Rounds choose their data by review status, agreement and annotators; a gold-only round trains on exactly
the gold annotation's token rewards (the tiny model, in this process)."""

from __future__ import annotations

import pytest
from django.core.management import call_command

from annotations import services as annotation_services
from annotations.models import Annotation
from training import services
from training.models import TokenReward, TrainingRound

TEXT = "It was invented in 1999 by aliens. The cat sat on the mat."
OTHER = "Cheese is blue. Water boils at 100 C."
FAST = {"steps": 1, "batch_size": 2, "minibatch_size": 2, "ppo_epochs": 1, "seed": 0}


@pytest.fixture
def reviewed(
    project, make_generation, annotator, annotator2, reviewer, submit, django_capture_on_commit_callbacks
):
    """Two outputs: the first disputed (poor vs good), adjudicated into gold; the second agreed on."""
    disputed = make_generation(project, TEXT)
    a1 = submit(annotator, disputed, [("invented in 1999 by aliens", "poor", "false")])
    a2 = submit(annotator2, disputed, [("The cat sat on the mat", "good", "true")])
    agreed = make_generation(project, OTHER)
    b1 = submit(annotator, agreed, [("Cheese is blue", "poor", "")])
    b2 = submit(annotator2, agreed, [("Cheese is blue", "poor", "")])
    annotation_services.review_set(annotation=a1, reviewer=reviewer, verdict="accepted")
    annotation_services.review_set(
        annotation=a2, reviewer=reviewer, verdict="rejected", comment="not the issue"
    )
    annotation_services.review_set(annotation=b1, reviewer=reviewer, verdict="accepted")
    start = TEXT.index("invented")
    gold_spans = [
        {"start": start, "end": start + 26, "label": "poor", "critique": "false"},
        {"start": TEXT.index("The cat"), "end": TEXT.index("The cat") + 22, "label": "good", "critique": ""},
    ]
    with django_capture_on_commit_callbacks(execute=True):
        gold = annotation_services.gold_save(generation=disputed, reviewer=reviewer, spans=gold_spans)
    return {"a1": a1, "a2": a2, "b1": b1, "b2": b2, "gold": gold, "disputed": disputed, "agreed": agreed}


def test_snapshot_by_review_status_agreement_and_annotator(reviewed, annotator, annotator2, project):
    ids = {name: row.pk for name, row in reviewed.items() if isinstance(row, Annotation)}
    snap = lambda **selection: services.round_snapshot(selection={"project_id": project.pk, **selection})  # noqa: E731
    assert snap() == sorted([ids["a1"], ids["a2"], ids["b1"], ids["b2"]])  # gold is not an annotator's
    assert snap(review="accepted") == sorted([ids["a1"], ids["b1"]])
    assert snap(review="gold") == [ids["gold"]]
    assert snap(min_agreement=0.9) == sorted([ids["b1"], ids["b2"]])  # the agreed output scores 1
    assert snap(exclude_annotators=[annotator2.pk]) == sorted([ids["a1"], ids["b1"]])
    assert snap(exclude_annotators=str([annotator.pk])) == sorted([ids["a2"], ids["b2"]])  # stored form
    for bad in (
        {"review": "best"},
        {"min_agreement": "high"},
        {"min_agreement": 2},
        {"exclude_annotators": "x"},
    ):
        with pytest.raises(ValueError):
            snap(**bad)


def test_launch_form_records_the_choice(client, login, admin_user, reviewed, annotator2, project):
    login(admin_user)
    page = client.get("/training/").content.decode()
    assert 'name="review"' in page and 'name="min_agreement"' in page and annotator2.username not in page
    response = client.post(
        "/training/rounds/",
        {"mode": "token", "project": project.pk, "review": "accepted", "min_agreement": "-1",
         "exclude_annotators": [annotator2.pk]},
    )  # fmt: skip
    assert response.status_code == 302, response.content.decode()[:2000]
    training_round = TrainingRound.objects.get()
    assert training_round.selection == {
        "project_id": project.pk, "review": "accepted", "origin": "people", "min_agreement": -1.0,
        "undefined_agreement": "exclude", "exclude_annotators": [annotator2.pk],
    }  # fmt: skip
    assert training_round.snapshot == sorted([reviewed["a1"].pk, reviewed["b1"].pk])
    detail = client.get(f"/training/rounds/{training_round.pk}/").content.decode()
    assert '<span id="round-review">accepted</span>' in detail and "1 annotator left out" in detail
    assert "(undefined α: excluded)" in detail
    assert client.post("/training/rounds/", {"mode": "token", "min_agreement": "3"}).status_code == 400
    assert TrainingRound.objects.count() == 1


@pytest.mark.slow
def test_gold_only_round_trains_on_exactly_the_gold_rewards(tiny_settings, reviewed, project, capsys):
    from text2grad.engine import Sample
    from text2grad.rewards import SpanReward, token_rewards_from_offsets
    from training.worker.rounds import rewards_digest

    call_command("train_round", "--project", project.name, "--review", "gold", "--config", '{"steps": 1, '
                 '"batch_size": 1, "minibatch_size": 1, "ppo_epochs": 1, "seed": 0}')  # fmt: skip
    training_round = TrainingRound.objects.get()
    assert training_round.status == "succeeded" and training_round.selection["review"] == "gold"
    gold = reviewed["gold"]
    assert training_round.snapshot == [gold.pk]
    reward = TokenReward.objects.get(annotation=gold)
    # The gold's rewards, from its own spans and the tokenizer's offsets: poor -1 and good +1 both present.
    expected = token_rewards_from_offsets(
        [tuple(pair) for pair in reward.offsets],
        [SpanReward(s.start, s.end, polarity=s.polarity, weight=s.weight) for s in gold.spans.all()],
    )
    assert reward.rewards == expected and -1.0 in expected and 1.0 in expected
    trained = Sample(
        prompt_ids=reward.prompt_token_ids, response_ids=reward.token_ids, token_rewards=expected
    )
    assert training_round.summary["rewards_digest"] == rewards_digest([trained])
    # Not what the annotators' mean would have been (one marked only the poor span, the other only the good).
    offsets = [tuple(pair) for pair in reward.offsets]
    per_annotator = [
        token_rewards_from_offsets(
            offsets, [SpanReward(s.start, s.end, polarity=s.polarity) for s in reviewed[name].spans.all()]
        )
        for name in ("a1", "a2")
    ]
    mean = [(a + b) / 2 for a, b in zip(*per_annotator, strict=True)]
    assert mean != expected
    assert rewards_digest([Sample(reward.prompt_token_ids, reward.token_ids, mean)]) != rewards_digest(
        [trained]
    )
