"""The round page's critic score on a tiny model and a tiny trained critic: both versions answer the same
held-out prompts with the same seed, the active critic scores every answer, the page says the verdict."""

from __future__ import annotations

import pytest
from django.urls import reverse
from django.utils.html import escape

from annotations.models import Prompt
from text2grad import generation, pairwise
from text2grad.critic import token_rewards_from_probs
from training import services
from training.models import CriticTrainingJob, RoundCriticScore, TrainingRound
from training.views.rounds import critic_verdict
from training.worker import critic as critic_worker
from training.worker import round_scores, rounds
from training.worker.runtime import load_version

pytestmark = [pytest.mark.django_db, pytest.mark.heavy]

FAST_CRITIC = {"epochs": 2, "learning_rate": 0.01, "held_out_fraction": 0.25}
ONE_UPDATE = {"learning_rate": 5e-3, "steps": 1, "batch_size": 2, "minibatch_size": 2, "ppo_epochs": 1}


def test_the_active_critic_scores_the_round_and_its_parent_on_the_same_prompts(
    tiny_settings, project, labelled, admin_user, login
):
    job = services.critic_job_create(
        project=project, config=FAST_CRITIC, created_by=admin_user, auto_activate=True
    )
    assert critic_worker.critic_job_run(job_id=job.pk) == CriticTrainingJob.Status.SUCCEEDED
    critic = services.critic_active(project_id=project.pk)
    assert critic is not None
    training_round = services.round_launch(
        mode="token", config=ONE_UPDATE, created_by=admin_user, enqueue=False
    )
    assert rounds.round_run(round_id=training_round.pk) == TrainingRound.Status.SUCCEEDED
    training_round.refresh_from_db()
    version = training_round.output_version
    held_out = [g.prompt_id for g in labelled[5:]]
    Prompt.objects.filter(pk__in=held_out).update(held_out=True)
    tiny_settings.T2G_MAX_NEW_TOKENS = 8

    score = services.round_critic_score_create(training_round=training_round, created_by=admin_user)
    assert score.prompt_ids == sorted(held_out) and score.critic_version == critic
    assert round_scores.round_critic_score_run(job_id=score.pk) == RoundCriticScore.Status.SUCCEEDED
    score.refresh_from_db()
    assert score.status == "succeeded" and score.progress_step == score.progress_total == 6
    result = score.result
    assert (result["critic"], result["version"], result["parent"]) == (
        critic.name,
        version.name,
        version.parent.name,
    )
    rows = result["prompts"]
    assert [row["id"] for row in rows] == sorted(held_out) and result["n"] == 3
    assert all(-1.0 <= row[side] <= 1.0 for row in rows for side in ("parent", "version"))
    assert result == {**pairwise.paired_scores([r["parent"] for r in rows], [r["version"] for r in rows]),
                      **{k: result[k] for k in ("critic", "version", "parent", "prompts")}}  # fmt: skip

    # The parent's score is the critic's mean expected token reward of the parent's answer, sampled with the
    # job's seed: recomputed here by hand for the first prompt.
    prompts = list(Prompt.objects.filter(pk__in=held_out).order_by("id"))
    model, tokenizer = load_version(version.parent)
    ((answer,), *_) = generation.sample(
        model, tokenizer, [p.chat_messages() for p in prompts], max_new_tokens=8,
        temperature=round_scores.TEMPERATURE, seed=round_scores.SEED,
    )  # fmt: skip
    ((_, critique),) = critic_worker.critique_texts(critic, [prompts[0].chat_messages()], [answer.text])
    token_rewards = token_rewards_from_probs(critique.token_probs)
    assert rows[0]["parent"] == pytest.approx(sum(token_rewards) / len(token_rewards), abs=1e-5)

    page = login(admin_user).get(reverse("round_detail", args=[training_round.pk])).content.decode()
    assert escape(critic_verdict(result)) in page
