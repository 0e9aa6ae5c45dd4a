"""SIGKILL the web process in the middle of a submit: the transaction rolls back as a whole (no half
submission, no orphan outbox row), and the annotator's retry submits it and gets its token rewards."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import pytest
import requests
from django.db import transaction
from rest_framework.authtoken.models import Token

from annotations.models import Annotation
from jobs.models import Outbox
from tests.conftest import _make_user, wait_for
from training.models import TokenReward

pytestmark = [pytest.mark.faults, pytest.mark.worker, pytest.mark.django_db(transaction=True)]


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if int((entry / "stat").read_text().split()[3]) == pid:
                    found.append(int(entry.name))
            except (OSError, ValueError, IndexError):
                continue
    return found


def test_a_web_process_killed_mid_submit_leaves_nothing_half_done(
    project, make_generation, django_user_model, web_server, fault_worker
):
    user = _make_user(django_user_model, "killed-web-ann", "annotator")
    token = Token.objects.create(user=user).key
    generation = make_generation(project, "The ferry takes 35 minutes. It carries 60 cars.")
    draft = Annotation.objects.create(generation=generation, annotator=user, status="draft")
    fault_worker("web-kill", queues="interactive")
    url = f"{web_server.url}/api/v1/annotations/{draft.pk}/submit/"
    headers = {"Authorization": f"Token {token}"}
    outcome = {}

    def submit():
        try:
            outcome["response"] = requests.post(url, json={"overall_critique": "Right.", "rating": 4},
                                                headers=headers, timeout=60)  # fmt: skip
        except requests.RequestException as exc:
            outcome["error"] = exc

    (worker_pid,) = _children(web_server.proc.pid)  # one gunicorn worker process
    with transaction.atomic():
        Annotation.objects.select_for_update().get(pk=draft.pk)  # the submit waits inside its transaction
        thread = threading.Thread(target=submit)
        thread.start()
        time.sleep(2)
        assert thread.is_alive()  # still waiting for the row lock, mid-request
        os.kill(worker_pid, signal.SIGKILL)
        thread.join(timeout=30)
    assert "error" in outcome or outcome["response"].status_code >= 500
    draft.refresh_from_db()
    assert draft.status == "draft" and draft.submitted_at is None
    assert not Outbox.objects.filter(task_name="training.compute_rewards", args=[draft.pk]).exists()

    # gunicorn starts a new worker process; the annotator submits again.
    wait_for(lambda: len(_children(web_server.proc.pid)) == 1 and _children(web_server.proc.pid) != [worker_pid],
             timeout=60, message="a new web worker")  # fmt: skip
    response = wait_for(lambda: requests.post(url, json={"overall_critique": "Right.", "rating": 4},
                                              headers=headers, timeout=30), timeout=30, message="the retry")  # fmt: skip
    assert response.status_code == 200, response.text
    wait_for(
        lambda: TokenReward.objects.filter(annotation_id=draft.pk).exists(), timeout=90, message="rewards"
    )
