"""Outputs from production: project ingest keys, and the records a team's own application sends
(``POST /api/v1/projects/<id>/outputs/``), which become outputs in the annotation queue.

A key is ``t2gi_`` and 40 random URL-safe characters; only its SHA-256 is stored (a key is a bearer secret
with 240 bits of entropy, so a fast hash is enough: there is nothing to guess). A record's idempotency key
makes retries safe: the same key in the same project answers with the output it created the first time;
the same key with a different record is refused (409), as it means the client reuses keys by mistake.
Without a key, the record's content is its key ("content:<sha256>"), so an identical record sent twice
is one output.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from dataclasses import dataclass, field

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from audit.services import audit_record

from ..models import Generation, IngestedOutput, IngestKey, Project, Prompt, content_hash
from ..signals import outputs_ingested

KEY_PREFIX = "t2gi_"
MAX_IDEMPOTENCY_KEY_CHARS = 200
MAX_SOURCE_MODEL_CHARS = 300


def ingest_key_hash(raw: str) -> str:
    return hashlib.sha256(raw.encode("utf-8")).hexdigest()


@transaction.atomic
def ingest_key_create(*, project: Project, name: str, created_by=None) -> tuple[IngestKey, str]:
    """A new key for ``project``; returns the row and the key itself, which is never shown again."""
    name = name.strip()
    if not name or len(name) > 100:
        raise ValueError("Name the key (at most 100 characters): which application will use it?")
    raw = KEY_PREFIX + secrets.token_urlsafe(30)
    key = IngestKey.objects.create(
        project=project, name=name, prefix=raw[:12], key_hash=ingest_key_hash(raw), created_by=created_by
    )
    audit_record(action="ingest_key.create", actor=created_by, obj=key, details={"project": project.pk})
    return key, raw


@transaction.atomic
def ingest_key_revoke(*, key: IngestKey, revoked_by=None) -> bool:
    """Revoke at once (False if it already was): requests with it answer 401 from now on."""
    revoked = IngestKey.objects.filter(pk=key.pk, revoked_at__isnull=True).update(revoked_at=timezone.now())
    if revoked:
        audit_record(
            action="ingest_key.revoke", actor=revoked_by, obj=key, details={"project": key.project_id}
        )
    key.refresh_from_db()
    return bool(revoked)


def ingest_key_find(raw: str) -> IngestKey | None:
    """The active key ``raw`` names, or None (unknown, revoked, malformed)."""
    if not raw.startswith(KEY_PREFIX) or len(raw) > 100:
        return None
    return (
        IngestKey.objects.select_related("project")
        .filter(key_hash=ingest_key_hash(raw), revoked_at__isnull=True)
        .first()
    )


class IngestError(ValueError):
    """A record the API refuses: ``problems`` maps a record's index to its field errors."""

    def __init__(self, problems: dict[int, dict[str, str]], *, conflict: bool = False):
        super().__init__("Invalid records")
        self.problems = problems
        self.conflict = conflict


@dataclass
class IngestRecord:
    prompt: str
    output: str
    source_model: str = ""
    metadata: dict = field(default_factory=dict)
    idempotency_key: str = ""

    def fingerprint(self) -> str:
        body = {"prompt": self.prompt, "output": self.output, "source_model": self.source_model,
                "metadata": self.metadata}  # fmt: skip
        return hashlib.sha256(json.dumps(body, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


def ingest_record_clean(raw: object) -> tuple[IngestRecord | None, dict[str, str]]:
    """One record checked: (the record, {}) or (None, {field: problem})."""
    if not isinstance(raw, dict):
        return None, {"record": "Each record is a JSON object."}
    problems: dict[str, str] = {}
    unknown = sorted(set(raw) - {"prompt", "output", "source_model", "metadata", "idempotency_key"})
    if unknown:
        problems["record"] = f"Unknown fields: {', '.join(unknown)}."
    limit = settings.T2G_MAX_TEXT_CHARS
    for name in ("prompt", "output"):
        value = raw.get(name)
        if not isinstance(value, str) or not value.strip():
            problems[name] = "Required: a non-empty string."
        elif len(value) > limit:
            problems[name] = f"At most {limit} characters (got {len(value)})."
        elif "\x00" in value:
            problems[name] = "NUL characters are not allowed."
    source_model = raw.get("source_model", "")
    if not isinstance(source_model, str) or len(source_model) > MAX_SOURCE_MODEL_CHARS:
        problems["source_model"] = f"A string of at most {MAX_SOURCE_MODEL_CHARS} characters."
    metadata = raw.get("metadata", {})
    if metadata is None:
        metadata = {}
    if not isinstance(metadata, dict):
        problems["metadata"] = "A JSON object."
    elif len(json.dumps(metadata)) > settings.T2G_INGEST_MAX_METADATA_BYTES:
        problems["metadata"] = f"At most {settings.T2G_INGEST_MAX_METADATA_BYTES} bytes of JSON."
    idempotency_key = raw.get("idempotency_key", "")
    if idempotency_key is None:
        idempotency_key = ""
    if not isinstance(idempotency_key, str) or len(idempotency_key) > MAX_IDEMPOTENCY_KEY_CHARS:
        problems["idempotency_key"] = f"A string of at most {MAX_IDEMPOTENCY_KEY_CHARS} characters."
    if problems:
        return None, problems
    record = IngestRecord(raw["prompt"], raw["output"], source_model, metadata, idempotency_key.strip())
    if not record.idempotency_key:
        record.idempotency_key = f"content:{record.fingerprint()}"
    return record, {}


def outputs_ingest(
    *, project: Project, records: list[IngestRecord], ingest_key: IngestKey | None = None
) -> list[dict]:
    """Write the records as outputs of ``project`` (all or none), reusing a prompt of the same text.
    Returns one ``{index, idempotency_key, generation, prompt, created}`` per record; raises IngestError
    (``conflict``) when a key was used before for a different record."""
    results: list[dict] = []
    created_ids: list[int] = []
    with transaction.atomic():
        # One query finds the records sent before (a retried batch costs a read, not a read per record).
        known = {
            row.idempotency_key: row
            for row in IngestedOutput.objects.select_related("generation").filter(
                project=project, idempotency_key__in=[record.idempotency_key for record in records]
            )
        }
        seen: dict[str, tuple[str, dict]] = {}
        conflicts: dict[int, dict[str, str]] = {}
        for index, record in enumerate(records):
            fingerprint = record.fingerprint()
            earlier = seen.get(record.idempotency_key)
            if earlier is not None:  # the same key twice in one request
                if earlier[0] != fingerprint:
                    conflicts[index] = {"idempotency_key": "Used for a different record in this request."}
                else:
                    results.append({**earlier[1], "index": index, "created": False})
                continue
            row = known.get(record.idempotency_key)
            created = False
            if row is None:
                row, created = _ingest_one(project, record, fingerprint, ingest_key)
            if row.request_hash != fingerprint:
                conflicts[index] = {"idempotency_key": "Already used for a different record in this project."}
                continue
            result = {"index": index, "idempotency_key": record.idempotency_key,
                      "generation": row.generation_id, "prompt": row.generation.prompt_id, "created": created}  # fmt: skip
            seen[record.idempotency_key] = (fingerprint, result)
            results.append(result)
            if created:
                created_ids.append(row.generation_id)
        if conflicts:
            raise IngestError(conflicts, conflict=True)  # rolls back every record of the request
        if ingest_key is not None:
            IngestKey.objects.filter(pk=ingest_key.pk).update(last_used_at=timezone.now())
        if created_ids:
            outputs_ingested.send(sender=IngestedOutput, project_id=project.pk, generation_ids=created_ids)
    return results


def _ingest_one(
    project: Project, record: IngestRecord, fingerprint: str, ingest_key
) -> tuple[IngestedOutput, bool]:
    existing = _existing(project, record.idempotency_key)
    if existing is not None:
        return existing, False
    try:
        with transaction.atomic():  # a savepoint: a concurrent request may take the key (or the prompt) first
            prompt = Prompt.objects.filter(project=project, content_hash=content_hash(record.prompt)).first()
            if prompt is None:
                prompt = Prompt(project=project, text=record.prompt, metadata={"source": "ingest"})
                prompt.save()
            generation = Generation(prompt=prompt, text=record.output, source_model=record.source_model,
                                    sampling_params={"source": "ingest"})  # fmt: skip
            generation.save()
            row = IngestedOutput.objects.create(
                project=project,
                idempotency_key=record.idempotency_key,
                request_hash=fingerprint,
                generation=generation,
                ingest_key=ingest_key,
                metadata=record.metadata,
            )
    except IntegrityError:
        existing = _existing(project, record.idempotency_key)
        if existing is None:  # the prompt was created concurrently: one more try finds it
            return _ingest_one(project, record, fingerprint, ingest_key)
        return existing, False
    return row, True


def _existing(project: Project, key: str) -> IngestedOutput | None:
    return (
        IngestedOutput.objects.select_related("generation")
        .filter(project=project, idempotency_key=key)
        .first()
    )
