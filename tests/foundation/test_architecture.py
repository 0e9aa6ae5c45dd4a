"""The architecture's contracts: floors that import downward only, a core without Django, a web process
without torch, no circle of files. ``make lint`` runs the same contracts; these tests show that they
hold on the tree and that each one fails on a deliberate violation."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
# The packages the contracts cover, as pyproject.toml names them (one list: a new app cannot be missed).
PACKAGES = tuple(
    tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["importlinter"]["root_packages"]
)
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")
ML_ROOTS = ("torch", "transformers", "peft", "tokenizers", "safetensors", "accelerate")


def _copy_tree(dest: Path) -> Path:
    for package in PACKAGES:
        shutil.copytree(REPO / package, dest / package, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "pyproject.toml", dest / "pyproject.toml")
    return dest


def _lint(tree: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    return subprocess.run(
        [str(LINT_IMPORTS), "--config", "pyproject.toml", "--no-cache"],
        cwd=tree, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def _append(path: Path, code: str) -> None:
    path.write_text(path.read_text() + "\n" + textwrap.dedent(code))


@pytest.fixture(scope="module")
def tree(tmp_path_factory) -> Path:
    return _copy_tree(tmp_path_factory.mktemp("tree"))


@pytest.mark.heavy
def test_the_contracts_hold_on_the_tree(tree):
    result = _lint(tree)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "4 kept, 0 broken" in result.stdout


VIOLATIONS = {
    # contract broken: (file to change, code appended to it)
    "Floors": ("annotations/selectors.py", "from training.models import ModelVersion  # noqa\n"),
    "The core imports no Django": ("text2grad/rewards.py", "from django.conf import settings  # noqa\n"),
    "The web process imports no torch": (
        "annotations/views.py",
        "def _probe():\n    import torch  # noqa\n\n    return torch\n",
    ),
    "No circle of files": ("training/selectors.py", "from training import services  # noqa\n"),
}


@pytest.mark.heavy
@pytest.mark.parametrize("contract", sorted(VIOLATIONS))
def test_each_contract_fails_on_a_deliberate_violation(tmp_path, contract):
    tree = _copy_tree(tmp_path)
    path, code = VIOLATIONS[contract]
    if contract == "No circle of files":
        # services -> selectors already exists in training? Make sure the circle closes both ways.
        _append(tree / "training/services.py", "from training import selectors  # noqa\n")
    _append(tree / path, code)
    result = _lint(tree)
    assert result.returncode != 0, result.stdout
    broken = result.stdout.split("Broken contracts", 1)[-1]
    assert contract in broken, result.stdout


# --- the web process, rendering real pages --------------------------------------------------------
RENDER_SCRIPT = """
import json, sys
import django
django.setup()
from django.contrib.auth import get_user_model
from django.test import Client

urls, username, ML_ROOTS = json.loads(sys.argv[1]), sys.argv[2], tuple(json.loads(sys.argv[3]))
client = Client()
client.force_login(get_user_model().objects.get(username=username))
statuses = {}
for url in urls:
    response = client.get(url, HTTP_HOST="localhost")
    if hasattr(response, "streaming_content"):
        b"".join(response.streaming_content)
    statuses[url] = response.status_code
for url in urls:  # the htmx fragments too
    statuses[url + " (htmx)"] = client.get(url, HTTP_HX_REQUEST="true", HTTP_HOST="localhost").status_code
ml = sorted(m for m in sys.modules if m.split(".")[0] in ML_ROOTS or m.startswith("training.worker"))
print(json.dumps({"statuses": statuses, "ml": ml}))
"""


@pytest.mark.heavy
@pytest.mark.django_db(transaction=True)
def test_rendering_every_page_imports_no_ml_module(admin_user, project, make_generation):
    from django.db import connection

    from annotations import services
    from annotations.models import Annotation, TokenReward
    from jobs.dburl import current_database_url
    from training import services as training_services

    if not connection.settings_dict["ENGINE"].endswith("postgresql"):
        pytest.skip("needs PostgreSQL (set DATABASE_URL)")
    generation = make_generation(project, "The cat sat on the mat.")
    annotation = Annotation.objects.create(generation=generation, annotator=admin_user)
    services.span_create(annotation=annotation, start=4, end=7, label="poor", critique="which cat?")
    annotation.status = Annotation.Status.SUBMITTED
    annotation.save()
    TokenReward.objects.create(
        annotation=annotation, tokenizer_fingerprint="f" * 64, token_ids=[1, 2], offsets=[[0, 3], [3, 7]],
        rewards=[0.0, -1.0], token_strings=["The", "Ġcat"],
    )  # fmt: skip
    version = training_services.model_version_bootstrap()
    training_round = training_services.round_launch(selection={"project_id": project.pk}, enqueue=False)
    urls = [
        "/", "/projects/", f"/projects/{project.pk}/", f"/projects/{project.pk}/progress/", "/queue/",
        f"/annotations/{annotation.pk}/", f"/annotations/{annotation.pk}/heatmap/", "/training/",
        f"/training/rounds/{training_round.pk}/", f"/training/compare/?a={version.pk}&b={version.pk}",
        "/data/exports/", "/data/import/", "/api/v1/", "/api/v1/schema/", "/api/v1/annotations/",
        "/api/v1/token-rewards/", "/api/v1/model-versions/", "/api/v1/training-rounds/", "/healthz",
        "/evaluation/", "/api/v1/evaluation-campaigns/",
    ]  # fmt: skip
    env = {
        **os.environ,
        "DATABASE_URL": current_database_url(),
        "DJANGO_SETTINGS_MODULE": "text2grad_web.settings",
    }
    result = subprocess.run(
        [sys.executable, "-c", RENDER_SCRIPT, json.dumps(urls), admin_user.username, json.dumps(ML_ROOTS)],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    failed = {url: code for url, code in report["statuses"].items() if code >= 400}
    assert not failed, failed
    assert report["ml"] == []
