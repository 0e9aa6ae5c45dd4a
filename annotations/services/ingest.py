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


@dataclass
class _Pending:
    """A record of the request whose key the project has not seen: to be written."""

    record: IngestRecord
    fingerprint: str


def outputs_ingest(
    *, project: Project, records: list[IngestRecord], ingest_key: IngestKey | None = None
) -> list[dict]:
    """Write the records as outputs of ``project`` (all or none), reusing a prompt of the same text.
    Returns one ``{index, idempotency_key, generation, prompt, created}`` per record; raises IngestError
    (``conflict``) when a key was used before for a different record.

    A request costs a fixed number of queries, not a few per record: one read finds the keys sent before,
    and the new records' prompts, outputs and keys are written with one insert each (``_ingest_new``)."""
    with transaction.atomic():
        keys = [record.idempotency_key for record in records]
        fingerprints = [record.fingerprint() for record in records]
        rows = {row.idempotency_key: row for row in IngestedOutput.objects.select_related("generation")
                .filter(project=project, idempotency_key__in=keys)}  # fmt: skip
        first: dict[str, int] = {}  # each key's first record in the request
        pending: dict[str, _Pending] = {}
        for index, record in enumerate(records):
            if record.idempotency_key not in first:
                first[record.idempotency_key] = index
                if record.idempotency_key not in rows:
                    pending[record.idempotency_key] = _Pending(record, fingerprints[index])
        created = _ingest_new(project, list(pending.values()), ingest_key) if pending else {}
        rows.update({key: row for key, (row, _) in created.items()})
        results, conflicts = _ingest_results(records, fingerprints, first, rows, created)
        if conflicts:
            raise IngestError(conflicts, conflict=True)  # rolls back every record of the request
        if ingest_key is not None:
            IngestKey.objects.filter(pk=ingest_key.pk).update(last_used_at=timezone.now())
        created_ids = [row.generation_id for row, was_created in created.values() if was_created]
        if created_ids:
            outputs_ingested.send(sender=IngestedOutput, project_id=project.pk, generation_ids=created_ids)
    return results


def _ingest_results(records, fingerprints, first: dict[str, int], rows: dict, created: dict):
    """(one result per record, in order; the conflicts): a record whose key the project, or an earlier
    record of the request, holds for a different record."""
    results: list[dict] = []
    conflicts: dict[int, dict[str, str]] = {}
    for index, record in enumerate(records):
        key = record.idempotency_key
        row, earliest = rows[key], first[key]
        if row.request_hash != fingerprints[index]:
            if earliest != index and row.request_hash == fingerprints[earliest]:
                conflicts[index] = {"idempotency_key": "Used for a different record in this request."}
            else:
                conflicts[index] = {"idempotency_key": "Already used for a different record in this project."}
            continue
        was_created = earliest == index and key in created and created[key][1]
        results.append({"index": index, "idempotency_key": key, "generation": row.generation_id,
                        "prompt": row.generation.prompt_id, "created": was_created})  # fmt: skip
    return results, conflicts


def _ingest_new(project: Project, pending: list[_Pending], ingest_key) -> dict:
    """Write the new records in three inserts (the prompts the project lacks, the outputs, the keys),
    under a savepoint; ``{key: (IngestedOutput, created)}``. A concurrent request that took one of the
    keys or prompts first makes the inserts fail: then each record goes its own way (``_ingest_each``),
    which finds what the other request wrote."""
    try:
        with transaction.atomic():
            return _ingest_batch(project, pending, ingest_key)
    except IntegrityError:
        return _ingest_each(project, pending, ingest_key)


def _ingest_batch(project: Project, pending: list[_Pending], ingest_key) -> dict:
    hashes = {content_hash(item.record.prompt): item.record.prompt for item in pending}
    prompts = {p.content_hash: p for p in Prompt.objects.filter(project=project, content_hash__in=hashes)}
    missing = [Prompt(project=project, text=text, metadata={"source": "ingest"}, content_hash=digest)
               for digest, text in hashes.items() if digest not in prompts]  # fmt: skip
    prompts.update({p.content_hash: p for p in Prompt.objects.bulk_create(missing)})
    generations = []
    for item in pending:
        prompt = prompts[content_hash(item.record.prompt)]
        generations.append(
            Generation(prompt=prompt, text=item.record.output, source_model=item.record.source_model,
                       sampling_params={"source": "ingest"}, content_hash=content_hash(prompt.text, item.record.output))
        )  # fmt: skip
    Generation.objects.bulk_create(generations)
    rows = IngestedOutput.objects.bulk_create(
        IngestedOutput(project=project, idempotency_key=item.record.idempotency_key,
                       request_hash=item.fingerprint, generation=generation, ingest_key=ingest_key,
                       metadata=item.record.metadata)
        for item, generation in zip(pending, generations, strict=True)
    )  # fmt: skip
    return {row.idempotency_key: (row, True) for row in rows}


def _ingest_each(project: Project, pending: list[_Pending], ingest_key) -> dict:
    """One record at a time, each under its own savepoint (the way through a concurrent request)."""
    return {
        item.record.idempotency_key: _ingest_one(project, item.record, item.fingerprint, ingest_key)
        for item in pending
    }


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
