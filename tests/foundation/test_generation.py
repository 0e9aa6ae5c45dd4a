"""Generation: real sampling on a tiny model, through a real Celery worker, and once on SmolLM2."""

import pytest
import torch

from annotations.models import Generation
from tests.conftest import wait_for
from text2grad import generation, model_store
from training.models import GenerationJob


def test_sample_records_logprobs_the_model_assigns(tiny_model_dir):
    model, tokenizer = model_store.load(tiny_model_dir)
    prompts = [
        [{"role": "user", "content": "Say hi"}],
        [{"role": "user", "content": "A much longer prompt here"}],
    ]
    outs = generation.sample(model, tokenizer, prompts, n_per_prompt=2, max_new_tokens=8, seed=1)
    assert [len(group) for group in outs] == [2, 2]
    for group, messages in zip(outs, prompts, strict=True):
        for out in group:
            assert out.prompt_ids == generation.encode_prompt(tokenizer, messages)
            assert len(out.response_ids) == len(out.logprobs) > 0
            # Recompute log pi(a_t) unbatched, without padding: must match what sampling recorded.
            ids = torch.tensor([out.prompt_ids + out.response_ids])
            with torch.no_grad():
                logits = model(ids).logits[0, len(out.prompt_ids) - 1 : -1]
            expected = logits.log_softmax(-1).gather(-1, torch.tensor(out.response_ids)[:, None]).squeeze(-1)
            assert torch.allclose(expected, torch.tensor(out.logprobs), atol=1e-3)


def test_model_cache_keeps_the_model_between_calls(tiny_model_dir):
    cache = model_store.ModelCache()
    first = cache.get(tiny_model_dir, None)
    second = cache.get(tiny_model_dir, None)
    assert first is second and cache.loads == 1


def test_bad_base_model_reference_is_clear(tmp_path):
    with pytest.raises(model_store.ModelStoreError, match="not a local model folder"):
        model_store.ensure_base(models_dir=tmp_path, base_ref=str(tmp_path / "missing"))


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_worker_consumes_generation_task_from_the_broker(celery_worker_process, project):
    from annotations.models import Prompt
    from training.services import generation_job_create

    for text in ("Summarize: the sky is blue.", "Summarize: water is wet."):
        Prompt(project=project, text=text).save()
    job = generation_job_create(project=project, per_prompt=2)
    wait_for(
        lambda: GenerationJob.objects.get(pk=job.pk).is_finished,
        timeout=120,
        message=f"generation job to finish (worker log: {celery_worker_process.log_path})",
    )
    job.refresh_from_db()
    assert job.status == GenerationJob.Status.SUCCEEDED, job.error
    rows = list(Generation.objects.filter(prompt__project=project))
    assert len(rows) == 4
    for row in rows:
        assert row.model_version == job.model_version
        assert len(row.response_token_ids) == len(row.behaviour_logprobs) > 0
        assert all(lp <= 0 for lp in row.behaviour_logprobs)
        assert row.tokenizer_fingerprint and row.prompt_token_ids


@pytest.mark.slow
def test_embedded_smollm2_generates_text(base_tokenizer_dir):
    model, tokenizer = model_store.load(base_tokenizer_dir)
    outs = generation.sample(
        model,
        tokenizer,
        [[{"role": "user", "content": "What is the capital of France?"}]],
        max_new_tokens=16,
        seed=0,
    )
    text = outs[0][0].text
    assert "Paris" in text
