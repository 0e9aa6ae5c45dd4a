"""A visual tour: every page of every role, rendered in headless Chromium into docs/screenshots/.

Seeds a little demo data into a throwaway SQLite database (a temporary ``T2G_VAR_DIR``, removed afterwards):
annotations that disagree, a training round, an evaluation campaign judged in part and a span critic with
held-out metrics. Starts the development server on a free loopback port, logs in as each role and saves
one PNG per page: ``<role>-<page>.png`` (annotator, reviewer, researcher, admin), plus the README's
``queue.png`` and ``annotate.png``.

    .venv/bin/python scripts/screenshots.py [--out docs/screenshots] [--chromium /usr/bin/chromium]
"""

from __future__ import annotations

import argparse
import http.client
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
PASSWORD = "screenshot-pass-4821"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
    "--no-first-run",
]
SUMMARY = (
    "The Millbrook council voted 9 to 2 to turn the old railway depot into a public library 📚. "
    "Work starts in March and will cost about 4.2 million dollars, paid entirely by the town. "
    "Mayor Elena Ruiz expects it to open next autumn."
)
CODE = (
    "def below_zero(operations: list[int]) -> bool:\n"
    "    balance = 0\n"
    "    for op in operations:\n"
    "        balance += op\n"
    "    return balance < 0\n"
)


def seed() -> int:
    """Create users, two projects and a draft with spans; return the draft annotation's id."""
    import django

    django.setup()
    from django.contrib.auth import get_user_model

    from annotations import roles, services
    from annotations.demo_data import SUMMARY_INSTRUCTION, SUMMARY_TEXTS
    from annotations.models import Annotation, Generation, Prompt

    User = get_user_model()
    people = {}
    for name in ("annotator1", "annotator2", "annotator3"):
        people[name] = User.objects.create_user(username=name, password=PASSWORD)
        roles.assign_role(people[name], roles.ANNOTATOR)
    for name, role in (
        ("reviewer", roles.REVIEWER),
        ("researcher", roles.RESEARCHER),
        ("admin", roles.ADMIN),
    ):
        people[name] = User.objects.create_user(username=name, password=PASSWORD)
        roles.assign_role(people[name], role)

    news = services.project_create(
        name="News summaries",
        kind="summarization",
        annotations_per_output=2,
        description="Short news items to summarize. Critique omissions, invented facts and filler.",
        instructions="Mark invented or wrong facts as poor, faithful key facts as good. Say why in the critique.",
    )
    code = services.project_create(name="HumanEval code", kind="code", annotations_per_output=1)

    def add(project, prompt_text, output):
        prompt = Prompt(project=project, text=prompt_text)
        prompt.save()
        generation = Generation(prompt=prompt, text=output, source_model="SmolLM2-135M-Instruct")
        generation.save()
        return generation

    first = add(news, SUMMARY_INSTRUCTION + SUMMARY_TEXTS[0], SUMMARY)
    for text in SUMMARY_TEXTS[1:12]:
        add(news, SUMMARY_INSTRUCTION + text, text.split(". ")[0] + ".")
    for i in range(6):
        add(code, f"Complete the function (problem {i}).", CODE.replace("below_zero", f"below_zero_{i}"))

    # Other annotators' finished work, so the progress bars have something to show.
    for name in ("annotator2", "annotator3"):
        for turn in range(5):
            assignment = services.assignment_next(project=news, annotator=people[name])
            if assignment is None:
                break
            annotation = Annotation.objects.get(
                generation_id=assignment.generation_id, annotator=people[name]
            )
            if assignment.generation_id == first.pk:
                services.assignment_skip(
                    assignment=assignment, reason="Leaving this one for the demo", user=people[name]
                )
                continue
            text = annotation.generation.text
            first_word = text.index(" ")
            services.span_create(
                annotation=annotation, start=0, end=first_word, label="good", user=people[name]
            )
            disagrees = name == "annotator3" and turn % 2 == 1  # a second opinion, for the review pages
            if disagrees:
                services.span_create(
                    annotation=annotation, start=text.index(" ", len(text) // 3) + 1, end=len(text) - 1, label="poor",
                    critique="Leaves out who decided and when.", user=people[name],
                )  # fmt: skip
            services.annotation_submit(
                annotation=annotation,
                overall_critique="Misses the key facts." if disagrees else "Faithful.",
                rating=2 if disagrees else 4,
                user=people[name],
            )
    for _ in range(2):
        assignment = services.assignment_next(project=code, annotator=people["annotator1"])
        annotation = Annotation.objects.get(
            generation_id=assignment.generation_id, annotator=people["annotator1"]
        )
        services.span_create(annotation=annotation, start=0, end=3, label="good", user=people["annotator1"])
        services.annotation_submit(
            annotation=annotation, overall_critique="Correct.", rating=5, user=people["annotator1"]
        )

    me = people["annotator1"]
    assignment = services.assignment_next(project=news, annotator=me)
    draft = Annotation.objects.get(generation_id=assignment.generation_id, annotator=me)
    text = draft.generation.text

    def span(phrase, label, critique, weight=1.0):
        start = text.index(phrase)
        return {"start": start, "end": start + len(phrase), "text": phrase, "label": label, "critique": critique,
                "weight": weight}  # fmt: skip

    services.annotation_save_draft(
        annotation=draft,
        user=me,
        overall_critique="Keeps the names and dates, but gets the vote and the funding wrong.",
        rating=2,
        spans=[
            span("voted 9 to 2", "poor", "The vote was 7 to 2.", 2),
            span(
                "will cost about 4.2 million dollars, paid entirely by the town",
                "poor",
                "Most of the cost is covered by a state grant.",
            ),
            span("4.2 million dollars", "good", "The figure itself is right."),
            span("Mayor Elena Ruiz", "good", "Keeps the name."),
        ],  # fmt: skip
    )
    _seed_training(news, people["admin"])
    _seed_review(news, people["reviewer"])
    _seed_evaluation(news, people)
    _seed_critic(news)
    return draft.pk


def _seed_review(project, reviewer) -> None:
    """Verdicts: annotator3's disagreeing second opinion rejected, annotator1's code critiques accepted."""
    from annotations.models import Annotation
    from annotations.services import review_set

    disputed = Annotation.objects.filter(
        generation__prompt__project=project, status="submitted", annotator__username="annotator3"
    ).order_by("id")
    for annotation in disputed[1:2]:
        review_set(annotation=annotation, reviewer=reviewer, verdict="rejected",
                   comment="The poor span covers facts the summary does keep.")  # fmt: skip
    for annotation in Annotation.objects.filter(annotator__username="annotator1", status="submitted"):
        review_set(annotation=annotation, reviewer=reviewer, verdict="accepted", comment="Clear critique.")


def _seed_evaluation(project, people) -> None:
    """A campaign of three versions on six prompts: two annotators have judged every pair (the better
    version wins most, with ties and upsets), annotator1 still has pairs to judge."""
    import random

    from annotations.demo_data import SUMMARY_INSTRUCTION
    from evaluation import services as evaluation
    from evaluation.models import EvaluationOutput
    from training.models import ModelVersion

    base, tuned = ModelVersion.objects.get(name="v0-base"), ModelVersion.objects.get(name="v1-token")
    best = ModelVersion.objects.create(name="v2-token", base_model=base.base_model, parent=tuned)
    versions = [base, tuned, best]
    judges = [people[name] for name in ("annotator1", "annotator2", "annotator3")]
    campaign = evaluation.campaign_create(
        name="v2-token against v1 and the base", project=project, versions=versions, prompt_count=6,
        judgements_per_pair=3, prompt_source="all", judges=judges, seed=7, created_by=people["admin"],
    )  # fmt: skip
    for prompt in campaign.prompts.order_by("id"):
        sentences = prompt.text.removeprefix(SUMMARY_INSTRUCTION).split(". ")
        answers = {  # the base rambles, v1 keeps one sentence, v2 two
            base.pk: "Here is a summary of the text. " + sentences[-1],
            tuned.pk: sentences[0].rstrip(".") + ".",
            best.pk: ". ".join(sentences[:2]).rstrip(".") + ".",
        }
        for version in versions:
            EvaluationOutput.objects.create(
                campaign=campaign, prompt=prompt, model_version=version, text=answers[version.pk],
                response_tokens=len(answers[version.pk].split()), finish_reason="stop",
            )  # fmt: skip
    evaluation.campaign_outputs_ready(campaign=campaign)
    strength = {base.pk: 0, tuned.pk: 1, best.pk: 2}
    rng = random.Random(7)
    for judge in judges[1:]:
        while (lease := evaluation.judgement_next(campaign=campaign, judge=judge)) is not None:
            left, right = lease.left.model_version_id, lease.right.model_version_id
            roll = rng.random()
            if roll < 0.15:
                verdict = "tie"
            else:
                left_better = strength[left] > strength[right]
                verdict = "a" if left_better == (roll < 0.9) else "b"
            evaluation.judgement_submit(judgement=lease, judge=judge, verdict=verdict, reason="")


def _seed_critic(project) -> None:
    """An active span critic with held-out metrics next to the baselines, and its calibration bins."""
    from training.models import CriticVersion

    def label(precision, recall, auroc):
        return {"precision": precision, "recall": recall, "f1": 2 * precision * recall / (precision + recall),
                "auroc": auroc}  # fmt: skip

    def calibration(points):
        return {"bins": [{"predicted": p, "observed": o, "count": n} for p, o, n in points], "ece": 0.06}

    critic = {
        "labels": {"poor": label(0.62, 0.55, 0.81), "good": label(0.58, 0.49, 0.77)},
        "calibration": {
            "poor": calibration(
                [
                    (0.05, 0.03, 410),
                    (0.15, 0.12, 96),
                    (0.3, 0.24, 41),
                    (0.5, 0.41, 22),
                    (0.7, 0.66, 15),
                    (0.9, 0.8, 9),
                ]
            ),
            "good": calibration(
                [(0.05, 0.06, 380), (0.2, 0.25, 70), (0.4, 0.33, 30), (0.6, 0.52, 18), (0.85, 0.74, 7)]
            ),
        },  # fmt: skip
    }
    neutral = {"labels": {"poor": label(0.0001, 0.0001, 0.5), "good": label(0.0001, 0.0001, 0.5)}}
    prior = {"labels": {"poor": label(0.31, 0.22, 0.64), "good": label(0.27, 0.2, 0.61)}}
    CriticVersion.objects.create(
        project=project, name="critic-news-1", base_model="SmolLM2-135M-Instruct",
        adapter_path="critics/critic-news-1", is_active=True,
        metrics={"reports": {"critic": critic, "all_neutral": neutral, "token_prior": prior},
                 "held_out_outputs": 4, "train_outputs": 14},
    )  # fmt: skip


def _seed_training(project, admin) -> None:
    """A finished round with a few steps of metrics, the version it made and a failed (empty) export."""
    from annotations.models import Annotation, DatasetExport
    from training.models import ModelVersion, RoundMetric, TrainingRound

    base = ModelVersion.objects.create(name="v0-base", base_model="SmolLM2-135M-Instruct", is_active=True)
    submitted = list(Annotation.objects.filter(status="submitted").values_list("pk", flat=True))
    training_round = TrainingRound.objects.create(
        project=project, status="succeeded", progress_step=8, progress_total=8, snapshot=submitted,
        config={"mode": "token", "learning_rate": 0.0001, "kl_coef": 0.1, "steps": 8, "lora_r": 16,
                "lora_target_modules": ["q_proj", "k_proj", "v_proj", "o_proj"]},
        summary={"elapsed_s": 95.0}, created_by=admin, base_version=base,
    )  # fmt: skip
    for step in range(8):
        RoundMetric.objects.create(
            training_round=training_round, step=step,
            data={"mean_token_reward": -0.4 + 0.07 * step, "mean_shaped_reward": -0.45 + 0.065 * step,
                  "kl": 0.002 * step, "policy_loss": 0.3 / (step + 1), "value_loss": 0.2 - 0.01 * step,
                  "clipfrac": 0.05 * (step % 3), "ratio": 1.0 + 0.01 * (step % 2)},
        )  # fmt: skip
    version = ModelVersion.objects.create(name="v1-token", base_model=base.base_model, parent=base,
                                          created_by_round=training_round)  # fmt: skip
    TrainingRound.objects.filter(pk=training_round.pk).update(output_version=version)
    DatasetExport.objects.create(
        kind="dpo", format="jsonl", status="failed", created_by=admin, query={"status": "submitted"},
        error="Nothing to export: a DPO pair needs two rated outputs of the same prompt whose mean ratings differ.",
    )  # fmt: skip


def tour(project_ids: dict, draft_id: int) -> dict[str, list[tuple[str, str]]]:
    """(name, path) of every page each role sees."""
    from django.db.models import Count, Q

    from annotations.models import Annotation, DatasetExport, Generation
    from evaluation.models import EvaluationCampaign
    from training.models import TrainingRound

    news, code = project_ids["news"], project_ids["code"]
    submitted = Annotation.objects.filter(status="submitted").order_by("id").first()
    code_annotation = Annotation.objects.filter(generation__prompt__project_id=code).order_by("id").first()
    round_id = TrainingRound.objects.order_by("id").first().pk
    export_id = DatasetExport.objects.order_by("id").first().pk
    campaign = EvaluationCampaign.objects.order_by("id").first()
    campaign_prompt = campaign.prompts.order_by("id").first().pk
    reviewed = (
        Generation.objects.filter(prompt__project_id=news)
        .annotate(done=Count("annotations", filter=Q(annotations__status="submitted")))
        .filter(done__gte=2)
        .order_by("id")
        .first()
    )
    review = [
        ("review-queue", f"/projects/{news}/review/"),
        ("review", f"/review/outputs/{reviewed.pk}/"),
        ("review-side-by-side", f"/review/outputs/{reviewed.pk}/?view=side"),
        ("agreement", f"/projects/{news}/agreement/"),
    ]
    shared = [
        ("projects", "/projects/"),
        ("project", f"/projects/{news}/"),
        ("code-project", f"/projects/{code}/"),
    ]
    watcher = [
        *shared,
        ("progress", f"/projects/{news}/progress/"),
        ("annotation-read-only", f"/annotations/{submitted.pk}/"),
        ("heatmap", f"/annotations/{submitted.pk}/heatmap/"),
        ("exports", "/data/exports/"),
        ("export", f"/data/exports/{export_id}/"),
        ("import", "/data/import/"),
        ("training", "/training/"),
        ("round", f"/training/rounds/{round_id}/"),
        ("compare", "/training/compare/"),
        ("evaluation", "/evaluation/"),
        ("evaluation-results", f"/evaluation/{campaign.pk}/"),
        ("evaluation-prompt", f"/evaluation/{campaign.pk}/prompts/{campaign_prompt}/"),
        ("critic", f"/projects/{news}/critic/"),
    ]
    return {
        "annotator": [
            ("queue", "/queue/"),
            *shared,
            ("annotate", f"/annotations/{draft_id}/"),
            ("annotate-code", f"/annotations/{code_annotation.pk}/"),
            ("heatmap", f"/annotations/{code_annotation.pk}/heatmap/"),
            ("my-reviews", "/my/reviews/"),
            ("evaluation", "/evaluation/"),
            ("judge", f"/evaluation/{campaign.pk}/judge/"),
        ],
        "reviewer": [*shared, *review],
        "researcher": watcher,
        "admin": [*watcher, *review],
    }


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_for(port: int, proc: subprocess.Popen) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit("the development server exited during start-up")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", "/healthz")
            if conn.getresponse().status == 200:
                return
        except OSError:
            time.sleep(0.3)
    raise SystemExit("the development server did not answer /healthz")


def _login(page, username: str) -> None:
    page.context.clear_cookies()
    page.goto("/accounts/login/")
    page.fill('input[name="username"]', username)
    page.fill('input[name="password"]', PASSWORD)
    page.click('main button[type="submit"]')
    page.wait_for_load_state()


def _settle(page, path: str) -> None:
    page.wait_for_load_state("load")
    if path.startswith("/annotations/") and "heatmap" not in path:
        page.wait_for_selector('#workspace[data-ready="1"]')
    if path.startswith("/review/outputs/"):
        page.wait_for_selector('#review[data-ready="1"]')
    if page.locator("[data-charts] .chart-plot").count():  # rounds, evaluation results, the critic
        page.wait_for_function("!!window.t2gCharts")


def shoot(base_url: str, draft_id: int, pages: dict, out: Path, chromium: str) -> list[Path]:
    from playwright.sync_api import sync_playwright

    written = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, headless=True, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 820}, base_url=base_url)
        page.goto("/accounts/login/")
        page.screenshot(path=str(out / "anonymous-login.png"), full_page=True)
        written.append(out / "anonymous-login.png")
        for role, visits in pages.items():
            _login(page, {"annotator": "annotator1"}.get(role, role))
            for name, path in visits:
                page.goto(path)
                _settle(page, path)
                target = out / f"{role}-{name}.png"
                page.screenshot(path=str(target), full_page=True)
                written.append(target)

        # The README's two: the queue, and a selection being labelled from the keyboard.
        _login(page, "annotator1")
        page.goto("/queue/")
        page.wait_for_selector(".queue-row")
        page.screenshot(path=str(out / "queue.png"), full_page=True)
        page.goto(f"/annotations/{draft_id}/")
        page.wait_for_selector('#workspace[data-ready="1"]')
        page.evaluate("document.querySelector('details.instructions')?.removeAttribute('open')")
        page.evaluate(
            """() => {
                const node = document.getElementById("output-text");
                const walker = document.createTreeWalker(node, NodeFilter.SHOW_TEXT);
                let text;
                while ((text = walker.nextNode())) {
                    const at = text.data.indexOf("next autumn");
                    if (at >= 0) {
                        const range = document.createRange();
                        range.setStart(text, at);
                        range.setEnd(text, at + "next autumn".length);
                        const selection = window.getSelection();
                        selection.removeAllRanges();
                        selection.addRange(range);
                        return;
                    }
                }
            }"""
        )
        page.keyboard.press("1")
        page.keyboard.type("Right: the text says autumn of next year.")
        page.screenshot(path=str(out / "annotate.png"), full_page=True)
        written += [out / "queue.png", out / "annotate.png"]
        browser.close()
    return written


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "docs" / "screenshots")
    parser.add_argument("--chromium", default=os.environ.get("T2G_CHROMIUM", "/usr/bin/chromium"))
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)

    var_dir = tempfile.mkdtemp(prefix="t2g-screenshots-")
    env = {key: value for key, value in os.environ.items() if key != "DATABASE_URL"}
    env |= {"T2G_VAR_DIR": var_dir, "DEBUG": "1", "DJANGO_SETTINGS_MODULE": "text2grad_web.settings"}
    env |= {"LOG_LEVEL": "WARNING", "PYTHONPATH": str(REPO_ROOT)}
    os.environ.clear()
    os.environ.update(env)
    sys.path.insert(0, str(REPO_ROOT))
    server = None
    try:
        subprocess.run(
            [sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"], cwd=REPO_ROOT, check=True
        )
        draft_id = seed()
        from annotations.models import Project

        project_ids = {
            "news": Project.objects.get(name="News summaries").pk,
            "code": Project.objects.get(name="HumanEval code").pk,
        }
        pages = tour(project_ids, draft_id)
        port = _free_port()
        server = subprocess.Popen(
            [sys.executable, "manage.py", "runserver", f"127.0.0.1:{port}", "--noreload", "--skip-checks"],
            cwd=REPO_ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        _wait_for(port, server)
        written = shoot(f"http://127.0.0.1:{port}", draft_id, pages, args.out, args.chromium)
        print(f"wrote {len(written)} screenshots into {args.out}")
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=20)
        shutil.rmtree(var_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
