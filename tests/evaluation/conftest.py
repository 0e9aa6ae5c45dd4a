"""Campaigns with outputs written directly (no model), for service, page and API tests."""

from __future__ import annotations

import pytest


@pytest.fixture
def versions(db):
    from training.models import ModelVersion

    return [
        ModelVersion.objects.create(name=name, base_model="tiny", is_active=name == "v0-base")
        for name in ("v0-base", "v1-round", "v2-round")
    ]


@pytest.fixture
def prompts(project):
    from annotations.models import Prompt

    rows = []
    for number in range(6):
        prompt = Prompt(
            project=project, text=f"Summarise item {number}.", external_id=f"item-{number}", held_out=True
        )
        prompt.save()
        rows.append(prompt)
    return rows


@pytest.fixture
def make_campaign(admin_user, project, prompts):
    """A campaign whose outputs exist: version ``v`` answers prompt ``p`` with "answer p by v"."""
    from evaluation import services
    from evaluation.models import EvaluationOutput

    def _make(versions, *, prompt_count=4, per_pair=1, judges=None, seed=0):
        campaign = services.campaign_create(
            name="Round check",
            project=project,
            versions=versions,
            prompt_count=prompt_count,
            judgements_per_pair=per_pair,
            judges=judges,
            seed=seed,
            created_by=admin_user,
        )
        for prompt in campaign.prompts.all():
            for version in versions:
                EvaluationOutput.objects.create(
                    campaign=campaign,
                    prompt=prompt,
                    model_version=version,
                    text=f"answer {prompt.external_id} by {version.name}",
                    response_tokens=5 + version.pk % 3,
                    finish_reason="stop",
                )
        services.campaign_outputs_ready(campaign=campaign)
        return campaign

    return _make


@pytest.fixture
def judge_all():
    """Every judge in ``judges`` judges every pair they are offered, preferring ``ranking`` order."""
    from evaluation import services

    def _judge(campaign, judges, ranking, *, tie_every=0):
        submitted = 0
        for judge in judges:
            while (lease := services.judgement_next(campaign=campaign, judge=judge)) is not None:
                left, right = lease.left.model_version, lease.right.model_version
                submitted += 1
                if tie_every and submitted % tie_every == 0:
                    verdict = "tie"
                else:
                    verdict = "a" if ranking.index(left.name) < ranking.index(right.name) else "b"
                services.judgement_submit(judgement=lease, judge=judge, verdict=verdict)
        return submitted

    return _judge
