"""The Content-Security-Policy in a real browser: every page of every role (and the error pages the
others get) loads in Chromium with no CSP violation, and every HTML answer carries the policy."""

from __future__ import annotations

import json

import pytest

from tests.security.test_access_matrix import HTML, ROLES, world  # noqa: F401 (fixture)
from tests.workspace.conftest import browser, page  # noqa: F401 (fixtures)

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

# Not pages: JSON, a YAML schema, a file download.
NOT_PAGES = {"healthz", "api-schema", "data_export_download", "campaign_preferences"}
EXTRA_ADMIN_PAGES = [
    "/admin/annotations/project/",
    "/admin/annotations/project/{project}/change/",
    "/admin/auth/user/",
]

RECORD_VIOLATIONS = """
window.__csp = [];
document.addEventListener("securitypolicyviolation", (e) => {
  window.__csp.push(`${e.violatedDirective} blocked ${e.blockedURI || "inline"} at ${e.sourceFile}:${e.lineNumber}`);
});
"""


def _pages_for(role_index: int, world_ids: dict) -> list[str]:
    paths = []
    for name, (method, template, cells, *_body) in sorted(HTML.items()):
        if method != "get" or name in NOT_PAGES or cells.split()[role_index] in ("L", "R"):
            continue
        paths.append(template.format(**world_ids))
    if ROLES[role_index] == "admin_user":
        paths += [path.format(**world_ids) for path in EXTRA_ADMIN_PAGES]
    return paths


def test_every_page_of_every_role_keeps_the_csp(request, browser, live_server, world):  # noqa: F811
    from django.conf import settings
    from django.test import Client

    problems: dict[str, list[str]] = {}
    visited = 0
    for index, role in enumerate(ROLES):
        context = browser.new_context(base_url=live_server.url)
        context.add_init_script(RECORD_VIOLATIONS)
        tab = context.new_page()
        console: list[str] = []
        tab.on("console", lambda message, sink=console: sink.append(message.text))
        if role is not None:
            client = Client()
            client.force_login(request.getfixturevalue(role))
            cookie = client.cookies[settings.SESSION_COOKIE_NAME].value
            context.add_cookies(
                [{"name": settings.SESSION_COOKIE_NAME, "value": cookie, "url": live_server.url}]
            )
        paths = _pages_for(index, world) if role is not None else ["/accounts/login/", "/api/v1/docs/"]
        for path in paths:
            console.clear()
            response = tab.goto(path)
            policy = response.headers.get("content-security-policy", "")
            tab.wait_for_timeout(400)  # htmx swaps and app.js run
            found = tab.evaluate("window.__csp") + [
                text for text in console if "Content Security Policy" in text
            ]
            if "frame-ancestors 'none'" not in policy or "style-src 'self'" not in policy:
                found.append(f"policy header missing or loose: {policy!r}")
            if found:
                problems[f"{role or 'anonymous'} {path}"] = found
            visited += 1
        context.close()
    assert problems == {}
    assert visited > 50


def test_the_report_endpoint_logs_violations(client, caplog):
    report = {
        "csp-report": {
            "document-uri": "http://x/p",
            "violated-directive": "style-src",
            "blocked-uri": "inline",
        }
    }
    response = client.post("/csp-report/", json.dumps(report), content_type="application/csp-report")
    assert response.status_code == 204
    assert "CSP violation: style-src blocked inline on http://x/p" in caplog.text
    assert client.post("/csp-report/", "[" * 10_000, content_type="application/json").status_code == 400
    assert client.get("/csp-report/").status_code == 405


def test_the_annotate_page_in_use_keeps_the_csp(
    browser,  # noqa: F811 (the fixture imported above)
    live_server,
    project,
    make_generation,
    annotator,
):
    """Labelling a span (popover placement, highlights) and autosave set styles through the CSSOM, which
    the policy allows; nothing here bypasses the CSP."""
    from django.conf import settings
    from django.test import Client

    from annotations import services
    from annotations.models import Annotation
    from tests.workspace.conftest import select_phrase

    make_generation(project, "The cat sat on the mat and then it slept.")
    assignment = services.assignment_next(project=project, annotator=annotator)
    annotation = Annotation.objects.get(generation=assignment.generation, annotator=annotator)
    context = browser.new_context(base_url=live_server.url, viewport={"width": 1280, "height": 900})
    context.add_init_script(RECORD_VIOLATIONS)
    tab = context.new_page()
    console: list[str] = []
    tab.on("console", lambda message: console.append(message.text))
    client = Client()
    client.force_login(annotator)
    cookie = client.cookies[settings.SESSION_COOKIE_NAME].value
    context.add_cookies([{"name": settings.SESSION_COOKIE_NAME, "value": cookie, "url": live_server.url}])
    tab.goto(f"/annotations/{annotation.pk}/")
    tab.wait_for_selector('#workspace[data-ready="1"]')
    select_phrase(tab, "cat sat", mouse=True)
    tab.keyboard.press("1")
    tab.wait_for_selector("#span-popover:not([hidden])")
    tab.keyboard.type("names the cat")
    tab.keyboard.press("Control+Enter")
    tab.wait_for_selector(".span-item")
    tab.keyboard.press("?")
    tab.wait_for_timeout(300)
    tab.keyboard.press("Escape")
    tab.wait_for_timeout(300)
    violations = tab.evaluate("window.__csp") + [
        text for text in console if "Content Security Policy" in text
    ]
    context.close()
    assert annotation.spans.count() == 1
    assert violations == []
