"""The architecture's contracts: floors that import downward only, a core without Django, a web process
without torch, no circle of files. ``make lint`` runs the same contracts; these tests show that they
hold on the tree and that each one fails on a deliberate violation."""

from __future__ import annotations

import ast
import json
import os
import re
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
    "Floors": ("annotations/selectors/workspace.py", "from training.models import ModelVersion  # noqa\n"),
    "The core imports no Django": ("text2grad/rewards.py", "from django.conf import settings  # noqa\n"),
    "The web process imports no torch": (
        "annotations/views/workspace.py",
        "def _probe():\n    import torch  # noqa\n\n    return torch\n",
    ),
    "No circle of files": ("training/selectors/__init__.py", "from training import services  # noqa\n"),
}


@pytest.mark.heavy
@pytest.mark.parametrize("contract", sorted(VIOLATIONS))
def test_each_contract_fails_on_a_deliberate_violation(tmp_path, contract):
    tree = _copy_tree(tmp_path)
    path, code = VIOLATIONS[contract]
    if contract == "No circle of files":
        # services -> selectors already exists in training? Make sure the circle closes both ways.
        _append(tree / "training/services/__init__.py", "from training import selectors  # noqa\n")
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
    from annotations.models import Annotation
    from jobs.dburl import current_database_url
    from training import services as training_services
    from training.models import TokenReward

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
        "/evaluation/", "/api/v1/evaluation-campaigns/", f"/training/versions/{version.pk}/",
        f"/api/v1/model-versions/{version.pk}/card/", "/api/v1/model-downloads/",
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


# --- no long functions in the Django apps --------------------------------------------------------------
MAX_FUNCTION_LINES = 80


def _long_functions(root: Path, packages) -> list[str]:
    found = []
    for package in packages:
        for path in sorted((root / package).rglob("*.py")):
            relative = path.relative_to(root).as_posix()
            if "/migrations/" in relative:
                continue
            for node in ast.walk(ast.parse(path.read_text(), filename=relative)):
                if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                    length = node.end_lineno - node.lineno + 1
                    if length > MAX_FUNCTION_LINES:
                        found.append(f"{relative}:{node.lineno} {node.name} ({length} lines)")
    return found


def test_no_function_in_the_django_apps_is_longer_than_80_lines():
    apps = [package for package in PACKAGES if package != "text2grad"]
    assert apps and "training" in apps
    assert _long_functions(REPO, apps) == []


def test_the_length_check_finds_a_long_function(tmp_path):
    body = "\n".join(f"    x{i} = {i}" for i in range(MAX_FUNCTION_LINES))
    (tmp_path / "app").mkdir()
    (tmp_path / "app" / "views.py").write_text(f"def short():\n    return 1\n\n\ndef long():\n{body}\n")
    assert _long_functions(tmp_path, ["app"]) == ["app/views.py:5 long (81 lines)"]


# --- dependencies hidden in strings --------------------------------------------------------------------
FLOORS = [
    floor
    for layer in next(
        c for c in tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"]
        if c["id"] == "floors"
    )["layers"]
    for floor in [layer.split(" | ")]
]  # fmt: skip
# The template folders each app renders (its views name them), so a template's floor is its app's.
TEMPLATE_OWNERS = {"annotations": "annotations", "review": "annotations", "data": "annotations",
                   "evaluation": "evaluation", "training": "training", "audit": "audit"}  # fmt: skip
# {% url %} names of a higher floor's URLs that templates of a lower floor still use (docs/architecture.md,
# "Dependencies hidden in strings"). A link is text, not an import; this list keeps new ones deliberate.
URL_CROSSINGS = {
    ("annotations", "annotation_critic_suggestions"),
    ("annotations", "annotation_heatmap"),
    ("annotations", "annotation_suggest"),
    ("annotations", "api-docs"),
    ("annotations", "generation_job_start"),
}


def _floor(package: str) -> int:
    return next(i for i, layer in enumerate(FLOORS) if package in layer)


def _templates_by_app() -> dict[str, list[Path]]:
    owned: dict[str, list[Path]] = {}
    for folder, app in TEMPLATE_OWNERS.items():
        owned.setdefault(app, []).extend(sorted((REPO / "templates" / folder).rglob("*.html")))
    return owned


def test_every_template_folder_has_an_owner():
    folders = {p.name for p in (REPO / "templates").iterdir() if p.is_dir()}
    assert folders - set(TEMPLATE_OWNERS) <= {
        "charts",
        "registration",
        "drf_spectacular",
    }  # shared, or Django's


def test_no_template_loads_a_tag_library_of_a_higher_floor():
    from django.template import engines

    libraries = engines["django"].engine.template_libraries  # name -> module
    crossings = []
    for app, paths in _templates_by_app().items():
        for path in paths:
            for name in re.findall(r"{%\s*load\s+([\w ]+?)\s*%}", path.read_text()):
                for library in name.split():
                    module = libraries[library].__module__ if library in libraries else ""
                    owner = module.split(".")[0]
                    if owner in PACKAGES and _floor(owner) < _floor(app):
                        crossings.append(f"{path.relative_to(REPO)} loads {library} ({module})")
    assert crossings == []


def test_url_names_crossing_up_from_templates_are_the_listed_ones():
    from django.urls import get_resolver

    def names(patterns, app=None) -> dict[str, str]:
        found = {}
        for pattern in patterns:
            if hasattr(pattern, "url_patterns"):
                module = getattr(pattern.urlconf_module, "__name__", "")
                found.update(names(pattern.url_patterns, module.split(".")[0] if module else app))
            elif pattern.name:
                found[pattern.name] = app or pattern.callback.__module__.split(".")[0]
        return found

    owner_of = names(get_resolver().url_patterns)
    assert owner_of["annotate"] == "annotations" and owner_of["round_detail"] == "training"
    crossings = set()
    for app, paths in _templates_by_app().items():
        for path in paths:
            for name in re.findall(r"{%\s*url\s+['\"]([\w:-]+)['\"]", path.read_text()):
                owner = owner_of.get(name)
                if owner in PACKAGES and _floor(owner) < _floor(app):
                    crossings.add((app, name))
    assert crossings == URL_CROSSINGS


def _web_roots_from_settings() -> set[str]:
    """Every project module Django (or DRF) imports by name in the web process."""
    from django.conf import settings
    from django.urls import get_resolver

    def module_of(dotted: str) -> str | None:
        parts = dotted.split(".")
        if parts[0] not in PACKAGES:
            return None
        for end in range(len(parts), 0, -1):
            path = REPO.joinpath(*parts[:end])
            if path.with_suffix(".py").is_file() or (path / "__init__.py").is_file():
                return ".".join(parts[:end])
        return None

    def strings(value):
        if isinstance(value, str):
            yield value
        elif isinstance(value, dict):
            for item in value.values():
                yield from strings(item)
        elif isinstance(value, list | tuple):
            for item in value:
                yield from strings(item)

    named = [*settings.MIDDLEWARE, *settings.AUTHENTICATION_BACKENDS, settings.ROOT_URLCONF]
    named += [settings.WSGI_APPLICATION, settings.ASGI_APPLICATION, "text2grad_web.settings"]
    named += list(strings(settings.REST_FRAMEWORK)) + list(strings(settings.LOGGING))
    named += list(strings(getattr(settings, "SPECTACULAR_SETTINGS", {})))
    for engine in settings.TEMPLATES:
        named += engine.get("OPTIONS", {}).get("context_processors", [])
    for app in settings.INSTALLED_APPS:
        if app.split(".")[0] in PACKAGES:
            named += [
                f"{app}.{part}"
                for part in ("apps", "admin", "models")
                if (REPO / app / f"{part}.py").exists()
            ]
    for package in PACKAGES:
        named += [
            ".".join(p.relative_to(REPO).with_suffix("").parts)
            for p in (REPO / package).glob("templatetags/[!_]*.py")
        ]

    def urlconfs(patterns):
        for pattern in patterns:
            if hasattr(pattern, "url_patterns"):
                if hasattr(pattern.urlconf_module, "__name__"):  # not a router's list of patterns
                    yield pattern.urlconf_module.__name__
                yield from urlconfs(pattern.url_patterns)

    named += list(urlconfs(get_resolver().url_patterns))
    return {module for module in map(module_of, named) if module}


def test_the_web_contract_roots_include_every_module_django_loads_by_name():
    contracts = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"]
    listed = set(next(c for c in contracts if c["id"] == "web-without-ml")["source_modules"])
    roots = _web_roots_from_settings()
    # What the settings name is found: middleware, a parser, a log filter, a tag library, an include().
    assert {"annotations.login_guard", "annotations.safejson", "text2grad_web.log_filters"} <= roots
    assert {"jobs.templatetags.job_standing", "annotations.urls", "annotations.models"} <= roots
    assert sorted(roots - listed) == []


# Relations a higher floor's model defines onto a lower floor's model (reverse accessors and query names),
# used by the lower floor's Python by name: an ORM lookup or attribute, which no import linter sees
# (docs/architecture.md, "Dependencies hidden in strings").
RELATION_CROSSINGS = {
    ("annotations", "critic_predictions"),  # the queue orders by the critic's uncertainty
    ("annotations", "critic_settings"),  # ... when the project has an active critic
    ("annotations", "token_rewards"),  # agreement's token offsets, the token-rewards export
}
# Foreign keys of a lower floor's model to a higher floor's, named by a lazy "app.Model" string.
FIELD_CROSSINGS = {
    "annotations.Generation.model_version",
    "evaluation.EvaluationCampaign.versions",
    "evaluation.EvaluationOutput.model_version",
}


def _python_sources(package: str) -> list[Path]:
    return [p for p in sorted((REPO / package).rglob("*.py")) if "migrations" not in p.parts]


def test_model_relations_crossing_up_are_the_listed_ones():
    from django.apps import apps

    reverse_names: dict[str, set[str]] = {}  # lower app -> relation names a higher floor defines on it
    fields = set()
    for model in apps.get_models():
        low = model._meta.app_label
        if low not in PACKAGES:
            continue
        for relation in model._meta.related_objects:
            high = relation.related_model._meta.app_label
            name = relation.get_accessor_name()
            if high in PACKAGES and _floor(high) < _floor(low) and name and not name.endswith("+"):
                reverse_names.setdefault(low, set()).add(name)
        for field in model._meta.get_fields():
            target = getattr(field, "related_model", None)
            if field.concrete or field.many_to_many:
                high = getattr(getattr(target, "_meta", None), "app_label", None)
                if high in PACKAGES and _floor(high) < _floor(low) and not field.auto_created:
                    fields.add(f"{low}.{model.__name__}.{field.name}")
    assert "token_rewards" in reverse_names["annotations"]  # training's TokenReward, on Annotation
    used = set()
    for low, names in reverse_names.items():
        pattern = re.compile(r"""(?:\.|["'])({0})\b|\b({0})__""".format("|".join(sorted(names))))
        for path in _python_sources(low):
            for match in pattern.finditer(path.read_text()):
                used.add((low, match.group(1) or match.group(2)))
    assert used == RELATION_CROSSINGS
    assert fields == FIELD_CROSSINGS
