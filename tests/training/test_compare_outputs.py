"""Evaluation outputs: sampled once per prompt and version, and never handed to annotators."""

import pytest

from annotations import selectors
from annotations import services as annotation_services
from annotations.models import Generation, Prompt
from training import services
from training.models import GenerationJob, ModelVersion

pytestmark = pytest.mark.django_db


def _prompts(project, n):
    return [Prompt.objects.create(project=project, text=f"Evaluation prompt {i}") for i in range(n)]


def test_evaluation_samples_only_prompts_without_an_output_of_that_version(
    project, django_capture_on_commit_callbacks
):
    version = ModelVersion.objects.create(name="v-eval", base_model="tiny")
    prompts = _prompts(project, 3)
    Generation.objects.create(prompt=prompts[0], model_version=version, text="exists already")
    job = services.compare_outputs_generate(project=project, model_version=version)
    assert job.prompt_ids == sorted(p.pk for p in prompts[1:])
    assert job.sampling_params["purpose"] == "evaluation"
    # Asked again while that job is still queued: nothing new.
    assert services.compare_outputs_generate(project=project, model_version=version) is None
    assert GenerationJob.objects.count() == 1
    # Its outputs written (as the worker would): still nothing new.
    GenerationJob.objects.filter(pk=job.pk).update(status=GenerationJob.Status.SUCCEEDED)
    for prompt in prompts[1:]:
        Generation.objects.create(
            prompt=prompt, model_version=version, text="eval", sampling_params={"purpose": "evaluation"}
        )
    assert services.compare_outputs_generate(project=project, model_version=version) is None


def test_evaluation_outputs_never_reach_the_queue(project, annotator):
    prompt = _prompts(project, 1)[0]
    evaluation = Generation.objects.create(
        prompt=prompt, text="eval", sampling_params={"purpose": "evaluation", "seed": 1}
    )
    plain = Generation.objects.create(prompt=prompt, text="for people", sampling_params={"temperature": 0.7})
    bare = Generation.objects.create(prompt=prompt, text="imported", sampling_params={})
    assert selectors.project_progress(project).outputs == 2
    handed = []
    while (
        assignment := annotation_services.assignment_next(project=project, annotator=annotator)
    ) is not None:
        handed.append(assignment.generation_id)
        annotation_services.assignment_skip(assignment=assignment, reason="next", user=annotator)
    assert sorted(handed) == sorted([plain.pk, bare.pk]) and evaluation.pk not in handed
