"""Generation honours cancel while decoding (within about a second), not only between chunks."""

from __future__ import annotations

import pytest

from text2grad import generation, model_store


def test_sampling_stops_when_asked(tiny_model_dir, monkeypatch):
    model, tokenizer = model_store.load(tiny_model_dir)
    prompts = [[{"role": "user", "content": "Count to a thousand"}]]
    asked = []

    def should_stop() -> bool:
        asked.append(True)
        return True

    monkeypatch.setattr(generation, "STOP_CHECK_EVERY_S", 0.0)  # ask at every token in this test
    with pytest.raises(generation.GenerationStopped):
        generation.sample(model, tokenizer, prompts, max_new_tokens=100, seed=1, should_stop=should_stop)
    assert len(asked) == 1  # stopped at the first question
    # Not asked to stop: it samples as before.
    outs = generation.sample(model, tokenizer, prompts, max_new_tokens=6, seed=1, should_stop=lambda: False)
    assert len(outs[0][0].response_ids) > 0


def test_a_second_request_for_a_model_waits_for_the_load_in_progress(tiny_model_dir, monkeypatch):
    """Two threads asking for the same model while it loads get one load and the same objects."""
    import threading

    monkeypatch.setenv("T2G_TEST_MODEL_LOAD_DELAY_S", "0.5")  # the load is slow enough to overlap
    cache = model_store.ModelCache()
    results = []
    threads = [
        threading.Thread(target=lambda: results.append(cache.get(tiny_model_dir, None))) for _ in range(2)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert cache.loads == 1
    assert len(results) == 2 and results[0][0] is results[1][0]


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_cancel_is_honoured_while_the_worker_is_still_loading_the_model(worker_env, tmp_path):
    """A cold load that takes ``DELAY_S`` (the loader's test hook) does not hold a cancel up: the worker
    drops the cancelled job within a couple of seconds and claims the next one before the load is done;
    that job then uses the very load that was in progress (one load in the log), and succeeds."""
    import time

    from annotations.models import Generation, Prompt
    from annotations.services import project_create
    from tests.conftest import start_worker, stop_worker, wait_for
    from training import services
    from training.models import GenerationJob
    from training.tasks import generate

    delay_s = 15
    project = project_create(name="Slow load", kind="general", annotations_per_output=1)
    for i in range(2):
        Prompt.objects.create(project=project, text=f"Say something about {i}.")
    version = services.model_version_bootstrap()
    first, second = (GenerationJob.objects.create(project=project, model_version=version) for _ in range(2))
    env = {**worker_env, "T2G_TEST_MODEL_LOAD_DELAY_S": str(delay_s), "T2G_WORKER_PRELOAD": "0"}
    # A worker of its own, on a queue of its own: the session's worker (warm) cannot take these jobs.
    worker = start_worker(env, tmp_path / "slow-load.log", "slow-load", queues="slow-load")
    try:
        generate.apply_async((first.pk,), queue="slow-load")
        wait_for(lambda: GenerationJob.objects.get(pk=first.pk).status == "running", timeout=30,
                 message="the first job to be claimed")  # fmt: skip
        time.sleep(1)  # it is now waiting for the model
        cancelled_at = time.monotonic()
        assert services.generation_job_cancel(job=first)
        generate.apply_async((second.pk,), queue="slow-load")
        wait_for(lambda: GenerationJob.objects.get(pk=second.pk).status != "queued", timeout=30,
                 message="the worker to drop the cancelled job and claim the next")  # fmt: skip
        honoured_s = time.monotonic() - cancelled_at
        first.refresh_from_db()
        second.refresh_from_db()
        # Honoured within the poll interval, well before the load (claimed + delay_s) could have finished.
        assert honoured_s < 6, honoured_s
        assert (second.started_at - first.started_at).total_seconds() < delay_s - 5
        assert first.status == "cancelled"
        assert not Generation.objects.filter(prompt__project=project).exists()  # nothing sampled yet
        wait_for(lambda: GenerationJob.objects.get(pk=second.pk).is_finished, timeout=delay_s + 30,
                 message="the second job")  # fmt: skip
        second.refresh_from_db()
        assert second.status == "succeeded", second.error
        assert Generation.objects.filter(prompt__project=project).count() == 2  # the second job's only
        log = (tmp_path / "slow-load.log").read_text()
        assert log.count("Loaded model") == 1, log[-3000:]  # the second job waited for the same load
        assert "Stopped waiting for the model" in log
    finally:
        stop_worker(worker)
