"""Evaluation campaigns (the ``evaluation`` app), worker side: every version's output for every prompt, then code tests.

Every version samples the same prompts in the same chunks with the same seeds and settings, so the
outputs differ only by the model. A requeued or retried run resumes after the outputs it wrote.
"""

from __future__ import annotations

import logging
import re
import signal

from django.conf import settings
from django.db import transaction

from evaluation import services
from evaluation.models import CampaignGeneration, EvaluationCampaign, EvaluationOutput
from jobs import lifecycle
from text2grad import generation, sandbox

from .runtime import load_version

logger = logging.getLogger(__name__)
CODE_PROMPT_PREFIX = "Complete this Python function:\n\n"
_FENCE = re.compile(r"```(?:python|py)?\s*\n(.*?)```", re.DOTALL)


class _Stopped(lifecycle.Stopped):
    """The run stops: cancel requested, or the job is no longer this run's (the reaper requeued it)."""

    reason = "Cancelled by an admin; the outputs written before are kept (Retry resumes)."


def campaign_generate_run(*, job_id: int) -> None:
    """Claim a campaign generation job (the framework's fenced claim), write the outputs chunk by chunk
    under its fence with a heartbeat, honour cancel between chunks, and open the campaign for judging. A
    failed or cancelled run ends the campaign too (``running``'s ``ended`` hook)."""
    job = lifecycle.claim(CampaignGeneration, job_id)
    if job is None:
        logger.info("Campaign generation %s is not queued any more; nothing to do", job_id)
        return
    campaign = EvaluationCampaign.objects.select_related("project").get(pk=job.campaign_id)
    name = f"Campaign generation {job_id}"
    with lifecycle.running(job, name, ended=lambda ended: services.campaign_generation_ended(ended.pk)):
        _generate(campaign, job)
        if campaign.project.is_code:
            _run_code_tests(campaign, job)
        with transaction.atomic():
            if not lifecycle.finish(job, CampaignGeneration.Status.SUCCEEDED):
                raise lifecycle.Lost
            services.campaign_outputs_ready(campaign=campaign)


def _check(job: CampaignGeneration) -> None:
    if lifecycle.cancel_requested(job):
        raise _Stopped


def _generate(campaign: EvaluationCampaign, job: CampaignGeneration) -> None:
    prompts = list(campaign.prompts.select_related("project").order_by("id"))
    versions = list(campaign.versions.order_by("id"))
    params = campaign.sampling_params
    batch = max(1, settings.T2G_GENERATION_BATCH)
    done = EvaluationOutput.objects.filter(campaign=campaign).count()
    lifecycle.progress(job, done, len(prompts) * len(versions))
    for version in versions:
        have = set(
            EvaluationOutput.objects.filter(campaign=campaign, model_version=version).values_list(
                "prompt_id", flat=True
            )
        )
        if len(have) == len(prompts):
            continue
        _check(job)
        model, tokenizer = load_version(version)
        for start in range(0, len(prompts), batch):
            chunk = prompts[start : start + batch]
            if all(p.pk in have for p in chunk):
                continue
            _check(job)
            try:
                outputs = generation.sample(
                    model,
                    tokenizer,
                    [p.chat_messages() for p in chunk],
                    n_per_prompt=1,
                    max_new_tokens=int(params["max_new_tokens"]),
                    temperature=float(params["temperature"]),
                    top_p=float(params["top_p"]),
                    seed=campaign.seed + start,  # the same for every version
                    batch_size=batch,
                    should_stop=lambda: lifecycle.cancel_requested(job),
                )
            except generation.GenerationStopped as exc:
                raise _Stopped from exc
            with transaction.atomic():
                # The fence: a run that lost the job (requeued while it looked dead) writes nothing.
                if not lifecycle.owned(job).select_for_update().exists():
                    raise _Stopped
                for prompt, (sample,) in zip(chunk, outputs, strict=True):
                    if prompt.pk in have:
                        continue
                    EvaluationOutput.objects.create(
                        campaign=campaign,
                        prompt=prompt,
                        model_version=version,
                        text=sample.text,
                        response_tokens=len(sample.response_ids),
                        finish_reason=sample.finish_reason,
                        sampling_params=sample.params,
                    )
                    have.add(prompt.pk)
                lifecycle.progress(job, EvaluationOutput.objects.filter(campaign=campaign).count())


def extract_code(text: str) -> str:
    """The code of a chat answer: its fenced blocks when it has any, else the whole text."""
    blocks = _FENCE.findall(text)
    return "\n\n".join(blocks) if blocks else text


def _run_code_tests(campaign: EvaluationCampaign, job: CampaignGeneration) -> None:
    """Unit-test pass per output, in the sandbox (HumanEval-style ``check`` in the prompt's metadata)."""
    limits = sandbox.Limits(cpu_seconds=5, wall_seconds=10)
    pending = EvaluationOutput.objects.filter(campaign=campaign, tests_passed__isnull=True).select_related(
        "prompt"
    )
    for output in pending:
        _check(job)
        test = output.prompt.metadata.get("test")
        entry_point = output.prompt.metadata.get("entry_point")
        if not test or not entry_point:
            continue
        stub = output.prompt.text.removeprefix(CODE_PROMPT_PREFIX)
        program = sandbox.humaneval_program(stub, extract_code(output.text), test, entry_point)
        result = sandbox.run_python(program, limits=limits)
        detail = _detail(result)
        with transaction.atomic():
            if not lifecycle.owned(job).select_for_update().exists():
                raise _Stopped
            EvaluationOutput.objects.filter(pk=output.pk).update(
                tests_passed=result.passed, test_detail=detail[:500]
            )


def _detail(result: sandbox.SandboxResult) -> str:
    """Why a program failed, in a few words: a timeout, the limit that stopped it, or its last error line."""
    if result.timed_out:
        return "timed out"
    if result.returncode < 0:  # killed by a signal: SIGXCPU is the CPU-seconds limit, SIGKILL memory or wall
        try:
            name = signal.Signals(-result.returncode).name
        except ValueError:
            name = f"signal {-result.returncode}"
        return {"SIGXCPU": "stopped: CPU time limit", "SIGXFSZ": "stopped: file size limit"}.get(
            name, f"stopped by {name}"
        )
    return (result.stderr.strip().splitlines() or [""])[-1]
