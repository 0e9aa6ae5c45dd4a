"""Projects and prompt imports."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from django.db import transaction

from ..importers import ParseResult
from ..models import Generation, Project, Prompt, content_hash

logger = logging.getLogger(__name__)


@dataclass
class ImportReport:
    created_prompts: int = 0
    created_outputs: int = 0
    duplicates: list[int] = field(default_factory=list)  # line numbers skipped as duplicates
    errors: list[tuple[int, str]] = field(default_factory=list)
    committed: bool = False

    def as_dict(self) -> dict:
        return {
            "created_prompts": self.created_prompts,
            "created_outputs": self.created_outputs,
            "duplicate_lines": self.duplicates,
            "errors": [{"line": line, "message": message} for line, message in self.errors],
            "committed": self.committed,
        }


def project_create(*, name: str, kind: str = Project.Kind.GENERAL, created_by=None, **fields) -> Project:
    project = Project(name=name, kind=kind, created_by=created_by, **fields)
    project.full_clean()
    project.save()
    return project


def prompts_import(*, project: Project, parsed: ParseResult, allow_partial: bool = False) -> ImportReport:
    """Write parsed rows. With errors and no ``allow_partial``, nothing is written.

    Duplicates (the same prompt text already in the project or earlier in the file) are skipped, not
    errors; an output is attached to the existing prompt when its prompt is a duplicate.
    """
    report = ImportReport(errors=list(parsed.errors))
    if report.errors and not allow_partial:
        return report
    with transaction.atomic():
        existing = {
            h: pk for h, pk in Prompt.objects.filter(project=project).values_list("content_hash", "pk")
        }
        existing_outputs = set(
            Generation.objects.filter(prompt__project=project).values_list("content_hash", flat=True)
        )
        for row in parsed.rows:
            key = content_hash(row.text)
            prompt_id = existing.get(key)
            new_prompt = prompt_id is None
            if new_prompt:
                prompt = Prompt(
                    project=project,
                    text=row.text,
                    external_id=row.external_id,
                    reference=row.reference,
                    metadata=row.metadata,
                )
                prompt.save()
                existing[key] = prompt_id = prompt.pk
                report.created_prompts += 1
            if row.output:
                output_key = content_hash(row.text, row.output)
                if output_key in existing_outputs:
                    report.duplicates.append(row.line)
                    continue
                generation = Generation(prompt_id=prompt_id, text=row.output, source_model=row.source_model)
                generation.prompt = Prompt.objects.get(pk=prompt_id) if not new_prompt else prompt
                generation.save()
                existing_outputs.add(output_key)
                report.created_outputs += 1
            elif not new_prompt:
                report.duplicates.append(row.line)
        report.committed = True
    return report


# =====================================================================================================
# The annotation workspace: offsets, span validation, the queue, drafts, spans and submission.
# =====================================================================================================
