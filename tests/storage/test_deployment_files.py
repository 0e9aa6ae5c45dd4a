"""The compose file and the image targets deploy what the artifact store needs (no docker here: read them)."""

from __future__ import annotations

import re

import yaml

from tests.conftest import REPO

COMPOSE = yaml.safe_load((REPO / "docker-compose.yml").read_text())
APP_SERVICES = ("migrate", "web", "worker", "endpoint", "beat", "trainer", "trainer-gpu")


def test_every_app_container_names_the_artifact_store_and_shares_no_var_folder():
    for name in APP_SERVICES:
        service = COMPOSE["services"][name]
        assert service["environment"]["T2G_STORAGE_URL"].startswith("${T2G_STORAGE_URL:-"), name
        for volume in service.get("volumes", []):
            assert not volume.split(":")[1].startswith("/app/var"), f"{name} shares a var folder: {volume}"


def test_s3_profile_runs_minio_and_creates_the_bucket():
    minio, bucket = COMPOSE["services"]["minio"], COMPOSE["services"]["minio-bucket"]
    assert minio["profiles"] == ["s3"] and bucket["profiles"] == ["s3"]
    assert "t2g" in " ".join(bucket["entrypoint"])
    assert COMPOSE["services"]["migrate"]["depends_on"]["minio-bucket"]["required"] is False


def test_gpu_trainer_uses_the_cuda_image_with_one_rank_per_gpu():
    gpu = COMPOSE["services"]["trainer-gpu"]
    assert gpu["profiles"] == ["gpu"] and gpu["build"]["target"] == "worker-gpu"
    assert gpu["environment"]["T2G_TRAIN_PROCS"].startswith("${T2G_TRAIN_PROCS")
    assert gpu["deploy"]["resources"]["reservations"]["devices"][0]["capabilities"] == ["gpu"]
    dockerfile = (REPO / "Dockerfile").read_text()
    targets = set(re.findall(r"^FROM \S+ AS (\S+)$", dockerfile, flags=re.M))
    assert {"web", "worker", "worker-gpu"} <= targets
    gpu_deps = dockerfile.split("AS worker-gpu-deps")[1].split("FROM ")[0]
    assert "+cpu" in gpu_deps and "whl/cu" in gpu_deps  # the CPU pin is rewritten to the CUDA wheel
