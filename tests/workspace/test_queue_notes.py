"""The annotator's queue, for a project with nothing waiting, says what is being generated for it and when
the first outputs should come (from the job's progress, the generation speed recent jobs measured on this
deployment, a first guess before any did, and the generation lane's turns)."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from annotations.models import Prompt
from annotations.services import project_create
from training import services
from training.models import GenerationJob

pytestmark = pytest.mark.django_db


def _row(page: str, name: str) -> str:
    """The queue row (article) of the project called ``name``."""
    rows = re.findall(r'<article class="card queue-row".*?</article>', page, re.S)
    return next(row for row in rows if name in row)


def _notes(row: str) -> list[str]:
    return [" ".join(n.split()) for n in re.findall(r'<p class="small queue-note">(.*?)</p>', row, re.S)]


def _generation_worker_alive() -> None:
    from django.core.cache import cache
    from django.utils import timezone

    from jobs.models import WorkerBeat

    now = timezone.now()
    WorkerBeat.objects.create(
        name="default@test", lanes="default,generation", pid=1, started_at=now, seen_at=now
    )
    cache.delete("t2g:lanes-down")


@pytest.fixture
def news(db):
    project = project_create(name="News items", kind="summarization", annotations_per_output=1)
    for i in range(3):
        Prompt.objects.create(project=project, text=f"Summarize news item {i}.")
    return project


def test_an_empty_queue_says_nothing_is_being_generated_yet(login, annotator, news):
    row = _row(login(annotator).get(reverse("queue")).content.decode(), "News items")
    assert "Nothing waiting" in row
    assert _notes(row) == [
        "No outputs are being generated for this project yet: an admin starts a generation job on the "
        "project page."
    ]


def test_an_empty_queue_says_what_is_being_generated_and_when_the_first_outputs_come(
    login, annotator, news, settings
):
    settings.T2G_GENERATION_CHUNK = 2  # 2 outputs per chunk at 6 s each (the kind's typical_s)
    job = services.generation_job_create(project=news)
    assert job.claim()
    row = _row(login(annotator).get(reverse("queue")).content.decode(), "News items")
    assert _notes(row) == [
        "Generating 3 outputs with v0-base now: 0 of 3 written; the first should arrive in about 12 s "
        "(a first guess: nothing generated here yet)."
    ]
    GenerationJob.objects.filter(pk=job.pk).update(progress_step=2, progress_total=3)
    row = _row(login(annotator).get(reverse("queue")).content.decode(), "News items")
    assert "2 of 3 written; the next should arrive in about 12 s (a first guess" in _notes(row)[0]


def test_queued_behind_a_bulk_job_the_wait_is_one_turn_not_the_whole_job(
    login, annotator, project, news, settings
):
    settings.T2G_GENERATION_CHUNK = 2
    settings.T2G_GENERATION_TURN_S = 20
    for i in range(164):
        Prompt.objects.create(project=project, text=f"Problem {i}")
    bulk = services.generation_job_create(project=project)
    assert bulk.claim()
    GenerationJob.objects.filter(pk=bulk.pk).update(progress_total=164)
    services.generation_job_create(project=news)
    page = login(annotator).get(reverse("queue")).content.decode()
    assert _notes(_row(page, "News items"))[0].endswith(
        "No worker is generating right now; it goes on once one is back (admins are told)."
    )
    _generation_worker_alive()
    page = login(annotator).get(reverse("queue")).content.decode()
    # One turn of the bulk job (20 s + a 12 s chunk), then our first chunk (12 s): not its 164 × 6 s.
    assert _notes(_row(page, "News items")) == [
        "3 outputs with v0-base are queued for this project behind 1 other job on the generation lane; "
        "the first should arrive in about 44 s (a first guess: nothing generated here yet)."
    ]
    assert "164 outputs with v0-base now: 0 of 164" in _notes(_row(page, "Demo project"))[0]


def test_no_note_where_outputs_wait_or_only_evaluation_outputs_are_generated(
    login, annotator, news, make_generation
):
    version = services.generation_job_create(project=news, prompt_ids=[]).model_version
    GenerationJob.objects.all().delete()
    services.compare_outputs_generate(project=news, model_version=version)  # kept out of queues
    row = _row(login(annotator).get(reverse("queue")).content.decode(), "News items")
    assert _notes(row)[0].startswith("No outputs are being generated")
    make_generation(news, "An output to annotate.")
    services.generation_job_create(project=news)
    row = _row(login(annotator).get(reverse("queue")).content.decode(), "News items")
    assert ">Start</button>" in row and _notes(row) == []


def test_the_note_escapes_a_version_name(login, annotator, news):
    from training.models import ModelVersion

    version = ModelVersion.objects.create(name="<b>v9</b>", base_model="x")
    services.generation_job_create(project=news, model_version=version)
    row = _row(login(annotator).get(reverse("queue")).content.decode(), "News items")
    assert "&lt;b&gt;v9&lt;/b&gt;" in row and "<b>v9</b>" not in row


def test_the_estimate_comes_from_the_speed_recent_generation_jobs_measured(
    login, annotator, project, news, settings
):
    settings.T2G_GENERATION_CHUNK = 2
    settings.T2G_GENERATION_TURN_S = 20
    # Two finished jobs measured 1200 tokens in 100 s over 30 outputs: 12 tokens/s, 40 tokens an output,
    # so a chunk of 2 outputs takes 80 / 12 = 6.7 s. A job that timed nothing (from before) is left out.
    for tokens, outputs, seconds in ((1000, 20, 80.0), (200, 10, 20.0)):
        GenerationJob.objects.create(project=project, status="succeeded", tokens_generated=tokens,
                                     outputs_timed=outputs, sampling_s=seconds, heartbeat_at=timezone.now())  # fmt: skip
    GenerationJob.objects.create(project=project, status="succeeded", heartbeat_at=timezone.now())
    job = services.generation_job_create(project=news)
    assert job.claim()
    row = _row(login(annotator).get(reverse("queue")).content.decode(), "News items")
    assert _notes(row) == [
        "Generating 3 outputs with v0-base now: 0 of 3 written; the first should arrive in about 7 s "
        "(at 12.0 tokens/s, as recent generation jobs here measured)."
    ]
    # A slower machine measures slower jobs; the note follows the latest ones (the five most recent).
    for _ in range(5):
        GenerationJob.objects.create(project=project, status="succeeded", tokens_generated=300, outputs_timed=3,
                                     sampling_s=100.0, heartbeat_at=timezone.now() + timedelta(seconds=5))  # fmt: skip
    row = _row(login(annotator).get(reverse("queue")).content.decode(), "News items")
    # 3 tokens/s and 100 tokens an output: a chunk of 2 takes 200 / 3 = 67 s.
    assert (
        "the first should arrive in about 67 s (at 3.0 tokens/s, as recent generation jobs here measured)."
        in (_notes(row)[0])
    )
