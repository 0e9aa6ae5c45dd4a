"""Bad input, table-driven: each case is answered by a clear 4xx and stores nothing.

Nesting, NUL characters, lone surrogates, overlong fields, format suffixes, huge bodies, out-of-range ids
and malformed uploads in each import format, through the REST API and the HTML forms.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from annotations.models import Annotation, Assignment, DatasetExport, Generation, Project, Prompt, Span
from tests.conftest import PASSWORD

pytestmark = pytest.mark.django_db
API = "/api/v1"
DEEP = "[" * 50_000 + "]" * 50_000
DEEP_OBJECT = '{"a":' * 50_000 + "1" + "}" * 50_000
DEEP_SHORT = '{"a":' * 5_000 + "1" + "}" * 5_000  # past the recursion limit, within CSV's field limit


def nested(levels: int) -> dict:
    value: dict = {"leaf": 1}
    for _ in range(levels):
        value = {"x": value}
    return value


def _counts() -> dict:
    models = (Project, Prompt, Generation, Annotation, Span, DatasetExport)
    return {model.__name__: model.objects.count() for model in models}


@dataclass
class Case:
    id: str
    role: str  # fixture name of the user
    method: str
    path: str  # {project} and {draft} are filled in
    status: int | tuple[int, ...]
    json: object = None  # sent as JSON (a str is sent raw)
    upload: tuple[str, bytes] | None = None  # (file name, content) to projects/{id}/import/
    message: str = ""  # expected somewhere in the answer


def _jsonl(*records: str) -> bytes:
    return "\n".join(records).encode()


def _import(case_id: str, name: str, content: bytes, message: str = "") -> Case:
    return Case(case_id, "admin_user", "post", "", 400, upload=(name, content), message=message)


def _scheme(case_id: str, scheme: object, message: str = "") -> Case:
    body = scheme if isinstance(scheme, str) else {"reward_scheme": scheme}
    return Case(case_id, "admin_user", "patch", "projects/{project}/", 400, json=body, message=message)


API_CASES = [
    # --- nesting --------------------------------------------------------------------------------
    Case("deep-array-body", "admin_user", "post", "projects/", 400, json=DEEP, message="nested deeper"),
    Case("deep-object-body", "admin_user", "post", "prompts/", 400, json=DEEP_OBJECT, message="nested deeper"),
    Case("deep-spans", "annotator2", "patch", "annotations/{draft}/", 400, json='{"spans": ' + DEEP + "}"),
    Case("deep-export-query", "researcher", "post", "exports/", 400, json='{"kind":"spans","query":' + DEEP_OBJECT + "}"),
    Case(
        "metadata-9-levels", "admin_user", "post", "prompts/", 400,
        json={"project": "{project}", "text": "deep", "metadata": nested(9)}, message="nested deeper",
    ),
    # --- NUL and lone surrogates ------------------------------------------------------------------
    Case("nul-prompt", "admin_user", "post", "prompts/", 400, json={"project": "{project}", "text": "a\x00b"}),
    Case(
        "surrogate-prompt", "admin_user", "post", "prompts/", 400,
        json='{"project": {project}, "text": "a\\ud800b"}', message="surrogate",
    ),
    Case(
        "surrogate-metadata-key", "admin_user", "post", "prompts/", 400,
        json='{"project": {project}, "text": "fine", "metadata": {"\\udfff": 1}}', message="surrogate",
    ),
    Case(
        "nul-metadata-value", "admin_user", "post", "prompts/", 400,
        json={"project": "{project}", "text": "fine", "metadata": {"k": "\x00"}}, message="NUL",
    ),
    Case("surrogate-critique", "annotator2", "patch", "annotations/{draft}/", 400, json='{"overall_critique": "\\ud83d"}'),
    # --- overlong and out of range ----------------------------------------------------------------
    Case("long-name", "admin_user", "post", "projects/", 400, json={"name": "n" * 201}),
    Case(
        "export-id-2^63", "researcher", "post", "exports/", 400,
        json={"kind": "spans", "format": "jsonl", "query": {"project": 2**63}}, message="positive integer id",
    ),
    Case(
        "export-id-huge", "researcher", "post", "exports/", 400,
        json={"kind": "spans", "format": "jsonl", "query": {"annotator": 10**30}},
    ),
    Case("filter-id-2^63", "researcher", "get", "annotations/?project=9223372036854775808", 400),
    Case("huge-body", "admin_user", "post", "prompts/", (400, 413), json='{"text": "' + "x" * 3_000_000 + '"}'),
    # --- reward schemes that would break every reward computation ---------------------------------
    _scheme("scheme-good-abc", {"good": "abc"}, "'good' must be a number"),
    _scheme("scheme-infinite", '{"reward_scheme": {"poor": -Infinity}}'),
    _scheme("scheme-conflict", {"conflict": "maybe"}, "'conflict' must be one of"),
    _scheme("scheme-combine", {"combine": "vote"}),
    _scheme("scheme-unknown-key", {"bonus": 1}, "Unknown key"),
    _scheme("scheme-bool", {"good": True}),
    _scheme("scheme-huge", {"good": 1e300}),
    _scheme("scheme-list", [1, 2]),
    # --- format suffixes on every kind of route ---------------------------------------------------
    Case("suffix-download", "admin_user", "get", "exports/1/download.json", 404),
    Case("suffix-next", "annotator", "post", "projects/{project}/next.json", 404),
    Case("suffix-metrics", "admin_user", "get", "training-rounds/1/metrics.json", 404),
    Case("suffix-snapshot", "admin_user", "get", "training-rounds/1/snapshot.api", 404),
    Case("suffix-import", "admin_user", "post", "projects/{project}/import.json", 404),
    Case("suffix-list", "admin_user", "get", "projects.json", 404),
    Case("suffix-detail", "admin_user", "get", "projects/{project}.json", 404),
    Case("suffix-activate", "admin_user", "post", "model-versions/1/activate.json", 404),
    # --- imports: every format, malformed --------------------------------------------------------
    _import(
        "jsonl-deep-metadata", "p.jsonl",
        _jsonl('{"prompt": "ok"}', '{"prompt": "x", "metadata": ' + DEEP_OBJECT + "}"), "nested deeper",
    ),
    _import("jsonl-deep-line", "p.jsonl", _jsonl(DEEP), "nested deeper"),
    _import("jsonl-nul-metadata", "p.jsonl", _jsonl('{"prompt": "x", "metadata": {"k": "a\\u0000"}}'), "NUL"),
    _import("jsonl-surrogate-prompt", "p.jsonl", _jsonl('{"prompt": "x\\ud800"}'), "surrogate"),
    _import("jsonl-surrogate-key", "p.jsonl", _jsonl('{"prompt": "x", "metadata": {"\\ud800": 1}}'), "surrogate"),
    _import(
        "jsonl-long-source-model", "p.jsonl",
        _jsonl(json.dumps({"prompt": "x", "output": "y", "source_model": "m" * 301})),
        "'source_model' is longer than 300",
    ),
    _import(
        "csv-deep-metadata", "p.csv",
        b'prompt,metadata\nx,"' + DEEP_SHORT.replace('"', '""').encode() + b'"\n', "nested deeper",
    ),
    _import("csv-nul", "p.csv", b"prompt\nx\x00y\n", "NUL"),
    _import("csv-no-header", "p.csv", b"a,b\n1,2\n", "header"),
    _import("not-utf8", "p.jsonl", b"\xff\xfe\x00garbage", "UTF-8"),
    _import("unknown-format", "p.xlsx", b"PK\x03\x04", "format"),
    _import("binary-jsonl", "p.jsonl", bytes(range(1, 128)) * 4),
]  # fmt: skip


@pytest.mark.parametrize("case", API_CASES, ids=lambda case: case.id)
def test_api_refuses_bad_input(case, request, api, feedback, settings):
    # Imports answer in the request here, whatever the file's size (the background path is checked below).
    settings.T2G_IMPORT_SYNC_MAX_BYTES = settings.T2G_IMPORT_MAX_BYTES
    user = request.getfixturevalue(case.role)
    client = api(user)
    fill = {"project": feedback.project.pk, "draft": feedback.annotations["draft"].pk}
    path = case.path.format(**fill)
    before = _counts()
    scheme_before = Project.objects.get(pk=feedback.project.pk).reward_scheme
    draft_before = Annotation.objects.values().get(pk=fill["draft"])
    if case.upload is not None:
        name, content = case.upload
        response = client.post(
            f"{API}/projects/{feedback.project.pk}/import/",
            {"file": SimpleUploadedFile(name, content)},
            format="multipart",
        )
    elif case.json is None:
        response = getattr(client, case.method)(f"{API}/{path}")
    else:
        if isinstance(case.json, str):
            body = case.json.replace("{project}", str(fill["project"]))
        else:
            body = json.dumps(case.json).replace('"{project}"', str(fill["project"]))
        response = getattr(client, case.method)(f"{API}/{path}", body, content_type="application/json")
    allowed = case.status if isinstance(case.status, tuple) else (case.status,)
    assert response.status_code in allowed, response.content[:500]
    if case.message:
        assert case.message in response.content.decode(errors="replace"), response.content[:500]
    assert _counts() == before
    assert Project.objects.get(pk=feedback.project.pk).reward_scheme == scheme_before
    assert Annotation.objects.values().get(pk=fill["draft"]) == draft_before


IMPORT_CASES = [case for case in API_CASES if case.upload is not None]


@pytest.mark.parametrize("case", IMPORT_CASES, ids=lambda case: case.id)
def test_bad_files_imported_in_the_background_are_refused_as_clearly(case, api, feedback, admin_user):
    """The same files through a background import: refused in the request when its quick checks see it
    (format, UTF-8, header), else the job fails with the same message and writes nothing."""
    from annotations.imports import jobs as import_jobs
    from annotations.models import PromptImport

    before = _counts()
    name, content = case.upload
    response = api(admin_user).post(
        f"{API}/projects/{feedback.project.pk}/import/",
        {"file": SimpleUploadedFile(name, content), "background": "true"},
        format="multipart",
    )
    if response.status_code == 400:
        assert case.message in response.content.decode(errors="replace"), response.content[:500]
        assert not PromptImport.objects.exists()
    else:
        assert response.status_code == 202, response.content[:500]
        import_jobs.prompt_import_run(import_id=response.json()["id"])
        job = PromptImport.objects.get(pk=response.json()["id"])
        assert job.status == "failed" and "nothing was imported" in job.error
        assert case.message in job.error + json.dumps(job.report, ensure_ascii=False), job.report
    assert _counts() == before


# --- the HTML forms ---------------------------------------------------------------------------------
@pytest.fixture
def leased(project, make_generation, annotator):
    from annotations import services

    make_generation(project, "An output to annotate.")
    assignment = services.assignment_next(project=project, annotator=annotator)
    return Annotation.objects.get(generation=assignment.generation, annotator=annotator)


@pytest.mark.parametrize(
    ("spans", "message"),
    [
        (DEEP, "nested deeper"),
        ('[{"critique": ' + DEEP_OBJECT + "}]", "nested deeper"),
        ('[{"start": 0, "end": 2, "label": "good", "critique": "\\ud800"}]', "surrogate"),
        ('[{"start": 0, "end": 2, "label": "good", "critique": "\\u0000"}]', "NUL"),
        ('{"start": 0}', "must be a JSON list"),
    ],
    ids=["deep", "deep-object", "surrogate", "nul", "not-a-list"],
)
def test_the_spans_form_field_refuses_bad_json(client, leased, annotator, spans, message):
    client.force_login(annotator)
    before = _counts()
    response = client.post(f"/annotations/{leased.pk}/save/", {"spans": spans}, HTTP_HX_REQUEST="true")
    assert response.status_code == 422 and message in response.content.decode(), response.content[:300]
    assert _counts() == before


def test_an_overlong_skip_reason_says_so(client, leased, annotator):
    client.force_login(annotator)
    response = client.post(f"/annotations/{leased.pk}/skip/", {"reason": "r" * 1001}, HTTP_HX_REQUEST="true")
    assert response.status_code == 422
    assert "Keep the reason to 1000 characters (it has 1001)" in response.content.decode()
    assert Assignment.objects.get(generation=leased.generation).status == Assignment.Status.ACTIVE
    empty = client.post(f"/annotations/{leased.pk}/skip/", {"reason": ""}, HTTP_HX_REQUEST="true")
    assert empty.status_code == 422 and "Say why you are skipping" in empty.content.decode()


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("deep.jsonl", b'{"prompt": "x", "metadata": ' + DEEP_OBJECT.encode() + b"}", "nested deeper"),
        ("nul.jsonl", b'{"prompt": "x\\u0000"}', "NUL"),
        ("surrogate.jsonl", b'{"prompt": "x", "reference": "\\udc00"}', "surrogate"),
        (
            "long.jsonl",
            json.dumps({"prompt": "x", "output": "y", "model": "m" * 301}).encode(),
            "source_model",
        ),
    ],
    ids=["deep", "nul", "surrogate", "long-source-model"],
)
def test_the_import_page_refuses_bad_files(client, feedback, admin_user, name, content, message, settings):
    settings.T2G_IMPORT_SYNC_MAX_BYTES = settings.T2G_IMPORT_MAX_BYTES  # in the request, whatever the size
    client.force_login(admin_user)
    before = _counts()
    response = client.post(
        "/data/import/", {"project": feedback.project.pk, "file": SimpleUploadedFile(name, content)}
    )
    assert response.status_code == 400 and message in response.content.decode()
    assert _counts() == before


def test_a_reward_scheme_that_is_fine_is_saved(api, feedback, admin_user):
    scheme = {"good": 2, "poor": -1.5, "outside": 0, "conflict": "sum", "combine": "median"}
    response = api(admin_user).patch(
        f"{API}/projects/{feedback.project.pk}/", {"reward_scheme": scheme}, format="json"
    )
    assert response.status_code == 200, response.content
    assert Project.objects.get(pk=feedback.project.pk).reward_scheme == scheme


# --- every login path, and the forms and views outside DRF ------------------------------------------
LOGIN_CASES = [
    ("token-long-username", "api", json.dumps({"username": "u" * 256, "password": "x"}), "at most 150"),
    ("token-nul-username", "api", json.dumps({"username": "a\x00b", "password": "x"}), "NUL"),
    ("token-surrogate-username", "api", '{"username": "a\\ud800", "password": "x"}', "surrogate"),
    ("token-nul-password", "api", json.dumps({"username": "ann1", "password": "a\x00"}), "NUL"),
    ("token-surrogate-password", "api", '{"username": "ann1", "password": "\\udfff"}', "surrogate"),
    ("token-long-password", "api", json.dumps({"username": "ann1", "password": "p" * 5000}), "at most 4096"),
    ("token-nested-2000", "api", "[" * 2000 + "]" * 2000, "nested deeper"),
    ("token-nested-object", "api", DEEP_OBJECT, "nested deeper"),
    ("token-not-an-object", "api", "[1, 2]", "JSON object"),
    ("token-username-a-list", "api", json.dumps({"username": ["a"], "password": "x"}), "must be text"),
    ("token-form-long-username", "api-form", {"username": "u" * 256, "password": "x"}, "at most 150"),
    ("page-long-username", "page", {"username": "u" * 256, "password": "x"}, "at most 150"),
    ("page-nul-username", "page", {"username": "a\x00b", "password": "x"}, "NUL"),
    ("page-nul-password", "page", {"username": "ann1", "password": "a\x00"}, "NUL"),
    ("admin-long-username", "admin", {"username": "u" * 300, "password": "x"}, "at most 150"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("case_id", "where", "body", "message"), LOGIN_CASES, ids=[c[0] for c in LOGIN_CASES]
)
def test_login_paths_refuse_bad_credentials(client, annotator, case_id, where, body, message):
    from axes.models import AccessAttempt

    from audit.models import AuditEvent

    if where == "api":
        response = client.post(f"{API}/auth/token/", body, content_type="application/json")
    elif where == "api-form":
        response = client.post(f"{API}/auth/token/", body)
    else:
        response = client.post("/accounts/login/" if where == "page" else "/admin/login/", body)
    assert response.status_code == 400, response.content[:300]
    assert message in response.content.decode(errors="replace"), response.content[:300]
    # Nothing was checked, so nothing was counted or logged as a failure.
    assert not AccessAttempt.objects.exists()
    assert not AuditEvent.objects.filter(action="login.failed").exists()
    assert "_auth_user_id" not in client.session


def test_the_token_view_applies_the_rules_without_the_middleware(client, annotator, settings):
    """The view itself refuses bad credentials and bad JSON: the rules do not depend on the middleware."""
    settings.MIDDLEWARE = [m for m in settings.MIDDLEWARE if not m.endswith("LoginAddressLimitMiddleware")]
    long_name = client.post(f"{API}/auth/token/", {"username": "u" * 256, "password": "x"})
    assert long_name.status_code == 400 and "at most 150" in long_name.content.decode()
    deep = client.post(f"{API}/auth/token/", "[" * 2000 + "]" * 2000, content_type="application/json")
    assert deep.status_code == 400 and "nested deeper" in deep.content.decode()
    ok = client.post(f"{API}/auth/token/", {"username": annotator.username, "password": PASSWORD})
    assert ok.status_code == 200 and ok.json()["token"]


def test_a_judges_reason_with_a_nul_is_refused(client, feedback, admin_user, annotator):
    from evaluation import services as evaluation_services
    from evaluation.models import EvaluationOutput, PairwiseJudgement

    campaign = evaluation_services.campaign_create(
        name="Bad input", project=feedback.project, versions=[feedback.v0, feedback.v1], prompt_count=1,
        prompt_source="all", created_by=admin_user,
    )  # fmt: skip
    for prompt in campaign.prompts.all():
        for version in (feedback.v0, feedback.v1):
            EvaluationOutput.objects.create(
                campaign=campaign, prompt=prompt, model_version=version, text="out"
            )
    evaluation_services.campaign_outputs_ready(campaign=campaign)
    lease = evaluation_services.judgement_next(campaign=campaign, judge=annotator)
    client.force_login(annotator)
    url = f"/evaluation/judgements/{lease.pk}/"
    response = client.post(url, {"verdict": "a", "reason": "fine\x00"}, HTTP_HX_REQUEST="true")
    assert response.status_code == 400 and "NUL" in response.content.decode()
    plain = client.post(url, {"verdict": "a", "reason": "fine\x00"})  # without htmx: back with a message
    assert plain.status_code == 302
    assert PairwiseJudgement.objects.get(pk=lease.pk).status == PairwiseJudgement.Status.LEASED
    ok = client.post(url, {"verdict": "a", "reason": "fine"}, HTTP_HX_REQUEST="true")
    assert ok.status_code == 200
    assert PairwiseJudgement.objects.get(pk=lease.pk).status == PairwiseJudgement.Status.SUBMITTED


@pytest.mark.parametrize("raw", ["abc", "", "1.5", "²", "-1", str(2**63), "0x10"])
def test_compare_generate_refuses_a_project_that_is_no_id(client, admin_user, feedback, raw):
    from jobs.models import Outbox

    client.force_login(admin_user)
    before = Outbox.objects.count()
    response = client.post("/training/compare/generate/", {"project": raw, "version": [str(feedback.v0.pk)]})
    assert response.status_code == 400 and "positive integer id" in response.content.decode()
    assert Outbox.objects.count() == before


@pytest.mark.parametrize("version", ["²", str(2**63), "x"])
def test_compare_generate_ignores_versions_that_are_no_ids(client, admin_user, feedback, version):
    client.force_login(admin_user)
    response = client.post(
        "/training/compare/generate/", {"project": feedback.project.pk, "version": [version]}
    )
    assert response.status_code == 302


@pytest.mark.parametrize(
    "query", ["a=²&b=1&project=1", "a=1&b=99999999999999999999", "project=²", "project=-3"]
)
def test_the_compare_page_ignores_ids_that_are_no_ids(client, admin_user, feedback, query):
    client.force_login(admin_user)
    response = client.get(f"/training/compare/?{query}")
    assert response.status_code == 200


@pytest.mark.parametrize("raw", ["²", "99999999999999999999", "abc", "-1"])
def test_the_import_page_refuses_a_project_that_is_no_id(client, admin_user, feedback, raw):
    client.force_login(admin_user)
    before = _counts()
    upload = SimpleUploadedFile("p.jsonl", b'{"prompt": "fine"}\n')
    response = client.post("/data/import/", {"project": raw, "file": upload})
    assert response.status_code == 400 and "Choose a project" in response.content.decode()
    assert _counts() == before


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("1", 1), ("42", 42), (str(2**63 - 1), 2**63 - 1), (str(2**63), None), ("0", None), ("²", None),
     ("٣", None), ("-1", None), (" 1", None), ("", None), (None, None), (7, None)],
)  # fmt: skip
def test_positive_id(raw, expected):
    from annotations.safejson import positive_id

    assert positive_id(raw) == expected
