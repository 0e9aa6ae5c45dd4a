"""Unit-test pass rate per version on a code campaign, run by the worker-side code in the sandbox."""

from __future__ import annotations

import pytest

from annotations.models import Prompt
from evaluation import selectors, services
from evaluation.models import CampaignGeneration, EvaluationOutput
from jobs import lifecycle

pytestmark = pytest.mark.django_db

STUB = "from typing import List\n\n\ndef total(xs: List[int]) -> int:\n    '''Sum of xs.'''\n"
TEST = "def check(candidate):\n    assert candidate([1, 2, 3]) == 6\n    assert candidate([]) == 0\n"
ANSWERS = {
    "v0-base": ["    return 0\n", "```python\ndef total(xs):\n    while True:\n        pass\n```"],
    "v1-round": [
        "    return sum(xs)\n",
        "Here it is:\n```python\ndef total(xs: List[int]) -> int:\n    return sum(xs)\n```",
    ],
}


@pytest.mark.heavy
def test_pass_rate_per_version(code_project, versions, admin_user):
    from training.worker import campaigns as worker

    for number in range(2):
        Prompt(
            project=code_project,
            text=worker.CODE_PROMPT_PREFIX + STUB + f"# variant {number}\n",
            metadata={"entry_point": "total", "test": TEST},
            held_out=True,
        ).save()
    chosen = versions[:2]
    campaign = services.campaign_create(
        name="code", project=code_project, versions=chosen, prompt_count=2, created_by=admin_user
    )
    for index, prompt in enumerate(campaign.prompts.order_by("id")):
        for version in chosen:
            EvaluationOutput.objects.create(
                campaign=campaign, prompt=prompt, model_version=version, text=ANSWERS[version.name][index]
            )
    job = lifecycle.claim(CampaignGeneration, campaign.generation.pk)  # as the worker does
    worker._run_code_tests(campaign, job)
    metrics = {m["version"].name: m for m in selectors.version_metrics(campaign)}
    assert metrics["v0-base"]["pass_rate"] == 0.0 and metrics["v0-base"]["tested"] == 2
    details = list(EvaluationOutput.objects.values_list("text", "tests_passed", "test_detail"))
    assert metrics["v1-round"]["pass_rate"] == 1.0, details
    looping = EvaluationOutput.objects.get(model_version=chosen[0], text__contains="while True")
    assert looping.tests_passed is False and looping.test_detail  # stopped by the sandbox, with a reason
