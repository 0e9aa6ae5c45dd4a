"""Tested as deployed: the web process, a generation worker and a training worker, each with its own
``T2G_VAR_DIR``, share nothing but PostgreSQL, Redis and an S3-compatible server (moto_server, a separate
process). A round trained on the training worker becomes a version the generation worker fetches and
samples from; an export written by a worker downloads through the web; a publisher killed mid-upload
leaves no half-published version. A critic trained on the training worker predicts on the generation
worker, and an on-policy round scored by it, its training worker killed mid-round, resumes on another.

Select it with ``-m deployed``; it takes about a minute with the tiny model.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from artifacts import ArtifactStore
from tests.conftest import REPO, start_worker, stop_worker, wait_for
from tests.storage.conftest import CREDENTIALS, free_port
from tests.training.test_critic import FAST_CRITIC
from training import services
from training.models import GenerationJob, ModelVersion, TrainingRound

pytestmark = [pytest.mark.deployed, pytest.mark.worker, pytest.mark.django_db(transaction=True)]

FAST = {"learning_rate": 5e-3, "steps": 1, "batch_size": 2, "minibatch_size": 2, "ppo_epochs": 1}
KILL_SCRIPT = """
import os, sys
from pathlib import Path
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "text2grad_web.settings")
import django
django.setup()
from training.models import ModelVersion
from training.worker.versions import version_publish
key, digest = version_publish(source_dir=Path(sys.argv[1]), name="killed-mid-upload")
ModelVersion.objects.create(name="killed-mid-upload", base_model="tiny", storage_key=key, content_hash=digest)
"""


def _role_env(worker_env: dict, var_dir: Path, s3_url: str, endpoint: str) -> dict:
    var_dir.mkdir(parents=True)
    env = {k: v for k, v in worker_env.items() if k not in ("T2G_MODEL_CACHE_DIR", "T2G_STORAGE_URL")}
    env.update(
        {
            "T2G_VAR_DIR": str(var_dir),
            "T2G_MODELS_DIR": str(var_dir / "models"),
            "T2G_STORAGE_URL": s3_url,
            "T2G_STORAGE_ENDPOINT_URL": endpoint,
            "T2G_STORAGE_ACCESS_KEY_ID": CREDENTIALS["key"],
            "T2G_STORAGE_SECRET_ACCESS_KEY": CREDENTIALS["secret"],
            "T2G_STORAGE_REGION": CREDENTIALS["region"],
        }
    )
    return env


def _start_web(env: dict, log_path: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    log = open(log_path, "w")  # noqa: SIM115 (closed by stop_worker)
    proc = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "text2grad_web.wsgi", "-b", f"127.0.0.1:{port}", "-w", "1",
         "--threads", "4", "--access-logfile", "-"],
        cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    proc.log_file = log
    base = f"http://127.0.0.1:{port}"

    def up() -> bool:
        if proc.poll() is not None:
            raise RuntimeError(f"gunicorn exited:\n{log_path.read_text()[-3000:]}")
        try:
            return urllib.request.urlopen(f"{base}/healthz", timeout=2).status == 200
        except OSError:
            return False

    wait_for(up, timeout=60, message="the web process")
    return proc, base


def _api(base: str, token: str, path: str, payload: dict | None = None):
    request = urllib.request.Request(
        f"{base}/api/v1/{path}",
        data=json.dumps(payload).encode() if payload is not None else None,
        headers={"Authorization": f"Token {token}", "Content-Type": "application/json"},
    )
    return urllib.request.urlopen(request, timeout=30)


@pytest.fixture
def deployment(worker_env, s3_endpoint, s3_url, tmp_path):
    """Three roles, three var folders; yields their folders, the web's URL and a view of the bucket."""
    from text2grad_web.celery import app

    # Another worker on the shared broker (the session's shared worker) would take the roles' tasks and
    # publish to its own disk: the test would then measure that worker, not the deployment.
    others = app.control.ping(timeout=1.5)
    if others:
        pytest.skip(f"other workers consume the shared broker ({others}); run `pytest -m deployed` in a "
                    "session of its own, as `make test` does")  # fmt: skip
    roles = {
        name: _role_env(worker_env, tmp_path / name / "var", s3_url, s3_endpoint)
        for name in ("web", "generation", "training")
    }
    web_env = {k: v for k, v in roles["web"].items() if k != "T2G_BASE_MODEL"}  # the web has no model
    procs = []
    try:
        web, base = _start_web(web_env, tmp_path / "web.log")
        procs.append(web)
        # The generation worker also serves the interactive lane (exports, token rewards).
        for name, queues in (("generation", "interactive,default,generation"), ("training", "training")):
            procs.append(start_worker(roles[name], tmp_path / f"{name}.log", f"deployed-{name}", queues))
        yield {
            "vars": {name: Path(env["T2G_VAR_DIR"]) for name, env in roles.items()},
            "env": roles,
            "procs": procs,  # web, generation, training; a test may add (and kill) its own, stopped here too
            "base": base,
            "store": ArtifactStore(s3_url, options={"endpoint_url": s3_endpoint, **CREDENTIALS}),
        }
    finally:
        for proc in procs:
            stop_worker(proc)


def _files(folder: Path, word: str) -> list[Path]:
    return [p for p in folder.rglob("*") if word in p.name]


def test_three_roles_share_only_database_broker_and_object_store(
    deployment, s3_settings, critiqued, researcher, tmp_path
):
    from rest_framework.authtoken.models import Token

    store, var = deployment["store"], deployment["vars"]
    project = critiqued[0][0].prompt.project
    base_version = services.model_version_bootstrap()

    # 1. A round trained on the training worker, published to the store, becomes the active version.
    training_round = services.round_launch(config=FAST, auto_promote=True)
    wait_for(lambda: TrainingRound.objects.get(pk=training_round.pk).is_finished, timeout=150,
             message="the round on the training worker")  # fmt: skip
    training_round.refresh_from_db()
    assert training_round.status == "succeeded", training_round.error
    version = training_round.output_version
    # No judged campaign shows it better yet: saved, not promoted (the gate of a manual promotion).
    assert not version.is_active and version.parent == base_version
    assert training_round.summary["promotion"]["promoted"] is False
    version = services.model_version_activate(version=version)  # the admin's confirmed promotion
    # The manifest is written last; read it through the store's listing (a HEAD on a just-written key
    # answered "missing" once under load in a full run; the listing is what workers fetch by).
    manifest = f"{version.storage_key}/MANIFEST.json"
    assert manifest in store.list(version.storage_key), store.list("models")
    assert store.list("checkpoints") == []

    # 2. The generation worker, on its own disk, fetches that version by content hash and samples from it.
    job = services.generation_job_create(project=project, per_prompt=1)
    wait_for(lambda: GenerationJob.objects.get(pk=job.pk).is_finished, timeout=120,
             message="the generation job")  # fmt: skip
    job.refresh_from_db()
    assert job.status == "succeeded", job.error
    assert job.model_version == version
    assert job.project.prompts.filter(generations__model_version=version).count() == project.prompts.count()
    cached = var["generation"] / "models" / "cache" / version.content_hash
    assert (cached / "adapter_config.json").is_file()
    assert not (var["web"] / "models").exists()

    # 3. An export asked for through the web is written by a worker and downloaded through the web.
    token, _ = Token.objects.get_or_create(user=researcher)
    created = json.load(_api(deployment["base"], token.key, "exports/", {"kind": "spans", "format": "jsonl"}))

    def export_state() -> dict | None:
        state = json.load(_api(deployment["base"], token.key, f"exports/{created['id']}/"))
        return state if state["status"] in ("succeeded", "failed") else None

    state = wait_for(export_state, timeout=60, message="the export")
    assert state["status"] == "succeeded", state
    with _api(deployment["base"], token.key, f"exports/{created['id']}/download/") as response:
        body = response.read()
    assert hashlib.sha256(body).hexdigest() == state["content_hash"] == response.headers["X-Content-SHA256"]
    assert body.count(b"\n") == state["row_count"] == 4
    for name in ("web", "generation", "training"):
        assert not _files(var[name], "export-"), f"an export file landed on the {name} host's disk"

    # 4. A publisher killed mid-upload leaves objects no row names; nothing loads them; they are collected.
    source = tmp_path / "big-adapter"
    source.mkdir()
    for i in range(40):
        (source / f"shard-{i:02}.bin").write_bytes(os.urandom(2**20))
    publisher = subprocess.Popen([sys.executable, "-c", KILL_SCRIPT, str(source)], cwd=REPO,
                                 env=deployment["env"]["training"])  # fmt: skip
    killed_key = "models/versions/killed-mid-upload"
    wait_for(lambda: store.list(killed_key) or publisher.poll() is not None, timeout=60, interval=0.02,
             message="the first uploaded object")  # fmt: skip
    os.kill(publisher.pid, signal.SIGKILL)
    assert publisher.wait(timeout=10) == -signal.SIGKILL
    uploaded = store.list(killed_key)
    assert 0 < len(uploaded) < 40 and f"{killed_key}/MANIFEST.json" not in uploaded
    assert not ModelVersion.objects.filter(name="killed-mid-upload").exists()
    assert ModelVersion.objects.get(is_active=True) == version

    from training.worker.versions import versions_collect_orphans  # this process: same bucket (s3_settings)

    assert versions_collect_orphans(min_age_s=3600) == []  # too recent: it might still be committing
    assert versions_collect_orphans(min_age_s=0) == [killed_key]
    assert store.list(killed_key) == [] and store.is_file(f"{version.storage_key}/MANIFEST.json")


def test_a_critic_predicts_on_another_host_and_an_on_policy_round_resumes_on_a_third(
    deployment, s3_settings, labelled, project, admin_user, make_generation, tmp_path
):
    from jobs import reaper
    from training.models import CriticPrediction, CriticPredictionJob, CriticTrainingJob

    store, var = deployment["store"], deployment["vars"]
    services.model_version_bootstrap()
    fresh = make_generation(project, "Ann Lee went to the fair in 2044.")  # nobody annotated it

    # 1. A critic trained (and activated) on the training worker is published to the bucket ...
    job = services.critic_job_create(
        project=project, config=FAST_CRITIC, created_by=admin_user, auto_activate=True
    )
    wait_for(lambda: CriticTrainingJob.objects.get(pk=job.pk).is_finished, timeout=180,
             message="the critic job on the training worker")  # fmt: skip
    job.refresh_from_db()
    assert job.status == "succeeded", job.error
    critic = job.output_version
    assert critic.is_active and f"{critic.storage_key}/MANIFEST.json" in store.list(critic.storage_key)
    # ... and its activation's prediction job runs on the generation worker, which fetches it by hash.
    prediction_job = CriticPredictionJob.objects.get(critic_version=critic)
    wait_for(lambda: CriticPredictionJob.objects.get(pk=prediction_job.pk).is_finished, timeout=120,
             message="the critic's predictions on the generation worker")  # fmt: skip
    prediction_job.refresh_from_db()
    assert prediction_job.status == "succeeded", prediction_job.error
    assert CriticPrediction.objects.filter(generation=fresh, critic_version=critic).exists()
    assert (
        var["generation"] / "models" / "cache" / critic.content_hash / "critic_head.safetensors"
    ).is_file()
    assert not _files(var["generation"], "critic-p")  # no critic folder of its own: only the cache

    # 2. An on-policy round scored by that critic: its training worker dies after the first checkpoint ...
    config = {"steps": 4, "batch_size": 2, "minibatch_size": 2, "ppo_epochs": 1, "learning_rate": 1e-3}
    training_round = services.on_policy_round_launch(
        project=project, config=config, audit_share=0.0, max_new_tokens=6, created_by=admin_user
    )
    training_worker = deployment["procs"][2]
    wait_for(lambda: TrainingRound.objects.get(pk=training_round.pk).checkpoint_path
             or TrainingRound.objects.get(pk=training_round.pk).is_finished,
             timeout=180, interval=0.05, message="the round's first checkpoint")  # fmt: skip
    os.kill(training_worker.pid, signal.SIGKILL)
    training_worker.wait(timeout=10)
    training_round.refresh_from_db()
    assert training_round.status == "running" and training_round.checkpoint_path, training_round.error
    assert reaper.reap(stale_after_s=0)["training.traininground"]["failed"] == 1  # the one reaper notices
    training_round.refresh_from_db()
    done = training_round.progress_step
    assert training_round.status == "failed" and 1 <= done < 4
    assert store.is_file(f"{training_round.checkpoint_path}/MANIFEST.json")

    # ... and resumes from the bucket's checkpoint on a training worker with a disk of its own.
    env = _role_env(deployment["env"]["training"], tmp_path / "training-2" / "var", s3_settings.T2G_STORAGE_URL,
                    s3_settings.T2G_STORAGE_OPTIONS["endpoint_url"])  # fmt: skip
    log_path = tmp_path / "training-2.log"
    deployment["procs"].append(start_worker(env, log_path, "deployed-training-2", "training"))
    services.round_resume(training_round=training_round)
    wait_for(lambda: TrainingRound.objects.get(pk=training_round.pk).is_finished, timeout=180,
             message="the resumed round on the second training worker")  # fmt: skip
    training_round.refresh_from_db()
    assert training_round.status == "succeeded", training_round.error
    assert f"Round {training_round.pk} resumes at update {done}" in log_path.read_text()
    # The worker deletes the checkpoints just after the commit that marks the round succeeded.
    wait_for(lambda: store.list("checkpoints") == [], timeout=30, message="the round's checkpoints deleted")
    assert (tmp_path / "training-2" / "var" / "models" / "cache" / critic.content_hash).is_dir()
