"""Model versions, generation jobs and training rounds: the rows the workers claim and report into."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q

from jobs.models import Job


class ModelVersion(models.Model):
    """One state of the shared model: the base plus (optionally) a LoRA adapter and value head."""

    name = models.CharField(max_length=100, unique=True)
    base_model = models.CharField(max_length=500, help_text="Base model reference (path or id).")
    adapter_path = models.CharField(
        max_length=500,
        blank=True,
        help_text="Legacy: a folder under T2G_MODELS_DIR. New versions use storage_key.",
    )
    # Where the adapter folder was published in the artifact store, and the sha256 of its manifest: set
    # only after every object was uploaded and read back, so a row never points at a partial upload.
    # Both empty (and no adapter_path): the bare base model.
    storage_key = models.CharField(max_length=500, blank=True)
    content_hash = models.CharField(max_length=64, blank=True)
    parent = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.PROTECT, related_name="children"
    )
    created_by_round = models.OneToOneField(
        "TrainingRound", null=True, blank=True, on_delete=models.SET_NULL, related_name="produced_version"
    )
    is_active = models.BooleanField(default=False)
    activated_at = models.DateTimeField(null=True, blank=True)
    notes = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["is_active"], condition=Q(is_active=True), name="one_active_version"
            ),
        ]

    def __str__(self) -> str:
        return self.name + (" (active)" if self.is_active else "")

    @property
    def has_adapter(self) -> bool:
        return bool(self.storage_key or self.adapter_path)


class GenerationJob(Job):
    """Sample K outputs for each of a project's prompts with the active (or a chosen) model version."""

    project = models.ForeignKey(
        "annotations.Project", on_delete=models.CASCADE, related_name="generation_jobs"
    )
    model_version = models.ForeignKey(ModelVersion, null=True, blank=True, on_delete=models.PROTECT)
    per_prompt = models.PositiveSmallIntegerField(default=1)
    prompt_ids = models.JSONField(default=list, blank=True, help_text="Empty: every prompt of the project.")
    sampling_params = models.JSONField(default=dict, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"Generation job {self.pk} for {self.project} ({self.status})"


class TrainingRound(Job):
    """One incremental PPO round over a snapshot of submitted annotations."""

    class Mode(models.TextChoices):
        TOKEN = "token", "Token-level rewards (TEXT2GRAD)"
        SCALAR = "scalar", "Scalar reward on the last token (PPO baseline)"

    project = models.ForeignKey(
        "annotations.Project",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="training_rounds",
    )
    mode = models.CharField(max_length=10, choices=Mode.choices, default=Mode.TOKEN)
    config = models.JSONField(default=dict)
    selection = models.JSONField(default=dict, help_text="The filters that chose the snapshot.")
    snapshot = models.JSONField(default=list, help_text="Annotation ids used, sorted.")
    snapshot_hash = models.CharField(max_length=64, blank=True)
    base_version = models.ForeignKey(
        ModelVersion, null=True, blank=True, on_delete=models.PROTECT, related_name="rounds_started_from"
    )
    output_version = models.ForeignKey(
        ModelVersion, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    auto_promote = models.BooleanField(default=False)
    # A storage key (checkpoints/round-N/step-K) set after each checkpoint is uploaded; legacy rows hold a
    # local folder path.
    checkpoint_path = models.CharField(max_length=500, blank=True)
    summary = models.JSONField(default=dict, blank=True, help_text="Final metrics and stage timings.")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            # Only one round trains the shared model at a time.
            models.UniqueConstraint(
                fields=["status"], condition=Q(status="running"), name="one_running_round"
            ),
        ]

    def __str__(self) -> str:
        return f"Round {self.pk} ({self.mode}, {self.status})"

    @property
    def snapshot_size(self) -> int:
        return len(self.snapshot)


class RoundMetric(models.Model):
    """Metrics of one optimizer step of a round (policy/value loss, KL, reward, clip fraction...)."""

    training_round = models.ForeignKey(TrainingRound, on_delete=models.CASCADE, related_name="metrics")
    step = models.PositiveIntegerField()
    data = models.JSONField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["step"]
        constraints = [
            models.UniqueConstraint(fields=["training_round", "step"], name="metric_once_per_step")
        ]

    def __str__(self) -> str:
        return f"Round {self.training_round_id} step {self.step}"


class AlignmentRequest(Job):
    """'Suggest spans' for one annotation: the worker aligns its critiques to the output (MiniLM, quotes)."""

    annotation = models.ForeignKey(
        "annotations.Annotation", on_delete=models.CASCADE, related_name="alignment_requests"
    )
    critique = models.TextField(help_text="The critique text that was aligned.")
    use_llm = models.BooleanField(default=False)
    proposals = models.JSONField(default=list, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"Alignment {self.pk} for annotation {self.annotation_id} ({self.status})"
