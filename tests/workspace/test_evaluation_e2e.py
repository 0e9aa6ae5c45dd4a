"""End to end: a campaign of two versions through a real worker, judged blind in Chromium, and the
results page names the version the judge preferred."""

from __future__ import annotations

import pytest

from annotations.models import Generation, Prompt
from evaluation import services
from evaluation.models import EvaluationCampaign, EvaluationOutput, PairwiseJudgement
from tests.conftest import wait_for
from training.models import ModelVersion

pytestmark = [pytest.mark.browser, pytest.mark.worker, pytest.mark.django_db(transaction=True)]


def _perturbed_adapter(base_dir, dest):
    """A LoRA adapter whose B matrices are random (a fresh one equals the base model exactly)."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(base_dir)
    lora = LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM")
    peft_model = get_peft_model(model, lora)
    torch.manual_seed(1)
    with torch.no_grad():
        for name, parameter in peft_model.named_parameters():
            if "lora_B" in name:
                parameter.normal_(0.0, 2.0)
    peft_model.save_pretrained(dest)
    return dest


def test_campaign_through_the_worker_judged_in_chromium(
    celery_worker_process, tiny_model_dir, tmp_path, login_browser, project, admin_user, annotator, researcher
):
    for number in range(3):
        Prompt(project=project, text=f"Summarize: fact number {number} is true.", held_out=True).save()
    base = ModelVersion.objects.create(name="v0-base", base_model=str(tiny_model_dir), is_active=True)
    tuned = ModelVersion.objects.create(
        name="v1-tuned",
        base_model=str(tiny_model_dir),
        parent=base,
        adapter_path=str(_perturbed_adapter(tiny_model_dir, tmp_path / "v1-tuned")),
    )
    campaign = services.campaign_create(
        name="Base vs tuned",
        project=project,
        versions=[base, tuned],
        prompt_count=3,
        sampling_params={"max_new_tokens": 12},
        seed=11,
        created_by=admin_user,
    )

    def opened():
        campaign.refresh_from_db()
        assert campaign.status != EvaluationCampaign.Status.FAILED, campaign.error
        return campaign.status == EvaluationCampaign.Status.JUDGING

    wait_for(opened, timeout=180, message="the campaign's outputs")
    outputs = list(EvaluationOutput.objects.filter(campaign=campaign))
    assert len(outputs) == 6 and campaign.progress_step == campaign.progress_total == 6
    assert {o.sampling_params["seed"] for o in outputs if o.model_version == base} == {
        o.sampling_params["seed"] for o in outputs if o.model_version == tuned
    }
    texts = {(o.prompt_id, o.model_version_id): o.text for o in outputs}
    assert any(texts[(p, base.pk)] != texts[(p, tuned.pk)] for p, _ in texts)
    assert Generation.objects.count() == 0  # evaluation outputs stay out of the annotation queue

    page = login_browser(annotator)
    page.goto(f"/evaluation/{campaign.pk}/judge/")
    for turn in range(3):
        page.wait_for_selector("[data-judge-form]")
        lease = PairwiseJudgement.objects.get(judge=annotator, status=PairwiseJudgement.Status.LEASED)
        assert "v1-tuned" not in page.content() and "v0-base" not in page.content()  # blind
        tuned_side = "a" if lease.left.model_version_id == tuned.pk else "b"
        if turn == 0:  # a click with a reason
            page.fill("textarea[name=reason]", "More on topic.")
            page.click(f'button[data-verdict="{tuned_side}"]')
        else:  # the keyboard shortcut
            page.keyboard.press("1" if tuned_side == "a" else "2")
        wait_for(
            lambda lease=lease: PairwiseJudgement.objects.get(pk=lease.pk).status == "submitted",
            timeout=15,
            message="the verdict to be stored",
        )
    page.wait_for_selector(".eval-done")
    first = PairwiseJudgement.objects.filter(judge=annotator).order_by("id").first()
    assert first.reason == "More on topic."
    assert all(j.chosen.model_version_id == tuned.pk for j in PairwiseJudgement.objects.all())
    assert {j.first_on_left for j in PairwiseJudgement.objects.all()} <= {True, False}

    login_browser(researcher)
    page.goto(f"/evaluation/{campaign.pk}/")
    assert page.locator(".eval-leader").get_attribute("data-leader") == "v1-tuned"
    # The standings and win-rate charts (uPlot): one point per version, one per pair.
    page.wait_for_function("(window.t2gCharts || []).length === 2")
    assert page.evaluate("window.t2gCharts.map(u => u.data[0].length)") == [2, 1]
    assert page.errors == [] and page.dialogs == []
