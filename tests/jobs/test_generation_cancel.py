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
