"""Fixtures for agreement, review and gold: a reviewer, a third annotator, and submitted annotations made
through the real services (lease, spans, submit)."""

from __future__ import annotations

import pytest

from tests.conftest import _make_user, torch_threads
from tests.workspace.conftest import browser, login_browser, page  # noqa: F401  (the browser fixtures)


@pytest.fixture
def annotator3(db, django_user_model):
    return _make_user(django_user_model, "ann3", "annotator")


@pytest.fixture
def submit(django_capture_on_commit_callbacks):
    """submit(user, generation, spans=[(phrase, label, critique)], rating=None) -> the submitted Annotation.

    Goes through the queue (the annotator is leased exactly this output) and the annotating services; the
    post-commit receivers (agreement, rewards) run."""
    from django.utils import timezone

    from annotations import services
    from annotations.models import Annotation, Assignment
    from annotations.services.queue import lease_until

    def _submit(user, generation, spans=(), rating=None, critique="overall"):
        now = timezone.now()
        Assignment.objects.create(
            generation=generation, annotator=user, leased_at=now, expires_at=lease_until(now)
        )
        annotation = Annotation.objects.create(generation=generation, annotator=user)
        for phrase, label, span_critique in spans:
            start = generation.text.index(phrase)
            services.span_create(
                annotation=annotation,
                start=start,
                end=start + len(phrase),
                label=label,
                text=phrase,
                critique=span_critique,
                user=user,
            )
        with django_capture_on_commit_callbacks(execute=True):
            services.annotation_submit(
                annotation=annotation, overall_critique=critique, rating=rating, user=user
            )
        annotation.refresh_from_db()
        return annotation

    return _submit


@pytest.fixture
def tiny_settings(settings, tiny_model_dir, tmp_path):
    """Point the model store at the tiny model and a throwaway models folder."""
    settings.T2G_BASE_MODEL = str(tiny_model_dir)
    settings.T2G_MODELS_DIR = tmp_path / "models"
    settings.T2G_TORCH_THREADS = torch_threads()  # this process's share (tests/conftest.py)
    return settings
