"""Fair turns through the real worker and broker (the session worker takes turns after every chunk):
a 30-prompt job queued first does not hold back another project's first outputs or a version
comparison's outputs; it resumes afterwards and writes each output once."""

from __future__ import annotations

import pytest
from django.db import transaction
from django.db.models import Max, Min

from annotations.models import Generation, Prompt
from annotations.services import project_create
from tests.conftest import wait_for
from training import services
from training.models import GenerationJob

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]


def test_first_outputs_and_comparisons_do_not_wait_behind_a_bulk_job(celery_worker_process, project):
    other = project_create(name="Second project", kind="summarization", annotations_per_output=1)
    for i in range(30):
        Prompt.objects.create(project=project, text=f"Summarize bulk item {i}.")
    Prompt.objects.create(project=other, text="Summarize the only item.")
    with transaction.atomic():  # all three are waiting when the worker takes the first, as after a seed
        bulk = services.generation_job_create(project=project)
        first = services.generation_job_create(project=other)
        compare = services.compare_outputs_generate(project=project, model_version=bulk.model_version)
    jobs = [bulk, first, compare]
    wait_for(lambda: all(GenerationJob.objects.get(pk=j.pk).is_finished for j in jobs), timeout=300,
             message="the three generation jobs")  # fmt: skip
    for job in jobs:
        job.refresh_from_db()
        assert job.status == "succeeded", (job.pk, job.error)

    bulk_rows = Generation.objects.filter(prompt__project=project, sampling_params__purpose__isnull=True)
    bulk_times = bulk_rows.aggregate(first=Min("created_at"), last=Max("created_at"))
    first_done = Generation.objects.filter(prompt__project=other).aggregate(t=Max("created_at"))["t"]
    compare_done = compare.finished_at
    order = sorted(
        [("bulk first chunk", bulk_times["first"]), ("other project", first_done),
         ("comparison", compare_done), ("bulk last chunk", bulk_times["last"])],
        key=lambda pair: pair[1],
    )  # fmt: skip
    # The bulk job began (it was taken first) and wrote a chunk, then both waiting jobs ran, then the rest.
    assert [name for name, _ in order][0] == "bulk first chunk"
    assert [name for name, _ in order][-1] == "bulk last chunk", order
    assert bulk_rows.count() == 30 and bulk_rows.values("prompt").distinct().count() == 30
    assert (
        Generation.objects.filter(prompt__project=project, sampling_params__purpose="evaluation").count() == 8
    )
