"""axe-core (vendored from its npm package) over every page of every role (reviewers included), each
checked to answer 200 first: no serious or critical violations, and every visible control reachable
from the keyboard."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.urls import reverse
from django.utils import timezone

from annotations import services
from annotations.models import Annotation, DatasetExport
from training.models import (
    CriticVersion,
    GenerationJob,
    ModelVersion,
    RoundCriticScore,
    RoundMetric,
    TrainingRound,
)

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

AXE = Path(__file__).resolve().parents[2] / "static" / "vendor" / "axe-core" / "axe.min.js"
CODE = "def add(a, b):\n\treturn a + b  # the sum\n"

# Interactive things that are visible but cannot be reached with Tab.
_UNREACHABLE_JS = """
() => Array.from(document.querySelectorAll('a[href], button, input:not([type=hidden]), select, textarea, summary'))
  .filter(el => el.getClientRects().length && !el.closest('[hidden], dialog:not([open])') && !el.disabled)
  .filter(el => el.tabIndex < 0)
  .map(el => el.outerHTML.slice(0, 120))
"""


@pytest.fixture
def site(project, code_project, make_generation, annotator, annotator2, researcher, admin_user):
    """A little of everything: drafts, submissions, a code output, versions, a round, jobs, exports."""
    base = ModelVersion.objects.create(name="v0-base", base_model="tiny", is_active=True)
    texts = ["The council voted 9 to 2 for the library.", "Rain is expected on Sunday.", "Cats sleep a lot."]
    generations = [make_generation(project, text) for text in texts]
    code = make_generation(code_project, CODE)
    submitted = []
    for user in (annotator, annotator2):
        services.assignment_next(project=project, annotator=user)
        annotation = Annotation.objects.filter(annotator=user).first()
        services.span_create(annotation=annotation, start=0, end=3, label="good", critique="Fine.", user=user)
        services.annotation_submit(annotation=annotation, overall_critique="Good.", rating=4, user=user)
        submitted.append(annotation)
    services.assignment_next(project=project, annotator=annotator)
    draft = Annotation.objects.filter(annotator=annotator, status="draft").first()
    services.assignment_next(project=code_project, annotator=annotator)
    code_draft = Annotation.objects.get(annotator=annotator, generation=code)
    training_round = TrainingRound.objects.create(
        status="succeeded", config={"learning_rate": 0.0001, "steps": 2}, progress_step=2, progress_total=2,
        snapshot=[a.pk for a in submitted], finished_at=timezone.now(),
    )  # fmt: skip
    for step in range(3):
        RoundMetric.objects.create(
            training_round=training_round, step=step, data={"kl": 0.01 * step, "policy_loss": 1.0}
        )
    trained = ModelVersion.objects.create(
        name="v1-round", base_model="tiny", parent=base, created_by_round=training_round
    )
    # The round page's "Did it help?" section (an evaluation against the parent) is audited too.
    TrainingRound.objects.filter(pk=training_round.pk).update(output_version=trained)
    # ... and the active critic's finished score against the parent in it (issue 24).
    critic = CriticVersion.objects.create(project=project, name="critic-a", base_model="tiny", is_active=True)
    RoundCriticScore.objects.create(
        training_round=training_round, critic_version=critic, status="succeeded", progress_step=2,
        progress_total=2, result={"critic": "critic-a", "version": "v1-round", "parent": "v0-base", "n": 1,
        "baseline_mean": 0.1, "candidate_mean": 0.2, "wins": 1, "losses": 0, "ties": 0, "p_value": 1.0},
    )  # fmt: skip
    GenerationJob.objects.create(project=project, model_version=base, status="running", progress_total=4)
    export = DatasetExport.objects.create(
        kind="dpo", format="jsonl", status="failed", error="Nothing to export.", created_by=researcher
    )
    from annotations.models import PromptImport

    prompt_import = PromptImport.objects.create(
        project=project, format="jsonl", file_name="prompts.jsonl", status="failed",
        error="1 bad line; nothing was imported. Fix them, or allow a partial import.",
        report={"created_prompts": 0, "created_outputs": 0, "duplicate_lines": [], "error_count": 1,
                "errors": [{"line": 2, "message": "not valid JSON"}], "committed": False},
    )  # fmt: skip
    from annotations import webhooks
    from annotations.services import ingest

    ingest.ingest_key_create(project=project, name="support bot", created_by=admin_user)
    webhook = webhooks.webhook_create(url="http://127.0.0.1:9/hook", events=["export.ready"])
    webhooks.webhook_event_emit(event="export.ready", data={"export": {"id": export.pk}})
    webhooks.webhook_deliver(delivery_id=webhook.deliveries.get().pk)  # nothing listens: an error logged
    assert generations
    return {"webhook": webhook, "draft": draft, "submitted": submitted[0], "code": code_draft, "round": training_round,
            "export": export, "project": project, "code_project": code_project,
            "import": prompt_import}  # fmt: skip


def _pages(site, role):
    project = site["project"]
    common = [reverse("project_list"), reverse("project_detail", args=[project.pk])]
    review = [
        reverse("review_queue", args=[project.pk]),
        reverse("project_agreement", args=[project.pk]),
        reverse("review_output", args=[site["submitted"].generation_id]),
    ]
    if role == "annotator":
        return [
            reverse("queue"),
            *common,
            reverse("annotate", args=[site["draft"].pk]),
            reverse("annotate", args=[site["code"].pk]),
            reverse("annotate", args=[site["submitted"].pk]),
            reverse("annotation_heatmap", args=[site["submitted"].pk]),
            reverse("my_reviews"),
            reverse("campaign_list"),
        ]
    if role == "reviewer":
        return [reverse("queue"), *common, *review, reverse("my_reviews")]
    pages = [
        *common,
        reverse("project_detail", args=[site["code_project"].pk]),
        reverse("project_progress", args=[project.pk]),
        reverse("annotate", args=[site["submitted"].pk]),
        reverse("annotation_heatmap", args=[site["submitted"].pk]),
        reverse("data_export_list"),
        reverse("data_export_detail", args=[site["export"].pk]),
        *(
            [reverse("data_import"), reverse("data_import_detail", args=[site["import"].pk])]
            if role == "admin"
            else []
        ),
        reverse("training_home"),
        reverse("round_detail", args=[site["round"].pk]),
        reverse("version_compare"),
        reverse("api_key_list"),
        reverse("playground"),
        reverse("project_agreement", args=[project.pk]),
        reverse("my_reviews"),
        reverse("campaign_list"),
        reverse("data_home"),
        reverse("critic_home", args=[project.pk]),
    ]
    if role == "admin":
        pages += [*review[:1], *review[2:], reverse("audit_event_list")]
        pages += [reverse("project_integrations", args=[project.pk]), reverse("webhook_list"),
                  reverse("webhook_detail", args=[site["webhook"].pk])]  # fmt: skip
        pages.append(reverse("machine_critics", args=[project.pk]))
    return pages


def _audit(page, path):
    response = page.goto(path)
    page.wait_for_load_state("load")
    if response is None or response.status != 200:  # audit the page itself, not an error page
        return [f"{path}: answered {response.status if response else 'nothing'}, not 200"]
    if "/annotations/" in path and "heatmap" not in path:
        page.wait_for_selector('#workspace[data-ready="1"]')
    if "/training/rounds/" in path:
        page.wait_for_function("!!window.t2gCharts")
    page.evaluate(AXE.read_text())  # evaluated by the DevTools protocol: no <script> added, CSP unaffected
    result = page.evaluate(
        "async () => (await axe.run(document, {resultTypes: ['violations']})).violations"
        ".filter(v => v.impact === 'serious' || v.impact === 'critical')"
        ".map(v => `${v.id} (${v.impact}): ${v.help} -> ` + v.nodes.slice(0, 3).map(n => n.target.join(' ')).join(' | '))"
    )
    unreachable = page.evaluate(_UNREACHABLE_JS)
    return [f"{path}: {line}" for line in result] + [
        f"{path}: not keyboard-reachable: {el}" for el in unreachable
    ]


@pytest.mark.parametrize("role", ["anonymous", "annotator", "reviewer", "researcher", "admin"])
def test_every_page_has_no_serious_accessibility_violations(page, login_browser, site, role, request):
    if role == "anonymous":
        paths = [reverse("login")]
    else:
        user = request.getfixturevalue(
            {
                "annotator": "annotator",
                "reviewer": "reviewer",
                "researcher": "researcher",
                "admin": "admin_user",
            }[role]
        )
        login_browser(user)
        paths = _pages(site, role)
    problems = [problem for path in paths for problem in _audit(page, path)]
    assert problems == [], "\n".join(problems)


def test_heatmap_with_rewards_keeps_text_contrast(page, login_browser, annotator, project, make_generation):
    """The strongest rewards give the darkest cells: they must still pass axe's colour contrast."""
    from training.models import TokenReward

    text = "Good start, bad ending here."
    generation = make_generation(project, text)
    services.assignment_next(project=project, annotator=annotator)
    annotation = Annotation.objects.get(generation=generation, annotator=annotator)
    services.span_create(annotation=annotation, start=0, end=10, label="good", user=annotator)
    services.annotation_submit(annotation=annotation, overall_critique="Mixed.", user=annotator)
    offsets = [[0, 4], [4, 10], [10, 11], [11, 15], [15, 22], [22, 27], [27, 28]]
    TokenReward.objects.create(
        annotation=annotation, tokenizer_fingerprint="f" * 16, token_ids=list(range(7)), offsets=offsets,
        rewards=[1.0, 1.0, 0.0, -1.0, -1.0, -0.5, 0.0], token_strings=["Good", " start", ",", " bad", " ending", " here", "."],
    )  # fmt: skip
    login_browser(annotator)
    problems = _audit(page, reverse("annotation_heatmap", args=[annotation.pk]))
    assert page.locator("#heatmap span.tok[data-reward]").count() >= 5
    assert problems == [], "\n".join(problems)
