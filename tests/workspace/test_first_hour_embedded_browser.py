"""The first hour on `make run`'s own stack (issue 24), in Chromium: ``scripts/run.sh`` on the embedded
defaults (SQLite, the filesystem broker, local artifacts, a worker per lane with its thread cap, the
supervisor, the endpoint), seeded as `make run` seeds it, in a var folder of the test's own.

Two annotators annotate the generated news summaries side by side and submit at the same moment, three
times; their token rewards come from the embedded interactive worker; the admin launches a round from the
Training page and watches it finish. No lane's worker may crash meanwhile: the supervisor logs no exit,
no worker log holds a traceback, the admin sees no restart banner and /healthz has every lane up.

The one model difference from `make run`: a tiny random llama with SmolLM2's tokenizer (``T2G_BASE_MODEL``),
12 new tokens an output, and two HumanEval problems seeded instead of 164, so the walk costs about a
minute of CPU (the stack's start is most of it)."""

from __future__ import annotations

import json
import re

import pytest

from tests.support.stack import embedded_stack, wait_until
from training.management.commands.seed_demo import CODE_PROJECT, DEMO_USERS, SUMMARY_PROJECT

from .conftest import critique_first_word_by_keyboard

pytestmark = [pytest.mark.browser]

PASSWORD = "first-hour-{}-embedded"


@pytest.fixture
def stack(tmp_path, tiny_model_dir):
    from django.conf import settings

    # The critique aligner's clause classifier is trained once per var folder: the session's, shared.
    aligner_cache = settings.VAR_DIR / "cache" / "alignment"
    aligner_cache.mkdir(parents=True, exist_ok=True)
    passwords = {variable: PASSWORD.format(username) for username, _role, variable in DEMO_USERS}
    stack = embedded_stack(tmp_path / "var", base_model=tiny_model_dir, aligner_cache=aligner_cache,
                           extra_env={"T2G_MAX_NEW_TOKENS": "12", **passwords})  # fmt: skip
    stack.manage("migrate", "--noinput")
    stack.manage("collectstatic", "--noinput", "-v", "0")
    stack.manage("seed_demo", "--code-limit", "2", "--credentials-to-file-only")
    stack.start()
    try:
        wait_until(stack.lanes_up, 300, "every lane's worker up (/healthz)", stack=stack)
        yield stack
    finally:
        stack.stop()


def _tab(browser, stack):
    context = browser.new_context(base_url=stack.url, viewport={"width": 1280, "height": 900})
    context.set_default_timeout(30_000)
    tab = context.new_page()
    tab.errors = []
    tab.on("pageerror", lambda error: tab.errors.append(str(error)))
    tab.on(
        "response",
        lambda response: response.status >= 500 and tab.errors.append(f"{response.status} {response.url}"),
    )
    return tab


def _log_in(tab, username: str):
    tab.goto("/accounts/login/")
    tab.fill('input[name="username"]', username)
    tab.fill('input[name="password"]', PASSWORD.format(username))
    tab.click('button[type="submit"]')
    tab.wait_for_url(lambda url: "/login" not in url)


def _queue_row(tab, project_id: int):
    tab.goto("/queue/")
    return tab.locator(f'.queue-row[data-project="{project_id}"]')


def _annotation_pk(tab) -> int:
    match = re.search(r"/annotations/(\d+)/?$", tab.url)
    assert match, tab.url
    return int(match.group(1))


def _annotate(tab, critique: str) -> int:
    """In the open workspace: a poor span on the first word with a critique, an overall critique and a
    rating (autosaved). Returns the annotation's id."""
    tab.wait_for_selector('#workspace[data-ready="1"]')
    critique_first_word_by_keyboard(tab, tab.locator("#output-text").inner_text(), critique)
    return _annotation_pk(tab)


def test_the_first_hour_on_make_runs_embedded_stack(stack, browser):
    (summaries,) = stack.query("SELECT id FROM annotations_project WHERE name = ?", (SUMMARY_PROJECT,))[0]
    (code,) = stack.query("SELECT id FROM annotations_project WHERE name = ?", (CODE_PROJECT,))[0]
    first, second, admin = (_tab(browser, stack) for _ in range(3))
    for tab, username in ((first, "annotator1"), (second, "annotator2"), (admin, "admin")):
        _log_in(tab, username)

    # The seed queued generation for both projects; the embedded generation worker writes the outputs.
    wait_until(lambda: _queue_row(first, summaries).get_by_role("button", name="Start").count(), 180,
               "the first summaries in annotator1's queue", interval=2, stack=stack)  # fmt: skip
    _queue_row(first, summaries).get_by_role("button", name="Start").click()
    _queue_row(second, summaries).get_by_role("button", name="Start").click()

    # Side by side, three times: both annotate, then both submit at the same moment (neither waits for the
    # other's request): the concurrent writers that crashed kombu's filesystem transport.
    submitted = []
    for _turn in range(3):
        pairs = [(first, _annotate(first, "Invented words, not from the item.")),
                 (second, _annotate(second, "Gibberish: says nothing of the news."))]  # fmt: skip
        for tab, _pk in pairs:
            tab.locator("body").click(position={"x": 5, "y": 5})
            tab.keyboard.press("Control+Enter")
        for tab, pk in pairs:
            tab.wait_for_url(lambda url, pk=pk: not url.rstrip("/").endswith(f"/annotations/{pk}"))
            submitted.append(pk)
    marks = ",".join("?" * len(submitted))
    rows = stack.query(f"SELECT COUNT(*) FROM annotations_annotation WHERE id IN ({marks}) AND status = 'submitted'",
                       tuple(submitted))  # fmt: skip
    assert len(set(submitted)) == 6 and rows == [(6,)]
    rewards_sql = (
        f"SELECT COUNT(DISTINCT annotation_id) FROM annotations_tokenreward WHERE annotation_id IN ({marks})"
    )
    wait_until(lambda: stack.query(rewards_sql, tuple(submitted)) == [(6,)], 90,
               "token rewards from the embedded interactive worker", stack=stack)  # fmt: skip

    # The admin launches a small round on the summaries and watches it finish on the round page.
    admin.goto("/training/")
    admin.select_option('select[name="project"]', str(summaries))
    for name, value in (("steps", "1"), ("batch_size", "2"), ("minibatch_size", "2"), ("ppo_epochs", "1")):
        admin.fill(f'input[name="{name}"]', value)
    admin.get_by_role("button", name="Launch round").click()
    admin.wait_for_selector("#round-live")
    admin.wait_for_selector('#round-live[data-status="succeeded"]', timeout=240_000)
    ((status, snapshot, version),) = stack.query(
        "SELECT status, snapshot, output_version_id FROM training_traininground"
    )
    assert status == "succeeded" and sorted(json.loads(snapshot)) == sorted(submitted) and version is not None

    # Both seeded projects got outputs from the one generation lane.
    generated = dict(stack.query("SELECT p.project_id, COUNT(*) FROM annotations_generation g JOIN "
                                 "annotations_prompt p ON g.prompt_id = p.id GROUP BY p.project_id"))  # fmt: skip
    assert generated.get(summaries, 0) >= 3 and generated.get(code, 0) >= 1, generated

    # No lane crashed: the supervisor restarted nothing, no worker logged a traceback, admins see no restart
    # banner, every lane is up.
    logs = stack.logs()
    assert "exited with status" not in logs and "Traceback" not in logs, logs[-6000:]
    admin.goto("/")
    assert admin.locator(".lane-alert").count() == 0, admin.locator(".lane-alert").all_inner_texts()
    assert stack.lanes_up(), stack.health()
    for tab in (first, second, admin):
        assert tab.errors == [], tab.errors
        tab.context.close()
