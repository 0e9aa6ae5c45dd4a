"""Privacy: exports are visible only to their creator and admins; annotators are pseudonymous to
researchers in the API and on every page, with the same pseudonym the exports write."""

from __future__ import annotations

import json

import pytest

from annotations.exports import jobs as export_jobs
from annotations.exports import pseudonym
from annotations.models import DatasetExport
from tests.security.test_access_matrix import world  # noqa: F401 (fixture)

pytestmark = pytest.mark.django_db
API = "/api/v1"


def _finished(kind="spans", fmt="jsonl", query=None, user=None) -> DatasetExport:
    export = export_jobs.export_create(kind=kind, fmt=fmt, query=query or {}, created_by=user, enqueue=False)
    export_jobs.export_run(export_id=export.pk)
    export.refresh_from_db()
    assert export.status == DatasetExport.Status.SUCCEEDED
    return export


def test_an_admins_identified_export_is_invisible_to_researchers(
    api, client, feedback, admin_user, researcher
):
    identified = _finished(query={"identify_annotators": True}, user=admin_user)
    assert b"ann2" in export_jobs.export_open(identified).read()
    own = _finished(user=researcher)
    rest = api(researcher)
    listed = [row["id"] for row in rest.get(f"{API}/exports/").json()["results"]]
    assert listed == [own.pk]
    assert rest.get(f"{API}/exports/{identified.pk}/").status_code == 404
    assert rest.get(f"{API}/exports/{identified.pk}/download/").status_code == 404
    assert rest.get(f"{API}/exports/{own.pk}/download/").status_code == 200
    client.force_login(researcher)
    page = client.get("/data/exports/").content.decode()
    assert f'href="/data/exports/{own.pk}/"' in page and f'href="/data/exports/{identified.pk}/"' not in page
    for path in ("", "download/"):
        assert client.get(f"/data/exports/{identified.pk}/{path}").status_code == 404
    assert client.post(f"/data/exports/{identified.pk}/again/").status_code == 404
    assert DatasetExport.objects.count() == 2
    # Admins see every export, the researcher's too.
    admin_listed = {row["id"] for row in api(admin_user).get(f"{API}/exports/").json()["results"]}
    assert admin_listed == {own.pk, identified.pk}
    assert api(admin_user).get(f"{API}/exports/{own.pk}/download/").status_code == 200


def test_researchers_do_not_see_each_others_exports(api, client, feedback, researcher, researcher2):
    theirs = _finished(user=researcher2)
    assert api(researcher).get(f"{API}/exports/{theirs.pk}/").status_code == 404
    assert api(researcher).get(f"{API}/exports/").json()["results"] == []
    assert api(researcher2).get(f"{API}/exports/{theirs.pk}/").status_code == 200
    client.force_login(researcher)
    assert client.get(f"/data/exports/{theirs.pk}/download/").status_code == 404


def test_researchers_see_the_export_pseudonym_not_the_username(
    api, feedback, researcher, admin_user, annotator, annotator2
):
    a3 = feedback.annotations["a3"]  # by ann2
    as_researcher = api(researcher).get(f"{API}/annotations/{a3.pk}/").json()
    assert as_researcher["annotator_username"] == pseudonym(annotator2.pk)
    listing = api(researcher).get(f"{API}/annotations/").json()["results"]
    names = {row["annotator_username"] for row in listing}
    assert names == {pseudonym(annotator.pk), pseudonym(annotator2.pk)}
    assert api(admin_user).get(f"{API}/annotations/{a3.pk}/").json()["annotator_username"] == "ann2"
    own = api(annotator2).get(f"{API}/annotations/{a3.pk}/").json()
    assert own["annotator_username"] == "ann2"
    # The pseudonym is the one the researcher's own export writes.
    export = _finished(user=researcher)
    data = export_jobs.export_open(export).read().decode()
    assert pseudonym(annotator2.pk) in data and "ann2" not in data


def test_pages_show_researchers_pseudonyms(client, feedback, researcher, admin_user, annotator2):
    a3 = feedback.annotations["a3"]
    client.force_login(researcher)
    pages = [
        f"/projects/{feedback.project.pk}/progress/",
        f"/annotations/{a3.pk}/",
        "/data/exports/",
        f"/annotations/{a3.pk}/heatmap/",
    ]
    for path in pages:
        html = client.get(path).content.decode()
        assert "ann2" not in html and "ann1" not in html, path
    assert pseudonym(annotator2.pk) in client.get(pages[0]).content.decode()
    assert pseudonym(annotator2.pk) in client.get(pages[1]).content.decode()
    assert pseudonym(annotator2.pk) in client.get(pages[3]).content.decode()
    client.force_login(admin_user)
    assert "ann2" in client.get(pages[0]).content.decode()
    assert "ann2" in client.get(pages[2]).content.decode()


def _annotator_ids_in(value, ids: set[int], path: str = "") -> list[str]:
    """Where a JSON answer gives the user id of an annotator (a field named for a person holding an id)."""
    found = []
    if isinstance(value, dict):
        for key, child in value.items():
            person = key in ("annotator", "annotator_id", "judge", "judge_id", "user", "user_id")
            if person and isinstance(child, int) and child in ids:
                found.append(f"{path}.{key}")
            found += _annotator_ids_in(child, ids, f"{path}.{key}")
    elif isinstance(value, list):
        for n, child in enumerate(value):
            found += _annotator_ids_in(child, ids, f"{path}[{n}]")
    return found


def test_every_page_and_api_answer_a_researcher_reaches_names_annotators_by_pseudonym(
    request, client, api, researcher, annotator, annotator2
):
    """Every GET route and API read a researcher may open (the access matrix's tables), on the matrix's
    dataset: no annotator's username anywhere, and no annotator's user id in the API."""
    import re

    from tests.security.test_access_matrix import API as API_TABLE
    from tests.security.test_access_matrix import API_IDS, HTML

    fill = request.getfixturevalue("world")
    usernames = {annotator.username, annotator2.username}
    ids = {annotator.pk, annotator2.pk}
    client.force_login(researcher)
    leaks = {}
    for method, template, cells, *_body in sorted(HTML.values()):
        if method != "get" or cells.split()[1] != "ok":
            continue
        path = template.format(**fill)
        response = client.get(path, follow=True)
        body = b"".join(response.streaming_content) if response.streaming else response.content
        named = [u for u in usernames if u.encode() in body]
        if named:
            leaks[path] = named
    rest = api(researcher)
    for (method, template), cells in sorted(API_TABLE.items()):
        if method != "GET" or cells.split()[1] != "ok":
            continue
        resource = template.split("/")[3]
        path = re.sub(r"\{\w+\}", str(fill[API_IDS.get(resource, "project")]), template)
        response = rest.get(path)
        body = b"".join(response.streaming_content) if response.streaming else response.content
        named = [u for u in usernames if u.encode() in body]
        if response.get("Content-Type", "").startswith("application/json") and not response.streaming:
            named += _annotator_ids_in(json.loads(body), ids)
        if named:
            leaks[path] = named
    assert leaks == {}


def test_the_project_page_names_annotators_by_pseudonym(client, feedback, researcher, admin_user, annotator2):
    path = f"/projects/{feedback.project.pk}/"
    client.force_login(researcher)
    html = client.get(path).content.decode()
    assert pseudonym(annotator2.pk) in html and "by ann2" not in html and "by ann1" not in html
    client.force_login(admin_user)
    assert "by ann2" in client.get(path).content.decode()


def test_the_api_gives_researchers_no_annotator_id(api, feedback, researcher, admin_user, annotator2):
    a3 = feedback.annotations["a3"]  # by ann2
    as_researcher = api(researcher).get(f"{API}/annotations/{a3.pk}/").json()
    assert as_researcher["annotator"] is None and as_researcher["annotator_username"] == pseudonym(
        annotator2.pk
    )
    listing = api(researcher).get(f"{API}/annotations/").json()["results"]
    assert listing and all(row["annotator"] is None for row in listing)
    assert api(admin_user).get(f"{API}/annotations/{a3.pk}/").json()["annotator"] == annotator2.pk
    assert api(annotator2).get(f"{API}/annotations/{a3.pk}/").json()["annotator"] == annotator2.pk
