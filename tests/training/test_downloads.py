"""Downloads of a trained version: loaded by plain transformers/peft in a subprocess that cannot import the
studio, with the same logits as the studio's own policy; who may download; the audit; the build cache."""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from django.core.management import CommandError, call_command
from rest_framework.test import APIClient

from artifacts import default_store
from audit.models import AuditEvent
from tests.conftest import torch_threads
from training import services
from training.models import ModelDownload, TrainingRound
from training.services import downloads
from training.worker import merge, rounds, runtime

pytestmark = pytest.mark.django_db

FAST = {"learning_rate": 5e-3, "steps": 2, "batch_size": 2, "minibatch_size": 2, "ppo_epochs": 1}
REPO = Path(__file__).resolve().parents[2]
INPUT_IDS = [[1, 504, 2205, 314, 260, 3467, 30, 198, 42, 7]]

# Run with ``python -I`` from an empty folder: no repo on sys.path, no PYTHON* variables. It proves it
# cannot see the studio, then loads the download the way a user would and saves the logits.
LOADER = """
import importlib.util, json, sys
import numpy as np, torch
from transformers import AutoModelForCausalLM
for name in ("text2grad", "training", "artifacts"):
    assert importlib.util.find_spec(name) is None, name
assert sys.argv[4] not in [p.rstrip("/") for p in sys.path] and "" not in sys.path, sys.path
kind, folder, out = sys.argv[1], sys.argv[2], sys.argv[3]
if kind == "adapter":
    from peft import PeftModel
    base_ref = json.load(open(folder + "/adapter_config.json"))["base_model_name_or_path"]
    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base_ref, dtype=torch.float32), folder)
else:
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
model.eval()
with torch.no_grad():
    logits = model(input_ids=torch.tensor(json.loads(sys.argv[5]))).logits
np.save(out, logits.float().numpy())
"""


@pytest.fixture(scope="module")
def trained_once(django_db_setup, django_db_blocker, tiny_model_dir, tmp_path_factory):
    """One 2-step round for the module's tests, which only read its version (training it was most of
    what each test cost). Its rows are written in a transaction that stays open while the module runs and
    is rolled back at its end; each test runs in a savepoint inside it (pytest-django's), so what a test
    writes is undone as before. The project and the two annotators are the ones the round trained on."""
    from django.contrib.auth import get_user_model
    from django.db import transaction
    from django.test.utils import override_settings

    from annotations.services import project_create
    from tests.conftest import _make_user, generation_maker
    from tests.training.conftest import critique_two_outputs

    root = tmp_path_factory.mktemp("downloads")
    shared = {
        "T2G_BASE_MODEL": str(tiny_model_dir),
        "T2G_MODELS_DIR": root / "models",
        "T2G_MODEL_CACHE_DIR": root / "models" / "cache",
        "T2G_STORAGE_URL": f"file://{root / 'store'}",
        "T2G_TORCH_THREADS": torch_threads(),
    }
    with django_db_blocker.unblock(), override_settings(**shared), transaction.atomic():
        project = project_create(name="Demo project", kind="summarization", annotations_per_output=2)
        users = get_user_model()
        annotators = (_make_user(users, "ann1", "annotator"), _make_user(users, "ann2", "annotator"))
        critique_two_outputs(project, generation_maker(), annotators)
        services.model_version_bootstrap()
        training_round = services.round_launch(mode="token", config=FAST)
        assert rounds.round_run(round_id=training_round.pk) == TrainingRound.Status.SUCCEEDED
        version = TrainingRound.objects.get(pk=training_round.pk).output_version
        yield SimpleNamespace(
            settings=shared, store=root / "store", version=version.pk, project=project.pk,
            annotators=[user.pk for user in annotators],
        )  # fmt: skip
        transaction.set_rollback(True)


@pytest.fixture
def tiny_settings(settings, trained_once, tmp_path):
    """The module's settings with a copy of its store and an empty model cache: the downloads a test
    builds or deletes stay in that test."""
    shutil.copytree(trained_once.store, tmp_path / "store")
    settings.T2G_STORAGE_URL = f"file://{tmp_path / 'store'}"
    settings.T2G_MODELS_DIR = tmp_path / "models"
    settings.T2G_MODEL_CACHE_DIR = tmp_path / "models" / "cache"
    return settings


@pytest.fixture
def project(trained_once):
    from annotations.models import Project

    return Project.objects.get(pk=trained_once.project)


@pytest.fixture
def annotator(trained_once, django_user_model):
    return django_user_model.objects.get(pk=trained_once.annotators[0])


@pytest.fixture
def trained_version(tiny_settings, trained_once):
    from training.models import ModelVersion

    return ModelVersion.objects.get(pk=trained_once.version)


def _client(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


def _build(client, version, kind: str) -> ModelDownload:
    """Ask for the download, run the worker's build here, ask again: the same build, now ready."""
    url = f"/api/v1/model-versions/{version.pk}/downloads/"
    first = client.post(url, {"kind": kind}, format="json")
    assert first.status_code == 202, first.content
    assert first.json()["status"] == "queued" and first.json()["file"] is None
    merge.download_build_run(download_id=first.json()["id"])
    second = client.post(url, {"kind": kind}, format="json")
    assert second.status_code == 200, second.content
    assert second.json()["id"] == first.json()["id"]
    assert second.json()["file"].endswith(f"/api/v1/model-downloads/{first.json()['id']}/file/")
    return ModelDownload.objects.get(pk=first.json()["id"])


def _fetch(client, download: ModelDownload, into: Path) -> Path:
    response = client.get(f"/api/v1/model-downloads/{download.pk}/file/")
    assert response.status_code == 200
    assert response.streaming and response["Content-Type"] == "application/x-tar"
    data = b"".join(response.streaming_content)
    assert len(data) == int(response["Content-Length"])
    with tarfile.open(fileobj=io.BytesIO(data)) as archive:
        names = archive.getnames()
        archive.extractall(into, filter="data")
    folder = into / downloads.download_folder_name(download)
    assert all(name.startswith(folder.name + "/") for name in names)
    return folder


def _logits_outside(kind: str, folder: Path, tmp_path: Path) -> np.ndarray:
    out = tmp_path / f"{kind}-logits.npy"
    empty = tmp_path / "elsewhere"
    empty.mkdir(exist_ok=True)
    result = subprocess.run(
        [sys.executable, "-I", "-c", LOADER, kind, str(folder), str(out), str(REPO), json.dumps(INPUT_IDS)],
        cwd=empty,
        env={"PATH": "/usr/bin:/bin", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return np.load(out)


def _studio_logits(version) -> np.ndarray:
    import torch

    model, _ = runtime.load_version(version)
    with torch.no_grad():
        return model(input_ids=torch.tensor(INPUT_IDS)).logits.float().numpy()


@pytest.mark.heavy  # loads both downloads in a plain Python subprocess
def test_adapter_and_merged_downloads_load_without_the_studio_and_match_its_policy(
    trained_version, researcher, tmp_path, tiny_model_dir
):
    from safetensors.numpy import load_file

    version = trained_version
    client = _client(researcher)
    studio = _studio_logits(version)

    adapter = _fetch(client, _build(client, version, "adapter"), tmp_path / "a")
    assert sorted(p.name for p in adapter.iterdir()) == [
        "README.md",
        "adapter_config.json",
        "adapter_model.safetensors",
        "training_curves.png",
    ]
    config = json.loads((adapter / "adapter_config.json").read_text())
    assert config["base_model_name_or_path"] == str(tiny_model_dir)  # T2G_BASE_MODEL: a local folder
    weights = load_file(adapter / "adapter_model.safetensors")
    lora_b = [w for name, w in weights.items() if "lora_B" in name]
    assert lora_b and max(float(np.abs(w).max()) for w in lora_b) > 0  # trained, not the zero init
    outside = _logits_outside("adapter", adapter, tmp_path)
    difference = float(np.abs(outside - studio).max())
    print(f"adapter download vs studio policy: max abs logit difference {difference:.3g}")  # noqa: T201 (reported on purpose)
    assert difference <= 1e-4

    merged = _fetch(client, _build(client, version, "merged"), tmp_path / "m")
    names = {p.name for p in merged.iterdir()}
    assert {
        "config.json",
        "model.safetensors",
        "generation_config.json",
        "tokenizer.json",
        "README.md",
    } <= names
    assert not any("value_head" in name or "adapter" in name or name == "MANIFEST.json" for name in names)
    merged_logits = _logits_outside("merged", merged, tmp_path)
    difference = float(np.abs(merged_logits - studio).max())
    print(f"merged download vs studio policy: max abs logit difference {difference:.3g}")  # noqa: T201 (reported on purpose)
    assert difference <= 1e-4
    # The adapter's effect is real: the base alone is measurably different from both.
    assert float(np.abs(_studio_logits(None) - studio).max()) > 1e-3

    card = (merged / "README.md").read_text()
    assert card.startswith("---\n") and "library_name: transformers" in card
    assert (adapter / "README.md").read_text().count("library_name: peft") == 1
    assert version.created_by_round.snapshot_hash in card


def test_a_second_download_streams_the_stored_build_and_is_audited(trained_version, researcher, admin_user):
    version = trained_version
    download = _build(_client(researcher), version, "adapter")
    again = downloads.download_request(version=version, kind="adapter", user=admin_user)
    assert again.pk == download.pk
    assert ModelDownload.objects.filter(version=version).count() == 1

    response = _client(admin_user).get(f"/api/v1/model-downloads/{download.pk}/file/")
    size = int(response["Content-Length"])
    assert sum(len(chunk) for chunk in response.streaming_content) == size
    event = AuditEvent.objects.filter(action="version.download").latest("id")
    assert event.actor_id == admin_user.pk
    assert event.object_id == str(version.pk)
    assert event.details["kind"] == "adapter"
    assert event.details["content_hash"] == download.content_hash
    assert event.details["bytes"] == size
    assert AuditEvent.objects.filter(action="version.download_build", actor_id=None).count() == 0

    # Its files gone from the store: asking again builds it again rather than offering a broken file.
    default_store().delete(download.storage_key)
    assert _client(admin_user).get(f"/api/v1/model-downloads/{download.pk}/file/").status_code == 409
    rebuilt = downloads.download_request(version=version, kind="adapter", user=admin_user)
    assert rebuilt.pk != download.pk and rebuilt.status == ModelDownload.Status.QUEUED


@pytest.mark.parametrize("role", ["annotator", "reviewer"])
def test_annotators_and_reviewers_cannot_download(trained_version, researcher, role, request, client):
    version = trained_version
    download = _build(_client(researcher), version, "adapter")
    user = request.getfixturevalue(role)
    api = _client(user)
    assert api.post(f"/api/v1/model-versions/{version.pk}/downloads/", {"kind": "merged"}).status_code == 403
    assert api.get(f"/api/v1/model-downloads/{download.pk}/file/").status_code == 403
    assert api.get(f"/api/v1/model-downloads/{download.pk}/").status_code == 403
    assert api.get(f"/api/v1/model-versions/{version.pk}/card/").status_code == 403
    client.force_login(user)
    assert client.get(f"/training/versions/{version.pk}/").status_code == 403
    assert client.get(f"/training/downloads/{download.pk}/file/").status_code == 403
    assert client.post(f"/training/versions/{version.pk}/download/merged/").status_code == 403
    assert ModelDownload.objects.count() == 1
    assert not AuditEvent.objects.filter(action="version.download").exists()


def test_unknown_ids_and_the_bare_base_adapter_answer_cleanly(trained_version, researcher):
    api = _client(researcher)
    base = trained_version.parent
    assert api.post("/api/v1/model-versions/999999/downloads/", {"kind": "adapter"}).status_code == 404
    assert api.get("/api/v1/model-downloads/999999/file/").status_code == 404
    assert api.get("/api/v1/model-versions/999999/card/").status_code == 404
    assert (
        api.post(f"/api/v1/model-versions/{trained_version.pk}/downloads/", {"kind": "weights"}).status_code
        == 400
    )
    refused = api.post(f"/api/v1/model-versions/{base.pk}/downloads/", {"kind": "adapter"}, format="json")
    assert refused.status_code == 409 and "no adapter" in refused.json()["detail"]
    assert ModelDownload.objects.count() == 0


def test_anonymous_requests_are_refused(trained_version):
    anonymous = APIClient()
    assert anonymous.post(
        f"/api/v1/model-versions/{trained_version.pk}/downloads/", {"kind": "adapter"}
    ).status_code in (401, 403)
    assert ModelDownload.objects.count() == 0


def test_pushing_to_the_hub_is_off_by_default(trained_version, researcher, settings):
    assert settings.T2G_HUB_TOKEN == ""
    download = _build(_client(researcher), trained_version, "adapter")
    with pytest.raises(merge.HubPushDisabled, match="T2G_HUB_TOKEN"):
        merge.download_push_to_hub(download=download, repo_id="someone/model")
    with pytest.raises(CommandError, match="T2G_HUB_TOKEN"):
        call_command("push_version", trained_version.name, "--repo", "someone/model")
    assert ModelDownload.objects.count() == 1  # refused before building anything


def test_the_version_page_shows_the_card_escaped_and_the_downloads(trained_version, researcher, client):
    version = trained_version
    version.notes = "<script>alert('x')</script> notes"
    version.save(update_fields=["notes"])
    client.force_login(researcher)
    page = client.get(f"/training/versions/{version.pk}/")
    html = page.content.decode()
    assert page.status_code == 200
    assert "library_name: peft" in html and "## Lineage" in html
    assert version.created_by_round.snapshot_hash in html
    assert "<script>alert" not in html and "&amp;lt;script&amp;gt;alert" in html
    assert f"/training/versions/{version.pk}/download/adapter/" in html
    assert f"/training/versions/{version.pk}/download/merged/" in html
    assert f'href="/training/versions/{version.pk}/"' in client.get("/training/").content.decode()

    queued = client.post(f"/training/versions/{version.pk}/download/adapter/")
    assert queued.status_code == 302 and queued["Location"] == f"/training/versions/{version.pk}/"
    download = ModelDownload.objects.get(version=version, kind="adapter")
    polling = client.get(f"/training/downloads/{download.pk}/", HTTP_HX_REQUEST="true").content.decode()
    assert 'hx-trigger="every 2s"' in polling and "queued" in polling
    assert "no worker serves" in polling or "position 1" in polling or "next to run" in polling

    merge.download_build_run(download_id=download.pk)
    ready = client.get(f"/training/downloads/{download.pk}/", HTTP_HX_REQUEST="true").content.decode()
    assert "hx-trigger" not in ready and f"/training/downloads/{download.pk}/file/" in ready
    again = client.post(f"/training/versions/{version.pk}/download/adapter/")
    assert again["Location"] == f"/training/downloads/{download.pk}/file/"
    response = client.get(again["Location"])
    assert response["Content-Disposition"] == f'attachment; filename="{version.name}-adapter.tar"'
    with tarfile.open(fileobj=io.BytesIO(b"".join(response.streaming_content))) as archive:
        readme = archive.extractfile(f"{version.name}-adapter/README.md").read().decode()
    assert "<script>" not in readme and "library_name: peft" in readme


def test_the_bare_base_version_offers_only_merged_weights(trained_version, researcher, client):
    base = trained_version.parent
    client.force_login(researcher)
    html = client.get(f"/training/versions/{base.pk}/").content.decode()
    assert f"/training/versions/{base.pk}/download/merged/" in html
    assert f"/training/versions/{base.pk}/download/adapter/" not in html
    refused = client.post(f"/training/versions/{base.pk}/download/adapter/", follow=True)
    assert "no adapter" in refused.content.decode()
    assert not ModelDownload.objects.exists()


def test_a_build_whose_worker_died_is_built_again_and_the_lost_run_writes_nothing(
    trained_version, researcher
):
    from jobs import lifecycle, reaper

    download = downloads.download_request(version=trained_version, kind="adapter", user=researcher)
    lost_run = lifecycle.claim(ModelDownload, download.pk)  # a worker that then died mid-build
    assert reaper.reap(stale_after_s=0)["training.modeldownload"] == {"resumed": 1, "failed": 0}
    download.refresh_from_db()
    assert (download.status, download.requeues) == ("queued", 1)
    assert "built again from the start" in download.error

    built = merge.download_build_run(download_id=download.pk)
    assert built.status == "succeeded" and downloads.download_is_whole(built)
    assert lifecycle.finish(lost_run, "failed") is False  # the old run's fence no longer matches
    assert ModelDownload.objects.get(pk=download.pk).status == "succeeded"


def test_an_evaluation_enters_the_card_and_a_changed_card_builds_anew(
    trained_version, researcher, annotator, admin_user, project
):
    from evaluation import services as evaluation_services
    from evaluation.models import EvaluationOutput

    version, base = trained_version, trained_version.parent
    before = downloads.version_card(version)
    assert before["evaluations"] == []
    first = _build(_client(researcher), version, "adapter")

    campaign = evaluation_services.campaign_create(
        name="Downloads check", project=project, versions=[base, version],
        prompt_count=2, prompt_source="all", created_by=admin_user,
    )  # fmt: skip
    for prompt in campaign.prompts.all():
        for each in (base, version):
            EvaluationOutput.objects.create(
                campaign=campaign, prompt=prompt, model_version=each, text=each.name
            )
    evaluation_services.campaign_outputs_ready(campaign=campaign)
    for _ in range(2):
        judgement = evaluation_services.judgement_next(campaign=campaign, judge=annotator)
        task = judgement.task
        left = task.first if judgement.first_on_left else task.second
        verdict = "a" if left.model_version_id == version.pk else "b"  # the trained version wins
        evaluation_services.judgement_submit(judgement=judgement, judge=annotator, verdict=verdict, reason="")

    after = downloads.version_card(version)
    [evaluation] = after["evaluations"]
    assert evaluation["campaign"] == "Downloads check" and evaluation["of"] == 2
    assert evaluation["lower"] <= evaluation["score"] <= evaluation["upper"]
    assert evaluation["judgements"] == 2
    text = downloads.version_card_text(version)
    assert "| Downloads check | " in text and "Not evaluated yet." not in text

    second = downloads.download_request(version=version, kind="adapter", user=researcher)
    assert second.pk != first.pk and second.status == "queued"
    assert second.card_hash == downloads.card_hash(after) != first.card_hash


# vLLM's documented requirements for a LoRA adapter served with ``vllm serve BASE --enable-lora
# --lora-modules NAME=FOLDER`` (docs/api.md): a peft LoRA (not DoRA) folder with adapter_config.json and
# adapter_model.safetensors; a rank among the ones vLLM builds kernels for and within ``--max-lora-rank``
# (16 by default); no bias unless ``--enable-lora-bias``; no ``modules_to_save`` (vLLM refuses extra full
# modules); target modules that vLLM's llama supports; tensor names ``base_model.model.<module>.lora_A|B.weight``.
VLLM_LORA_RANKS = {1, 8, 16, 32, 64, 128, 256, 320, 512}
VLLM_DEFAULT_MAX_LORA_RANK = 16
VLLM_LLAMA_LORA_MODULES = {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}


def test_the_adapter_download_meets_vllms_lora_requirements(trained_version, tmp_path):
    from safetensors.numpy import load_file

    folder = tmp_path / "adapter-for-vllm"
    folder.mkdir()
    merge.adapter_folder_write(
        version=trained_version, folder=folder, base_model="HuggingFaceTB/SmolLM2-135M-Instruct"
    )
    assert sorted(p.name for p in folder.iterdir()) == ["adapter_config.json", "adapter_model.safetensors"]
    config = json.loads((folder / "adapter_config.json").read_text())
    assert config["peft_type"] == "LORA" and not config.get("use_dora")
    assert config["r"] in VLLM_LORA_RANKS and config["r"] <= VLLM_DEFAULT_MAX_LORA_RANK
    assert config.get("bias", "none") == "none"
    assert not config.get("modules_to_save")
    assert set(config["target_modules"]) <= VLLM_LLAMA_LORA_MODULES
    assert config["base_model_name_or_path"] == "HuggingFaceTB/SmolLM2-135M-Instruct"
    names = list(load_file(folder / "adapter_model.safetensors"))
    assert names and all(n.startswith("base_model.model.") for n in names)
    assert all(n.endswith((".lora_A.weight", ".lora_B.weight")) for n in names), names[:4]
    assert not any("value_head" in n for n in names)
