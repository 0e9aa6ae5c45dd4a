"""A merged download built by a real worker process, through the broker, and streamed by the web side from
the store the two share (tests/training/test_downloads.py has the rest: its tests share one trained version
in a transaction kept open for the module, which a worker process could not see)."""

from __future__ import annotations

import uuid

import numpy as np
import pytest

from artifacts import default_store
from tests.conftest import wait_for
from tests.training.test_downloads import INPUT_IDS, _client, _fetch, _logits_outside
from training.models import ModelDownload
from training.services import downloads


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_a_real_worker_builds_the_merged_download(
    celery_worker_process, tiny_model_dir, researcher, tmp_path
):
    """Through the broker and a worker process: the build is queued by the request, built and published by
    the worker, and streamed by the web side from the store the two share."""
    import torch

    from text2grad import model_store
    from text2grad.config import TrainingConfig
    from text2grad.policy import build_policy, save_policy
    from training.models import ModelVersion
    from training.worker.versions import version_publish

    model, _ = model_store.load(tiny_model_dir, trainable=True)
    policy = build_policy(model, TrainingConfig())
    with torch.no_grad():  # a trained adapter: LoRA B away from its zero start
        for name, parameter in policy.model.named_parameters():
            if "lora_B" in name:
                parameter.copy_(torch.randn_like(parameter) * 0.05)
    save_policy(policy, tmp_path / "adapter")
    name = f"worker-built-{uuid.uuid4().hex[:8]}"  # the worker shares the default store (var/): clean it up
    key, digest = version_publish(source_dir=tmp_path / "adapter", name=name)
    version = ModelVersion.objects.create(
        name=name, base_model=str(tiny_model_dir), storage_key=key, content_hash=digest
    )
    try:
        _worker_builds_and_we_compare(version, researcher, tiny_model_dir, tmp_path)
    finally:
        default_store().delete(key)
        default_store().delete(f"{downloads.DOWNLOADS_PREFIX}/{name}-merged")


def _worker_builds_and_we_compare(version, researcher, tiny_model_dir, tmp_path) -> None:
    import torch

    from text2grad import model_store

    client = _client(researcher)
    asked = client.post(f"/api/v1/model-versions/{version.pk}/downloads/", {"kind": "merged"}, format="json")
    assert asked.status_code == 202
    download_id = asked.json()["id"]

    def built():
        row = client.get(f"/api/v1/model-downloads/{download_id}/").json()
        assert row["status"] not in ("failed", "cancelled"), row["error"]
        return row["status"] == "succeeded"

    wait_for(built, timeout=180, message="the worker to build the merged download")
    merged = _fetch(client, ModelDownload.objects.get(pk=download_id), tmp_path / "m")
    studio_model, _ = model_store.load(tiny_model_dir, tmp_path / "adapter")
    with torch.no_grad():
        studio = studio_model(input_ids=torch.tensor(INPUT_IDS)).logits.float().numpy()
    difference = float(np.abs(_logits_outside("merged", merged, tmp_path) - studio).max())
    print(f"worker-built merged download vs studio policy: max abs logit difference {difference:.3g}")  # noqa: T201
    assert difference <= 1e-4
