"""The endpoint's scheduler and the engine's ``drop`` on the tiny random llama: a request whose client went
away before the engine admitted it never costs a prefill, and one that was decoding frees its slot."""

from __future__ import annotations

import queue
import threading
import time

import pytest

from text2grad import generation, model_store
from text2grad.inference import Engine, Request
from text2grad.openai_server import Scheduler


@pytest.fixture(scope="module")
def tiny(tiny_model_dir):
    return model_store.load(tiny_model_dir)


def _request(tokenizer, text: str, budget: int, seed: int) -> Request:
    ids = generation.encode_prompt(tokenizer, [{"role": "user", "content": text}])
    return Request(prompt_ids=ids, max_new_tokens=budget, top_k=1, seed=seed)


def _event(ticket, kind: str, timeout: float = 60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            event = ticket.events.get(timeout=0.5)
        except queue.Empty:
            continue
        assert event[0] != "error", event
        if event[0] == kind:
            return event
    raise AssertionError(f"no {kind!r} event within {timeout} s")


def _idle(scheduler: Scheduler, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while scheduler.requests_in_flight() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert scheduler.requests_in_flight() == 0


@pytest.fixture
def held_scheduler(tiny):
    """A scheduler whose first model load waits for ``release``: what is submitted meanwhile queues."""
    model, tokenizer = tiny
    release = threading.Event()

    def load(key):
        assert release.wait(60)
        return model, tokenizer

    schedulers = []

    def make(max_batch: int) -> Scheduler:
        schedulers.append(Scheduler(load, max_batch=max_batch))
        return schedulers[-1]

    yield make, release
    release.set()
    for scheduler in schedulers:
        scheduler.stop()


def test_a_ticket_cancelled_before_admission_is_never_prefilled(tiny, held_scheduler):
    _, tokenizer = tiny
    make, release = held_scheduler
    scheduler = make(4)
    kept = scheduler.submit("m", [_request(tokenizer, "Hello", 4, 1)])
    gone = scheduler.submit("m", [_request(tokenizer, "Bye", 4, s) for s in (2, 3, 4)])
    gone.cancel()  # the client hung up while its request queued behind a model load
    release.set()
    assert _event(kept, "done")[2].finish_reason in ("stop", "length")
    _idle(scheduler)
    assert scheduler.prefilled == 1
    assert gone.jobs == [] and gone.events.empty()


def test_cancelled_requests_waiting_for_a_slot_are_never_prefilled(tiny, held_scheduler):
    _, tokenizer = tiny
    make, release = held_scheduler
    scheduler = make(1)  # one slot: the second ticket's requests wait in the engine's queue
    kept = scheduler.submit("m", [_request(tokenizer, "Hello", 48, 1)])
    gone = scheduler.submit("m", [_request(tokenizer, "Bye", 4, s) for s in (2, 3)])
    release.set()
    _event(kept, "tokens")
    assert len(gone.jobs) == 2  # handed to the engine, waiting: the one slot decodes ``kept`` for 48 steps
    gone.cancel()
    done = _event(kept, "done")[2]
    _idle(scheduler)
    assert scheduler.prefilled == 1, "a cancelled request was prefilled after the slot freed"
    assert [job.completion.finish_reason for job in gone.jobs] == ["cancelled", "cancelled"]
    assert all(job.completion.response_ids == [] for job in gone.jobs)
    assert len(done.response_ids) == 48 or done.finish_reason == "stop"


def test_a_cancelled_decoding_request_frees_its_slot_before_the_next_step(tiny, held_scheduler):
    _, tokenizer = tiny
    make, release = held_scheduler
    scheduler = make(2)
    kept = scheduler.submit("m", [_request(tokenizer, "Hello", 48, 1)])
    gone = scheduler.submit("m", [_request(tokenizer, "Bye", 48, 2)])
    release.set()
    _event(gone, "tokens")
    gone.cancel()
    decoded = len(gone.jobs[0].completion.response_ids)
    _event(kept, "done")
    _idle(scheduler)
    completion = gone.jobs[0].completion
    assert completion.finish_reason == "cancelled"
    assert len(completion.response_ids) <= decoded + 1  # at most the step that was running meanwhile
    assert scheduler.prefilled == 2


def test_drop_frees_slots_and_the_rest_decode_as_alone(tiny):
    model, tokenizer = tiny
    requests = [_request(tokenizer, text, 12, i) for i, text in enumerate(["Go", "Tell me a story", "Hi"])]
    engine = Engine(model, tokenizer, max_batch=2)
    first, second, third = (engine.submit(r) for r in requests)
    engine.step()  # the first two are prefilled and decode; the third waits
    engine.drop([first, third])
    assert (engine.running, engine.waiting) == (1, 0)
    while engine.has_work():
        engine.step()
    assert engine.prefilled == 2
    assert first.finish_reason == third.finish_reason == "cancelled" and third.response_ids == []
    # ``second`` moved into the freed slot 0 and went on from its cached keys and values
    [alone] = Engine(model, tokenizer, max_batch=1).run([_request(tokenizer, "Tell me a story", 12, 1)])
    assert second.response_ids == alone.response_ids and second.finish_reason == alone.finish_reason
