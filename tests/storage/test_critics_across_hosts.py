"""Critics through the artifact store (S3 on moto_server): a critic trained on one host predicts on
another, and an on-policy round scored by it, interrupted on that host, resumes on a third. Nothing but
the database and the bucket carries over between "hosts" (their own T2G_MODELS_DIR and cache)."""

from __future__ import annotations

import logging

import pytest

from artifacts import StorageError, default_store
from tests.training.test_critic import FAST_CRITIC
from training import services
from training.models import CriticPrediction, CriticTrainingJob, TrainingRound
from training.worker import critic as critic_worker
from training.worker import rounds

pytestmark = pytest.mark.django_db


def _another_host(settings, tmp_path, name: str) -> None:
    settings.T2G_MODELS_DIR = tmp_path / name / "models"
    settings.T2G_MODEL_CACHE_DIR = tmp_path / name / "models" / "cache"
    critic_worker.critic_cache.clear()  # a fresh process on that host


@pytest.mark.heavy
def test_a_critic_trained_on_one_host_predicts_and_scores_rounds_on_others(
    tiny_settings,
    s3_settings,
    project,
    labelled,
    admin_user,
    make_generation,
    tmp_path,
    caplog,
):
    _another_host(tiny_settings, tmp_path, "host-a")
    job = services.critic_job_create(
        project=project, config=FAST_CRITIC, created_by=admin_user, auto_activate=True
    )
    assert critic_worker.critic_job_run(job_id=job.pk) == CriticTrainingJob.Status.SUCCEEDED
    version = CriticTrainingJob.objects.get(pk=job.pk).output_version
    store = default_store()
    assert not store.is_local and store.is_file(f"{version.storage_key}/MANIFEST.json")
    assert not (tmp_path / "host-a" / "models" / "critics").exists()  # nothing on host A's disk counts

    _another_host(tiny_settings, tmp_path, "host-b")
    fresh = make_generation(project, "Ann Lee went to the fair in 2044.")
    assert critic_worker.critic_predict_run(critic_version_id=version.pk, generation_ids=[fresh.pk]) == 1
    assert CriticPrediction.objects.filter(generation=fresh, critic_version=version).exists()
    assert (tiny_settings.T2G_MODEL_CACHE_DIR / version.content_hash / "critic_head.safetensors").is_file()

    config = {"steps": 2, "batch_size": 2, "minibatch_size": 2, "ppo_epochs": 1, "learning_rate": 1e-3}
    training_round = services.on_policy_round_launch(
        project=project,
        config=config,
        audit_share=0.0,
        max_new_tokens=6,
        created_by=admin_user,
        enqueue=False,
    )

    def stop_after_first(done, total, metrics):
        raise RuntimeError("the host went away")

    assert rounds.round_run(round_id=training_round.pk, on_update=stop_after_first) == "failed"
    training_round.refresh_from_db()
    assert training_round.checkpoint_path == f"checkpoints/round-{training_round.pk}/step-1"
    assert store.is_file(f"{training_round.checkpoint_path}/MANIFEST.json")

    _another_host(tiny_settings, tmp_path, "host-c")
    services.round_resume(training_round=training_round)
    with caplog.at_level(logging.INFO, logger="training.worker.rounds"):
        assert rounds.round_run(round_id=training_round.pk) == TrainingRound.Status.SUCCEEDED, (
            TrainingRound.objects.get(pk=training_round.pk).error
        )
    assert f"Round {training_round.pk} resumes at update 1" in caplog.text
    assert store.list("checkpoints") == []  # the version holds the result now


@pytest.mark.heavy  # a moto_server process
def test_a_critic_whose_objects_changed_is_refused(tiny_settings, s3_settings, project, tmp_path):
    from training.models import CriticVersion
    from training.worker.versions import critic_publish

    folder = tmp_path / "critic"
    folder.mkdir()
    (folder / "critic_head.safetensors").write_bytes(b"head")
    key, digest = critic_publish(source_dir=folder, name="c-1")
    version = CriticVersion.objects.create(
        project=project, name="c-1", base_model="tiny", storage_key=key, content_hash=digest
    )
    default_store().put_bytes(f"{key}/critic_head.safetensors", b"evil")
    _another_host(tiny_settings, tmp_path, "host-b")
    with pytest.raises(StorageError, match="do not match"):
        critic_worker.critic_dir(version)
    assert not (tiny_settings.T2G_MODEL_CACHE_DIR / digest).exists()


def test_orphaned_critic_folders_are_collected_and_named_ones_kept(tiny_settings, project, tmp_path):
    from training.models import CriticVersion
    from training.worker.versions import critic_publish, versions_collect_orphans

    source = tmp_path / "critic"
    source.mkdir()
    (source / "critic_head.safetensors").write_bytes(b"head")
    key, digest = critic_publish(source_dir=source, name="kept")
    CriticVersion.objects.create(
        project=project, name="kept", base_model="tiny", storage_key=key, content_hash=digest
    )
    critic_publish(source_dir=source, name="never-committed")
    assert versions_collect_orphans(min_age_s=3600) == []
    assert versions_collect_orphans(min_age_s=0) == ["models/critics/never-committed"]
    assert default_store().list("models/critics") == [
        "models/critics/kept/MANIFEST.json",
        "models/critics/kept/critic_head.safetensors",
    ]
