"""A version's download through S3 (moto_server): the worker fetches the adapter from the bucket, publishes
the built folder there, and the web side streams it back out of the bucket as a tar."""

from __future__ import annotations

import io
import json
import tarfile

import pytest
from rest_framework.test import APIClient

from artifacts import default_store
from training import services
from training.models import TrainingRound
from training.worker import merge, rounds

pytestmark = pytest.mark.django_db

FAST = {"learning_rate": 5e-3, "steps": 1, "batch_size": 2, "minibatch_size": 2, "ppo_epochs": 1}


@pytest.mark.heavy  # a moto_server process
def test_an_adapter_download_built_and_streamed_through_s3(tiny_settings, s3_settings, critiqued, researcher):
    services.model_version_bootstrap()
    training_round = services.round_launch(mode="token", config=FAST)
    assert rounds.round_run(round_id=training_round.pk) == TrainingRound.Status.SUCCEEDED
    version = TrainingRound.objects.get(pk=training_round.pk).output_version
    assert default_store().local_path("x") is None  # really object storage

    client = APIClient()
    client.force_authenticate(researcher)
    asked = client.post(f"/api/v1/model-versions/{version.pk}/downloads/", {"kind": "adapter"}, format="json")
    built = merge.download_build_run(download_id=asked.json()["id"])
    assert built.storage_key.startswith(f"downloads/{version.name}-adapter/")
    assert f"{built.storage_key}/MANIFEST.json" in default_store().list(built.storage_key)

    response = client.get(f"/api/v1/model-downloads/{built.pk}/file/")
    data = b"".join(response.streaming_content)
    assert response.status_code == 200 and len(data) == int(response["Content-Length"])
    with tarfile.open(fileobj=io.BytesIO(data)) as archive:
        names = sorted(archive.getnames())
        config = json.load(archive.extractfile(f"{version.name}-adapter/adapter_config.json"))
        weights = archive.extractfile(f"{version.name}-adapter/adapter_model.safetensors").read()
    assert [name.split("/", 1)[1] for name in names] == [
        "README.md",
        "adapter_config.json",
        "adapter_model.safetensors",
        "training_curves.png",
    ]
    assert config["base_model_name_or_path"] == tiny_settings.T2G_BASE_MODEL
    assert weights == default_store().get_bytes(f"{version.storage_key}/adapter_model.safetensors")
