"""The model card renderer (pure: plain dicts in, README.md text out), without a database."""

from __future__ import annotations

import yaml

from text2grad import model_card

CARD = {
    "name": "r7-token-20261207",
    "base_model": "HuggingFaceTB/SmolLM2-135M-Instruct",
    "base_model_reference": "SmolLM2-135M-Instruct (embedded)",
    "license": "apache-2.0",
    "embedded_base": True,
    "content_hash": "ab" * 32,
    "created_at": "2026-12-07T05:00:00+00:00",
    "notes": "token round over 4 annotation(s) <script>alert(1)</script>",
    "lineage": [
        {"name": "r7-token-20261207", "round": 7, "mode": "token", "created_at": "2026-12-07T05:00:00+00:00"},
        {"name": "v0-base", "round": None, "mode": None, "created_at": "2026-12-01T00:00:00+00:00"},
    ],
    "round": {
        "id": 7,
        "mode": "token",
        "project": "Summaries | of news",
        "config": {"learning_rate": 5e-6, "steps": 40, "lora_r": 16},
        "selection": {"review": "approved", "min_agreement": 0.6},
        "snapshot_hash": "cd" * 32,
        "snapshot_size": 123,
        "finished_at": "2026-12-07T05:00:00+00:00",
    },
    "curves": {"mean_token_reward": [0.1 * i for i in range(40)], "kl": [0.01] * 39 + [float("nan")]},
    "evaluations": [
        {"campaign": "Dec check", "campaign_id": 3, "rank": 1, "of": 2, "score": 0.42, "lower": 0.11,
         "upper": 0.73, "judgements": 60}
    ],
}  # fmt: skip


def _split(text: str) -> tuple[dict, str]:
    assert text.startswith("---\n")
    _, front, body = text.split("---\n", 2)
    return yaml.safe_load(front), body


def test_front_matter_is_the_hub_metadata_for_each_download():
    adapter_meta, _ = _split(model_card.render_model_card(CARD, library="peft"))
    assert adapter_meta == {
        "base_model": "HuggingFaceTB/SmolLM2-135M-Instruct",
        "base_model_relation": "adapter",
        "library_name": "peft",
        "license": "apache-2.0",
        "pipeline_tag": "text-generation",
        "tags": ["text2grad", "ppo", "token-level-rewards", "natural-language-feedback", "lora"],
        "model_name": "r7-token-20261207",
    }
    merged_meta, _ = _split(model_card.render_model_card(CARD, library="transformers"))
    assert merged_meta["library_name"] == "transformers"
    assert merged_meta["base_model_relation"] == "finetune"
    assert "merged-lora" in merged_meta["tags"]


def test_odd_names_stay_one_yaml_string_and_a_missing_license_says_other():
    card = {"name": "yes", "base_model": "/models/my base: v2"}
    meta, _ = _split(model_card.render_model_card(card, library="peft"))
    assert meta["model_name"] == "yes" and meta["base_model"] == "/models/my base: v2"
    assert meta["license"] == "other"


def test_body_has_lineage_config_data_curves_evaluation_and_limits():
    _, body = _split(model_card.render_model_card(CARD, library="peft", figures=["training_curves.png"]))
    assert "| r7-token-20261207 | 7 | token |" in body and "| v0-base | – | – |" in body
    assert "| learning_rate | 5e-06 |" in body and "| lora_r | 16 |" in body
    assert "123 submitted annotation(s), sha256 `" + "cd" * 32 + "`" in body
    assert "  - review: approved" in body and "  - min_agreement: 0.6" in body
    assert "![training curves](training_curves.png)" in body
    # 40 steps sampled to 12 rows, first and last kept, a NaN shown as a dash
    assert "| 1 | 0 | 0.01 |" in body and "| 40 | 3.9 | – |" in body
    assert "12 of 40 steps shown" in body
    assert "| Dec check | 1 of 2 | 0.42 | [0.11, 0.73] | 60 |" in body
    assert "dequantized from its Q4_1 GGUF" in body  # the embedded base's limit, on the adapter
    assert "Summaries \\| of news" in body  # a pipe in a name cannot break a table
    assert "(Summaries \\| of news); behaviour" in body and "\\\\|" not in body  # escaped once
    assert "<script>" not in body and "&lt;script&gt;" in body


def test_a_base_version_without_round_or_evaluation_says_so():
    card = {"name": "v0-base", "base_model": "org/base", "license": "mit"}
    _, body = _split(model_card.render_model_card(card, library="transformers"))
    assert "No training round: this is the base model." in body
    assert "Not evaluated yet." in body
    assert "no evidence it is better" in body
    assert "Q4_1" not in body


def test_curves_are_drawn_as_a_png_when_matplotlib_is_there(tmp_path):
    written = model_card.draw_curves(CARD["curves"], tmp_path)
    assert written == ["training_curves.png"]
    assert (tmp_path / "training_curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert model_card.draw_curves({"kl": [None, float("nan")]}, tmp_path / "none") == []
