"""Model versions and round checkpoints through S3 (moto_server): published, verified, fetched by hash."""

from __future__ import annotations

import logging

import pytest

from artifacts import StorageError, default_store
from training import services
from training.models import TrainingRound
from training.worker import rounds, runtime

pytestmark = pytest.mark.django_db

FAST = {"learning_rate": 5e-3, "steps": 2, "batch_size": 2, "minibatch_size": 2, "ppo_epochs": 1}


@pytest.fixture
def s3_tiny(tiny_settings, s3_settings, tmp_path):
    return tiny_settings


def _another_host(settings, tmp_path, name: str) -> None:
    """A fresh local disk: nothing but the store and the database carries over."""
    settings.T2G_MODELS_DIR = tmp_path / name / "models"
    settings.T2G_MODEL_CACHE_DIR = tmp_path / name / "models" / "cache"


@pytest.mark.heavy
def test_round_interrupted_on_one_host_resumes_on_another(s3_tiny, critiqued, tmp_path, caplog):
    services.model_version_bootstrap()
    training_round = services.round_launch(mode="token", config=FAST)

    def stop_after_first(done, total, metrics):
        raise RuntimeError("the host went away")

    assert rounds.round_run(round_id=training_round.pk, on_update=stop_after_first) == "failed"
    training_round.refresh_from_db()
    assert training_round.checkpoint_path == f"checkpoints/round-{training_round.pk}/step-1"
    store = default_store()
    assert store.exists(f"{training_round.checkpoint_path}/MANIFEST.json")
    assert not store.local_path("x")  # really object storage

    _another_host(s3_tiny, tmp_path, "host-b")
    services.round_resume(training_round=training_round)
    with caplog.at_level(logging.INFO, logger="training.worker.rounds"):
        assert rounds.round_run(round_id=training_round.pk) == TrainingRound.Status.SUCCEEDED
    assert f"Round {training_round.pk} resumes at update 1" in caplog.text
    training_round.refresh_from_db()
    version = training_round.output_version
    assert store.list("checkpoints") == []
    assert f"{version.storage_key}/adapter_model.safetensors" in store.list(version.storage_key)

    _another_host(s3_tiny, tmp_path, "host-c")
    folder = runtime.adapter_dir(version)
    assert folder == s3_tiny.T2G_MODEL_CACHE_DIR / version.content_hash
    assert (folder / "adapter_config.json").is_file()
    model, _ = runtime.load_version(version)
    assert any("lora_" in name for name, _ in model.named_parameters())


@pytest.mark.heavy
def test_a_version_whose_objects_changed_is_refused(s3_tiny, critiqued, tmp_path):
    services.model_version_bootstrap()
    training_round = services.round_launch(mode="token", config={**FAST, "steps": 1})
    assert rounds.round_run(round_id=training_round.pk) == TrainingRound.Status.SUCCEEDED
    version = TrainingRound.objects.get(pk=training_round.pk).output_version
    store = default_store()
    key = f"{version.storage_key}/adapter_model.safetensors"
    original = store.get_bytes(key)
    store.put_bytes(key, bytes(b ^ 0xFF for b in original))
    _another_host(s3_tiny, tmp_path, "host-b")
    with pytest.raises(StorageError, match="do not match"):
        runtime.adapter_dir(version)
    assert not (s3_tiny.T2G_MODEL_CACHE_DIR / version.content_hash).exists()


def test_orphaned_version_folders_are_collected_and_named_ones_kept(tiny_settings, tmp_path):
    from training.models import ModelVersion
    from training.worker.versions import version_publish, versions_collect_orphans

    source = tmp_path / "adapter"
    source.mkdir()
    (source / "adapter_config.json").write_text("{}")
    key, digest = version_publish(source_dir=source, name="kept")
    ModelVersion.objects.create(name="kept", base_model="tiny", storage_key=key, content_hash=digest)
    version_publish(source_dir=source, name="never-committed")
    assert versions_collect_orphans(min_age_s=3600) == []
    assert versions_collect_orphans(min_age_s=0) == ["models/versions/never-committed"]
    assert default_store().list("models/versions") == [
        "models/versions/kept/MANIFEST.json",
        "models/versions/kept/adapter_config.json",
    ]


def test_checkpoint_path_is_a_store_key_and_legacy_local_folders_still_resume(tiny_settings, tmp_path):
    from training.worker.versions import checkpoint_fetch, checkpoint_publish

    legacy = tmp_path / "checkpoints" / "round-7"  # what on-policy rows held before they shared the trainer
    legacy.mkdir(parents=True)
    (legacy / "trainer_state.pt").write_bytes(b"state")
    assert checkpoint_fetch(str(legacy)) == legacy
    assert checkpoint_fetch(str(tmp_path / "gone")) is None and checkpoint_fetch("") is None

    key = checkpoint_publish(source_dir=legacy, round_id=7, step=3)
    assert key == "checkpoints/round-7/step-3"
    fetched = checkpoint_fetch(key)
    assert fetched != legacy and (fetched / "trainer_state.pt").read_bytes() == b"state"
    assert checkpoint_fetch("checkpoints/round-7/step-4") is None  # never published: nothing to resume
