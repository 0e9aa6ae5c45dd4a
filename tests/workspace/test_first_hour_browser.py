"""The first hour, as a new user walks it, in Chromium against the session's real worker (issue 24): the
seeded users log in through the form; an annotator's empty queue says why it is empty and what to expect;
the admin starts generation on the project page; the outputs arrive through the worker; two annotators
annotate and submit side by side; their token rewards arrive; the admin launches a round from the Training
page and watches it finish, and the round page offers the evaluation against its parent.

The test stack is the session's Celery worker (every lane in one solo process, the tiny model, 12 new
tokens) on the test broker and database; test_first_hour_embedded_browser.py walks the same hour on
`make run`'s own stack (scripts/run.sh on the embedded defaults)."""

from __future__ import annotations

import pytest
from django.core.management import call_command
from django.urls import reverse

from annotations.models import Annotation, Generation, Project
from tests.conftest import wait_for
from training.management.commands.seed_demo import DEMO_USERS, SUMMARY_PROJECT
from training.models import GenerationJob, TokenReward, TrainingRound

from .conftest import critique_first_word_by_keyboard

pytestmark = [pytest.mark.browser, pytest.mark.worker, pytest.mark.django_db(transaction=True)]

PASSWORD = "first-hour-{}"  # the seed takes each demo user's password from the environment


def _tab(browser, live_server):
    context = browser.new_context(
        base_url=live_server.url, viewport={"width": 1280, "height": 900}, bypass_csp=True
    )
    context.set_default_timeout(15_000)
    tab = context.new_page()
    tab.errors = []
    tab.on("pageerror", lambda error: tab.errors.append(str(error)))
    return tab


def _log_in(tab, live_server, username: str):
    tab.goto(reverse("login"))
    tab.fill('input[name="username"]', username)
    tab.fill('input[name="password"]', PASSWORD.format(username))
    tab.click('button[type="submit"]')
    tab.wait_for_url(lambda url: "/login" not in url)
    return tab


def _queue_row(tab, project: Project):
    tab.goto(reverse("queue"))
    return tab.locator(f'.queue-row[data-project="{project.pk}"]')


def _annotate_one(tab, annotator_name: str, critique: str) -> Annotation:
    """In the open workspace: a poor span with a critique, an overall critique and a rating (autosaved)."""
    tab.wait_for_selector('#workspace[data-ready="1"]')
    annotation_pk = int(tab.url.rstrip("/").split("/")[-1])
    annotation = Annotation.objects.select_related("generation").get(pk=annotation_pk)
    assert annotation.annotator.username == annotator_name
    critique_first_word_by_keyboard(tab, annotation.generation.text, critique)
    return annotation


def _submit(tab, annotation: Annotation) -> None:
    tab.locator("body").click(position={"x": 5, "y": 5})
    tab.keyboard.press("Control+Enter")
    tab.wait_for_url(lambda url: not url.rstrip("/").endswith(f"/annotations/{annotation.pk}"))


def test_the_first_hour_from_the_seed_to_a_finished_round(
    celery_worker_process, browser, live_server, monkeypatch, settings, tmp_path
):
    settings.VAR_DIR = tmp_path  # the seed writes the logins there
    for username, _role, variable in DEMO_USERS:
        monkeypatch.setenv(variable, PASSWORD.format(username))
    call_command("seed_demo", "--no-generate", "--code-limit", "2")
    summaries = Project.objects.get(name=SUMMARY_PROJECT)

    first, second, admin = (_tab(browser, live_server) for _ in range(3))
    _log_in(first, live_server, "annotator1")
    _log_in(second, live_server, "annotator2")
    _log_in(admin, live_server, "admin")

    # 1. The empty queue says why, and who can change it.
    row = _queue_row(first, summaries)
    assert "Nothing waiting" in row.inner_text()
    assert row.locator(".queue-note").inner_text() == (
        "No outputs are being generated for this project yet: an admin starts a generation job on the "
        "project page."
    )

    # 2. The admin starts generation on the project page; until the first outputs come, the queue says
    # what is being generated and when (it never just says "Nothing waiting").
    admin.goto(reverse("project_detail", args=[summaries.pk]))
    admin.locator(f'form[action="{reverse("generation_job_start", args=[summaries.pk])}"] button').click()
    admin.wait_for_selector("text=Generation queued")
    job = GenerationJob.objects.get(project=summaries)

    def outputs_arrived() -> bool:
        row = _queue_row(first, summaries)
        if row.get_by_role("button", name="Start").count():
            return True
        note = " ".join(row.locator(".queue-note").all_inner_texts())
        assert "should arrive in" in note, note
        job.refresh_from_db()
        assert job.status != "failed", job.error
        return False

    wait_for(outputs_arrived, timeout=120, interval=1.0, message="the first outputs in the queue")

    # 3. Two annotators at once: each annotates two outputs; one submits while the other edits.
    # Submitting goes on to the next output at once.
    _queue_row(first, summaries).get_by_role("button", name="Start").click()
    _queue_row(second, summaries).get_by_role("button", name="Start").click()
    annotations = []
    for _turn in range(2):
        mine = _annotate_one(first, "annotator1", "Invented words, not from the item.")
        theirs = _annotate_one(second, "annotator2", "Gibberish: says nothing of the news.")
        _submit(first, mine)
        _submit(second, theirs)
        annotations += [mine, theirs]
    submitted = Annotation.objects.filter(status="submitted", generation__prompt__project=summaries)
    assert submitted.count() == 4 and len({a.generation_id for a in annotations}) >= 2
    wait_for(lambda: TokenReward.objects.filter(annotation__in=submitted).count() == 4, timeout=60,
             message="token rewards from the worker")  # fmt: skip

    # 4. The admin launches a small round on the project and watches it finish on the round page.
    admin.goto(reverse("training_home"))
    admin.select_option('select[name="project"]', str(summaries.pk))
    for name, value in (("steps", "1"), ("batch_size", "2"), ("minibatch_size", "2"), ("ppo_epochs", "1")):
        admin.fill(f'input[name="{name}"]', value)
    admin.get_by_role("button", name="Launch round").click()
    admin.wait_for_selector("#round-live")
    training_round = TrainingRound.objects.get()
    assert training_round.snapshot_size == 4 and admin.url.endswith(
        reverse("round_detail", args=[training_round.pk])
    )
    admin.wait_for_selector('#round-live[data-status="succeeded"]', timeout=180_000)
    training_round.refresh_from_db()
    assert training_round.output_version is not None, training_round.error
    evaluation = admin.locator("section.round-evaluation")
    assert "Did it help?" in evaluation.inner_text()
    parent = training_round.output_version.parent.name
    assert evaluation.locator("#round-evaluate").inner_text() == f"Evaluate against {parent}"
    assert f"{SUMMARY_PROJECT} has no active critic" in evaluation.inner_text()

    assert celery_worker_process.poll() is None  # the worker never crashed
    assert Generation.objects.filter(prompt__project=summaries).count() >= 4
    for tab in (first, second, admin):
        assert tab.errors == [], tab.errors
        tab.context.close()
