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
from django.utils import timezone

from evaluation import services
from evaluation.models import EvaluationCampaign, EvaluationOutput
from text2grad import generation, sandbox

from .runtime import load_version

logger = logging.getLogger(__name__)
CODE_PROMPT_PREFIX = "Complete this Python function:\n\n"
_FENCE = re.compile(r"```(?:python|py)?\s*\n(.*?)```", re.DOTALL)


def campaign_generate_run(*, campaign_id: int) -> None:
    campaign = EvaluationCampaign.objects.select_related("project").get(pk=campaign_id)
    if not campaign.claim():
        logger.info("Campaign %s generation is %s; nothing to do", campaign_id, campaign.worker_status)
        return
    try:
        _generate(campaign)
        if campaign.project.is_code:
            _run_code_tests(campaign)
        services.campaign_outputs_ready(campaign=campaign)
    except Exception as exc:
        logger.exception("Campaign %s generation failed", campaign_id)
        campaign.mark_failed(f"{type(exc).__name__}: {exc}")
        raise


def _generate(campaign: EvaluationCampaign) -> None:
    prompts = list(campaign.prompts.select_related("project").order_by("id"))
    versions = list(campaign.versions.order_by("id"))
    params = campaign.sampling_params
    batch = max(1, settings.T2G_GENERATION_BATCH)
    done = EvaluationOutput.objects.filter(campaign=campaign).count()
    campaign.progress_step = done
    EvaluationCampaign.objects.filter(pk=campaign.pk).update(progress_step=done, heartbeat_at=timezone.now())
    for version in versions:
        have = set(
            EvaluationOutput.objects.filter(campaign=campaign, model_version=version).values_list(
                "prompt_id", flat=True
            )
        )
        if len(have) == len(prompts):
            continue
        model, tokenizer = load_version(version)
        for start in range(0, len(prompts), batch):
            chunk = prompts[start : start + batch]
            if all(p.pk in have for p in chunk):
                continue
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
            )
            with transaction.atomic():
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
                done = EvaluationOutput.objects.filter(campaign=campaign).count()
                EvaluationCampaign.objects.filter(pk=campaign.pk).update(
                    progress_step=done, heartbeat_at=timezone.now()
                )


def extract_code(text: str) -> str:
    """The code of a chat answer: its fenced blocks when it has any, else the whole text."""
    blocks = _FENCE.findall(text)
    return "\n\n".join(blocks) if blocks else text


def _run_code_tests(campaign: EvaluationCampaign) -> None:
    """Unit-test pass per output, in the sandbox (HumanEval-style ``check`` in the prompt's metadata)."""
    limits = sandbox.Limits(cpu_seconds=5, wall_seconds=10)
    pending = EvaluationOutput.objects.filter(campaign=campaign, tests_passed__isnull=True).select_related(
        "prompt"
    )
    for output in pending:
        test = output.prompt.metadata.get("test")
        entry_point = output.prompt.metadata.get("entry_point")
        if not test or not entry_point:
            continue
        stub = output.prompt.text.removeprefix(CODE_PROMPT_PREFIX)
        program = sandbox.humaneval_program(stub, extract_code(output.text), test, entry_point)
        result = sandbox.run_python(program, limits=limits)
        detail = _detail(result)
        EvaluationOutput.objects.filter(pk=output.pk).update(
            tests_passed=result.passed, test_detail=detail[:500]
        )
        EvaluationCampaign.objects.filter(pk=campaign.pk).update(heartbeat_at=timezone.now())


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
