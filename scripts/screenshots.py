"""Take the README's screenshots of the annotator queue and the annotate page.

Seeds a little demo data into a throwaway SQLite database (a temporary ``T2G_VAR_DIR``, removed afterwards),
starts the development server on a free loopback port, logs in as an annotator in headless Chromium and
saves ``docs/screenshots/queue.png`` and ``docs/screenshots/annotate.png``.

    .venv/bin/python scripts/screenshots.py [--out docs/screenshots] [--chromium /usr/bin/chromium]
"""

from __future__ import annotations

import argparse
import http.client
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
PASSWORD = "screenshot-pass-4821"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
    "--no-first-run",
]
SUMMARY = (
    "The Millbrook council voted 9 to 2 to turn the old railway depot into a public library 📚. "
    "Work starts in March and will cost about 4.2 million dollars, paid entirely by the town. "
    "Mayor Elena Ruiz expects it to open next autumn."
)
CODE = (
    "def below_zero(operations: list[int]) -> bool:\n"
    "    balance = 0\n"
    "    for op in operations:\n"
    "        balance += op\n"
    "    return balance < 0\n"
)


def seed() -> int:
    """Create users, two projects and a draft with spans; return the draft annotation's id."""
    import django

    django.setup()
    from django.contrib.auth import get_user_model

    from annotations import roles, services
    from annotations.demo_data import SUMMARY_INSTRUCTION, SUMMARY_TEXTS
    from annotations.models import Annotation, Generation, Prompt

    User = get_user_model()
    people = {}
    for name in ("annotator1", "annotator2", "annotator3"):
        people[name] = User.objects.create_user(username=name, password=PASSWORD)
        roles.assign_role(people[name], roles.ANNOTATOR)

    news = services.project_create(
        name="News summaries",
        kind="summarization",
        annotations_per_output=2,
        description="Short news items to summarize. Critique omissions, invented facts and filler.",
        instructions="Mark invented or wrong facts as poor, faithful key facts as good. Say why in the critique.",
    )
    code = services.project_create(name="HumanEval code", kind="code", annotations_per_output=1)

    def add(project, prompt_text, output):
        prompt = Prompt(project=project, text=prompt_text)
        prompt.save()
        generation = Generation(prompt=prompt, text=output, source_model="SmolLM2-135M-Instruct")
        generation.save()
        return generation

    first = add(news, SUMMARY_INSTRUCTION + SUMMARY_TEXTS[0], SUMMARY)
    for text in SUMMARY_TEXTS[1:12]:
        add(news, SUMMARY_INSTRUCTION + text, text.split(". ")[0] + ".")
    for i in range(6):
        add(code, f"Complete the function (problem {i}).", CODE.replace("below_zero", f"below_zero_{i}"))

    # Other annotators' finished work, so the progress bars have something to show.
    for name in ("annotator2", "annotator3"):
        for _ in range(5):
            assignment = services.assignment_next(project=news, annotator=people[name])
            if assignment is None:
                break
            annotation = Annotation.objects.get(
                generation_id=assignment.generation_id, annotator=people[name]
            )
            if assignment.generation_id == first.pk:
                services.assignment_skip(
                    assignment=assignment, reason="Leaving this one for the demo", user=people[name]
                )
                continue
            services.span_create(annotation=annotation, start=0, end=4, label="good", user=people[name])
            services.annotation_submit(
                annotation=annotation, overall_critique="Faithful.", rating=4, user=people[name]
            )
    for _ in range(2):
        assignment = services.assignment_next(project=code, annotator=people["annotator1"])
        annotation = Annotation.objects.get(
            generation_id=assignment.generation_id, annotator=people["annotator1"]
        )
        services.span_create(annotation=annotation, start=0, end=3, label="good", user=people["annotator1"])
        services.annotation_submit(
            annotation=annotation, overall_critique="Correct.", rating=5, user=people["annotator1"]
        )

    me = people["annotator1"]
    assignment = services.assignment_next(project=news, annotator=me)
    draft = Annotation.objects.get(generation_id=assignment.generation_id, annotator=me)
    text = draft.generation.text

    def span(phrase, label, critique, weight=1.0):
        start = text.index(phrase)
        return {"start": start, "end": start + len(phrase), "text": phrase, "label": label, "critique": critique,
                "weight": weight}  # fmt: skip

    services.annotation_save_draft(
        annotation=draft,
        user=me,
        overall_critique="Keeps the names and dates, but gets the vote and the funding wrong.",
        rating=2,
        spans=[
            span("voted 9 to 2", "poor", "The vote was 7 to 2.", 2),
            span(
                "will cost about 4.2 million dollars, paid entirely by the town",
                "poor",
                "Most of the cost is covered by a state grant.",
            ),
            span("4.2 million dollars", "good", "The figure itself is right."),
            span("Mayor Elena Ruiz", "good", "Keeps the name."),
        ],  # fmt: skip
    )
    return draft.pk


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_for(port: int, proc: subprocess.Popen) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit("the development server exited during start-up")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", "/healthz")
            if conn.getresponse().status == 200:
                return
        except OSError:
            time.sleep(0.3)
    raise SystemExit("the development server did not answer /healthz")


def shoot(base_url: str, draft_id: int, out: Path, chromium: str) -> None:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, headless=True, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 820}, base_url=base_url)
        page.goto("/accounts/login/")
        page.fill('input[name="username"]', "annotator1")
        page.fill('input[name="password"]', PASSWORD)
        page.click('button[type="submit"]')
        page.goto("/queue/")
        page.wait_for_selector(".queue-row")
        page.screenshot(path=str(out / "queue.png"), full_page=True)

        page.goto(f"/annotations/{draft_id}/")
        page.wait_for_selector('#workspace[data-ready="1"]')
        page.evaluate("document.querySelector('details.instructions')?.removeAttribute('open')")
        # A selection in progress, labelled from the keyboard, critique being typed.
        page.evaluate(
            """() => {
                const node = document.getElementById("output-text");
                const walker = document.createTreeWalker(node, NodeFilter.SHOW_TEXT);
                let text;
                while ((text = walker.nextNode())) {
                    const at = text.data.indexOf("next autumn");
                    if (at >= 0) {
                        const range = document.createRange();
                        range.setStart(text, at);
                        range.setEnd(text, at + "next autumn".length);
                        const selection = window.getSelection();
                        selection.removeAllRanges();
                        selection.addRange(range);
                        return;
                    }
                }
            }"""
        )
        page.keyboard.press("1")
        page.keyboard.type("Right: the text says autumn of next year.")
        page.screenshot(path=str(out / "annotate.png"), full_page=True)
        browser.close()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "docs" / "screenshots")
    parser.add_argument("--chromium", default=os.environ.get("T2G_CHROMIUM", "/usr/bin/chromium"))
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)

    var_dir = tempfile.mkdtemp(prefix="t2g-screenshots-")
    env = {key: value for key, value in os.environ.items() if key != "DATABASE_URL"}
    env |= {"T2G_VAR_DIR": var_dir, "DEBUG": "1", "DJANGO_SETTINGS_MODULE": "text2grad_web.settings"}
    env |= {"LOG_LEVEL": "WARNING", "PYTHONPATH": str(REPO_ROOT)}
    os.environ.clear()
    os.environ.update(env)
    sys.path.insert(0, str(REPO_ROOT))
    server = None
    try:
        subprocess.run(
            [sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"], cwd=REPO_ROOT, check=True
        )
        draft_id = seed()
        port = _free_port()
        server = subprocess.Popen(
            [sys.executable, "manage.py", "runserver", f"127.0.0.1:{port}", "--noreload", "--skip-checks"],
            cwd=REPO_ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        _wait_for(port, server)
        shoot(f"http://127.0.0.1:{port}", draft_id, args.out, args.chromium)
        print(f"wrote {args.out / 'queue.png'} and {args.out / 'annotate.png'}")
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=20)
        shutil.rmtree(var_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
