"""Evaluation campaigns: blind pairwise judgements between model versions on a fixed prompt set.

A campaign freezes its versions, prompts and sampling settings. The worker writes one EvaluationOutput per
(prompt, version) with the same settings and seed for every version; these are not Generations, so they
never enter the annotation queue, the exports or a training round. Each (prompt, pair of versions) is a
PairwiseTask; a PairwiseJudgement is one judge's lease on a task and, once submitted, their verdict.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.functional import cached_property

from jobs.models import Job


class EvaluationCampaign(models.Model):
    class Status(models.TextChoices):
        GENERATING = "generating"  # the worker is writing outputs (queued or running)
        JUDGING = "judging"
        CLOSED = "closed"
        FAILED = "failed"

    name = models.CharField(max_length=200)
    project = models.ForeignKey("annotations.Project", on_delete=models.PROTECT, related_name="+")
    versions = models.ManyToManyField("training.ModelVersion", related_name="evaluation_campaigns")
    prompts = models.ManyToManyField("annotations.Prompt", related_name="+")
    judgements_per_pair = models.PositiveSmallIntegerField(
        default=1, help_text="Judgements wanted for each prompt and pair of versions."
    )
    sampling_params = models.JSONField(default=dict)
    judges = models.ManyToManyField(
        settings.AUTH_USER_MODEL, blank=True, related_name="+", help_text="Empty: every annotator."
    )
    seed = models.PositiveIntegerField(default=0, help_text="Sampling, side randomisation and bootstrap.")
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.GENERATING)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    closed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.CheckConstraint(condition=Q(judgements_per_pair__gte=1), name="campaign_quota_positive"),
        ]

    def __str__(self) -> str:
        return f"Campaign {self.pk}: {self.name}"

    # The outputs are written by a job of the one framework (``CampaignGeneration``: claim, fencing,
    # heartbeat, cancel, the one reaper); what pages show of it comes from the campaign's latest job.
    @cached_property
    def generation(self) -> CampaignGeneration | None:
        return self.generations.order_by("-id").first()

    def refresh_from_db(self, *args, **kwargs) -> None:
        self.__dict__.pop("generation", None)  # a page or test polling the campaign sees its job move
        super().refresh_from_db(*args, **kwargs)

    @property
    def worker_status(self) -> str:
        return self.generation.status if self.generation else ""

    @property
    def progress_step(self) -> int:
        return self.generation.progress_step if self.generation else 0

    @property
    def progress_total(self) -> int:
        return self.generation.progress_total if self.generation else 0

    @property
    def percent(self) -> int:
        return self.generation.percent if self.generation else 0

    @property
    def error(self) -> str:
        return self.generation.error if self.generation else ""


class CampaignGeneration(Job):
    """One run of writing a campaign's outputs (every version's output for every prompt, then the code
    tests): a job like a generation job, on the generation lane. A retry is a new row; each resumes
    after the outputs already written."""

    campaign = models.ForeignKey(EvaluationCampaign, on_delete=models.CASCADE, related_name="generations")

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"Generation {self.pk} of campaign {self.campaign_id} ({self.status})"


class EvaluationOutput(models.Model):
    """One version's output for one campaign prompt."""

    campaign = models.ForeignKey(EvaluationCampaign, on_delete=models.CASCADE, related_name="outputs")
    prompt = models.ForeignKey("annotations.Prompt", on_delete=models.CASCADE, related_name="+")
    model_version = models.ForeignKey("training.ModelVersion", on_delete=models.PROTECT, related_name="+")
    text = models.TextField()
    response_tokens = models.PositiveIntegerField(default=0)
    finish_reason = models.CharField(max_length=20, blank=True)
    sampling_params = models.JSONField(default=dict, blank=True)
    tests_passed = models.BooleanField(null=True, blank=True, help_text="Code projects: unit tests passed.")
    test_detail = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(
                fields=["campaign", "prompt", "model_version"], name="eval_output_once_per_version"
            )
        ]

    def __str__(self) -> str:
        return f"Output of version {self.model_version_id} for prompt {self.prompt_id}"


class PairwiseTask(models.Model):
    """One prompt and two versions' outputs to compare; ``first`` has the lower version id."""

    campaign = models.ForeignKey(EvaluationCampaign, on_delete=models.CASCADE, related_name="tasks")
    prompt = models.ForeignKey("annotations.Prompt", on_delete=models.CASCADE, related_name="+")
    first = models.ForeignKey(EvaluationOutput, on_delete=models.CASCADE, related_name="+")
    second = models.ForeignKey(EvaluationOutput, on_delete=models.CASCADE, related_name="+")
    order_key = models.PositiveIntegerField(default=0, help_text="Seeded shuffle: judges see pairs mixed.")
    submitted_count = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["order_key", "id"]
        constraints = [
            models.UniqueConstraint(fields=["first", "second"], name="pairwise_task_once"),
        ]
        indexes = [models.Index(fields=["campaign", "submitted_count", "order_key"])]

    def __str__(self) -> str:
        return f"Task {self.pk} (campaign {self.campaign_id}, prompt {self.prompt_id})"


class PairwiseJudgement(models.Model):
    """A judge's lease on a task and, once submitted, their blind verdict."""

    class Status(models.TextChoices):
        LEASED = "leased"
        SUBMITTED = "submitted"
        EXPIRED = "expired"

    class Verdict(models.TextChoices):
        A = "a", "A is better"
        B = "b", "B is better"
        TIE = "tie", "Tie"
        BOTH_BAD = "both_bad", "Both bad"

    task = models.ForeignKey(PairwiseTask, on_delete=models.CASCADE, related_name="judgements")
    judge = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    first_on_left = models.BooleanField(help_text="Whether output A (left) is the task's first output.")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.LEASED)
    verdict = models.CharField(max_length=10, choices=Verdict.choices, blank=True)
    reason = models.TextField(blank=True)
    leased_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField()
    submitted_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            # Never the same judge twice on one task.
            models.UniqueConstraint(fields=["task", "judge"], name="judgement_once_per_judge"),
        ]

    def __str__(self) -> str:
        return f"{self.judge} on task {self.task_id} ({self.status})"

    @property
    def left(self) -> EvaluationOutput:
        return self.task.first if self.first_on_left else self.task.second

    @property
    def right(self) -> EvaluationOutput:
        return self.task.second if self.first_on_left else self.task.first

    @property
    def first_score(self) -> float:
        """The task's first output's score: 1 better, 0 worse, 0.5 tie or both bad."""
        if self.verdict in (self.Verdict.TIE, self.Verdict.BOTH_BAD):
            return 0.5
        left_won = self.verdict == self.Verdict.A
        return 1.0 if left_won == self.first_on_left else 0.0

    @property
    def chosen(self) -> EvaluationOutput | None:
        if self.verdict == self.Verdict.A:
            return self.left
        if self.verdict == self.Verdict.B:
            return self.right
        return None
