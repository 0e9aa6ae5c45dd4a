"""End to end in real headless Chromium: two annotators disagree, a reviewer adjudicates from the keyboard,
and a round trained on gold only learns from exactly the gold spans (its token rewards are checked)."""

from __future__ import annotations

import os

import pytest
from django.core.management import call_command
from django.urls import reverse

from annotations.models import Annotation, Review
from annotations.services import project_create
from text2grad.engine import Sample
from text2grad.rewards import SpanReward, token_rewards_from_offsets
from training.models import TokenReward, TrainingRound

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.django_db(transaction=True)]

TEXT = "The capital of Australia is Sydney. Its parliament sits in Canberra since 1927."
FAST = '{"steps": 1, "batch_size": 1, "minibatch_size": 1, "ppo_epochs": 1, "seed": 0}'

# Select a phrase inside #rv-text (across its text nodes) as a DOM selection.
_SELECT_JS = """
(phrase) => {
  const root = document.getElementById("rv-text");
  const walker = document.createTreeWalker(root, NodeFilter.SHOW_TEXT);
  const nodes = []; let total = 0, node;
  while ((node = walker.nextNode())) { nodes.push([node, total]); total += node.data.length; }
  const at = nodes.map(([n]) => n.data).join("").indexOf(phrase);
  const locate = (unit, next) => {
    for (const [n, offset] of nodes) {
      const end = offset + n.data.length;
      if (unit < end || (unit === end && !next)) return [n, unit - offset];
    }
  };
  const range = document.createRange();
  range.setStart(...locate(at, true));
  range.setEnd(...locate(at + phrase.length, false));
  const selection = window.getSelection(); selection.removeAllRanges(); selection.addRange(range);
}
"""


def test_reviewer_adjudicates_and_a_gold_round_trains_on_the_gold_spans(
    page, live_server, login_browser, annotator, annotator2, reviewer, submit, tiny_settings
):
    project = project_create(name="Geography", annotations_per_output=2)  # labels: 1 good, 2 poor
    from annotations.models import Generation, Prompt

    prompt = Prompt(project=project, text="Where does Australia's parliament sit?")
    prompt.save()
    generation = Generation(prompt=prompt, text=TEXT, source_model="test")
    generation.save()
    # Two annotators disagree: one flags the false claim, the other praises the first sentence.
    first = submit(annotator, generation, [("is Sydney", "poor", "Wrong: Canberra.")], rating=2)
    second = submit(
        annotator2, generation, [("The capital of Australia is Sydney.", "good", "Clear.")], rating=4
    )

    login_browser(reviewer)
    page.goto(reverse("review_queue", args=[project.pk]))
    page.click("#review-start")
    page.wait_for_selector('#review[data-ready="1"]')
    assert page.url.endswith(reverse("review_output", args=[generation.pk]))
    assert page.evaluate("document.getElementById('rv-text').textContent") == TEXT
    # Both annotators are overlaid; the disputed stretch is marked as such; hiding A2 leaves A1's poor span.
    assert page.locator("#rv-text mark.rv-both").count() >= 1
    page.keyboard.press("Shift+Digit2")
    assert (
        page.locator("#rv-text mark.rv-both").count() == 0
        and page.locator("#rv-text mark.rv-poor").count() == 1
    )
    page.keyboard.press("Shift+Digit2")
    assert annotator.username not in page.content()

    # Verdicts from the keyboard: J to A1, C to comment, Esc, A to accept; then A2 rejected.
    page.keyboard.press("j")
    page.keyboard.press("c")
    page.keyboard.type("Right call.")
    page.keyboard.press("Escape")
    with page.expect_navigation():
        page.keyboard.press("a")
    page.wait_for_selector('#review[data-ready="1"]')
    page.keyboard.press("j")  # the page came back focused on A1; J moves to A2
    page.keyboard.press("c")
    page.keyboard.type("The first sentence is false.")
    page.keyboard.press("Escape")
    with page.expect_navigation():
        page.keyboard.press("r")
    page.wait_for_selector('#review[data-ready="1"]')
    assert Review.objects.get(annotation=first).verdict == "accepted"
    rejected = Review.objects.get(annotation=second)
    assert (rejected.verdict, rejected.comment, rejected.reviewer) == (
        "rejected",
        "The first sentence is false.",
        reviewer,
    )

    if os.environ.get("T2G_SCREENSHOTS"):  # for looking at the page: T2G_SCREENSHOTS=/tmp/shots
        page.screenshot(path=f"{os.environ['T2G_SCREENSHOTS']}/review.png", full_page=True)
    # Adjudicate: take A1's poor span, add a good span by selecting text and pressing 1, edit a critique.
    page.click(f'#annotation-{first.pk} [data-take="0:0"]')
    page.evaluate(_SELECT_JS, "sits in Canberra")
    page.keyboard.press("1")
    assert page.locator("#gold-spans li").count() == 2
    page.locator('#gold-spans li[data-gold-index="1"] input[type=text]').fill("Correct city.")
    page.fill("#id_overall_critique", "Sydney is wrong; Canberra is right.")
    with page.expect_navigation():
        page.keyboard.press("Control+s")
    assert not page.errors, page.errors
    if os.environ.get("T2G_SCREENSHOTS"):
        page.screenshot(path=f"{os.environ['T2G_SCREENSHOTS']}/review-gold.png", full_page=True)
        page.goto(reverse("review_output", args=[generation.pk]) + "?view=side")
        page.screenshot(path=f"{os.environ['T2G_SCREENSHOTS']}/side-by-side.png", full_page=True)
        page.goto(reverse("project_agreement", args=[project.pk]))
        page.screenshot(path=f"{os.environ['T2G_SCREENSHOTS']}/agreement.png", full_page=True)

    gold = Annotation.objects.get(generation=generation, is_gold=True)
    spans = [(s.start, s.end, s.label, s.polarity, s.critique) for s in gold.spans.order_by("start")]
    poor_at, good_at = TEXT.index("is Sydney"), TEXT.index("sits in Canberra")
    assert spans == [
        (poor_at, poor_at + 9, "poor", -1, "Wrong: Canberra."),
        (good_at, good_at + 16, "good", 1, "Correct city."),
    ]
    assert (
        gold.overall_critique == "Sydney is wrong; Canberra is right." and gold.gold_origin == "adjudicated"
    )

    # The annotators see their verdicts, not the gold.
    login_browser(annotator2)
    page.goto(reverse("annotate", args=[second.pk]))
    assert "The first sentence is false." in page.inner_text("#review-verdict")
    assert "Correct city." not in page.content()

    # A round on gold only: exactly the gold annotation, and exactly its token rewards.
    call_command("train_round", "--project", project.name, "--review", "gold", "--config", FAST)
    training_round = TrainingRound.objects.get()
    assert training_round.status == "succeeded" and training_round.snapshot == [gold.pk]
    assert training_round.selection["review"] == "gold"
    reward = TokenReward.objects.get(annotation=gold)
    expected = token_rewards_from_offsets(
        [tuple(pair) for pair in reward.offsets],
        [SpanReward(start, end, polarity=polarity) for start, end, _, polarity, _ in spans],
    )
    assert reward.rewards == expected and min(expected) == -1.0 and max(expected) == 1.0
    from training.worker.rounds import rewards_digest

    trained = Sample(
        prompt_ids=reward.prompt_token_ids, response_ids=reward.token_ids, token_rewards=expected
    )
    assert training_round.summary["rewards_digest"] == rewards_digest([trained])
