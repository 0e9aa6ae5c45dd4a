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
        """False for the bare base model: it downloads only as full weights."""
        return bool(self.storage_key or self.adapter_path)


class TokenReward(models.Model):
    """The per-token reward vector of one annotation under one tokenizer: computed by the worker
    (``training.worker.rewards``), shown by the heatmap, read by rounds and the token-rewards export.

    Defined in annotations until issue 23; the table kept its name (a state-only move, no data moved)."""

    annotation = models.ForeignKey(
        "annotations.Annotation", on_delete=models.CASCADE, related_name="token_rewards"
    )
    tokenizer_fingerprint = models.CharField(max_length=64)
    prompt_token_ids = models.JSONField(default=list, help_text="The chat-templated prompt (no rewards).")
    token_ids = models.JSONField(help_text="Response token ids, one per reward.")
    offsets = models.JSONField(default=list, help_text="Code-point [start, end) of each token in the text.")
    rewards = models.JSONField()
    token_strings = models.JSONField(
        default=list,
        blank=True,
        help_text="Each token as its tokenizer spells it (the heatmap's hover text).",
    )
    scheme = models.JSONField(default=dict)
    computed_at = models.DateTimeField(auto_now=True)

    class Meta:
        db_table = "annotations_tokenreward"
        constraints = [
            models.UniqueConstraint(
                fields=["annotation", "tokenizer_fingerprint"], name="token_reward_once_per_tokenizer"
            ),
        ]

    def __str__(self) -> str:
        return f"Rewards for annotation {self.annotation_id} ({self.tokenizer_fingerprint[:8]})"


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
    # Measured speed, summed over the chunks this job sampled (model loads and turns left out): the empty
    # queue's "when the first outputs come" is estimated from recent jobs' tokens per second.
    tokens_generated = models.PositiveBigIntegerField(default=0)
    outputs_timed = models.PositiveIntegerField(default=0)
    sampling_s = models.FloatField(default=0.0)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"Generation job {self.pk} for {self.project} ({self.status})"


class TrainingRound(Job):
    """One incremental PPO round over a snapshot of submitted annotations."""

    class Mode(models.TextChoices):
        TOKEN = "token", "Token-level rewards (TEXT2GRAD)"
        SCALAR = "scalar", "Scalar reward on the last token (PPO baseline)"
        ON_POLICY = "on_policy", "On-policy: fresh samples scored by the learned critic"

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
    # The artifact-store key (checkpoints/round-N/step-K) of the round's last whole checkpoint, set after
    # each update once it is uploaded, for every mode. Rows written before the store (and on-policy rows
    # before they shared the trainer) hold a local folder path, which ``checkpoint_fetch`` still reads.
    checkpoint_path = models.CharField(max_length=500, blank=True)
    summary = models.JSONField(default=dict, blank=True, help_text="Final metrics and stage timings.")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    # On-policy rounds: the critic that scores the fresh samples, and how they are drawn and audited.
    # SET_NULL like ``project``: deleting a project (and its critics) keeps the round's record.
    critic_version = models.ForeignKey(
        "CriticVersion", null=True, blank=True, on_delete=models.SET_NULL, related_name="rounds"
    )
    on_policy = models.JSONField(
        default=dict, blank=True, help_text="audit_share, max_new_tokens, temperature (on-policy rounds)."
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
    # Set when the proposals are a critic's pre-annotation rather than an aligned critique.
    critic_version = models.ForeignKey(
        "CriticVersion", null=True, blank=True, on_delete=models.SET_NULL, related_name="alignment_requests"
    )

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"Alignment {self.pk} for annotation {self.annotation_id} ({self.status})"


# --- the learned span critic (the paper's reward model) ------------------------------------------------
class CriticVersion(models.Model):
    """One trained span critic of a project: a LoRA adapter + token head, with its data and metrics."""

    project = models.ForeignKey(
        "annotations.Project", on_delete=models.CASCADE, related_name="critic_versions"
    )
    name = models.CharField(max_length=100, unique=True)
    base_model = models.CharField(max_length=500)
    # The artifact-store key (models/critics/<name>) of the published adapter + head, and the sha256 of its
    # manifest: any host fetches it into its cache (``training.worker.critic.critic_dir``).
    storage_key = models.CharField(max_length=500, blank=True)
    content_hash = models.CharField(max_length=64, blank=True)
    adapter_path = models.CharField(
        max_length=500,
        blank=True,
        help_text="Legacy: a folder under T2G_MODELS_DIR. New critics use storage_key.",
    )
    parent = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.PROTECT, related_name="children"
    )
    created_by_job = models.OneToOneField(
        "CriticTrainingJob", null=True, blank=True, on_delete=models.SET_NULL, related_name="produced_version"
    )
    config = models.JSONField(default=dict)
    snapshot = models.JSONField(default=list, help_text="Annotation ids it learned from or was tested on.")
    snapshot_hash = models.CharField(max_length=64, blank=True)
    metrics = models.JSONField(default=dict, blank=True, help_text="Held-out metrics, baselines, timings.")
    is_active = models.BooleanField(default=False)
    activated_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["project"], condition=Q(is_active=True), name="one_active_critic_per_project"
            ),
        ]

    def __str__(self) -> str:
        return self.name + (" (active)" if self.is_active else "")

    def label_metric(self, label: str, key: str, of: str = "critic"):
        """A held-out number, e.g. ``label_metric("poor", "f1")``; None when not measured."""
        report = (self.metrics.get("reports") or {}).get(of) or {}
        return (report.get("labels") or {}).get(label, {}).get(key)


class CriticSettings(models.Model):
    """A project's critic preferences (kept here: the annotations app does not know about critics)."""

    class QueueOrder(models.TextChoices):
        ARRIVAL = "arrival", "Arrival order (oldest output first)"
        UNCERTAINTY = "uncertainty", "Most uncertain for the active critic first (active learning)"

    project = models.OneToOneField(
        "annotations.Project", on_delete=models.CASCADE, related_name="critic_settings"
    )
    # Read by annotations.selectors.next_candidates through this relation, without importing training.
    queue_order = models.CharField(max_length=12, choices=QueueOrder.choices, default=QueueOrder.ARRIVAL)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"Critic settings of {self.project}"


class CriticTrainingJob(Job):
    """Train a critic version on a project's submitted annotations (the training lane)."""

    project = models.ForeignKey("annotations.Project", on_delete=models.CASCADE, related_name="critic_jobs")
    parent = models.ForeignKey(
        CriticVersion, null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
        help_text="Continue from this critic's adapter (else a fresh one).",
    )  # fmt: skip
    config = models.JSONField(default=dict)
    selection = models.JSONField(
        default=dict, blank=True, help_text="The filters that chose the snapshot (the rounds' filters)."
    )
    snapshot = models.JSONField(default=list, help_text="Annotation ids used, sorted.")
    snapshot_hash = models.CharField(max_length=64, blank=True)
    output_version = models.ForeignKey(
        CriticVersion, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    auto_activate = models.BooleanField(default=False)
    cancel_requested = models.BooleanField(default=False)
    summary = models.JSONField(default=dict, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"Critic job {self.pk} for {self.project} ({self.status})"


class CriticPrediction(models.Model):
    """A critic version's predicted spans on one output: pre-annotation and uncertainty for the queue."""

    generation = models.ForeignKey(
        "annotations.Generation", on_delete=models.CASCADE, related_name="critic_predictions"
    )
    critic_version = models.ForeignKey(CriticVersion, on_delete=models.CASCADE, related_name="predictions")
    spans = models.JSONField(default=list, help_text="[{start, end, polarity, score, text}] in code points.")
    uncertainty = models.FloatField(default=0.0, help_text="0 sure … 1 uniform (top-k token entropy).")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(fields=["generation", "critic_version"], name="one_prediction_per_critic")
        ]

    def __str__(self) -> str:
        return f"{self.critic_version} on generation {self.generation_id}"


class CriticPredictionJob(Job):
    """Store a critic version's spans and uncertainty for some outputs (pre-annotation, the queue's
    order): a job on the generation lane, so it is fenced, cancellable, reaped and shown in "queued behind"."""

    critic_version = models.ForeignKey(
        CriticVersion, on_delete=models.CASCADE, related_name="prediction_jobs"
    )
    generation_ids = models.JSONField(default=list, help_text="The outputs to predict, sorted.")

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"Critic prediction {self.pk} by {self.critic_version_id} ({self.status})"


class RoundCriticScore(Job):
    """The round page's second "did it help?": the project's active critic scores the round's new version
    and its parent on the same held-out prompts (same seeds), a cheap proxy beside the blind pairs. A job
    of the one framework on the generation lane (it samples both versions)."""

    training_round = models.ForeignKey(TrainingRound, on_delete=models.CASCADE, related_name="critic_scores")
    critic_version = models.ForeignKey(CriticVersion, on_delete=models.CASCADE, related_name="round_scores")
    prompt_ids = models.JSONField(default=list, help_text="The prompts both versions answer.")
    result = models.JSONField(default=dict, blank=True, help_text="Per-prompt scores and their summary.")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"Critic score {self.pk} of round {self.training_round_id} ({self.status})"


class OnPolicySample(models.Model):
    """A fresh output of an on-policy round, as the critic scored it (the round page shows them)."""

    training_round = models.ForeignKey(
        TrainingRound, on_delete=models.CASCADE, related_name="on_policy_samples"
    )
    update = models.PositiveIntegerField()
    prompt = models.ForeignKey("annotations.Prompt", on_delete=models.CASCADE, related_name="+")
    text = models.TextField()
    response_token_ids = models.JSONField(default=list)
    token_rewards = models.JSONField(default=list)
    spans = models.JSONField(default=list)
    uncertainty = models.FloatField(default=0.0)
    audit_generation = models.ForeignKey(
        "annotations.Generation", null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
        help_text="The queue item people audit, when this sample was drawn for audit.",
    )  # fmt: skip
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["update", "id"]

    def __str__(self) -> str:
        return f"Round {self.training_round_id} update {self.update} sample {self.pk}"


class ModelDownload(Job):
    """A version's download folder (the peft adapter or merged weights, each with its model card), built
    by a worker and published to the artifact store once per (version, kind, card): a second download of
    the same version streams the stored folder instead of building it again (``training/services/downloads.py``)."""

    class Kind(models.TextChoices):
        ADAPTER = "adapter", "LoRA adapter (peft)"
        MERGED = "merged", "Merged full weights (transformers)"

    version = models.ForeignKey(ModelVersion, on_delete=models.CASCADE, related_name="downloads")
    kind = models.CharField(max_length=10, choices=Kind.choices)
    card = models.JSONField(default=dict, help_text="What the model card says (text2grad.model_card).")
    card_hash = models.CharField(
        max_length=64, help_text="sha256 of the card's JSON: a new card, a new build."
    )
    storage_key = models.CharField(max_length=500, blank=True)
    content_hash = models.CharField(max_length=64, blank=True, help_text="sha256 of the folder's manifest.")
    size_bytes = models.BigIntegerField(default=0)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["version", "kind", "card_hash"], name="download_build_key")]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} of {self.version.name} ({self.status})"


class ApiKey(models.Model):
    """A user's key for the OpenAI-compatible endpoint (``manage.py serve_openai``), scoped to projects.

    Only the sha256 of the key is stored (keys are 256 random bits, so a fast hash is enough: there is
    nothing to guess); the key itself is shown once, when it is created. ``prefix`` (its first characters)
    names it in lists and audit entries. A revoked key stays for the audit trail and never works again."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_keys")
    name = models.CharField(max_length=100, help_text="What the key is for (an application, a notebook).")
    prefix = models.CharField(max_length=16, db_index=True)
    key_hash = models.CharField(max_length=64, unique=True)
    projects = models.ManyToManyField(
        "annotations.Project",
        related_name="api_keys",
        help_text="The projects whose versions (and active-version alias) the key may use.",
    )
    rate_limit_per_minute = models.PositiveIntegerField(default=60)
    in_studio = models.BooleanField(
        default=False,
        help_text="The playground's key of this user: no secret exists; the studio's pages reach the "
        "endpoint with a short-lived signed token instead (training/services/api_keys.py).",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    requests = models.PositiveBigIntegerField(default=0)
    prompt_tokens = models.PositiveBigIntegerField(default=0)
    completion_tokens = models.PositiveBigIntegerField(default=0)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @property
    def is_revoked(self) -> bool:
        return self.revoked_at is not None
