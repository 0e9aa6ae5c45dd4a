"""Fixtures for the API, export and import tests: a small but awkward feedback dataset and API clients."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest

FINGERPRINT = "f" * 64
OLD_FINGERPRINT = "0" * 64


@pytest.fixture(autouse=True)
def _isolated(request, settings, tmp_path):
    """Exports go to a fresh folder; throttle counters start from zero in every test; the named users'
    passwords hash fast (PBKDF2's million rounds would cost seconds per test and test nothing here)."""
    from django.core.cache import cache

    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    if request.node.get_closest_marker("worker") is None:  # a worker process keeps the session's VAR_DIR
        settings.VAR_DIR = tmp_path / "var"
        settings.VAR_DIR.mkdir()
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def api():
    """An APIClient factory: ``api(user)`` is authenticated with a real token, ``api()`` is anonymous."""
    from rest_framework.authtoken.models import Token
    from rest_framework.test import APIClient

    def _client(user=None) -> APIClient:
        client = APIClient()
        if user is not None:
            token, _ = Token.objects.get_or_create(user=user)
            client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
        return client

    return _client


@dataclass
class Feedback:
    project: object
    other_project: object
    v0: object
    v1: object
    generations: list = field(default_factory=list)
    annotations: dict = field(default_factory=dict)  # name -> Annotation
    rewards: list = field(default_factory=list)


def _at(day: int) -> datetime:
    return datetime(2026, 3, day, 12, 0, tzinfo=UTC)


@pytest.fixture
def feedback(db, project, code_project, annotator, annotator2, researcher, admin_user) -> Feedback:
    """Two projects, two model versions, outputs of one prompt from three sources, annotations by two
    annotators (one a draft) with spans over non-ASCII text, critiques that look like spreadsheet formulas,
    and token rewards under two tokenizers."""
    from annotations.models import Annotation, Generation, Prompt, Span
    from training.models import ModelVersion, TokenReward

    v0 = ModelVersion.objects.create(name="v0-base", base_model="tiny", is_active=True)
    v1 = ModelVersion.objects.create(name="v1", base_model="tiny", parent=v0, adapter_path="v1")
    data = Feedback(project=project, other_project=code_project, v0=v0, v1=v1)

    def prompt(proj, text, **extra):
        row = Prompt(project=proj, text=text, **extra)
        row.save()
        return row

    def output(p, text, version=None, source="", **extra):
        row = Generation(prompt=p, text=text, model_version=version, source_model=source or "", **extra)
        row.save()
        data.generations.append(row)
        return row

    p1 = prompt(project, "Summarize: the cat sat on the mat, then slept.", external_id="s-1")
    p2 = prompt(project, "Summarize: 東京 is big 🌏 and busy.")
    p3 = prompt(code_project, "def add(a, b):")
    g1a = output(
        p1,
        "The cat sat and slept.",
        v0,
        "v0-base",
        prompt_token_ids=[1, 2, 3],
        response_token_ids=[10, 11, 12, 13],
        behaviour_logprobs=[-0.5, -0.25, -1.0, -0.125],
        tokenizer_fingerprint=FINGERPRINT,
    )
    g1b = output(p1, "A dog ran.", v1, "v1")
    g1c = output(p1, "=The cat, the mat.", None, "gpt-x")  # imported; starts like a formula
    g1d = output(p1, "The cat sat on the mat and then it slept well.", v1, "v1")
    g2a = output(p2, '東京 🌏 is big, "really" big\nand busy.', v0, "v0-base")
    g3a = output(p3, "    return a - b", v0, "v0-base")

    def annotate(name, gen, user, *, rating, status="submitted", critique="", day=1, spans=()):
        row = Annotation.objects.create(
            generation=gen,
            annotator=user,
            rating=rating,
            status=status,
            overall_critique=critique,
            submitted_at=_at(day) if status == "submitted" else None,
        )
        for start, end, label, polarity, extra in spans:
            Span.objects.create(
                annotation=row,
                start=start,
                end=end,
                text=gen.text[start:end],
                label=label,
                polarity=polarity,
                **extra,
            )
        data.annotations[name] = row
        return row

    annotate(
        "a1",
        g1a,
        annotator,
        rating=5,
        critique="Faithful, short.",
        day=2,
        spans=[
            (4, 7, "good", 1, {"critique": "names the cat"}),
            (12, 21, "good", 1, {"weight": 0.5, "origin": "aligned", "critique": "+ keeps 'slept'"}),
        ],
    )
    annotate("a2", g1b, annotator, rating=1, critique="-wrong animal", day=3, spans=[(2, 5, "poor", -1, {})])
    annotate(
        "a3",
        g1c,
        annotator2,
        rating=2,
        critique='@mentions, "quotes", and\nnewlines',
        day=4,
        spans=[(1, 8, "poor", -1, {"critique": '=HYPERLINK("x")', "weight": 2.0})],
    )
    annotate("a4", g1d, annotator2, rating=4, critique="", day=5)
    annotate(
        "a5",
        g2a,
        annotator,
        rating=3,
        critique="Keeps 東京 and 🌏",
        day=6,
        spans=[(0, 2, "good", 1, {"critique": "kept the city"}), (3, 4, "good", 1, {"critique": "emoji"})],
    )
    annotate("a6", g3a, annotator2, rating=1, critique="\tsubtracts", day=7, spans=[(11, 16, "poor", -1, {})])
    annotate("draft", g1a, annotator2, rating=None, status="draft", critique="half done")
    annotate("a7", g1b, annotator2, rating=2, critique="dog?", day=8)

    def reward(name, fingerprint, token_ids, rewards, prompt_ids):
        row = TokenReward(
            annotation=data.annotations[name],
            tokenizer_fingerprint=fingerprint,
            token_ids=token_ids,
            offsets=[[i, i + 1] for i in range(len(token_ids))],
            rewards=rewards,
        )
        if hasattr(row, "prompt_token_ids"):
            row.prompt_token_ids = prompt_ids
        row.save()
        data.rewards.append(row)
        return row

    old = reward("a1", OLD_FINGERPRINT, [7, 7], [0.0, 1.0], [9])
    reward("a1", FINGERPRINT, [10, 11, 12, 13], [0.0, 1.0, 0.5, 0.0], [1, 2, 3])
    reward("a2", FINGERPRINT, [20, 21, 22], [0.0, -1.0, 0.0], [1, 2, 3])
    reward("a3", FINGERPRINT, [30, 31], [-2.0, -2.0], [1, 2, 3])
    reward("a6", FINGERPRINT, [40, 41, 42, 43], [0.0, 0.0, -1.0, -1.0], [4, 5])
    TokenReward.objects.filter(pk=old.pk).update(computed_at=_at(1) - timedelta(days=30))
    return data
