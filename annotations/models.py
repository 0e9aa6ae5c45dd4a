"""The feedback data: projects, prompts, model outputs, annotations and spans (their token rewards are
training's ``TokenReward``, which computes and shows them).

Every row records where it came from (a Generation knows its ModelVersion and sampling parameters), so a
dataset snapshot or a training round can cite exactly what it used.
"""

from __future__ import annotations

import hashlib
import math

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import RegexValidator
from django.db import models
from django.db.models import F, Q
from django.db.models.functions import Cast, Mod
from django.db.models.lookups import LessThan
from django.utils import timezone

from jobs.models import Job
from text2grad.rewards import COMBINE_MODES, CONFLICT_MODES

DEFAULT_LABELS = [
    {"name": "good", "polarity": 1, "color": "#2e7d32"},
    {"name": "poor", "polarity": -1, "color": "#c62828"},
]
DEFAULT_REWARD_SCHEME = {"good": 1.0, "poor": -1.0, "outside": 0.0, "conflict": "negative", "combine": "mean"}

# The project's held-out prompts (evaluated on, never trained on): those an admin marked, and a fraction
# chosen by a stable hash of the prompt id, (id * 761) mod 1000 below the fraction * 1000. 761 is coprime
# with 1000, so consecutive ids spread evenly over the buckets; the same rule in SQL and in Python.
HELD_OUT_BUCKETS = 1000
HELD_OUT_STRIDE = 761


def held_out_bucket(prompt_id: int) -> int:
    return (prompt_id * HELD_OUT_STRIDE) % HELD_OUT_BUCKETS


def held_out_q(prefix: str = "") -> Q:
    """A filter for held-out prompts, on Prompt (``prefix`` "") or through a relation to one (for
    annotations: ``"generation__prompt__"``). Rounds exclude it; evaluation campaigns draw from it."""
    bucket = Mod(Cast(F(f"{prefix}id"), models.BigIntegerField()) * HELD_OUT_STRIDE, HELD_OUT_BUCKETS)
    by_hash = LessThan(bucket, F(f"{prefix}project__held_out_fraction") * HELD_OUT_BUCKETS)
    return Q(**{f"{prefix}held_out": True}) | Q(by_hash)


def content_hash(*parts: str) -> str:
    """A stable sha256 of text parts, used to detect duplicate prompts and outputs."""
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part.encode("utf-8"))
        digest.update(b"\x1f")
    return digest.hexdigest()


def default_labels() -> list[dict]:
    return [dict(label) for label in DEFAULT_LABELS]


def default_reward_scheme() -> dict:
    return dict(DEFAULT_REWARD_SCHEME)


class Project(models.Model):
    class Kind(models.TextChoices):
        CODE = "code", "Code generation"
        SUMMARIZATION = "summarization", "Summarization"
        QA = "qa", "Question answering"
        GENERAL = "general", "General"

    name = models.CharField(max_length=200, unique=True)
    kind = models.CharField(max_length=20, choices=Kind.choices, default=Kind.GENERAL)
    description = models.TextField(blank=True)
    instructions = models.TextField(blank=True, help_text="Shown to annotators above every output.")
    system_prompt = models.TextField(blank=True, help_text="Optional system message for generation.")
    label_set = models.JSONField(default=default_labels, help_text="[{name, polarity (-1/0/1), color}]")
    annotations_per_output = models.PositiveSmallIntegerField(default=1)
    reward_scheme = models.JSONField(default=default_reward_scheme)
    review_scope = models.CharField(
        max_length=10,
        choices=[
            ("all", "Every output whose annotations are all in"),
            ("below", "Only outputs whose agreement is below the threshold"),
        ],
        default="all",
        help_text="Which complete outputs enter the review queue (lowest agreement first either way).",
    )
    review_threshold = models.FloatField(
        default=0.667,
        help_text="Agreement (Krippendorff's alpha over characters) below which an output needs review.",
    )
    held_out_fraction = models.FloatField(
        default=0.0,
        help_text="Share of the prompts held out of training (chosen by a stable hash of the prompt id; "
        "prompts marked held out come on top): training rounds never sample them or train on their "
        "annotations, and evaluation campaigns draw from them. Changing it moves prompts in or out.",
    )
    # The optional LLM pass of Suggest spans (issue 28): off while the URL is blank. The key itself is
    # never stored (rows are exported and shown in the admin): the worker reads the named variable.
    llm_aligner_url = models.URLField(
        blank=True,
        max_length=500,
        help_text="Base URL of an OpenAI-compatible endpoint (ending in /v1) for the optional LLM pass of "
        "Suggest spans; blank turns the pass off.",
    )
    llm_aligner_model = models.CharField(
        max_length=200, blank=True, help_text="Model name sent to that endpoint (required with a URL)."
    )
    llm_aligner_key_env = models.CharField(
        max_length=100,
        blank=True,
        validators=[RegexValidator(r"^[A-Z_][A-Z0-9_]*$", "Name an environment variable: A-Z, 0-9 and _.")],
        help_text="Name of the worker's environment variable that holds the endpoint's API key (the key "
        "itself is never stored); blank sends no key.",
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    is_archived = models.BooleanField(default=False)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(condition=Q(annotations_per_output__gte=1), name="project_quota_positive"),
            models.CheckConstraint(
                condition=Q(held_out_fraction__gte=0) & Q(held_out_fraction__lte=0.9),
                name="project_held_out_fraction",
            ),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def is_code(self) -> bool:
        return self.kind == self.Kind.CODE

    def label(self, name: str) -> dict | None:
        return next((label for label in self.label_set if label.get("name") == name), None)

    @property
    def llm_aligner_enabled(self) -> bool:
        """Whether annotators may ask Suggest spans for the LLM pass in this project."""
        return bool(self.llm_aligner_url)

    def clean(self) -> None:
        if self.llm_aligner_url and not self.llm_aligner_model.strip():
            raise ValidationError({"llm_aligner_model": "Name the model the LLM endpoint should use."})
        labels = self.label_set
        if not isinstance(labels, list) or not labels:
            raise ValidationError({"label_set": "The label set must be a non-empty list."})
        names = set()
        for label in labels:
            if not isinstance(label, dict) or not isinstance(label.get("name"), str) or not label["name"]:
                raise ValidationError({"label_set": "Every label needs a non-empty name."})
            if label.get("polarity") not in (-1, 0, 1):
                raise ValidationError({"label_set": f"Label {label['name']!r}: polarity must be -1, 0 or 1."})
            if label["name"] in names:
                raise ValidationError({"label_set": f"Label {label['name']!r} appears twice."})
            names.add(label["name"])
        problem = reward_scheme_problem(self.reward_scheme)
        if problem:
            raise ValidationError({"reward_scheme": problem})


REWARD_VALUE_LIMIT = 100.0


def reward_scheme_problem(scheme) -> str | None:
    """Why a project's reward scheme would break the reward computation, or None if it is fine.

    >>> reward_scheme_problem({"good": "abc"})
    "'good' must be a number from -100 to 100."
    """
    if not isinstance(scheme, dict):
        return "The reward scheme must be an object."
    unknown = sorted(set(scheme) - set(DEFAULT_REWARD_SCHEME))
    if unknown:
        return f"Unknown key {unknown[0]!r}; the keys are {', '.join(DEFAULT_REWARD_SCHEME)}."
    for key in ("good", "poor", "outside"):
        value = scheme.get(key, 0.0)
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not math.isfinite(value)
            or abs(value) > REWARD_VALUE_LIMIT
        ):
            return f"{key!r} must be a number from -100 to 100."
    if scheme.get("conflict", "negative") not in CONFLICT_MODES:
        return f"'conflict' must be one of {', '.join(CONFLICT_MODES)}."
    if scheme.get("combine", "mean") not in COMBINE_MODES:
        return f"'combine' must be one of {', '.join(COMBINE_MODES)}."
    return None


class Prompt(models.Model):
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="prompts")
    text = models.TextField()
    external_id = models.CharField(max_length=200, blank=True, help_text="Id in the source dataset.")
    reference = models.TextField(blank=True, help_text="A reference answer or test, if the source has one.")
    metadata = models.JSONField(default=dict, blank=True)
    content_hash = models.CharField(max_length=64, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    held_out = models.BooleanField(
        default=False,
        help_text="Marked held out of training by an admin (the project's held-out fraction adds more).",
    )

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(fields=["project", "content_hash"], name="prompt_unique_per_project"),
        ]

    def __str__(self) -> str:
        return f"{self.project}: {self.text[:60]}"

    def save(self, *args, **kwargs) -> None:
        self.content_hash = content_hash(self.text)
        super().save(*args, **kwargs)

    @property
    def is_held_out(self) -> bool:
        """In the project's held-out set (``held_out_q``, the same rule)."""
        return self.held_out or held_out_bucket(self.pk) < self.project.held_out_fraction * HELD_OUT_BUCKETS

    def chat_messages(self) -> list[dict]:
        """The prompt as chat messages for the model's chat template."""
        messages = []
        if self.project.system_prompt:
            messages.append({"role": "system", "content": self.project.system_prompt})
        messages.append({"role": "user", "content": self.text})
        return messages


# ``Generation.sampling_params["purpose"]`` of outputs sampled to compare versions: never queued for annotators.
EVALUATION_PURPOSE = "evaluation"


class Generation(models.Model):
    """One model output for a prompt, with what is needed to train on it later."""

    prompt = models.ForeignKey(Prompt, on_delete=models.CASCADE, related_name="generations")
    model_version = models.ForeignKey(
        "training.ModelVersion", null=True, blank=True, on_delete=models.PROTECT, related_name="generations"
    )
    source_model = models.CharField(max_length=300, blank=True, help_text="For imported outputs.")
    text = models.TextField()
    prompt_token_ids = models.JSONField(default=list, blank=True)
    response_token_ids = models.JSONField(default=list, blank=True)
    behaviour_logprobs = models.JSONField(default=list, blank=True)
    tokenizer_fingerprint = models.CharField(max_length=64, blank=True)
    sampling_params = models.JSONField(default=dict, blank=True)
    finish_reason = models.CharField(max_length=20, blank=True)
    content_hash = models.CharField(max_length=64, editable=False, db_index=True)
    annotation_count = models.PositiveIntegerField(
        default=0, help_text="Submitted annotations, kept in step by the annotation services."
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        indexes = [models.Index(fields=["prompt", "annotation_count"])]

    def __str__(self) -> str:
        return f"Generation {self.pk} for prompt {self.prompt_id}"

    def save(self, *args, **kwargs) -> None:
        self.content_hash = content_hash(self.prompt.text, self.text)
        super().save(*args, **kwargs)

    @property
    def project(self) -> Project:
        return self.prompt.project


class Assignment(models.Model):
    """A lease on one generation for one annotator: the queue hands these out."""

    class Status(models.TextChoices):
        ACTIVE = "active"
        COMPLETED = "completed"
        SKIPPED = "skipped"
        EXPIRED = "expired"

    generation = models.ForeignKey(Generation, on_delete=models.CASCADE, related_name="assignments")
    annotator = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="assignments"
    )
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.ACTIVE)
    leased_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField()
    skip_reason = models.TextField(blank=True)

    class Meta:
        ordering = ["-leased_at"]
        constraints = [
            # Never the same annotator twice on one output, whatever happened to the first lease.
            models.UniqueConstraint(fields=["generation", "annotator"], name="assignment_once_per_annotator"),
        ]
        indexes = [models.Index(fields=["generation", "status"])]

    def __str__(self) -> str:
        return f"{self.annotator} on generation {self.generation_id} ({self.status})"


class Annotation(models.Model):
    class Status(models.TextChoices):
        DRAFT = "draft"
        SUBMITTED = "submitted"

    class GoldOrigin(models.TextChoices):
        ADJUDICATED = "adjudicated", "Adjudicated by a reviewer from the annotators' work"
        HONEYPOT = "honeypot", "Set by an admin before annotators saw the output"

    class Origin(models.TextChoices):
        PEOPLE = "people", "Written by a person"
        MACHINE = "machine", "Drafted by a machine critic"

    generation = models.ForeignKey(Generation, on_delete=models.CASCADE, related_name="annotations")
    annotator = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="annotations"
    )
    overall_critique = models.TextField(blank=True)
    rating = models.PositiveSmallIntegerField(null=True, blank=True, help_text="1 (bad) to 5 (excellent)")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.DRAFT)
    time_spent_seconds = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    submitted_at = models.DateTimeField(null=True, blank=True)
    # Goes up by one with every save of the overall fields: a save that names an older version was typed
    # over someone else's (another tab's) and is refused with 409 instead of overwriting it.
    version = models.PositiveIntegerField(default=0)
    # The output's gold annotation (at most one): written by a reviewer or admin, never counted as one of
    # the output's annotations, never shown to annotators; rounds and exports can choose it alone.
    is_gold = models.BooleanField(default=False)
    gold_origin = models.CharField(max_length=12, choices=GoldOrigin.choices, blank=True)
    # Who wrote it: a person, or a machine critic (a draft for people: it enters the review queue, does
    # not count towards the output's quota, and rounds take it only when their selection asks for it).
    origin = models.CharField(max_length=10, choices=Origin.choices, default=Origin.PEOPLE, db_index=True)
    critic = models.JSONField(
        default=dict,
        blank=True,
        help_text="Machine annotations: the critic that wrote it (name, version, settings), the job, the "
        "result's status, whole-output evidence and problems.",
    )

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(
                fields=["generation", "annotator"],
                condition=Q(is_gold=False),
                name="annotation_once_per_annotator",
            ),
            models.UniqueConstraint(
                fields=["generation"], condition=Q(is_gold=True), name="gold_once_per_output"
            ),
            models.CheckConstraint(
                condition=Q(rating__isnull=True) | Q(rating__gte=1, rating__lte=5),
                name="annotation_rating_1_5",
            ),
        ]
        indexes = [models.Index(fields=["status", "submitted_at"])]

    def __str__(self) -> str:
        return f"Annotation {self.pk} by {self.annotator} ({self.status})"


class Span(models.Model):
    """A highlighted range of a generation's text, in Python code points, with its label and critique."""

    class Origin(models.TextChoices):
        MANUAL = "manual", "Drawn by hand"
        ALIGNED = "aligned", "Proposed from a critique"
        LLM = "llm", "Proposed by an LLM aligner"
        CRITIC = "critic", "Proposed by the learned critic"
        MACHINE = "machine", "Written by a machine critic"

    annotation = models.ForeignKey(Annotation, on_delete=models.CASCADE, related_name="spans")
    start = models.PositiveIntegerField()
    end = models.PositiveIntegerField()
    text = models.TextField(help_text="A copy of generation.text[start:end], to detect drift.")
    label = models.CharField(max_length=64)
    polarity = models.SmallIntegerField(choices=[(-1, "negative"), (0, "neutral"), (1, "positive")])
    weight = models.FloatField(default=1.0)
    critique = models.TextField(blank=True)
    origin = models.CharField(max_length=10, choices=Origin.choices, default=Origin.MANUAL)
    score = models.FloatField(null=True, blank=True, help_text="Aligner confidence, for proposed spans.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["start", "end", "id"]
        constraints = [
            models.CheckConstraint(condition=Q(start__lt=F("end")), name="span_start_before_end"),
            models.CheckConstraint(condition=Q(weight__gt=0) & Q(weight__lte=10), name="span_weight_range"),
            models.CheckConstraint(condition=Q(polarity__in=[-1, 0, 1]), name="span_polarity_valid"),
        ]

    def __str__(self) -> str:
        return f"{self.label} [{self.start}, {self.end})"


class Review(models.Model):
    """A reviewer's verdict on one submitted annotation; the annotator sees it on their own work."""

    class Verdict(models.TextChoices):
        ACCEPTED = "accepted"
        REJECTED = "rejected"

    annotation = models.OneToOneField(Annotation, on_delete=models.CASCADE, related_name="review")
    reviewer = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="reviews_given"
    )
    verdict = models.CharField(max_length=10, choices=Verdict.choices)
    comment = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-updated_at", "-id"]
        indexes = [models.Index(fields=["verdict"])]

    def __str__(self) -> str:
        return f"{self.verdict} annotation {self.annotation_id}"


class OutputAgreement(models.Model):
    """How much one output's annotators agree, recomputed whenever one of its annotations (or its gold)
    changes. The coincidence matrices add up: a project's, a pair's or a week's alpha is the alpha of the
    summed matrices (``text2grad.agreement``)."""

    generation = models.OneToOneField(
        Generation, primary_key=True, on_delete=models.CASCADE, related_name="agreement"
    )
    annotators = models.PositiveSmallIntegerField(
        default=0, help_text="Submitted annotations, gold not counted."
    )
    alpha = models.FloatField(
        null=True, blank=True, help_text="Nominal alpha over characters (none/poor/good)."
    )
    token_alpha = models.FloatField(
        null=True, blank=True, help_text="The same over the base tokenizer's tokens."
    )
    span_f1 = models.FloatField(
        null=True, blank=True, help_text="Mean pairwise span F1 (IoU >= 0.5, same label)."
    )
    score = models.FloatField(
        null=True,
        blank=True,
        help_text="What queues sort by: alpha with two or more annotators; null where it cannot be "
        "measured (one annotation) or is undefined (no variation: every annotator gave every unit "
        "the same value).",
    )
    coincidence = models.JSONField(default=list)
    rating_coincidence = models.JSONField(default=list)
    pairs = models.JSONField(default=list, help_text="[{a, b, f1, o}] per annotator pair (user ids).")
    gold = models.JSONField(default=list, help_text="[{annotator, f1, o}] each annotator against gold.")
    has_gold = models.BooleanField(default=False)
    completed_at = models.DateTimeField(null=True, blank=True, help_text="The latest submission.")
    computed_at = models.DateTimeField(auto_now=True)

    class Meta:
        indexes = [models.Index(fields=["score"]), models.Index(fields=["completed_at"])]

    def __str__(self) -> str:
        return f"Agreement of generation {self.generation_id}: {self.score}"

    @property
    def alpha_undefined(self) -> bool:
        """Two or more annotators, and alpha undefined: no variation to measure agreement on (say, nobody
        drew a span). Neither perfect agreement nor none; callers choose what to do with it."""
        return self.annotators >= 2 and self.score is None


class DatasetExport(Job):
    """A recorded export: its query, row count and content hash make it a citable dataset snapshot.

    A job like any other (``jobs.models.Job``): claimed, heartbeated while writing, reaped if its worker
    dies (queued again; its partial file is deleted)."""

    kind = models.CharField(max_length=20)  # spans | token-rewards | kto | dpo
    format = models.CharField(max_length=10)  # jsonl | csv | parquet
    query = models.JSONField(default=dict)
    row_count = models.PositiveIntegerField(default=0)
    total_rows = models.PositiveIntegerField(default=0)
    content_hash = models.CharField(max_length=64, blank=True)
    file_path = models.CharField(max_length=500, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    expired_at = models.DateTimeField(
        null=True, blank=True, help_text="When its file was deleted after the retention period."
    )

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"Export {self.pk} {self.kind}.{self.format} ({self.status})"


class PromptImport(Job):
    """A prompt file imported in the background (issue 12): the upload sits in the artifact store under
    ``imports/`` until the job is done; the worker parses it (``imports.parsing.parse_prompts``, the one parser),
    then writes its rows in chunks, each committed with the job's progress and running report, so a job
    queued again after its worker died resumes after the rows it committed. Admins only."""

    class Format(models.TextChoices):
        JSONL = "jsonl"
        CSV = "csv"

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="imports")
    format = models.CharField(max_length=10, choices=Format.choices)
    allow_partial = models.BooleanField(default=False)
    file_name = models.CharField(max_length=300, blank=True)
    size_bytes = models.PositiveBigIntegerField(default=0)
    upload_key = models.CharField(
        max_length=500, blank=True, help_text="Store key of the uploaded file; emptied once it is deleted."
    )
    report = models.JSONField(
        default=dict,
        blank=True,
        help_text="created_prompts, created_outputs, duplicate_lines, errors (line, message), committed.",
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"Import {self.pk} into {self.project_id} ({self.status})"


# --- integrations: outputs from production, webhooks -----------------------------------------------
class IngestKey(models.Model):
    """A project's key for ``POST /api/v1/projects/<id>/outputs/`` (a team's own application sending the
    outputs it served). Only a SHA-256 of the key is stored; the key itself is shown once, at creation.
    Created and revoked by admins on the project's Integrations page."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="ingest_keys")
    name = models.CharField(max_length=100, help_text="Which application uses it.")
    prefix = models.CharField(max_length=16, help_text="The key's first characters, to tell keys apart.")
    key_hash = models.CharField(max_length=64, unique=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…) for {self.project}"

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None


class IngestedOutput(models.Model):
    """One record a team's application sent: the output it became, under the idempotency key that
    deduplicates retries (the same key in the same project answers with this row, never a second output)."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="+")
    idempotency_key = models.CharField(max_length=200)
    request_hash = models.CharField(max_length=64, help_text="sha256 of the record, to refuse a reused key.")
    generation = models.OneToOneField(Generation, on_delete=models.CASCADE, related_name="ingested")
    ingest_key = models.ForeignKey(IngestKey, null=True, on_delete=models.SET_NULL, related_name="+")
    metadata = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(
                fields=["project", "idempotency_key"], name="ingest_idempotency_per_project"
            )
        ]

    def __str__(self) -> str:
        return f"Ingested {self.idempotency_key} → generation {self.generation_id}"


class Webhook(models.Model):
    """An admin's subscription: events POSTed to ``url``, signed with ``secret`` (HMAC-SHA256)."""

    url = models.URLField(max_length=500)
    events = models.JSONField(default=list, help_text="Event names (``WEBHOOK_EVENTS``).")
    secret = models.CharField(max_length=100, help_text="Signs each delivery; the receiver keeps a copy.")
    description = models.CharField(max_length=200, blank=True)
    is_active = models.BooleanField(default=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"Webhook {self.pk} → {self.url}"


class WebhookDelivery(models.Model):
    """One event for one webhook: the exact body sent (the same bytes on every attempt, so a receiver can
    deduplicate by ``delivery``), its state and when it is next tried."""

    class Status(models.TextChoices):
        PENDING = "pending"
        SUCCEEDED = "succeeded"
        FAILED = "failed"

    webhook = models.ForeignKey(Webhook, on_delete=models.CASCADE, related_name="deliveries")
    event = models.CharField(max_length=50)
    payload = models.JSONField()
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING, db_index=True)
    attempt_count = models.PositiveSmallIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"Delivery {self.pk} of {self.event} to webhook {self.webhook_id} ({self.status})"


class WebhookAttempt(models.Model):
    """One POST of a delivery: what came back (status code, time) or why nothing did."""

    delivery = models.ForeignKey(WebhookDelivery, on_delete=models.CASCADE, related_name="attempts")
    number = models.PositiveSmallIntegerField()
    status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    response_ms = models.PositiveIntegerField(null=True, blank=True)
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"Attempt {self.number} of delivery {self.delivery_id}: {self.status_code or self.error[:60]}"

    @property
    def ok(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


# --- machine critics ---------------------------------------------------------------------------------
class MachineCriticConfig(models.Model):
    """A registered machine critic (``text2grad.machine_critics``) an admin set up for a project, with its
    settings as given (the critic fills in its defaults; each run records the full settings and version)."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="machine_critics")
    name = models.CharField(
        max_length=64, help_text="The critic's registry name (unit-tests, reference, ...)."
    )
    critic_settings = models.JSONField(default=dict, blank=True, help_text="Settings given to the critic.")
    enabled = models.BooleanField(default=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["project", "name"]
        constraints = [
            models.UniqueConstraint(fields=["project", "name"], name="machine_critic_once_per_project"),
        ]

    def __str__(self) -> str:
        return f"{self.name} on {self.project}"


class MachineCriticJob(Job):
    """One run of a machine critic over a project's outputs: it writes one machine annotation per output
    (by the critic's machine annotator), each committed with the job's progress, so a run queued again
    after its worker died resumes after the outputs it wrote. ``critic`` is what ran: the name and
    settings asked for, then (once the worker built it) the version and the settings with defaults."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="machine_critic_jobs")
    config = models.ForeignKey(
        MachineCriticConfig, null=True, blank=True, on_delete=models.SET_NULL, related_name="jobs"
    )
    critic = models.JSONField(default=dict)
    generation_ids = models.JSONField(default=list, help_text="The outputs to critique, frozen at start.")
    report = models.JSONField(
        default=dict, blank=True, help_text="written, skipped, failed (critic failures), problems."
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"Machine critic job {self.pk} ({self.critic.get('name')}, {self.status})"
